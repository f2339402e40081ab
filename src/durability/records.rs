//! What is kept on disk besides JS state, and how: the room list of each user (so it re-joins
//! its rooms after a restart) and which key a state lives under.
//!
//! A room list names room handlers by name, not by index, so a restart with handlers added or
//! removed still finds the right one (a room whose handler is gone is dropped from the list).

use std::sync::Arc;

use serde::Deserialize;
use serde_json::value::RawValue;

use super::store::Key;
use crate::ids::HandlerId;
use crate::json::{push_array, push_string};
use crate::registry::rooms::Listed;

/// Whose state a JS read or write is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StateOf<'a> {
  /// A connection actor: its definition's name and its user.
  Actor { definition: &'a str, user: &'a str },
  /// A room: its handler's name and its full name.
  Room { handler: &'a str, room: &'a str },
}

impl<'a> StateOf<'a> {
  pub fn key(self) -> Key<'a> {
    match self {
      StateOf::Actor { definition, user } => Key::ActorState { definition, user },
      StateOf::Room { handler, room } => Key::RoomState { handler, room },
    }
  }
}

/// A stored room list: `[{"room","handler","metadata"}]`, or `None` (delete) when empty.
pub fn encode_room_list(listed: &[Listed], handler_names: &[String]) -> Option<Vec<u8>> {
  if listed.is_empty() {
    return None;
  }
  let mut out = String::new();
  push_array(&mut out, listed, |out, room| {
    out.push_str(r#"{"room":"#);
    push_string(out, &room.name);
    out.push_str(r#","handler":"#);
    push_string(
      out,
      handler_names.get(room.handler.get()).map_or("", String::as_str),
    );
    out.push_str(r#","metadata":"#);
    out.push_str(&room.metadata);
    out.push('}');
  });
  Some(out.into_bytes())
}

#[derive(Deserialize)]
struct StoredRoom<'a> {
  room: String,
  handler: String,
  #[serde(borrow)]
  metadata: Option<&'a RawValue>,
}

/// Reads a stored room list back; entries whose handler no longer exists are dropped, and an
/// unreadable list reads as empty.
pub fn decode_room_list(bytes: &[u8], handler_names: &[String]) -> Vec<Listed> {
  let Ok(stored) = serde_json::from_slice::<Vec<StoredRoom<'_>>>(bytes) else {
    return Vec::new();
  };
  stored
    .into_iter()
    .filter_map(|entry| {
      let handler = handler_names.iter().position(|name| *name == entry.handler)?;
      Some(Listed {
        name: Arc::from(entry.room),
        handler: HandlerId(handler),
        metadata: Arc::from(entry.metadata.map_or("{}", RawValue::get)),
      })
    })
    .collect()
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn room_lists_round_trip_and_forget_removed_handlers() {
    let handlers = vec!["ChatRoom".to_string(), "Game".to_string()];
    let listed = vec![
      Listed {
        name: Arc::from("chat"),
        handler: HandlerId(0),
        metadata: Arc::from(r#"{"role":"admin"}"#),
      },
      Listed {
        name: Arc::from("game:\"1\""),
        handler: HandlerId(1),
        metadata: Arc::from("{}"),
      },
    ];
    let bytes = encode_room_list(&listed, &handlers).unwrap_or_default();
    assert_eq!(decode_room_list(&bytes, &handlers), listed);
    let fewer = vec!["ChatRoom".to_string()];
    assert_eq!(decode_room_list(&bytes, &fewer), listed[..1]);
    assert_eq!(encode_room_list(&[], &handlers), None);
    assert!(decode_room_list(b"not json", &handlers).is_empty());
  }
}
