//! Frames from JS: events to a session, a user or a room, call replies, and closes. Every frame
//! goes through the output gate, so it waits when it follows an unflushed state change.
//!
//! The hot frames (an event to one session, a call's reply) usually arrive together, many per
//! JS tick, in one [`NativeServer::send_frames`] call: one crossing of the boundary for a tick's
//! worth of frames instead of one per frame (see `lib/outgoing.ts`).

use napi::bindgen_prelude::*;
use napi_derive::napi;

use super::{frame_of, invalid, to_id, NativeServer};
use crate::error::CloseCode;
use crate::protocol::{encoded_event_frame, Unsealed};
use crate::protocol::{reply_error_frame, reply_frame};
use crate::registry::Target;

#[napi]
impl NativeServer {
  /// Sends an event to one session; false when it is gone or closing.
  #[napi]
  pub fn emit(&self, session: i64, event: String, payload_json: Option<String>) -> Result<bool> {
    let frame = frame_of(&event, payload_json.as_deref())?;
    Ok(
      self
        .server
        .gate
        .send(&self.server.registry, Target::Session(to_id(session)), frame)
        > 0,
    )
  }

  /// Sends an event to every session of a user (but `exceptSession`); returns how many.
  #[napi]
  pub fn emit_to_user(
    &self,
    endpoint: u32,
    key: String,
    event: String,
    payload_json: Option<String>,
    except_session: Option<i64>,
  ) -> Result<u32> {
    let frame = frame_of(&event, payload_json.as_deref())?;
    let target = Target::User {
      endpoint: endpoint as usize,
      key: &key,
      except: except_session.map(to_id),
    };
    Ok(self.server.gate.send(&self.server.registry, target, frame))
  }

  /// Sends an event to every session of every live member (but `exceptSession`); returns how
  /// many sessions it was queued for. Encoded once; the bytes are shared by all recipients.
  #[napi]
  pub fn emit_to_room(
    &self,
    name: String,
    event: String,
    payload_json: Option<String>,
    except_session: Option<i64>,
  ) -> Result<u32> {
    let frame = frame_of(&event, payload_json.as_deref())?;
    let target = Target::Room {
      name: &name,
      except: except_session.map(to_id),
    };
    Ok(self.server.gate.send(&self.server.registry, target, frame))
  }

  /// Sends the frames of `batch`, in order: one per line, fields separated by tabs.
  /// `e <session> <event as a JSON string> <payload JSON or nothing>` is an event to a session,
  /// `r <session> <call id> <result JSON or nothing>` a call's reply. JSON text holds neither
  /// tabs nor newlines, so the separators are unambiguous. Returns how many frames were sent.
  #[napi]
  pub fn send_frames(&self, batch: String) -> Result<u32> {
    let mut sent = 0;
    for line in batch.split('\n').filter(|line| !line.is_empty()) {
      let mut fields = line.splitn(4, '\t');
      let (Some(kind), Some(session), Some(third)) = (fields.next(), fields.next(), fields.next()) else {
        return Err(invalid(format!("malformed frame batch line: {line:?}")));
      };
      let json = fields.next().filter(|json| !json.is_empty());
      let session = session
        .parse::<u64>()
        .map_err(|_| invalid(format!("malformed session id in frame batch: {session:?}")))?;
      let delivered = match kind {
        "e" => {
          let frame =
            encoded_event_frame(third, json).map_err(|_| invalid("event payloads must be plain objects"))?;
          self
            .server
            .gate
            .send(&self.server.registry, Target::Session(session), frame)
            > 0
        }
        "r" => {
          let call = third
            .parse::<u64>()
            .map_err(|_| invalid(format!("malformed call id in frame batch: {third:?}")))?;
          self.answer_call(session, call, || reply_frame(call, json))
        }
        other => return Err(invalid(format!("unknown frame kind in batch: {other:?}"))),
      };
      sent += u32::from(delivered);
    }
    Ok(sent)
  }

  /// Answers a call with its result (JSON text, or null for undefined). False when the call
  /// already timed out or its session is gone: the client got its one answer.
  #[napi]
  pub fn reply(&self, session: i64, call: i64, result_json: Option<String>) -> bool {
    self.answer(session, call, || reply_frame(to_id(call), result_json.as_deref()))
  }

  /// Answers a call with an error.
  #[napi]
  pub fn reply_error(
    &self,
    session: i64,
    call: i64,
    code: String,
    message: String,
    meta_json: Option<String>,
  ) -> bool {
    self.answer(session, call, || {
      reply_error_frame(to_id(call), &code, &message, meta_json.as_deref())
    })
  }

  /// Closes a session after the frames already queued for it.
  /// `code` must be 1000 or 3000–4999 unless `internal` (1008, 1011 from the runtime itself).
  #[napi]
  pub fn close_session(
    &self,
    session: i64,
    code: u32,
    reason: String,
    internal: Option<bool>,
  ) -> Result<bool> {
    let code = u16::try_from(code).map_err(|_| invalid(format!("invalid close code {code}")))?;
    let runtime_code = internal.unwrap_or(false)
      && matches!(
        CloseCode::from_u16(code),
        CloseCode::Policy | CloseCode::InternalError
      );
    if !runtime_code && !CloseCode::is_sendable_by_app(code) {
      return Err(invalid(format!(
        "close code must be 1000 or 3000-4999, got {code}"
      )));
    }
    if reason.len() > 123 {
      return Err(invalid("close reason must be at most 123 bytes"));
    }
    Ok(self.server.registry.close_session(to_id(session), code, &reason))
  }
}

impl NativeServer {
  /// Sends the one answer of a call, unless it already has one (timed out, or its session is
  /// gone). The frame is only encoded when it will be sent.
  fn answer(&self, session: i64, call: i64, frame: impl FnOnce() -> Unsealed) -> bool {
    self.answer_call(to_id(session), to_id(call), frame)
  }

  fn answer_call(&self, session: u64, call: u64, frame: impl FnOnce() -> Unsealed) -> bool {
    if !self.server.calls.answered(session, call) {
      return false;
    }
    self
      .server
      .gate
      .send(&self.server.registry, Target::Session(session), frame())
      > 0
  }
}
