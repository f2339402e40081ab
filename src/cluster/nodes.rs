//! Messages from one node to another, on the receiver's channel (`warren:to:<node>`): what
//! forwards a session between the node that holds its socket (the gateway) and the node that
//! owns its actor (the owner).
//!
//! - gateway → owner: `open` (a socket of a user whose actor the owner holds, maybe resuming a
//!   session the owner keeps), `event` and `call` (the client's frames, as the gateway parsed
//!   them), `ack` (the client has every frame up to a number: the owner's replay buffer lets
//!   them go), `ended` (the socket is gone: closed, or dropped and resumable);
//! - owner → gateway: `frames` (what the session is sent, numbered by the owner), `close` (the
//!   owner closes the session);
//! - a raw endpoint's session: `rawin` (gateway → owner: a message of the client) and `rawout`
//!   (owner → gateway: what the session is sent), each carrying text and binary frames;
//! - any node → owner: `destroy` (destroy an actor the owner holds);
//! - any node → a room's owner: `rjoin` and `rleave` (a member of that node joined or left the
//!   room), `rmembers` (who the members are); owner → asking node: `rmembersof` (the answer);
//!   `rdestroy` both ways (destroy a room: any node to its owner, the owner to the nodes with
//!   members in it).
//!
//! Each message is one JSON object; raw JSON from clients and frames from the owner are carried
//! as they are (JSON values and strings), never re-encoded.
//!
//! A raw endpoint's frames are bytes, not JSON, so `rawin` and `rawout` carry them *after* their
//! JSON object, back to back: the object says each frame's kind (`kinds`, one letter per frame:
//! `t` text, `b` binary) and length in bytes (`sizes`). Redis pub/sub is binary-safe, so the
//! bytes cross as they are: no base64 (a third larger, and encoded then decoded once per frame
//! on the hot path of a binary protocol), and nothing to escape. Text is checked to be UTF-8 on
//! arrival, as a socket's text is.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::json::{push_array, push_int, push_string};
use crate::protocol::RawData;

/// The channel a node listens on for messages addressed to it.
pub fn node_channel(node: &str) -> String {
  format!("warren:to:{node}")
}

