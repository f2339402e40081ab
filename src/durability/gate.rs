//! The output gate and group commit.
//!
//! Under `durability: "strict"`, a frame that JS sends after changing persisted state must not
//! leave the process before that change is durable: a client that was told something can rely
//! on it surviving a crash. JS reports a change ([`OutputGate::changed`]) as soon as a state
//! becomes dirty, then commits it ([`OutputGate::commit`], applied to the store at once) before
//! its tick ends. Frames sent while any reported change is not yet flushed are held, with the
//! change count they depend on, and released in order once a flush covers it.
//!
//! One flush covers every commit applied before it started (group commit): a burst of changes
//! across many actors costs one fsync. Under `"relaxed"` nothing is held and flushes run in
//! the background.
//!
//! Frames are numbered here, under the gate lock (see [`crate::protocol::Unsealed`]): a frame
//! is numbered and queued (or held) in one step, and held frames are released in order, so
//! every session receives its frames in increasing number order.
//!
//! Lock order: gate, then registry, then outbox. Held frames are released under the gate lock,
//! so a frame sent after the gate opens can never overtake a released one.

use std::collections::VecDeque;
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::Notify;
use tokio_tungstenite::tungstenite::Utf8Bytes;

use super::store::{Store, Write};
use crate::config::Durability;
use crate::error::StoreError;
use crate::protocol::Unsealed;
use crate::registry::{Registry, Target};
use crate::transport::outbox::Outbox;

/// What else must happen when a frame leaves (cluster mode: publishing it to the other nodes,
/// which is leaving the process too).
pub type Then = Box<dyn FnOnce() + Send>;

struct Held {
  /// The change count this frame depends on.
  needs: u64,
  recipients: Vec<Arc<Outbox>>,
  seq: u64,
  frame: Utf8Bytes,
  then: Option<Then>,
}

#[derive(Default)]
struct Counts {
  /// Changes JS reported.
  changed: u64,
  /// Changes applied to the store (visible to reads).
  applied: u64,
  /// Changes flushed to disk.
  durable: u64,
  held: VecDeque<Held>,
  /// Number of the last frame sent.
  seq: u64,
}

pub struct OutputGate {
  durability: Durability,
  /// Whether frames carry numbers (sessions can be resumed).
  numbered: bool,
  counts: Mutex<Counts>,
  /// Wakes the flusher: something was applied that is not durable yet.
  flush_wanted: Notify,
}

impl OutputGate {
  pub fn new(durability: Durability, numbered: bool) -> Self {
    Self {
      durability,
      numbered,
      counts: Mutex::new(Counts::default()),
      flush_wanted: Notify::new(),
    }
  }

  /// JS changed persisted state: until that change is durable, frames are held (strict).
  pub fn changed(&self) {
    if self.durability == Durability::Strict {
      self.counts.lock().changed += 1;
    }
  }

  /// Applies a batch of writes (every change reported so far) and asks for a flush.
  pub fn commit(&self, store: &Store, writes: Vec<Write>) -> Result<(), StoreError> {
    let mut counts = self.counts.lock();
    if !writes.is_empty() {
      store.apply(writes)?;
    }
    counts.applied = counts.changed;
    drop(counts);
    self.flush_wanted.notify_one();
    Ok(())
  }

  /// Numbers a frame and sends it to `target` now, or holds it until the changes before it
  /// are durable. Returns how many sessions it was (or will be) delivered to.
  pub fn send(&self, registry: &Registry, target: Target<'_>, frame: Unsealed) -> u32 {
    self.send_then(registry, target, frame, None)
  }

  /// [`OutputGate::send`], and `then` when the frame leaves (at once, or when released).
  pub fn send_then(
    &self,
    registry: &Registry,
    target: Target<'_>,
    frame: Unsealed,
    then: Option<Then>,
  ) -> u32 {
    let mut counts = self.counts.lock();
    let seq = if self.numbered {
      counts.seq += 1;
      counts.seq
    } else {
      0
    };
    let frame = frame.seal((seq != 0).then_some(seq));
    if counts.durable >= counts.changed {
      let reached = registry.send(target, seq, &frame);
      if let Some(then) = then {
        then();
      }
      return reached;
    }
    let mut recipients = Vec::new();
    let reached = registry.recipients(target, &mut recipients);
    let needs = counts.changed;
    counts.held.push_back(Held {
      needs,
      recipients,
      seq,
      frame,
      then,
    });
    reached
  }

  /// Frames waiting for a flush.
  pub fn held(&self) -> usize {
    self.counts.lock().held.len()
  }

  /// Marks everything applied before `upto` was read as durable and releases what waited.
  fn made_durable(&self, upto: u64) {
    let mut counts = self.counts.lock();
    counts.durable = counts.durable.max(upto);
    while counts
      .held
      .front()
      .is_some_and(|held| held.needs <= counts.durable)
    {
      if let Some(held) = counts.held.pop_front() {
        for outbox in &held.recipients {
          outbox.push_numbered(held.seq, held.frame.clone());
        }
        if let Some(then) = held.then {
          then();
        }
      }
    }
  }

  /// Flushes the store whenever a commit asks for it, until `store` yields `None` (released).
  /// A failed flush is reported and the held frames are released anyway: holding them forever
  /// would stall every client, and the next flush retries the writes.
  pub async fn run_flusher(&self, store: impl Fn() -> Option<Arc<Store>>, report: impl Fn(&StoreError)) {
    loop {
      self.flush_wanted.notified().await;
      let Some(current) = store() else {
        self.made_durable(u64::MAX);
        return;
      };
      let upto = self.counts.lock().applied;
      if let Err(error) = current.flush().await {
        report(&error);
      }
      self.made_durable(upto);
    }
  }

  /// Wakes the flusher so it notices the store is gone.
  pub fn stop(&self) {
    self.flush_wanted.notify_one();
  }
}
