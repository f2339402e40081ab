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

/// The key of a node's lease.
pub fn node_key(node: &str) -> String {
  format!("warren:node:{node}")
}

/// A room message as it arrived.
#[derive(Debug, PartialEq, Eq)]
pub struct RoomMessage<'a> {
  pub origin: Cow<'a, str>,
  pub offset: u64,
  pub epoch: Cow<'a, str>,
  pub frame: &'a str,
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
  let (header, frame) = split(payload)?;
  let RoomHeader(origin, offset, epoch) = serde_json::from_str(header).ok()?;
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
pub fn room_message(origin: &str, offset: u64, epoch: &str, frame: &str) -> String {
  let mut out = String::from("[");
  push_string(&mut out, origin);
  out.push(',');
  push_int(&mut out, offset);
  out.push(',');
  push_string(&mut out, epoch);
  out.push_str("]\n");
  out.push_str(frame);
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
    let text = room_message("n2", 41, "e1", frame);
    assert_eq!(
      parse_room(text.as_bytes()),
      Some(RoomMessage {
        origin: "n2".into(),
        offset: 41,
        epoch: "e1".into(),
        frame
      })
    );
    assert_eq!(parse_room(b"garbage"), None);
    assert_eq!(parse_user(b"[1]\nx"), None);
    assert_eq!(room_of_channel(&room_channel("chat:1")), Some("chat:1"));
  }
}
