//! What nodes publish to each other: a one-line JSON header, a newline, then a server frame as
//! the origin encoded it (still unsealed: each receiving node numbers it for its own sessions).
//!
//! - room messages, on the room's channel: `["<origin>",<offset>,"<epoch>"]\n<frame>`; the
//!   offset and epoch are assigned by Redis (see [`super::scripts::PUBLISH_ROOM`]);
//! - messages to a user, on the users channel: `["<origin>","<definition>","<userId>"]\n<frame>`.
//!
//! Server frames never hold a raw newline (JSON escapes them), so the first newline ends the
//! header.

use std::borrow::Cow;

use serde::Deserialize;

use crate::json::{push_int, push_string};
use crate::protocol::RawData;

/// Channel of every message to a user (all nodes subscribe).
pub const USERS_CHANNEL: &str = "warren:users";

/// The channel of a room's messages.
pub fn room_channel(room: &str) -> String {
  format!("warren:room:{room}")
}

/// The room a channel belongs to, if it is a room channel.
pub fn room_of_channel(channel: &str) -> Option<&str> {
  channel.strip_prefix("warren:room:")
}

/// The key of a room's publish log (its offset and epoch).
pub fn room_log_key(room: &str) -> String {
  format!("warren:roomlog:{room}")
}

/// The prefix of node lease keys (scripts check another node's lease by it).
pub const NODE_KEY_PREFIX: &str = "warren:node:";

/// The directory key of an actor: who owns it, and its fencing token. The definition's length
/// comes first, so no pair of names can spell the same key.
pub fn actor_key(definition: &str, key: &str) -> String {
  format!("warren:actor:{}:{definition}:{key}", definition.len())
}

/// The key of a node's lease.
pub fn node_key(node: &str) -> String {
  format!("{NODE_KEY_PREFIX}{node}")
}

/// A room message as it arrived.
#[derive(Debug, PartialEq, Eq)]
pub struct RoomMessage<'a> {
  pub origin: Cow<'a, str>,
  pub offset: u64,
  pub epoch: Cow<'a, str>,
  pub frame: RoomFrame<'a>,
}

/// The frame of a room message: a protocol frame (for JSON sessions), or a raw endpoint's
/// frame (for raw sessions).
///
/// On the channel, after the header line: a protocol frame as it is (a JSON object, so it
/// starts with `{`), or a raw frame behind one tag byte, `t` (text) or `b` (binary), its bytes
/// as they are: Redis pub/sub is binary-safe, so binary crosses intact without base64.
#[derive(Debug, PartialEq, Eq)]
pub enum RoomFrame<'a> {
  Protocol(&'a str),
  Raw(RawData<'a>),
}

/// The frame part of a room message carrying a raw endpoint's frame.
pub fn raw_room_frame(frame: RawData<'_>) -> Vec<u8> {
  let (tag, bytes) = match frame {
    RawData::Text(text) => (b't', text.as_bytes()),
    RawData::Binary(bytes) => (b'b', bytes),
  };
  let mut out = Vec::with_capacity(bytes.len() + 1);
  out.push(tag);
  out.extend_from_slice(bytes);
  out
}

fn room_frame(bytes: &[u8]) -> Option<RoomFrame<'_>> {
  let (&tag, rest) = bytes.split_first()?;
  Some(match tag {
    b'{' => RoomFrame::Protocol(std::str::from_utf8(bytes).ok()?),
    b't' => RoomFrame::Raw(RawData::Text(std::str::from_utf8(rest).ok()?)),
    b'b' => RoomFrame::Raw(RawData::Binary(rest)),
    _ => return None,
  })
}

/// A message to a user as it arrived.
#[derive(Debug, PartialEq, Eq)]
pub struct UserMessage<'a> {
  pub origin: Cow<'a, str>,
  pub definition: Cow<'a, str>,
  pub user: Cow<'a, str>,
  pub frame: &'a str,
}

fn split(payload: &[u8]) -> Option<(&str, &str)> {
  let text = std::str::from_utf8(payload).ok()?;
  text.split_once('\n')
}

