//! The wire protocol (DESIGN §3): client frames are parsed once, borrowing from the received
//! text; server frames are encoded once into shared bytes that any number of sockets can send.
//!
//! Event names and payloads are never re-encoded: the raw JSON tokens of a client frame travel
//! to JS as they arrived, and a payload encoded by JS is spliced into the server envelope.
//!
//! Raw endpoints bypass all of this: their messages are [`RawData`], text or bytes as they came.
//!
//! Frames that JS (or a call deadline) sends are numbered: the encoder leaves the object open
//! ([`Unsealed`]) and the output gate closes it with `,"seq":N}` under its lock, so the numbers a
//! session receives increase in the order it receives them. Resume replays by these numbers;
//! clients that know nothing of them just see an extra field. Frames a session makes for itself
//! (pongs, `system:error`, the `session` frame) carry no number and are never replayed.

use serde::Deserialize;
use serde_json::value::RawValue;
use tokio_tungstenite::tungstenite::Utf8Bytes;

use crate::error::FrameError;
use crate::ids::SessionId;
use crate::json::{push_int, push_string};

/// Largest call id accepted: integers JS numbers represent exactly.
pub const MAX_CALL_ID: u64 = (1 << 53) - 1;

/// A client frame, borrowed from the text it was parsed from.
#[derive(Debug, PartialEq)]
pub enum ClientFrame<'a> {
  /// `{"type":"ping"}`: answered in Rust with `{"type":"pong"}`; JS never sees it. `ack` (when
  /// the client resumes sessions) is the highest frame number it has received: the server may
  /// forget frames up to it.
  Ping { ack: Option<u64> },
  /// `{"type":"x","data":...}`. `kind` is the raw JSON string token of `type` (quotes
  /// included); `data` the raw JSON of `data`, if any. JS routes by `data.type`, else `type`.
  Event { kind: &'a str, data: Option<&'a str> },
  /// `{"type":"call","id":7,"event":"x","data":...}`: exactly one `reply` answers it.
  Call {
    id: u64,
    event: &'a str,
    data: Option<&'a str>,
  },
}

/// A message of a raw endpoint, as it arrived: JS gets a string for text and bytes for binary.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RawData<'a> {
  Text(&'a str),
  Binary(&'a [u8]),
}

#[derive(Deserialize)]
struct WireFrame<'a> {
  #[serde(rename = "type", borrow)]
  kind: &'a RawValue,
  #[serde(borrow, default)]
  data: Option<&'a RawValue>,
  #[serde(borrow, default)]
  id: Option<&'a RawValue>,
  #[serde(borrow, default)]
  event: Option<&'a RawValue>,
  #[serde(borrow, default)]
  ack: Option<&'a RawValue>,
}

fn is_json_string(raw: &RawValue) -> bool {
  raw.get().starts_with('"')
}

/// Parses one client text frame.
pub fn parse_client_frame(text: &str) -> Result<ClientFrame<'_>, FrameError> {
  let wire: WireFrame<'_> = serde_json::from_str(text).map_err(|_| FrameError::Malformed)?;
  if !is_json_string(wire.kind) {
    return Err(FrameError::Malformed);
  }
  let data = wire.data.map(RawValue::get).filter(|raw| *raw != "null");
  match wire.kind.get() {
    "\"ping\"" => Ok(ClientFrame::Ping {
      ack: wire.ack.and_then(|raw| raw.get().parse::<u64>().ok()),
    }),
    "\"call\"" => {
      let id = wire
        .id
        .and_then(|raw| raw.get().parse::<u64>().ok())
        .filter(|id| *id <= MAX_CALL_ID)
        .ok_or(FrameError::BadCall)?;
      let event = wire
        .event
        .filter(|raw| is_json_string(raw))
        .ok_or(FrameError::BadCall)?;
      Ok(ClientFrame::Call {
        id,
        event: event.get(),
        data,
      })
    }
    kind => Ok(ClientFrame::Event { kind, data }),
  }
}

/// A numbered server frame still missing its closing brace: [`Unsealed::seal`] appends the
/// frame number (or nothing) and the brace. Room for both is reserved when it is encoded, so
/// sealing under the gate lock never reallocates.
#[derive(Debug, PartialEq, Eq)]
pub struct Unsealed(String);

