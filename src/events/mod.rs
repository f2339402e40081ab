//! The one path from the Rust runtime to the JS thread: every event JS hears is an [`Event`],
//! pushed into the server's [`EventSink`] (the batch queue, in [`sink`]), and written as JSON in
//! one place ([`Event::write`]). Raw JSON from client frames is copied in as it arrived: nothing
//! is re-encoded.
//!
//! The tag numbers are the contract with `lib/`: a test there checks its copy against [`Tag`].

mod sink;

pub use sink::{EventSink, Waker};

use std::sync::Arc;

use crate::ids::{ActorId, DefinitionId, HandlerId, RequestId, RoomId, SessionId};
use crate::json::{push_array, push_base64, push_int, push_string};

/// The first element of each batch entry; the rest of the entry is documented per tag.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Tag {
  /// `[0, requestId, endpoint, url, remoteAddress, headers]`: run `extractMeta`.
  Upgrade = 0,
  /// `[1, sessionId, actorId, created, endpoint, key, meta]`: a session opened.
  Open = 1,
  /// `[2, sessionId, type, data]`: an event frame.
  Message = 2,
  /// `[3, sessionId, callId, event, data]`: a call frame.
  Call = 3,
  /// `[4, sessionId, code, reason]`: a session closed.
  Close = 4,
  /// `[5, actorId]`: an actor with no sessions was idle past `hibernateAfterMs` and left memory.
  Evict = 5,
  /// `[6, roomId, created, handler, name, userId, metadata]`: a user became a live member.
  RoomJoin = 6,
  /// `[7, roomId, userId]`: a user stopped being a live member.
  RoomLeave = 7,
  /// `[8, roomId]`: a room without members was idle past `hibernateAfterMs` and left memory.
  RoomEvict = 8,
  /// `[9]`: shutdown finished; no event follows.
  Shutdown = 9,
  /// `[10, actorId, endpoint, key, [[sessionId, meta], ...]]`: a hibernated actor wakes.
  Wake = 10,
  /// `[11, actorId]`: an idle actor with open sessions leaves the JS heap.
  Hibernate = 11,
  /// `[12, actorId]`: an actor was destroyed (after its room leaves).
  Destroyed = 12,
  /// `[13, roomId]`: a room with members but no activity leaves the JS heap.
  RoomHibernate = 13,
  /// `[14, roomId]`: a room was destroyed (after its members' leaves).
  RoomDestroyed = 14,
  /// `[15, actorId, endpoint, key, scheduleId, event, data]`: a scheduled event is due.
  Scheduled = 15,
  /// `[16, level, message]`: something the core reports to the application's log.
  Log = 16,
  /// `[17, sessionId, text]`: a text message of a raw endpoint's session, as it arrived.
  RawText = 17,
  /// `[18, sessionId, base64]`: a binary message of a raw endpoint's session (its bytes in
  /// base64, the one way bytes travel in the JSON batch).
  RawBinary = 18,
  /// `[19, requestId, members]` or `[19, requestId, null, code, message]`: the answer to a
  /// `fetchRoomMembers` request.
  RoomMembers = 19,
}

/// How serious a [`Event::Log`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
  Warn,
  Error,
}

/// Something JS must hear. Fields named `*_json` are raw JSON, copied as they are.
#[derive(Clone, Copy, Debug)]
pub enum Event<'a> {
  Upgrade {
    request: RequestId,
    definition: DefinitionId,
    url: &'a str,
    remote: &'a str,
    headers: &'a [(&'a str, String)],
  },
  Open {
    session: SessionId,
    actor: ActorId,
    /// True when this session created the actor (JS runs `onInit` first).
    created: bool,
    definition: DefinitionId,
    key: &'a str,
    meta_json: &'a str,
  },
  Message {
    session: SessionId,
    /// The raw JSON string token of the frame's `type`.
    kind_json: &'a str,
    data_json: Option<&'a str>,
  },
  Call {
    session: SessionId,
    call: u64,
    /// The raw JSON string token of the call's `event`.
    event_json: &'a str,
    data_json: Option<&'a str>,
  },
  Close {
    session: SessionId,
    code: u16,
    reason: &'a str,
  },
  Evict {
    actor: ActorId,
  },
  RoomJoin {
    room: RoomId,
    created: bool,
    handler: HandlerId,
    name: &'a str,
    user: &'a str,
    metadata_json: &'a str,
  },
  RoomLeave {
    room: RoomId,
    user: &'a str,
  },
  RoomEvict {
    room: RoomId,
  },
  Shutdown,
  Wake {
    actor: ActorId,
    definition: DefinitionId,
    key: &'a str,
    /// Open sessions and their meta (raw JSON).
    sessions: &'a [(SessionId, Arc<str>)],
  },
  Hibernate {
    actor: ActorId,
  },
  Destroyed {
    actor: ActorId,
  },
  RoomHibernate {
    room: RoomId,
  },
  RoomDestroyed {
    room: RoomId,
  },
  Scheduled {
    actor: ActorId,
    definition: DefinitionId,
    key: &'a str,
    id: &'a str,
    event: &'a str,
    data_json: &'a str,
  },
  Log {
    level: Level,
    message: &'a str,
  },
  RawText {
    session: SessionId,
    text: &'a str,
  },
  RawBinary {
    session: SessionId,
    bytes: &'a [u8],
  },
  /// The members of a room (JSON), or why they could not be had (error code, message).
  RoomMembers {
    request: u64,
    answer: Result<&'a str, (&'a str, &'a str)>,
  },
}

