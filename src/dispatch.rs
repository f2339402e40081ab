//! The one queue from the Rust runtime to the JS thread.
//!
//! Events (upgrade requests, opened sessions, messages, calls, closes) are appended as JSON
//! array entries to one pending text. The first event after the JS thread last took the batch
//! wakes it once (one threadsafe call per wake-up, never one per event); the JS thread then
//! takes everything queued so far with [`Dispatcher::take`] and parses it with one
//! `JSON.parse`. Raw JSON from client frames is copied in as it arrived: nothing is re-encoded.
//!
//! Bound: [`MAX_PENDING_DISPATCH_BYTES`]. Socket readers wait in [`Dispatcher::push_message`]
//! while the batch is over it, so a JS thread that falls behind slows clients down through TCP
//! instead of growing memory. Control events (open, close, evict, shutdown) are never refused:
//! they are small and bounded by the number of sessions.

use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::Notify;

use crate::config::MAX_PENDING_DISPATCH_BYTES;
use crate::protocol::push_json_string;
use crate::rooms::RoomChange;

/// Appends an integer in decimal without allocating (every entry carries one or more).
fn push_int(out: &mut String, value: impl Into<u64>) {
  let mut value: u64 = value.into();
  let mut digits = [0u8; 20];
  let mut at = digits.len();
  loop {
    at -= 1;
    digits[at] = b'0' + (value % 10) as u8;
    value /= 10;
    if value == 0 {
      break;
    }
  }
  for &digit in &digits[at..] {
    out.push(char::from(digit));
  }
}

/// Event tags, the first element of each batch entry. The JS dispatcher mirrors them.
pub mod tag {
  /// `[0, requestId, endpoint, url, remoteAddress, headers]`: run `extractMeta`.
  pub const UPGRADE: u8 = 0;
  /// `[1, sessionId, actorId, created, endpoint, key, meta]`: a session opened.
  pub const OPEN: u8 = 1;
  /// `[2, sessionId, type, data]`: an event frame.
  pub const MESSAGE: u8 = 2;
  /// `[3, sessionId, callId, event, data]`: a call frame.
  pub const CALL: u8 = 3;
  /// `[4, sessionId, code, reason]`: a session closed.
  pub const CLOSE: u8 = 4;
  /// `[5, actorId]`: an actor with no sessions was idle past `hibernateAfterMs` and left memory.
  pub const EVICT: u8 = 5;
  /// `[6, roomId, created, handler, name, userId, metadata]`: a user became a live member.
  pub const ROOM_JOIN: u8 = 6;
  /// `[7, roomId, userId]`: a user stopped being a live member.
  pub const ROOM_LEAVE: u8 = 7;
  /// `[8, roomId]`: a room without members was idle past `hibernateAfterMs` and left memory.
  pub const ROOM_EVICT: u8 = 8;
  /// `[9]`: shutdown finished; no event follows.
  pub const SHUTDOWN: u8 = 9;
  /// `[10, actorId, endpoint, key, [[sessionId, meta], ...]]`: a hibernated actor wakes.
  pub const WAKE: u8 = 10;
  /// `[11, actorId]`: an idle actor with open sessions leaves the JS heap.
  pub const HIBERNATE: u8 = 11;
  /// `[12, actorId]`: an actor was destroyed (after its room leaves).
  pub const DESTROYED: u8 = 12;
  /// `[13, roomId]`: a room with members but no activity leaves the JS heap.
  pub const ROOM_HIBERNATE: u8 = 13;
  /// `[14, roomId]`: a room was destroyed (after its members' leaves).
  pub const ROOM_DESTROYED: u8 = 14;
  /// `[15, actorId, endpoint, key, scheduleId, event, data]`: a scheduled event is due.
  pub const SCHEDULED: u8 = 15;
}

/// Wakes the JS thread. Installed by the bindings; a no-op once the server is released.
pub type Waker = Arc<dyn Fn() + Send + Sync>;

struct Pending {
  /// `[e1,e2,...` without the closing bracket; empty when nothing is queued.
  text: String,
  /// True from the wake-up call until JS takes the batch: no second call meanwhile.
  wake_requested: bool,
}

pub struct Dispatcher {
  pending: Mutex<Pending>,
  /// Signalled when JS takes a batch, so paused readers can go on.
  space: Notify,
  waker: Mutex<Option<Waker>>,
}

impl Default for Dispatcher {
  fn default() -> Self {
    Self::new()
  }
}

