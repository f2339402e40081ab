//! Frames from JS: events to a session, a user or a room, call replies, and closes. Every frame
//! goes through the output gate, so it waits when it follows an unflushed state change, and a
//! call gets exactly one answer (its reply, or the timeout sent by the upkeep timer).

use super::Core;
use crate::error::{CloseCode, CoreError};
use crate::ids::SessionId;
use crate::metrics::CallOutcome;
use crate::protocol::{encoded_event_frame, event_frame, parse_outgoing, reply_error_frame, reply_frame};
use crate::protocol::{Outgoing, Unsealed};
use crate::registry::Target;
use crate::transport::outbox::WireFrame;

/// Longest close reason a close frame can carry (125 bytes of payload less the code).
const MAX_CLOSE_REASON_BYTES: usize = 123;

/// An event frame from JS: its name and payload (a JSON object, or none).
pub struct Frame<'a> {
  pub event: &'a str,
  pub payload_json: Option<&'a str>,
}

fn not_an_object() -> CoreError {
  CoreError::InvalidArgument("event payloads must be plain objects".into())
}

impl Core {
  /// Sends an event to `target`; returns how many sessions it was (or will be) delivered to.
  /// Encoded once, whatever the number of recipients.
  ///
  /// In cluster mode a message to a room or a user is also published for the other nodes
  /// (once it may leave: after the state before it is durable); the count is this node's
  /// sessions only, since the others receive it later.
  pub fn emit(&self, target: Target<'_>, frame: Frame<'_>) -> Result<u32, CoreError> {
    let frame = event_frame(frame.event, frame.payload_json).map_err(|_| not_an_object())?;
    let publish = match (&self.cluster, target) {
      (Some(cluster), Target::Room { name, .. }) => Some(cluster.room_publish(name, &frame)),
      (Some(cluster), Target::User { definition, key, .. }) => {
        let name = self
          .config
          .definitions
          .get(definition.get())
          .map_or("", |d| d.name.as_str());
        Some(cluster.user_publish(name, key, &frame))
      }
      _ => None,
    };
    Ok(
      self
        .storage
        .gate()
        .send_then(&self.registry, target, frame, publish),
    )
  }

  /// Sends a raw endpoint's frame (text or binary, as it is) to a session or a room; returns
  /// how many sessions it was (or will be) delivered to. Behind state changes like any frame;
  /// shared, not copied, by a room's members. Only raw sessions receive it: a JSON session of
  /// the room would not understand it.
  ///
  /// In cluster mode a frame to a room is also published for the other nodes' raw sessions
  /// (once it may leave, as [`Core::emit`] does); the count is this node's sessions only.
  pub fn send_raw(&self, target: Target<'_>, frame: WireFrame) -> u32 {
    let publish = match (&self.cluster, target) {
      (Some(cluster), Target::Room { name, .. }) => cluster.room_publish_raw(name, &frame),
      _ => None,
    };
    self
      .storage
      .gate()
      .send_raw(&self.registry, target, frame, publish)
  }

  fn send(&self, target: Target<'_>, frame: Unsealed) -> u32 {
    self.storage.gate().send(&self.registry, target, frame)
  }

  /// Sends a tick's batch of frames to single sessions (see [`Outgoing`]), in order. Returns how
  /// many were delivered.
  ///
  /// Consecutive events go through the output gate together ([`OutputGate::send_to_sessions`]:
  /// one gate lock and one registry lock for the run, not one of each per frame).
  ///
  /// [`OutputGate::send_to_sessions`]: crate::durability::gate::OutputGate::send_to_sessions
  pub fn send_batch(&self, batch: &str) -> Result<u32, CoreError> {
    // Corked: a session gets the tick's frames in one write.
    crate::transport::outbox::corked(|| self.send_each(batch))
  }