/// Bytes `,"seq":<u64>}` can take.
const SEAL_BYTES: usize = 28;

impl Unsealed {
  fn with_capacity(capacity: usize) -> String {
    String::with_capacity(capacity + SEAL_BYTES)
  }

  /// The frame so far, as other nodes receive it (they number it for their own sessions).
  pub fn text(&self) -> &str {
    &self.0
  }

  /// A frame another node encoded (its [`Unsealed::text`]).
  pub fn from_peer(text: &str) -> Self {
    let mut out = Self::with_capacity(text.len());
    out.push_str(text);
    Unsealed(out)
  }

  /// Closes the frame, numbered `seq` when given.
  pub fn seal(mut self, seq: Option<u64>) -> Utf8Bytes {
    if let Some(seq) = seq {
      self.0.push_str(r#","seq":"#);
      push_int(&mut self.0, seq);
    }
    self.0.push('}');
    Utf8Bytes::from(self.0)
  }
}

/// `{"type":"pong"}`, the heartbeat answer.
pub fn pong_frame() -> Utf8Bytes {
  Utf8Bytes::from_static(r#"{"type":"pong"}"#)
}

/// Why a payload given by JS cannot be put in an event frame.
#[derive(Debug, PartialEq, Eq)]
pub struct NotAnObject;

/// An event frame: `{"type":"event","channel":"default","data":{"type":<event>, ...payload}}`.
///
/// `payload_json` must be a JSON object (or absent): its members are spliced after the event
/// name, as Verani's clients expect. It is encoded once and shared by every recipient.
pub fn event_frame(event: &str, payload_json: Option<&str>) -> Result<Unsealed, NotAnObject> {
  encoded_event_frame(&crate::json::string(event), payload_json)
}

/// [`event_frame`] with the event name already encoded as a JSON string literal.
pub fn encoded_event_frame(event_json: &str, payload_json: Option<&str>) -> Result<Unsealed, NotAnObject> {
  if !(event_json.len() >= 2 && event_json.starts_with('"') && event_json.ends_with('"')) {
    return Err(NotAnObject);
  }
  let payload = payload_json.map(str::trim).unwrap_or("{}");
  let members = payload
    .strip_prefix('{')
    .and_then(|rest| rest.strip_suffix('}'))
    .ok_or(NotAnObject)?
    .trim();
  let mut out = Unsealed::with_capacity(48 + event_json.len() + members.len());
  out.push_str(r#"{"type":"event","channel":"default","data":{"type":"#);
  out.push_str(event_json);
  if !members.is_empty() {
    out.push(',');
    out.push_str(members);
  }
  out.push('}');
  Ok(Unsealed(out))
}

/// A successful call reply: `{"type":"reply","id":7,"data":<result>}`.
pub fn reply_frame(id: u64, result_json: Option<&str>) -> Unsealed {
  let result = result_json.unwrap_or("null");
  let mut out = Unsealed::with_capacity(32 + result.len());
  out.push_str(r#"{"type":"reply","id":"#);
  push_int(&mut out, id);
  out.push_str(r#","data":"#);
  out.push_str(result);
  Unsealed(out)
}

/// A failed call reply: `{"type":"reply","id":7,"error":{"code":..,"message":..,"meta":..}}`.
pub fn reply_error_frame(id: u64, code: &str, message: &str, meta_json: Option<&str>) -> Unsealed {
  let mut out = Unsealed::with_capacity(64 + code.len() + message.len());
  out.push_str(r#"{"type":"reply","id":"#);
  push_int(&mut out, id);
  out.push_str(r#","error":{"code":"#);
  push_string(&mut out, code);
  out.push_str(r#","message":"#);
  push_string(&mut out, message);
  if let Some(meta) = meta_json {
    out.push_str(r#","meta":"#);
    out.push_str(meta);
  }
  out.push('}');
  Unsealed(out)
}

/// The first frame of a session opened with `_resume`: `{"type":"session","resumed":..,
/// "token":..}`. `token` is absent when the server keeps no sessions for resuming
/// (`resumeWindowMs: 0`); `resumed` says whether this socket continues an earlier session, whose
/// missed frames follow.
pub fn session_frame(token: Option<&str>, resumed: bool) -> Utf8Bytes {
  let mut out = String::with_capacity(80);
  out.push_str(r#"{"type":"session","resumed":"#);
  out.push_str(if resumed { "true" } else { "false" });
  if let Some(token) = token {
    out.push_str(r#","token":"#);
    push_string(&mut out, token);
  }
  out.push('}');
  Utf8Bytes::from(out)
}

/// A `system:error` event telling the client its frame was refused; the session stays open.
pub fn system_error_frame(error: FrameError) -> Utf8Bytes {
  let mut out = String::with_capacity(128);
  out.push_str(r#"{"type":"event","channel":"default","data":{"type":"system:error","code":"#);
  push_string(&mut out, error.code());
  out.push_str(r#","message":"#);
  push_string(&mut out, error.message());
  out.push_str("}}");
  Utf8Bytes::from(out)
}

/// One frame of the batch JS sends once per tick (`NativeServer.sendFrames`): one line per
/// frame, fields separated by tabs. `e <session> <event as a JSON string> <payload JSON or
/// nothing>` is an event to a session, `r <session> <call id> <result JSON or nothing>` a call's
/// reply. JSON text holds neither tabs nor newlines, so the separators are unambiguous.
#[derive(Debug, PartialEq, Eq)]
pub enum Outgoing<'a> {
  Event {
    session: SessionId,
    event_json: &'a str,
    payload_json: Option<&'a str>,
  },
  Reply {
    session: SessionId,
    call: u64,
    result_json: Option<&'a str>,
  },
}

/// Parses a batch of [`Outgoing`] frames, in order; a malformed line is described.
pub fn parse_outgoing(batch: &str) -> impl Iterator<Item = Result<Outgoing<'_>, String>> {
  batch.split('\n').filter(|line| !line.is_empty()).map(|line| {
    let mut fields = line.splitn(4, '\t');
    let (Some(kind), Some(session), Some(third)) = (fields.next(), fields.next(), fields.next()) else {
      return Err(format!("malformed frame batch line: {line:?}"));
    };
    let json = fields.next().filter(|json| !json.is_empty());
    let session = session
      .parse::<u64>()
      .map(SessionId)
      .map_err(|_| format!("malformed session id in frame batch: {session:?}"))?;
    match kind {
      "e" => Ok(Outgoing::Event {
        session,
        event_json: third,
        payload_json: json,
      }),
      "r" => Ok(Outgoing::Reply {
        session,
        call: third
          .parse::<u64>()
          .map_err(|_| format!("malformed call id in frame batch: {third:?}"))?,
        result_json: json,
      }),
      other => Err(format!("unknown frame kind in batch: {other:?}")),
    }
  })
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn parses_events_with_raw_tokens() {
    let frame = parse_client_frame(r#"{"type":"chat.message","data":{"text":"hi"}}"#);
    assert_eq!(
      frame,
      Ok(ClientFrame::Event {
        kind: r#""chat.message""#,
        data: Some(r#"{"text":"hi"}"#)
      })
    );
    let frame = parse_client_frame(r#"{"type":"x","data":null}"#);
    assert_eq!(
      frame,
      Ok(ClientFrame::Event {
        kind: r#""x""#,
        data: None
      })
    );
  }

  #[test]
  fn recognises_ping_and_calls() {
    assert_eq!(
      parse_client_frame(r#"{"type":"ping"}"#),
      Ok(ClientFrame::Ping { ack: None })
    );
    assert_eq!(
      parse_client_frame(r#"{"type":"ping","ack":41}"#),
      Ok(ClientFrame::Ping { ack: Some(41) })
    );
    let frame = parse_client_frame(r#"{"type":"call","id":7,"event":"count.get","data":{}}"#);
    assert_eq!(
      frame,
      Ok(ClientFrame::Call {
        id: 7,
        event: r#""count.get""#,
        data: Some("{}")
      })
    );
  }

  #[test]
  fn refuses_malformed_frames() {
    for text in [
      "",
      "nope",
      "[]",
      "42",
      r#"{"data":1}"#,
      r#"{"type":3}"#,
      r#"{"type":"a","type":"b"}"#,
    ] {
      assert_eq!(parse_client_frame(text), Err(FrameError::Malformed), "{text}");
    }
    for text in [
      r#"{"type":"call","event":"x"}"#,
      r#"{"type":"call","id":-1,"event":"x"}"#,
      r#"{"type":"call","id":1.5,"event":"x"}"#,
      r#"{"type":"call","id":1,"event":2}"#,
      r#"{"type":"call","id":9007199254740992,"event":"x"}"#,
    ] {
      assert_eq!(parse_client_frame(text), Err(FrameError::BadCall), "{text}");
    }
  }

  #[test]
  fn splices_payload_members_after_the_event_name() {
    let frame = event_frame("welcome", Some(r#"{"count":1}"#)).map(|f| f.seal(None).to_string());
    assert_eq!(
      frame.as_deref(),
      Ok(r#"{"type":"event","channel":"default","data":{"type":"welcome","count":1}}"#)
    );
    let frame = event_frame("welcome", None).map(|f| f.seal(Some(12)).to_string());
    assert_eq!(
      frame.as_deref(),
      Ok(r#"{"type":"event","channel":"default","data":{"type":"welcome"},"seq":12}"#)
    );
    let frame = event_frame("a\"b", None).map(|f| f.seal(None).to_string());
    assert_eq!(
      frame.as_deref(),
      Ok(r#"{"type":"event","channel":"default","data":{"type":"a\"b"}}"#)
    );
    let frame = event_frame("x", Some("{ }")).map(|f| f.seal(None).to_string());
    assert_eq!(
      frame.as_deref(),
      Ok(r#"{"type":"event","channel":"default","data":{"type":"x"}}"#)
    );
    assert_eq!(event_frame("x", Some("[1]")), Err(NotAnObject));
    let frame = encoded_event_frame(r#""a\tb""#, Some(r#"{"n":1}"#)).map(|f| f.seal(Some(2)).to_string());
    assert_eq!(
      frame.as_deref(),
      Ok(r#"{"type":"event","channel":"default","data":{"type":"a\tb","n":1},"seq":2}"#)
    );
    assert_eq!(encoded_event_frame("x", None), Err(NotAnObject));
  }

  #[test]
  fn encodes_replies() {
    assert_eq!(
      reply_frame(7, Some("42")).seal(Some(3)).as_str(),
      r#"{"type":"reply","id":7,"data":42,"seq":3}"#
    );
    assert_eq!(
      reply_frame(1, None).seal(None).as_str(),
      r#"{"type":"reply","id":1,"data":null}"#
    );
    assert_eq!(
      reply_error_frame(7, "handler_error", "boom", None)
        .seal(None)
        .as_str(),
      r#"{"type":"reply","id":7,"error":{"code":"handler_error","message":"boom"}}"#
    );
  }

  #[test]
  fn parses_the_outgoing_batch_of_a_tick() {
    let batch = "e\t3\t\"hi\"\t{\"n\":1}\nr\t3\t7\t\ne\t4\t\"x\"\n";
    let parsed: Vec<_> = parse_outgoing(batch).collect();
    assert_eq!(
      parsed,
      vec![
        Ok(Outgoing::Event {
          session: SessionId(3),
          event_json: "\"hi\"",
          payload_json: Some("{\"n\":1}")
        }),
        Ok(Outgoing::Reply {
          session: SessionId(3),
          call: 7,
          result_json: None
        }),
        Ok(Outgoing::Event {
          session: SessionId(4),
          event_json: "\"x\"",
          payload_json: None
        }),
      ]
    );
    for bad in ["x\t1\t2", "e\tnope\t\"x\"", "r\t1\tnope", "e"] {
      assert!(parse_outgoing(bad).all(|line| line.is_err()), "{bad}");
    }
  }

  #[test]
  fn sealing_never_reallocates() {
    let frame = reply_frame(1, Some("1"));
    let capacity = frame.0.capacity();
    let mut open = frame.0;
    open.push_str(&format!(r#","seq":{}}}"#, u64::MAX));
    assert_eq!(open.capacity(), capacity);
    assert_eq!(
      session_frame(Some("t"), true).as_str(),
      r#"{"type":"session","resumed":true,"token":"t"}"#
    );
  }
}