impl Dispatcher {
  pub fn new() -> Self {
    Self {
      pending: Mutex::new(Pending {
        text: String::new(),
        wake_requested: false,
      }),
      space: Notify::new(),
      waker: Mutex::new(None),
    }
  }

  pub fn set_waker(&self, waker: Option<Waker>) {
    *self.waker.lock() = waker;
  }

  /// Appends one entry (written by `write`, without separators) and wakes JS if needed.
  pub fn push(&self, write: impl FnOnce(&mut String)) {
    let wake = {
      let mut pending = self.pending.lock();
      if pending.text.is_empty() {
        pending.text.push('[');
      } else {
        pending.text.push(',');
      }
      write(&mut pending.text);
      !std::mem::replace(&mut pending.wake_requested, true)
    };
    if wake {
      let waker = self.waker.lock().clone();
      if let Some(waker) = waker {
        waker();
      }
    }
  }

  fn is_full(&self) -> bool {
    self.pending.lock().text.len() >= MAX_PENDING_DISPATCH_BYTES
  }

  /// Waits while the pending batch is over its bound (socket readers, before queueing).
  pub async fn wait_for_space(&self) {
    // The common case, without registering as a waiter.
    if !self.is_full() {
      return;
    }
    loop {
      let notified = self.space.notified();
      tokio::pin!(notified);
      notified.as_mut().enable();
      if !self.is_full() {
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
      batch.push(']');
      batch
    };
    self.space.notify_waiters();
    Some(batch)
  }

  /// Queues an event frame of a session. Readers call [`Dispatcher::wait_for_space`] first.
  pub fn push_message(&self, session: u64, kind: &str, data: Option<&str>) {
    self.push(|out| {
      out.push_str("[2,");
      push_int(out, session);
      out.push(',');
      out.push_str(kind);
      out.push(',');
      out.push_str(data.unwrap_or("null"));
      out.push(']');
    });
  }

  /// Queues a call frame of a session. Readers call [`Dispatcher::wait_for_space`] first.
  pub fn push_call(&self, session: u64, id: u64, event: &str, data: Option<&str>) {
    self.push(|out| {
      out.push_str("[3,");
      push_int(out, session);
      out.push(',');
      push_int(out, id);
      out.push(',');
      out.push_str(event);
      out.push(',');
      out.push_str(data.unwrap_or("null"));
      out.push(']');
    });
  }

  /// Queues an upgrade request for `extractMeta`.
  pub fn push_upgrade(&self, request: u64, endpoint: usize, url: &str, remote: &str, headers_json: &str) {
    self.push(|out| {
      out.push_str("[0,");
      push_int(out, request);
      out.push(',');
      push_int(out, endpoint as u64);
      out.push(',');
      push_json_string(out, url);
      out.push(',');
      push_json_string(out, remote);
      out.push(',');
      out.push_str(headers_json);
      out.push(']');
    });
  }

  /// Queues a session opening. `meta_json` is the session's meta (its attachment).
  pub fn push_open(&self, open: &OpenEvent<'_>) {
    self.push(|out| {
      out.push_str("[1,");
      push_int(out, open.session);
      out.push(',');
      push_int(out, open.actor);
      out.push_str(if open.created { ",1," } else { ",0," });
      push_int(out, open.endpoint as u64);
      out.push(',');
      push_json_string(out, open.key);
      out.push(',');
      out.push_str(open.meta_json);
      out.push(']');
    });
  }

  pub fn push_close(&self, session: u64, code: u16, reason: &str) {
    self.push(|out| {
      out.push_str("[4,");
      push_int(out, session);
      out.push(',');
      push_int(out, code);
      out.push(',');
      push_json_string(out, reason);
      out.push(']');
    });
  }

  pub fn push_evict(&self, actor: u64) {
    self.push_tagged(tag::EVICT, actor);
  }

  pub fn push_room_change(&self, change: &RoomChange) {
    self.push(|out| match change {
      RoomChange::Joined {
        room,
        created,
        handler,
        name,
        user,
        metadata,
      } => {
        out.push_str("[6,");
        push_int(out, *room);
        out.push_str(if *created { ",1," } else { ",0," });
        push_int(out, *handler as u64);
        out.push(',');
        push_json_string(out, name);
        out.push(',');
        push_json_string(out, user);
        out.push(',');
        out.push_str(metadata);
        out.push(']');
      }
      RoomChange::Left { room, user } => {
        out.push_str("[7,");
        push_int(out, *room);
        out.push(',');
        push_json_string(out, user);
        out.push(']');
      }
      RoomChange::Evicted { room } => {
        out.push_str("[8,");
        push_int(out, *room);
        out.push(']');
      }
      RoomChange::Hibernated { room } => {
        out.push_str("[13,");
        push_int(out, *room);
        out.push(']');
      }
    });
  }

  /// Queues the wake-up of an actor with its open sessions and their meta.
  pub fn push_wake(&self, actor: u64, endpoint: usize, key: &str, sessions: &[(u64, std::sync::Arc<str>)]) {
    self.push(|out| {
      out.push_str("[10,");
      push_int(out, actor);
      out.push(',');
      push_int(out, endpoint as u64);
      out.push(',');
      push_json_string(out, key);
      out.push_str(",[");
      for (i, (session, meta)) in sessions.iter().enumerate() {
        if i > 0 {
          out.push(',');
        }
        out.push('[');
        push_int(out, *session);
        out.push(',');
        out.push_str(meta);
        out.push(']');
      }
      out.push_str("]]");
    });
  }

  /// Queues `[tag, id]`: hibernate, destroyed, room destroyed.
  fn push_tagged(&self, tag: u8, id: u64) {
    self.push(|out| {
      out.push('[');
      push_int(out, tag);
      out.push(',');
      push_int(out, id);
      out.push(']');
    });
  }

  pub fn push_hibernate(&self, actor: u64) {
    self.push_tagged(tag::HIBERNATE, actor);
  }

  pub fn push_destroyed(&self, actor: u64) {
    self.push_tagged(tag::DESTROYED, actor);
  }

  pub fn push_room_destroyed(&self, room: u64) {
    self.push_tagged(tag::ROOM_DESTROYED, room);
  }

  pub fn push_room_changes(&self, changes: &[RoomChange]) {
    for change in changes {
      self.push_room_change(change);
    }
  }

  /// Queues a due schedule for its actor.
  pub fn push_scheduled(&self, actor: u64, schedule: &crate::schedules::Schedule) {
    self.push(|out| {
      out.push_str("[15,");
      push_int(out, actor);
      out.push(',');
      push_int(out, schedule.endpoint as u64);
      out.push(',');
      push_json_string(out, &schedule.user);
      out.push(',');
      push_json_string(out, &schedule.id);
      out.push(',');
      push_json_string(out, &schedule.event);
      out.push(',');
      out.push_str(&schedule.data);
      out.push(']');
    });
  }

  pub fn push_shutdown(&self) {
    self.push(|out| out.push_str("[9]"));
  }
}

/// What JS learns when a session opens.
pub struct OpenEvent<'a> {
  pub session: u64,
  pub actor: u64,
  /// True when this session created the actor (JS runs `onInit` first).
  pub created: bool,
  pub endpoint: usize,
  pub key: &'a str,
  pub meta_json: &'a str,
}