/// A message between nodes, as received (borrowing from the payload).
#[derive(Debug)]
pub enum NodeMessage<'a> {
  /// A socket for a user of `definition` opened at the gateway `from` as its session `session`.
  Open {
    from: Cow<'a, str>,
    session: u64,
    definition: Cow<'a, str>,
    key: Cow<'a, str>,
    meta: &'a RawValue,
    resume: Resume<'a>,
  },
  /// An event frame of the gateway's session: `kind` is the raw JSON string of its type.
  Event {
    from: Cow<'a, str>,
    session: u64,
    kind: &'a RawValue,
    data: Option<&'a RawValue>,
  },
  /// A call frame of the gateway's session.
  Call {
    from: Cow<'a, str>,
    session: u64,
    id: u64,
    event: &'a RawValue,
    data: Option<&'a RawValue>,
  },
  /// The gateway's client has every frame of the session up to `seq`.
  Ack {
    from: Cow<'a, str>,
    session: u64,
    seq: u64,
  },
  /// The gateway's socket for the session is gone; `blip`: it dropped (the client may resume).
  Ended {
    from: Cow<'a, str>,
    session: u64,
    code: u16,
    reason: Cow<'a, str>,
    blip: bool,
  },
  /// Frames for the gateway's session `session`, in order, as the owner numbered them.
  Frames { session: u64, frames: Vec<Cow<'a, str>> },
  /// Messages of the gateway's raw session `session`, in the order its client sent them.
  RawIn {
    from: Cow<'a, str>,
    session: u64,
    frames: Vec<RawData<'a>>,
  },
  /// Frames for the gateway's raw session `session`, in order.
  RawOut { session: u64, frames: Vec<RawData<'a>> },
  /// The owner closes the gateway's session.
  Close {
    session: u64,
    code: u16,
    reason: Cow<'a, str>,
  },
  /// Destroy the actor of `(definition, key)`, which the receiver owns.
  Destroy {
    definition: Cow<'a, str>,
    key: Cow<'a, str>,
  },
  /// `user`, whose actor lives on `from`, became a live member of `room` (of `handler`).
  RoomJoin {
    from: Cow<'a, str>,
    room: Cow<'a, str>,
    handler: Cow<'a, str>,
    user: Cow<'a, str>,
    metadata: &'a RawValue,
  },
  /// The owner of `room` replaced the metadata of `user`, a member whose actor lives on the
  /// receiver: the receiver keeps it for the member's later joins.
  RoomMemberMetadata {
    room: Cow<'a, str>,
    user: Cow<'a, str>,
    metadata: &'a RawValue,
  },
  /// `user`, whose actor lives on `from`, stopped being a live member of `room`.
  RoomLeave {
    from: Cow<'a, str>,
    room: Cow<'a, str>,
    user: Cow<'a, str>,
  },
  /// `from` asks the owner of `room` for its members (request `id`).
  MembersAsk {
    from: Cow<'a, str>,
    id: u64,
    room: Cow<'a, str>,
  },
  /// The answer to request `id`: the members as JSON, or `None` when the receiver does not own
  /// the room (any more).
  Members { id: u64, members: Option<&'a RawValue> },
  /// Destroy `room` (of `handler`): sent to its owner, and by the owner to the nodes with
  /// members in it.
  RoomDestroy {
    from: Cow<'a, str>,
    room: Cow<'a, str>,
    handler: Cow<'a, str>,
  },
}

/// What an `open` asks about resume: whether the client wants a resumable session, and the
/// session it resumes (its token and the last frame number it received), if any.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resume<'a> {
  pub resumable: bool,
  pub token: Option<Cow<'a, str>>,
  pub last_seq: u64,
}

/// Every field any message has; which ones a message needs depends on its kind `k`. (Raw JSON
/// values cannot be read through serde's tagged enums, hence this flat form.)
#[derive(Deserialize)]
struct Wire<'a> {
  #[serde(borrow)]
  k: Cow<'a, str>,
  session: u64,
  #[serde(borrow, default)]
  from: Option<Cow<'a, str>>,
  #[serde(borrow, default)]
  definition: Option<Cow<'a, str>>,
  #[serde(borrow, default)]
  key: Option<Cow<'a, str>>,
  #[serde(borrow, default)]
  meta: Option<&'a RawValue>,
  #[serde(borrow, default)]
  kind: Option<&'a RawValue>,
  #[serde(borrow, default)]
  data: Option<&'a RawValue>,
  #[serde(default)]
  id: Option<u64>,
  #[serde(borrow, default)]
  event: Option<&'a RawValue>,
  #[serde(default)]
  code: Option<u16>,
  #[serde(borrow, default)]
  reason: Option<Cow<'a, str>>,
  #[serde(borrow, default)]
  frames: Option<Vec<Cow<'a, str>>>,
  #[serde(default)]
  resumable: bool,
  #[serde(borrow, default)]
  token: Option<Cow<'a, str>>,
  #[serde(default)]
  last_seq: u64,
  #[serde(default)]
  blip: bool,
  #[serde(default)]
  seq: Option<u64>,
  #[serde(borrow, default)]
  room: Option<Cow<'a, str>>,
  #[serde(borrow, default)]
  handler: Option<Cow<'a, str>>,
  #[serde(borrow, default)]
  kinds: Option<Cow<'a, str>>,
  #[serde(default)]
  sizes: Option<Vec<usize>>,
}

/// Reads a message; `None` for one this node does not understand.
pub fn parse(payload: &[u8]) -> Option<NodeMessage<'_>> {
  // The JSON object first; only raw frames may follow it.
  let mut values = serde_json::Deserializer::from_slice(payload).into_iter::<Wire<'_>>();
  let wire = values.next()?.ok()?;
  let body = payload.get(values.byte_offset()..)?;
  let session = wire.session;
  let raw = matches!(&*wire.k, "rawin" | "rawout");
  if !raw && !body.iter().all(u8::is_ascii_whitespace) {
    return None;
  }
  Some(match &*wire.k {
    "rawin" => NodeMessage::RawIn {
      from: wire.from?,
      session,
      frames: split_raw(&wire.kinds?, &wire.sizes?, body)?,
    },
    "rawout" => NodeMessage::RawOut {
      session,
      frames: split_raw(&wire.kinds?, &wire.sizes?, body)?,
    },
    "open" => NodeMessage::Open {
      from: wire.from?,
      session,
      definition: wire.definition?,
      key: wire.key?,
      meta: wire.meta?,
      resume: Resume {
        resumable: wire.resumable,
        token: wire.token,
        last_seq: wire.last_seq,
      },
    },
    "event" => NodeMessage::Event {
      from: wire.from?,
      session,
      kind: wire.kind?,
      data: wire.data,
    },
    "call" => NodeMessage::Call {
      from: wire.from?,
      session,
      id: wire.id?,
      event: wire.event?,
      data: wire.data,
    },
    "ended" => NodeMessage::Ended {
      from: wire.from?,
      session,
      code: wire.code?,
      reason: wire.reason?,
      blip: wire.blip,
    },
    "ack" => NodeMessage::Ack {
      from: wire.from?,
      session,
      seq: wire.seq?,
    },
    "frames" => NodeMessage::Frames {
      session,
      frames: wire.frames?,
    },
    "close" => NodeMessage::Close {
      session,
      code: wire.code?,
      reason: wire.reason?,
    },
    "destroy" => NodeMessage::Destroy {
      definition: wire.definition?,
      key: wire.key?,
    },
    "rjoin" => NodeMessage::RoomJoin {
      from: wire.from?,
      room: wire.room?,
      handler: wire.handler?,
      user: wire.key?,
      metadata: wire.meta?,
    },
    "rmeta" => NodeMessage::RoomMemberMetadata {
      room: wire.room?,
      user: wire.key?,
      metadata: wire.meta?,
    },
    "rleave" => NodeMessage::RoomLeave {
      from: wire.from?,
      room: wire.room?,
      user: wire.key?,
    },
    "rmembers" => NodeMessage::MembersAsk {
      from: wire.from?,
      id: wire.id?,
      room: wire.room?,
    },
    "rmembersof" => NodeMessage::Members {
      id: wire.id?,
      members: wire.data,
    },
    "rdestroy" => NodeMessage::RoomDestroy {
      from: wire.from?,
      room: wire.room?,
      handler: wire.handler?,
    },
    _ => return None,
  })
}

