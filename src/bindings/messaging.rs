//! Frames from JS: events to a session, a user or a room, call replies, and closes.
//!
//! The hot frames (an event to one session, a call's reply) usually arrive together, many per
//! JS tick, in one [`NativeServer::send_frames`] call: one crossing of the boundary for a tick's
//! worth of frames instead of one per frame (see `lib/`'s outgoing module).

use napi_derive::napi;

use super::convert::{definition, session};
use napi::bindgen_prelude::*;

use super::{js_error, NativeServer};
use crate::core::Frame;
use crate::registry::Target;
use crate::transport::outbox::WireFrame;
use bytes::Bytes;
use tokio_tungstenite::tungstenite::Utf8Bytes;

fn call_id(value: i64) -> u64 {
  u64::try_from(value).unwrap_or(u64::MAX)
}

#[napi]
impl NativeServer {
  /// Sends an event to one session; false when it is gone or closing.
  #[napi(catch_unwind)]
  pub fn emit(&self, session_id: i64, event: String, payload_json: Option<String>) -> Result<bool, String> {
    let reached = self.emit_to(Target::Session(session(session_id)), &event, payload_json)?;
    Ok(reached > 0)
  }

  /// Sends an event to every session of a user (but `exceptSession`); returns how many.
  #[napi(catch_unwind)]
  pub fn emit_to_user(
    &self,
    endpoint: u32,
    key: String,
    event: String,
    payload_json: Option<String>,
    except_session: Option<i64>,
  ) -> Result<u32, String> {
    let target = Target::User {
      definition: definition(endpoint),
      key: &key,
      except: except_session.map(session),
    };
    self.emit_to(target, &event, payload_json)
  }

  /// Sends an event to every session of every live member (but `exceptSession`); returns how
  /// many sessions it was queued for. Encoded once; the bytes are shared by all recipients.
  #[napi(catch_unwind)]
  pub fn emit_to_room(
    &self,
    name: String,
    event: String,
    payload_json: Option<String>,
    except_session: Option<i64>,
  ) -> Result<u32, String> {
    let target = Target::Room {
      name: &name,
      except: except_session.map(session),
    };
    self.emit_to(target, &event, payload_json)
  }

  /// Sends a raw endpoint's message to one of its sessions, as it is: a string as a text frame,
  /// bytes as a binary frame. False when the session is gone or closing (or is not raw).
  #[napi(catch_unwind)]
  pub fn send_raw(&self, session_id: i64, data: Either<String, Uint8Array>) -> bool {
    self
      .core
      .send_raw(Target::Session(session(session_id)), raw_frame(data))
      > 0
  }

  /// Sends a raw message to every raw session of every live member of a room (but
  /// `exceptSession`); returns how many. The bytes are copied once and shared.
  #[napi(catch_unwind)]
  pub fn broadcast_raw(
    &self,
    name: String,
    data: Either<String, Uint8Array>,
    except_session: Option<i64>,
  ) -> u32 {
    let target = Target::Room {
      name: &name,
      except: except_session.map(session),
    };
    self.core.send_raw(target, raw_frame(data))
  }

  /// Sends a tick's frames to single sessions, in order (the format is documented at
  /// `protocol::Outgoing`). Returns how many were delivered.
  #[napi(catch_unwind)]
  pub fn send_frames(&self, batch: String) -> Result<u32, String> {
    self.core.send_batch(&batch).map_err(js_error)
  }

  /// Answers a call with its result (JSON text, or null for undefined). False when the call
  /// already timed out or its session is gone: the client got its one answer.
  #[napi(catch_unwind)]
  pub fn reply(&self, session_id: i64, call: i64, result_json: Option<String>) -> bool {
    self
      .core
      .reply(session(session_id), call_id(call), result_json.as_deref())
  }

  /// Answers a call with an error.
  #[napi(catch_unwind)]
  pub fn reply_error(
    &self,
    session_id: i64,
    call: i64,
    code: String,
    message: String,
    meta_json: Option<String>,
  ) -> bool {
    self.core.reply_error(
      session(session_id),
      call_id(call),
      &code,
      &message,
      meta_json.as_deref(),
    )
  }

  /// Closes a session after the frames already queued for it.
  /// `code` must be 1000 or 3000–4999 unless `internal` (1008, 1011 from the runtime itself).
  #[napi(catch_unwind)]
  pub fn close_session(
    &self,
    session_id: i64,
    code: u32,
    reason: String,
    internal: Option<bool>,
  ) -> Result<bool, String> {
    self
      .core
      .close_session(session(session_id), code, &reason, internal.unwrap_or(false))
      .map_err(js_error)
  }
}

/// A raw message from JS as the socket sends it.
fn raw_frame(data: Either<String, Uint8Array>) -> WireFrame {
  match data {
    Either::A(text) => WireFrame::RawText(Utf8Bytes::from(text)),
    Either::B(bytes) => WireFrame::Binary(Bytes::copy_from_slice(&bytes)),
  }
}

impl NativeServer {
  fn emit_to(&self, target: Target<'_>, event: &str, payload_json: Option<String>) -> Result<u32, String> {
    let frame = Frame {
      event,
      payload_json: payload_json.as_deref(),
    };
    self.core.emit(target, frame).map_err(js_error)
  }
}
