//! The one path from the Rust runtime to the JS thread: every event JS hears is an [`Event`],
//! pushed into the server's [`EventSink`], and written as JSON in one place ([`Event::write`]).
//!
//! Events are appended as array entries to one pending text. The first event after the JS thread
//! last took the batch wakes it once (one threadsafe call per wake-up, never one per event); the
//! JS thread then takes everything queued so far with [`EventSink::take`] and parses it with one
//! `JSON.parse`. Raw JSON from client frames is copied in as it arrived: nothing is re-encoded.
//!
//! Bound: [`MAX_PENDING_DISPATCH_BYTES`]. Socket readers wait in [`EventSink::wait_for_space`]
//! while the batch is over it, so a JS thread that falls behind slows clients down through TCP
//! instead of growing memory. Control events (open, close, evict, shutdown) are never refused:
//! they are small and bounded by the number of sessions.
//!
//! Fairness (issue 12): each session's events in the batch are counted too, and its reader
//! also waits once they reach [`MAX_PENDING_DISPATCH_BYTES_PER_SESSION`]; a session with none
//! in the batch may add a frame while the batch is under twice the global bound. A flooding
//! client then fills its share of each batch and waits, and a quiet client's call goes into the
//! next batch instead of queueing behind 64 MiB of someone else's events.
//!
//! The tag numbers are the contract with `lib/`: a test there checks its copy against [`Tag`].

use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::Notify;

use std::collections::HashMap;

use crate::config::{MAX_PENDING_DISPATCH_BYTES, MAX_PENDING_DISPATCH_BYTES_PER_SESSION};
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

/// Wakes the JS thread. Installed by the bindings; a no-op once the server is released.
pub type Waker = Arc<dyn Fn() + Send + Sync>;

struct Pending {
  /// `[e1,e2,...` without the closing bracket; empty when nothing is queued.
  text: String,
  /// Bytes of each session's messages and calls in `text`.
  by_session: HashMap<SessionId, usize>,
  /// True from the wake-up call until JS takes the batch: no second call meanwhile.
  wake_requested: bool,
}

/// The queue of events towards the JS thread.
pub struct EventSink {
  pending: Mutex<Pending>,
  /// Signalled when JS takes a batch, so paused readers can go on.
  space: Notify,
  waker: Mutex<Option<Waker>>,
}

impl Default for EventSink {
  fn default() -> Self {
    Self::new()
  }
}

impl EventSink {
  pub fn new() -> Self {
    Self {
      pending: Mutex::new(Pending {
        text: String::new(),
        by_session: HashMap::new(),
        wake_requested: false,
      }),
      space: Notify::new(),
      waker: Mutex::new(None),
    }
  }

  pub fn set_waker(&self, waker: Option<Waker>) {
    *self.waker.lock() = waker;
  }

  /// Queues an event and wakes JS if this starts a batch.
  pub fn push(&self, event: Event<'_>) {
    let wake = {
      let mut pending = self.pending.lock();
      let before = pending.text.len();
      let text = &mut pending.text;
      text.push(if text.is_empty() { '[' } else { ',' });
      event.write(text);
      if let Event::Message { session, .. }
      | Event::Call { session, .. }
      | Event::RawText { session, .. }
      | Event::RawBinary { session, .. } = event
      {
        let written = pending.text.len() - before;
        *pending.by_session.entry(session).or_insert(0) += written;
      }
      !std::mem::replace(&mut pending.wake_requested, true)
    };
    if wake {
      let waker = self.waker.lock().clone();
      if let Some(waker) = waker {
        waker();
      }
    }
  }

  /// Queues several events, in order.
  pub fn push_all<'a>(&self, events: impl IntoIterator<Item = Event<'a>>) {
    for event in events {
      self.push(event);
    }
  }

  /// Bytes waiting for the JS thread.
  pub fn pending_bytes(&self) -> usize {
    self.pending.lock().text.len()
  }

  /// Whether `session` may add an event to the batch now (see the module doc).
  fn has_room(&self, session: SessionId) -> bool {
    let pending = self.pending.lock();
    let own = pending.by_session.get(&session).copied().unwrap_or(0);
    let total = pending.text.len();
    own < MAX_PENDING_DISPATCH_BYTES_PER_SESSION
      && (total < MAX_PENDING_DISPATCH_BYTES || (own == 0 && total < 2 * MAX_PENDING_DISPATCH_BYTES))
  }

  /// Waits while the pending batch has no room for `session` (socket readers, before
  /// queueing).
  pub async fn wait_for_space(&self, session: SessionId) {
    // The common case, without registering as a waiter.
    if self.has_room(session) {
      return;
    }
    loop {
      let notified = self.space.notified();
      tokio::pin!(notified);
      notified.as_mut().enable();
      if self.has_room(session) {
        return;
      }
      notified.await;
    }
  }

  /// Takes everything queued as one JSON array text, or `None` when nothing is queued.
  pub fn take(&self) -> Option<String> {
    let batch = {
      let mut pending = self.pending.lock();
      pending.wake_requested = false;
      if pending.text.is_empty() {
        return None;
      }
      let capacity = pending.text.len().min(1 << 20);
      let mut batch = std::mem::replace(&mut pending.text, String::with_capacity(capacity));
      pending.by_session.clear();
      batch.push(']');
      batch
    };
    self.space.notify_waiters();
    Some(batch)
  }
}