/// The raw frames of a `rawin` or `rawout`: `kinds` and `sizes` say how to cut `body`, which
/// they must cover exactly. `None` when they do not, or a text frame is not UTF-8.
fn split_raw<'a>(kinds: &str, sizes: &[usize], mut body: &'a [u8]) -> Option<Vec<RawData<'a>>> {
  if kinds.len() != sizes.len() {
    return None;
  }
  let mut frames = Vec::with_capacity(sizes.len());
  for (kind, &size) in kinds.bytes().zip(sizes) {
    let (bytes, rest) = body.split_at_checked(size)?;
    body = rest;
    frames.push(match kind {
      b't' => RawData::Text(std::str::from_utf8(bytes).ok()?),
      b'b' => RawData::Binary(bytes),
      _ => return None,
    });
  }
  body.is_empty().then_some(frames)
}

/// A raw frame's kind on the node wire (`t` text, `b` binary), and its bytes.
fn kind_and_bytes(frame: RawData<'_>) -> (char, &[u8]) {
  match frame {
    RawData::Text(text) => ('t', text.as_bytes()),
    RawData::Binary(bytes) => ('b', bytes),
  }
}

/// Ends a `rawin` or `rawout` head with the frames' kinds and sizes, and appends their bytes.
fn with_raw_frames<'f>(mut out: String, frames: impl Iterator<Item = RawData<'f>> + Clone) -> Vec<u8> {
  out.push_str(r#","kinds":""#);
  out.extend(frames.clone().map(|frame| kind_and_bytes(frame).0));
  out.push_str(r#"","sizes":"#);
  push_array(&mut out, frames.clone(), |out, frame| {
    push_int(out, kind_and_bytes(frame).1.len())
  });
  out.push('}');
  let total: usize = frames.clone().map(|frame| kind_and_bytes(frame).1.len()).sum();
  let mut bytes = out.into_bytes();
  bytes.reserve(total);
  for frame in frames {
    bytes.extend_from_slice(kind_and_bytes(frame).1);
  }
  bytes
}

/// `rawin`: one message of the gateway's raw session.
pub fn raw_in(from: &str, session: u64, data: RawData<'_>) -> Vec<u8> {
  with_raw_frames(head("rawin", Some(from), session), std::iter::once(data))
}

/// `rawout`: frames for the gateway's raw session, in order.
pub fn raw_out<'f>(session: u64, frames: impl Iterator<Item = RawData<'f>> + Clone) -> Vec<u8> {
  with_raw_frames(head("rawout", None, session), frames)
}

fn head(kind: &str, from: Option<&str>, session: u64) -> String {
  let mut out = String::with_capacity(96);
  out.push_str(r#"{"k":""#);
  out.push_str(kind);
  out.push('"');
  if let Some(from) = from {
    out.push_str(r#","from":"#);
    push_string(&mut out, from);
  }
  out.push_str(r#","session":"#);
  push_int(&mut out, session);
  out
}

/// `open`: `meta_json` is the session's meta (JSON).
pub fn open(
  from: &str,
  session: u64,
  definition: &str,
  key: &str,
  meta_json: &str,
  resume: &Resume<'_>,
) -> String {
  let mut out = head("open", Some(from), session);
  out.push_str(r#","definition":"#);
  push_string(&mut out, definition);
  out.push_str(r#","key":"#);
  push_string(&mut out, key);
  out.push_str(r#","meta":"#);
  out.push_str(meta_json);
  if resume.resumable {
    out.push_str(r#","resumable":true,"last_seq":"#);
    push_int(&mut out, resume.last_seq);
    if let Some(token) = &resume.token {
      out.push_str(r#","token":"#);
      push_string(&mut out, token);
    }
  }
  out.push('}');
  out
}

/// `event`: the raw JSON of the frame's type and data.
pub fn event(from: &str, session: u64, kind_json: &str, data_json: Option<&str>) -> String {
  let mut out = head("event", Some(from), session);
  out.push_str(r#","kind":"#);
  out.push_str(kind_json);
  if let Some(data) = data_json {
    out.push_str(r#","data":"#);
    out.push_str(data);
  }
  out.push('}');
  out
}

/// `call`: the call's id and the raw JSON of its event name and data.
pub fn call(from: &str, session: u64, id: u64, event_json: &str, data_json: Option<&str>) -> String {
  let mut out = head("call", Some(from), session);
  out.push_str(r#","id":"#);
  push_int(&mut out, id);
  out.push_str(r#","event":"#);
  out.push_str(event_json);
  if let Some(data) = data_json {
    out.push_str(r#","data":"#);
    out.push_str(data);
  }
  out.push('}');
  out
}

/// `ack`.
pub fn ack(from: &str, session: u64, seq: u64) -> String {
  let mut out = head("ack", Some(from), session);
  out.push_str(r#","seq":"#);
  push_int(&mut out, seq);
  out.push('}');
  out
}

/// `ended`.
pub fn ended(from: &str, session: u64, code: u16, reason: &str, blip: bool) -> String {
  let mut out = head("ended", Some(from), session);
  out.push_str(r#","code":"#);
  push_int(&mut out, code);
  out.push_str(r#","reason":"#);
  push_string(&mut out, reason);
  if blip {
    out.push_str(r#","blip":true"#);
  }
  out.push('}');
  out
}

/// `frames`.
pub fn frames<'f>(session: u64, frames: impl IntoIterator<Item = &'f str>) -> String {
  let mut out = head("frames", None, session);
  out.push_str(r#","frames":"#);
  push_array(&mut out, frames, push_string);
  out.push('}');
  out
}

/// `destroy`.
pub fn destroy(definition: &str, key: &str) -> String {
  let mut out = head("destroy", None, 0);
  out.push_str(r#","definition":"#);
  push_string(&mut out, definition);
  out.push_str(r#","key":"#);
  push_string(&mut out, key);
  out.push('}');
  out
}

/// `rjoin`: `metadata_json` is the member's metadata (JSON).
pub fn room_join(from: &str, room: &str, handler: &str, user: &str, metadata_json: &str) -> String {
  let mut out = head("rjoin", Some(from), 0);
  push_member(&mut out, room, user, metadata_json);
  out.push_str(r#","handler":"#);
  push_string(&mut out, handler);
  out.push('}');
  out
}

/// `rmeta`.
pub fn room_member_metadata(room: &str, user: &str, metadata_json: &str) -> String {
  let mut out = head("rmeta", None, 0);
  push_member(&mut out, room, user, metadata_json);
  out.push('}');
  out
}

/// The fields naming a member of a room and its metadata (JSON).
fn push_member(out: &mut String, room: &str, user: &str, metadata_json: &str) {
  out.push_str(r#","room":"#);
  push_string(out, room);
  out.push_str(r#","key":"#);
  push_string(out, user);
  out.push_str(r#","meta":"#);
  out.push_str(metadata_json);
}

/// `rleave`.
pub fn room_leave(from: &str, room: &str, user: &str) -> String {
  let mut out = head("rleave", Some(from), 0);
  out.push_str(r#","room":"#);
  push_string(&mut out, room);
  out.push_str(r#","key":"#);
  push_string(&mut out, user);
  out.push('}');
  out
}

/// `rmembers`.
pub fn members_ask(from: &str, id: u64, room: &str) -> String {
  let mut out = head("rmembers", Some(from), 0);
  out.push_str(r#","id":"#);
  push_int(&mut out, id);
  out.push_str(r#","room":"#);
  push_string(&mut out, room);
  out.push('}');
  out
}

/// `rmembersof`: `members_json` is the members' JSON array (`None`: not the owner).
pub fn members(id: u64, members_json: Option<&str>) -> String {
  let mut out = head("rmembersof", None, 0);
  out.push_str(r#","id":"#);
  push_int(&mut out, id);
  out.push_str(r#","data":"#);
  out.push_str(members_json.unwrap_or("null"));
  out.push('}');
  out
}

/// `rdestroy`.
pub fn room_destroy(from: &str, room: &str, handler: &str) -> String {
  let mut out = head("rdestroy", Some(from), 0);
  out.push_str(r#","room":"#);
  push_string(&mut out, room);
  out.push_str(r#","handler":"#);
  push_string(&mut out, handler);
  out.push('}');
  out
}

/// `close`.
pub fn close(session: u64, code: u16, reason: &str) -> String {
  let mut out = head("close", None, session);
  out.push_str(r#","code":"#);
  push_int(&mut out, code);
  out.push_str(r#","reason":"#);
  push_string(&mut out, reason);
  out.push('}');
  out
}

#[cfg(test)]
mod tests;