  fn send_each(&self, batch: &str) -> Result<u32, CoreError> {
    let gate = self.storage.gate();
    let mut sent = 0;
    let mut run: Vec<(SessionId, Unsealed)> = Vec::new();
    let flush = |run: &mut Vec<(SessionId, Unsealed)>| {
      if run.is_empty() {
        0
      } else {
        gate.send_to_sessions(&self.registry, std::mem::take(run))
      }
    };
    let mut refused = None;
    for line in parse_outgoing(batch) {
      match line {
        Err(error) => {
          refused = Some(CoreError::InvalidArgument(error));
          break;
        }
        Ok(Outgoing::Event {
          session,
          event_json,
          payload_json,
        }) => match encoded_event_frame(event_json, payload_json) {
          Ok(frame) => run.push((session, frame)),
          Err(_) => {
            refused = Some(not_an_object());
            break;
          }
        },
        Ok(Outgoing::Reply {
          session,
          call,
          result_json,
        }) => {
          sent += flush(&mut run);
          let answered = self.answer_call(session, call, CallOutcome::Ok, || reply_frame(call, result_json));
          sent += u32::from(answered);
        }
      }
    }
    // The lines before a bad one are sent, as they would have been one by one.
    sent += flush(&mut run);
    refused.map_or(Ok(sent), Err)
  }

  /// Answers a call with its result (JSON, or null). False when the call already has its
  /// answer (it timed out) or its session is gone.
  pub fn reply(&self, session: SessionId, call: u64, result_json: Option<&str>) -> bool {
    self.answer_call(session, call, CallOutcome::Ok, || reply_frame(call, result_json))
  }

  /// Answers a call with an error code, message and optional meta (JSON).
  pub fn reply_error(
    &self,
    session: SessionId,
    call: u64,
    code: &str,
    message: &str,
    meta_json: Option<&str>,
  ) -> bool {
    self.answer_call(session, call, CallOutcome::Error, || {
      reply_error_frame(call, code, message, meta_json)
    })
  }

  /// Sends the one answer of a call, unless it already has one. The frame is only encoded when
  /// it will be sent.
  fn answer_call(
    &self,
    session: SessionId,
    call: u64,
    outcome: CallOutcome,
    frame: impl FnOnce() -> Unsealed,
  ) -> bool {
    let Some(elapsed) = self.calls.answered(session, call) else {
      return false;
    };
    self.metrics.call(outcome, elapsed);
    self
      .storage
      .gate()
      .send_reply(&self.registry, session, call, frame())
      > 0
  }

  /// Answers every call past its deadline with a `timeout` error (behind the output gate, like
  /// any reply).
  pub(super) fn time_out_calls(&self) {
    let expired = self.calls.expired(std::time::Instant::now());
    if expired.is_empty() {
      return;
    }
    let message = format!(
      "the call did not finish within {} ms",
      self.calls.timeout().as_millis()
    );
    for (session, call, elapsed) in expired {
      self.metrics.call(CallOutcome::Timeout, elapsed);
      let frame = reply_error_frame(call, "timeout", &message, None);
      self.send(Target::Session(session), frame);
    }
  }

  /// Closes a session after the frames already queued for it; false when it is gone or
  /// closing. `code` must be 1000 or 3000–4999, unless `internal` (1008 and 1011, which the JS
  /// runtime itself uses).
  pub fn close_session(
    &self,
    session: SessionId,
    code: u32,
    reason: &str,
    internal: bool,
  ) -> Result<bool, CoreError> {
    let code =
      u16::try_from(code).map_err(|_| CoreError::InvalidArgument(format!("invalid close code {code}")))?;
    let runtime_code = internal
      && matches!(
        CloseCode::from_u16(code),
        CloseCode::Policy | CloseCode::InternalError
      );
    if !runtime_code && !CloseCode::is_sendable_by_app(code) {
      return Err(CoreError::InvalidArgument(format!(
        "close code must be 1000 or 3000-4999, got {code}"
      )));
    }
    if reason.len() > MAX_CLOSE_REASON_BYTES {
      return Err(CoreError::InvalidArgument(format!(
        "close reason must be at most {MAX_CLOSE_REASON_BYTES} bytes"
      )));
    }
    Ok(self.registry.close_session(session, code, reason))
  }
}
