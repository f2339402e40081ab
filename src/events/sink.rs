//! The batch queue towards the JS thread.
//!
//! Events are appended as array entries to one pending text. The first event after the JS thread
//! last took the batch wakes it once (one threadsafe call per wake-up, never one per event); the
//! JS thread then takes everything queued so far with [`EventSink::take`] and parses it with one
//! `JSON.parse`.
//!
//! The JS thread reads a taken batch in place ([`EventSink::take_with`]); its buffer is then
//! emptied and kept as the next one (up to [`SPARE_BATCH_BUFFER_BYTES`]), so the steady state
//! allocates no batch buffers.
//!
//! Bound: [`MAX_PENDING_DISPATCH_BYTES`]. Socket readers wait in [`EventSink::wait_for_space`]
//! while the batch is over it, so a JS thread that falls behind slows clients down through TCP
//! instead of growing memory. Control events (open, close, evict, shutdown) are never refused:
//! they are small and bounded by the number of sessions.
//!
//! Fairness: each session's events in the batch are counted too, and its reader also waits once
//! they reach [`MAX_PENDING_DISPATCH_BYTES_PER_SESSION`]; a session with none in the batch may add
//! a frame while the batch is under twice the global bound. A flooding client then fills its
//! share of each batch and waits, and a quiet client's call goes into the next batch instead of
//! queueing behind 64 MiB of someone else's events.

use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::Notify;

use super::Event;
use crate::config::{
  MAX_PENDING_DISPATCH_BYTES, MAX_PENDING_DISPATCH_BYTES_PER_SESSION, SPARE_BATCH_BUFFER_BYTES,
};
use crate::ids::{IdMap, SessionId};

/// Wakes the JS thread. Installed by the bindings; a no-op once the server is released.
pub type Waker = Arc<dyn Fn() + Send + Sync>;

struct Pending {
  /// `[e1,e2,...` without the closing bracket; empty when nothing is queued.
  text: String,
  /// Bytes of each session's messages and calls in `text`.
  by_session: IdMap<SessionId, usize>,
  /// True from the wake-up call until JS takes the batch: no second call meanwhile.
  wake_requested: bool,
  /// An emptied buffer of an earlier batch, to become `text` at the next take.
  spare: String,
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
        by_session: IdMap::default(),
        wake_requested: false,
        spare: String::new(),
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

  /// Takes everything queued as one JSON array text and gives it to `read`, or returns `None`
  /// when nothing is queued. Events pushed meanwhile go to the next batch; the buffer is kept
  /// for a later one.
  pub fn take_with<R>(&self, read: impl FnOnce(&str) -> R) -> Option<R> {
    let mut batch = {
      let mut pending = self.pending.lock();
      pending.wake_requested = false;
      if pending.text.is_empty() {
        return None;
      }
      let spare = std::mem::take(&mut pending.spare);
      let mut batch = std::mem::replace(&mut pending.text, spare);
      pending.by_session.clear();
      batch.push(']');
      batch
    };
    self.space.notify_waiters();
    let result = read(&batch);
    if batch.capacity() <= SPARE_BATCH_BUFFER_BYTES {
      batch.clear();
      let mut pending = self.pending.lock();
      if pending.spare.capacity() < batch.capacity() {
        pending.spare = batch;
      }
    }
    Some(result)
  }

  /// Takes everything queued as one JSON array text, or `None` when nothing is queued.
  pub fn take(&self) -> Option<String> {
    self.take_with(str::to_owned)
  }
}

#[cfg(test)]
mod tests {
  use super::*;
  use crate::events::Level;
  use crate::ids::{ActorId, DefinitionId, RequestId};
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
  fn a_taken_batch_buffer_queues_a_later_batch() {
    let events = EventSink::new();
    let push = |n: u64| {
      events.push(Event::Evict { actor: ActorId(n) });
    };
    push(1);
    assert_eq!(events.take_with(|text| text.len()), Some("[[5,1]]".len()));
    // The second batch goes into a fresh buffer; the first one is kept as the spare ...
    push(2);
    let first = events.pending.lock().spare.capacity();
    assert!(first > 0);
    assert_eq!(events.take().as_deref(), Some("[[5,2]]"));
    // ... and becomes the third batch's buffer, with its capacity.
    push(3);
    assert!(events.pending.lock().text.capacity() >= first);
    assert_eq!(events.take().as_deref(), Some("[[5,3]]"));
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