#[derive(Deserialize)]
struct RoomHeader<'a>(#[serde(borrow)] Cow<'a, str>, u64, #[serde(borrow)] Cow<'a, str>);

#[derive(Deserialize)]
struct UserHeader<'a>(
  #[serde(borrow)] Cow<'a, str>,
  #[serde(borrow)] Cow<'a, str>,
  #[serde(borrow)] Cow<'a, str>,
);

/// Reads a room message; `None` when it is not one (a message from an incompatible node).
pub fn parse_room(payload: &[u8]) -> Option<RoomMessage<'_>> {
  // The header is JSON text on one line; the frame may be bytes.
  let newline = payload.iter().position(|&byte| byte == b'\n')?;
  let header = payload.get(..newline)?;
  let frame = room_frame(payload.get(newline + 1..)?)?;
  let RoomHeader(origin, offset, epoch) = serde_json::from_slice(header).ok()?;
  Some(RoomMessage {
    origin,
    offset,
    epoch,
    frame,
  })
}

/// The message to a user of `definition` that the origin publishes.
pub fn user_message(origin: &str, definition: &str, user: &str, frame: &str) -> String {
  let mut out = String::with_capacity(frame.len() + origin.len() + definition.len() + user.len() + 16);
  out.push('[');
  push_string(&mut out, origin);
  out.push(',');
  push_string(&mut out, definition);
  out.push(',');
  push_string(&mut out, user);
  out.push_str("]\n");
  out.push_str(frame);
  out
}

/// Reads a message to a user; `None` when it is not one.
pub fn parse_user(payload: &[u8]) -> Option<UserMessage<'_>> {
  let (header, frame) = split(payload)?;
  let UserHeader(origin, definition, user) = serde_json::from_str(header).ok()?;
  Some(UserMessage {
    origin,
    definition,
    user,
    frame,
  })
}

/// A room message as Redis writes it (for tests; the publish script builds the real one).
pub fn room_message(origin: &str, offset: u64, epoch: &str, frame: &[u8]) -> Vec<u8> {
  let mut out = String::from("[");
  push_string(&mut out, origin);
  out.push(',');
  push_int(&mut out, offset);
  out.push(',');
  push_string(&mut out, epoch);
  out.push_str("]\n");
  let mut out = out.into_bytes();
  out.extend_from_slice(frame);
  out
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn messages_round_trip_with_any_user_id() {
    let frame = r#"{"type":"event","channel":"default","data":{"type":"x","t":"a\nb"}"#;
    let text = user_message("n1", "UserConnection", "we\"ird\nid", frame);
    assert_eq!(
      parse_user(text.as_bytes()),
      Some(UserMessage {
        origin: "n1".into(),
        definition: "UserConnection".into(),
        user: "we\"ird\nid".into(),
        frame
      })
    );
    let text = room_message("n2", 41, "e1", frame.as_bytes());
    assert_eq!(
      parse_room(&text),
      Some(RoomMessage {
        origin: "n2".into(),
        offset: 41,
        epoch: "e1".into(),
        frame: RoomFrame::Protocol(frame)
      })
    );
    let every_byte: Vec<u8> = (0..=255).collect();
    for raw in [
      RawData::Binary(&every_byte),
      RawData::Binary(b""),
      RawData::Binary(b"{\n"),
      RawData::Text("h\u{e9}llo\n{"),
      RawData::Text(""),
    ] {
      let text = room_message("n2", 42, "e1", &raw_room_frame(raw));
      assert_eq!(parse_room(&text).map(|m| m.frame), Some(RoomFrame::Raw(raw)));
    }
    assert_eq!(
      parse_room(&room_message("n2", 43, "e1", b"t\xff")),
      None,
      "text is UTF-8"
    );
    assert_eq!(parse_room(&room_message("n2", 43, "e1", b"")), None);
    assert_eq!(parse_room(b"garbage"), None);
    assert_eq!(parse_user(b"[1]\nx"), None);
    assert_eq!(room_of_channel(&room_channel("chat:1")), Some("chat:1"));
  }
}