fn push_tag(out: &mut String, tag: Tag) {
  out.push('[');
  push_int(out, tag as u8);
}

fn push_field_int(out: &mut String, value: impl itoa::Integer) {
  out.push(',');
  push_int(out, value);
}

fn push_field_str(out: &mut String, value: &str) {
  out.push(',');
  push_string(out, value);
}

fn push_field_raw(out: &mut String, json: Option<&str>) {
  out.push(',');
  out.push_str(json.unwrap_or("null"));
}

fn push_field_bool(out: &mut String, value: bool) {
  out.push_str(if value { ",1" } else { ",0" });
}

impl Event<'_> {
  /// Appends this event as one batch entry.
  pub fn write(&self, out: &mut String) {
    match *self {
      Event::Upgrade {
        request,
        definition,
        url,
        remote,
        headers,
      } => {
        push_tag(out, Tag::Upgrade);
        push_field_int(out, request.get());
        push_field_int(out, definition.get());
        push_field_str(out, url);
        push_field_str(out, remote);
        out.push_str(",{");
        for (i, (name, value)) in headers.iter().enumerate() {
          if i > 0 {
            out.push(',');
          }
          push_string(out, name);
          out.push(':');
          push_string(out, value);
        }
        out.push('}');
      }
      Event::Open {
        session,
        actor,
        created,
        definition,
        key,
        meta_json,
      } => {
        push_tag(out, Tag::Open);
        push_field_int(out, session.get());
        push_field_int(out, actor.get());
        push_field_bool(out, created);
        push_field_int(out, definition.get());
        push_field_str(out, key);
        push_field_raw(out, Some(meta_json));
      }
      Event::Message {
        session,
        kind_json,
        data_json,
      } => {
        push_tag(out, Tag::Message);
        push_field_int(out, session.get());
        push_field_raw(out, Some(kind_json));
        push_field_raw(out, data_json);
      }
      Event::Call {
        session,
        call,
        event_json,
        data_json,
      } => {
        push_tag(out, Tag::Call);
        push_field_int(out, session.get());
        push_field_int(out, call);
        push_field_raw(out, Some(event_json));
        push_field_raw(out, data_json);
      }
      Event::Close {
        session,
        code,
        reason,
      } => {
        push_tag(out, Tag::Close);
        push_field_int(out, session.get());
        push_field_int(out, code);
        push_field_str(out, reason);
      }
      Event::Evict { actor } => id_entry(out, Tag::Evict, actor.get()),
      Event::RoomJoin {
        room,
        created,
        handler,
        name,
        user,
        metadata_json,
      } => {
        push_tag(out, Tag::RoomJoin);
        push_field_int(out, room.get());
        push_field_bool(out, created);
        push_field_int(out, handler.get());
        push_field_str(out, name);
        push_field_str(out, user);
        push_field_raw(out, Some(metadata_json));
      }
      Event::RoomLeave { room, user } => {
        push_tag(out, Tag::RoomLeave);
        push_field_int(out, room.get());
        push_field_str(out, user);
      }
      Event::RoomEvict { room } => id_entry(out, Tag::RoomEvict, room.get()),
      Event::Shutdown => push_tag(out, Tag::Shutdown),
      Event::Wake {
        actor,
        definition,
        key,
        sessions,
      } => {
        push_tag(out, Tag::Wake);
        push_field_int(out, actor.get());
        push_field_int(out, definition.get());
        push_field_str(out, key);
        out.push(',');
        push_array(out, sessions, |out, (session, meta)| {
          out.push('[');
          push_int(out, session.get());
          out.push(',');
          out.push_str(meta);
          out.push(']');
        });
      }
      Event::Hibernate { actor } => id_entry(out, Tag::Hibernate, actor.get()),
      Event::Destroyed { actor } => id_entry(out, Tag::Destroyed, actor.get()),
      Event::RoomHibernate { room } => id_entry(out, Tag::RoomHibernate, room.get()),
      Event::RoomDestroyed { room } => id_entry(out, Tag::RoomDestroyed, room.get()),
      Event::Scheduled {
        actor,
        definition,
        key,
        id,
        event,
        data_json,
      } => {
        push_tag(out, Tag::Scheduled);
        push_field_int(out, actor.get());
        push_field_int(out, definition.get());
        push_field_str(out, key);
        push_field_str(out, id);
        push_field_str(out, event);
        push_field_raw(out, Some(data_json));
      }
      Event::Log { level, message } => {
        push_tag(out, Tag::Log);
        push_field_str(
          out,
          match level {
            Level::Warn => "warn",
            Level::Error => "error",
          },
        );
        push_field_str(out, message);
      }
      Event::RawText { session, text } => {
        push_tag(out, Tag::RawText);
        push_field_int(out, session.get());
        push_field_str(out, text);
      }
      Event::RawBinary { session, bytes } => {
        push_tag(out, Tag::RawBinary);
        push_field_int(out, session.get());
        out.push_str(",\"");
        push_base64(out, bytes);
        out.push('"');
      }
      Event::RoomMembers { request, answer } => {
        push_tag(out, Tag::RoomMembers);
        push_field_int(out, request);
        match answer {
          Ok(members) => push_field_raw(out, Some(members)),
          Err((code, message)) => {
            push_field_raw(out, None);
            push_field_str(out, code);
            push_field_str(out, message);
          }
        }
      }
    }
    out.push(']');
  }
}

/// `[tag, id`: the entries that carry one id (the closing bracket is added by the caller).
fn id_entry(out: &mut String, tag: Tag, id: u64) {
  push_tag(out, tag);
  push_field_int(out, id);
}