#[cfg(test)]
mod tests {
  use super::*;
  use std::sync::atomic::{AtomicUsize, Ordering};

  #[test]
  fn batches_events_and_wakes_once_per_take() {
    let events = EventSink::new();
    let wakes = Arc::new(AtomicUsize::new(0));
    let counter = wakes.clone();
    events.set_waker(Some(Arc::new(move || {
      counter.fetch_add(1, Ordering::SeqCst);
    })));
    events.push(Event::Close {
      session: SessionId(1),
      code: 1000,
      reason: "bye",
    });
    events.push(Event::Evict { actor: ActorId(2) });
    assert_eq!(wakes.load(Ordering::SeqCst), 1);
    assert_eq!(events.take().as_deref(), Some(r#"[[4,1,1000,"bye"],[5,2]]"#));
    assert_eq!(events.take(), None);
    events.push(Event::Shutdown);
    assert_eq!(wakes.load(Ordering::SeqCst), 2);
    assert_eq!(events.take().as_deref(), Some("[[9]]"));
  }

  #[test]
  fn a_session_that_filled_its_share_waits_while_others_still_get_in() {
    let events = EventSink::new();
    let data = format!(r#"{{"pad":"{}"}}"#, "x".repeat(1000));
    let (flooder, quiet) = (SessionId(1), SessionId(2));
    while events.has_room(flooder) {
      events.push(Event::Message {
        session: flooder,
        kind_json: r#""flood""#,
        data_json: Some(&data),
      });
    }
    assert!(events.pending_bytes() < MAX_PENDING_DISPATCH_BYTES_PER_SESSION + 2048);
    assert!(events.has_room(quiet));
    assert!(events.take().is_some());
    assert!(events.has_room(flooder));
  }

  #[test]
  fn writes_every_entry_as_json_with_its_tag() {
    let events = EventSink::new();
    let sessions = [(SessionId(3), Arc::<str>::from(r#"{"userId":"a"}"#))];
    let headers = [("host", "h".to_string()), ("x-q", "\"".to_string())];
    events.push_all([
      Event::Message {
        session: SessionId(0),
        kind_json: r#""echo""#,
        data_json: Some(r#"{"n":1}"#),
      },
      Event::Call {
        session: SessionId(u64::MAX),
        call: 10,
        event_json: r#""inc""#,
        data_json: None,
      },
      Event::Upgrade {
        request: RequestId(1),
        definition: DefinitionId(0),
        url: "/ws?x=1",
        remote: "127.0.0.1",
        headers: &headers,
      },
      Event::Wake {
        actor: ActorId(2),
        definition: DefinitionId(1),
        key: "a",
        sessions: &sessions,
      },
      Event::Log {
        level: Level::Warn,
        message: "disk",
      },
      Event::RawText {
        session: SessionId(5),
        text: "a\"b",
      },
      Event::RawBinary {
        session: SessionId(5),
        bytes: &[0, 255, 1],
      },
      Event::RoomMembers {
        request: 4,
        answer: Ok(r#"[{"userId":"a"}]"#),
      },
      Event::RoomMembers {
        request: 5,
        answer: Err(("cluster_unavailable", "no answer")),
      },
    ]);
    let batch = events.take().unwrap_or_default();
    assert_eq!(
      batch,
      concat!(
        r#"[[2,0,"echo",{"n":1}],[3,18446744073709551615,10,"inc",null],"#,
        r#"[0,1,0,"/ws?x=1","127.0.0.1",{"host":"h","x-q":"\""}],"#,
        r#"[10,2,1,"a",[[3,{"userId":"a"}]]],[16,"warn","disk"],"#,
        r#"[17,5,"a\"b"],[18,5,"AP8B"],"#,
        r#"[19,4,[{"userId":"a"}]],[19,5,null,"cluster_unavailable","no answer"]]"#
      )
    );
    assert!(serde_json::from_str::<serde_json::Value>(&batch).is_ok());
  }
}