#[cfg(test)]
mod tests {
  use super::*;
  use std::sync::atomic::{AtomicUsize, Ordering};

  #[test]
  fn batches_events_and_wakes_once_per_take() {
    let dispatcher = Dispatcher::new();
    let wakes = Arc::new(AtomicUsize::new(0));
    let counter = wakes.clone();
    dispatcher.set_waker(Some(Arc::new(move || {
      counter.fetch_add(1, Ordering::SeqCst);
    })));
    dispatcher.push_close(1, 1000, "bye");
    dispatcher.push_evict(2);
    assert_eq!(wakes.load(Ordering::SeqCst), 1);
    assert_eq!(dispatcher.take().as_deref(), Some(r#"[[4,1,1000,"bye"],[5,2]]"#));
    assert_eq!(dispatcher.take(), None);
    dispatcher.push_shutdown();
    assert_eq!(wakes.load(Ordering::SeqCst), 2);
    assert_eq!(dispatcher.take().as_deref(), Some("[[9]]"));
  }

  #[test]
  fn writes_ids_in_decimal() {
    let dispatcher = Dispatcher::new();
    dispatcher.push_message(0, r#""echo""#, Some(r#"{"n":1}"#));
    dispatcher.push_call(u64::MAX, 10, r#""inc""#, None);
    dispatcher.push_close(1_234_567_890, 1000, "");
    assert_eq!(
      dispatcher.take().as_deref(),
      Some(r#"[[2,0,"echo",{"n":1}],[3,18446744073709551615,10,"inc",null],[4,1234567890,1000,""]]"#)
    );
  }
}
