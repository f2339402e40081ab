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
//! Bound: a held frame counts against each recipient's budget (`maxBackpressure`, see
//! [`Outbox::hold`]) from the moment it is held, so a disk that falls behind turns into slow
//! consumers (1008), not into memory: the gate holds at most what its sessions' budgets allow.
//! [`OutputGate::held`] and [`OutputGate::held_bytes`] report what waits.
//!
//! Lock order: gate, then registry, then outbox. Held frames are released under the gate lock,
//! so a frame sent after the gate opens can never overtake a released one.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use parking_lot::Mutex;
use tokio::sync::Notify;

use super::replica_writes::ReplicaWrites;
use super::store::{Store, Write};
use super::{Replica, ReplicaError, ReplicaWrite};
use crate::config::Durability;
use crate::config::{MAX_TIMED_COMMITS, REPLICA_RETRY};
use crate::error::StoreError;
use crate::ids::SessionId;
use crate::metrics::Metrics;
use crate::protocol::{reply_error_frame, Unsealed};
use crate::registry::{Registry, Target};
use crate::transport::outbox::{Outbox, WireFrame};

/// The error a call gets when the state it changed could not be stored.
const STORAGE_UNAVAILABLE: (&str, &str) = (
  "storage_unavailable",
  "the state this call changed could not be stored; nothing of it was acknowledged",
);

/// How sessions whose frames were refused close: reconnect (to the actor's owner now).
const REFUSED: (u16, &str) = (1012, "state could not be stored: reconnect");

/// What else must happen when a frame leaves (cluster mode: publishing it to the other nodes,
/// which is leaving the process too).
pub type Then = Box<dyn FnOnce() + Send>;

/// The number of the next frame (0 when frames are not numbered).
fn next_seq(counts: &mut Counts, numbered: bool) -> u64 {
  if !numbered {
    return 0;
  }
  counts.seq += 1;
  counts.seq
}

struct Held {
  /// The change count this frame depends on.
  needs: u64,
  recipients: Vec<Arc<Outbox>>,
  seq: u64,
  frame: WireFrame,
  then: Option<Then>,
  /// The call this frame answers, if it is a reply: should the state before it fail to be
  /// stored, the caller gets a `storage_unavailable` error instead of nothing.
  answers: Option<u64>,
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
  /// Bytes of the frames in `held` (each counted once, whatever its recipients).
  held_bytes: usize,
  /// Number of the last frame sent.
  seq: u64,
  /// Writes through to the replica (cluster mode): applied ones in order, and those it did not
  /// take, written again until it does.
  replicas: ReplicaWrites,
  /// Commits or flushes that failed (the disk is full, or failing), for stats.
  failures: u64,
  /// When each commit since the last flush began was applied (at most [`MAX_TIMED_COMMITS`]):
  /// the flush that makes them durable observes each in `warren_commit_seconds`.
  committed_at: Vec<Instant>,
}

pub struct OutputGate {
  durability: Durability,
  /// Whether frames carry numbers (sessions can be resumed).
  numbered: bool,
  counts: Mutex<Counts>,
  /// Wakes the flusher: something was applied that is not durable yet.
  flush_wanted: Notify,
  metrics: Arc<Metrics>,
}

impl OutputGate {
  pub fn new(durability: Durability, numbered: bool, metrics: Arc<Metrics>) -> Self {
    Self {
      durability,
      numbered,
      counts: Mutex::new(Counts::default()),
      flush_wanted: Notify::new(),
      metrics,
    }
  }

  /// JS changed persisted state: until that change is durable, frames are held (strict).
  pub fn changed(&self) {
    if self.durability == Durability::Strict {
      self.counts.lock().changed += 1;
    }
  }

  /// Applies a batch of writes (every change reported so far) and asks for a flush; `replicated`
  /// are written through to the replica with it.
  ///
  /// A batch the store refuses (a full disk) fails every change reported so far: the frames held
  /// behind them never leave (replies become `storage_unavailable` errors, see
  /// [`OutputGate::not_stored`]), and later changes start afresh.
  pub fn commit(
    &self,
    store: &Store,
    writes: Vec<Write>,
    replicated: Vec<ReplicaWrite>,
  ) -> Result<(), StoreError> {
    let mut counts = self.counts.lock();
    // An empty batch (nothing left to write) is no commit: it is not timed.
    let timed = !writes.is_empty() || !replicated.is_empty();
    if !writes.is_empty() {
      if let Err(error) = store.apply(writes) {
        counts.failures += 1;
        let upto = counts.changed;
        counts.applied = upto;
        drop(counts);
        self.not_stored(upto);
        return Err(error);
      }
    }
    counts.replicas.push(replicated);
    if timed && counts.committed_at.len() < MAX_TIMED_COMMITS {
      counts.committed_at.push(Instant::now());
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

  /// [`OutputGate::send`] for a raw endpoint's frame, sent as it is: it waits behind state
  /// changes like any frame, and its number is only used for ordering (raw sessions do not
  /// resume). `then` runs when the frame leaves, as for [`OutputGate::send_then`].
  pub fn send_raw(
    &self,
    registry: &Registry,
    target: Target<'_>,
    frame: WireFrame,
    then: Option<Then>,
  ) -> u32 {
    self.send_held(registry, target, |_| frame, then, None)
  }

  /// [`OutputGate::send`] for the reply to call `call` of `session`.
  pub fn send_reply(
    &self,
    registry: &Registry,
    session: crate::ids::SessionId,
    call: u64,
    frame: Unsealed,
  ) -> u32 {
    let sealed = |seq| WireFrame::from(frame.seal(seq));
    self.send_held(registry, Target::Session(session), sealed, None, Some(call))
  }

  /// [`OutputGate::send`], and `then` when the frame leaves (at once, or when released).
  pub fn send_then(
    &self,
    registry: &Registry,
    target: Target<'_>,
    frame: Unsealed,
    then: Option<Then>,
  ) -> u32 {
    self.send_held(registry, target, |seq| frame.seal(seq).into(), then, None)
  }

  /// [`OutputGate::send`] for each of a run of frames to single sessions, in order, under one
  /// gate lock and, when nothing has to wait, one registry lock. Returns how many were (or will
  /// be) delivered.
  pub fn send_to_sessions(&self, registry: &Registry, frames: Vec<(SessionId, Unsealed)>) -> u32 {
    let mut counts = self.counts.lock();
    // The gate lock is held from here on: no change can be reported or flushed meanwhile, so
    // every frame of the run goes now, or every one waits.
    if counts.durable >= counts.changed {
      let numbered = self.numbered;
      let sealed = frames.into_iter().map(|(session, frame)| {
        let seq = next_seq(&mut counts, numbered);
        (
          session,
          seq,
          WireFrame::from(frame.seal((seq != 0).then_some(seq))),
        )
      });
      return registry.send_to_sessions(sealed);
    }
    let mut reached = 0;
    for (session, frame) in frames {
      let seq = next_seq(&mut counts, self.numbered);
      let frame = WireFrame::from(frame.seal((seq != 0).then_some(seq)));
      reached += Self::hold(
        &mut counts,
        registry,
        Target::Session(session),
        seq,
        frame,
        None,
        None,
      );
    }
    reached
  }

  fn send_held(
    &self,
    registry: &Registry,
    target: Target<'_>,
    seal: impl FnOnce(Option<u64>) -> WireFrame,
    then: Option<Then>,
    answers: Option<u64>,
  ) -> u32 {
    let mut counts = self.counts.lock();
    let seq = next_seq(&mut counts, self.numbered);
    let frame = seal((seq != 0).then_some(seq));
    if counts.durable >= counts.changed {
      let reached = registry.send(target, seq, &frame);
      if let Some(then) = then {
        then();
      }
      return reached;
    }
    Self::hold(&mut counts, registry, target, seq, frame, then, answers)
  }

  /// Holds numbered `frame` for `target` until the changes reported so far are durable.
  fn hold(
    counts: &mut Counts,
    registry: &Registry,
    target: Target<'_>,
    seq: u64,
    frame: WireFrame,
    then: Option<Then>,
    answers: Option<u64>,
  ) -> u32 {
    let mut recipients = Vec::new();
    let reached = registry.hold_for(target, &frame, &mut recipients);
    // Nothing to hold for this node's sessions; a publish to the other nodes still waits.
    if recipients.is_empty() && then.is_none() {
      return reached;
    }
    let needs = counts.changed;
    counts.held_bytes += frame.len();
    counts.held.push_back(Held {
      needs,
      recipients,
      seq,
      frame,
      then,
      answers,
    });
    reached
  }

  /// Frames waiting for a flush.
  pub fn held(&self) -> usize {
    self.counts.lock().held.len()
  }

  /// Bytes of the frames waiting for a flush.
  pub fn held_bytes(&self) -> usize {
    self.counts.lock().held_bytes
  }

  /// Settles every held frame that waited for changes up to `upto`, in order, with `each`.
  fn settle(&self, upto: u64, mut each: impl FnMut(Held)) {
    let mut counts = self.counts.lock();
    counts.durable = counts.durable.max(upto);
    while counts
      .held
      .front()
      .is_some_and(|held| held.needs <= counts.durable)
    {
      if let Some(held) = counts.held.pop_front() {
        counts.held_bytes -= held.frame.len();
        each(held);
      }
    }
  }

  /// Marks everything applied before `upto` was read as durable and releases what waited.
  fn made_durable(&self, upto: u64) {
    // Corked: each socket gets every frame released here in one write, after the gate's lock.
    crate::transport::outbox::corked(|| {
      self.settle(upto, |held| {
        for outbox in &held.recipients {
          outbox.release_held(held.seq, held.frame.clone());
        }
        if let Some(then) = held.then {
          then();
        }
      })
    });
  }

  /// The writes behind the frames up to `upto` were refused by the replica: those frames never
  /// leave, and their sessions close (1012) so their clients reconnect to whoever owns their
  /// actors now. Later frames flow again.
  fn refused(&self, upto: u64) {
    self.settle(upto, |held| {
      for outbox in &held.recipients {
        outbox.abandon_held(held.frame.len(), REFUSED.0, REFUSED.1);
      }
    });
  }

  /// The changes up to `upto` could not be stored here (the disk refused them): the frames that
  /// waited for them never leave. A reply becomes a `storage_unavailable` error for its caller
  /// (numbered in its place, so a resuming client gets it too); other frames are dropped. The
  /// sessions stay open: the next commit may succeed once the disk has room again.
  fn not_stored(&self, upto: u64) {
    self.settle(upto, |held| {
      let error = held.answers.map(|call| {
        let frame = reply_error_frame(call, STORAGE_UNAVAILABLE.0, STORAGE_UNAVAILABLE.1, None);
        frame.seal((held.seq != 0).then_some(held.seq))
      });
      for outbox in &held.recipients {
        outbox.forget_held(held.frame.len());
        if let Some(error) = &error {
          outbox.push_numbered(held.seq, error.clone());
        }
      }
    });
  }

  /// Every change reported so far cannot be stored (the store is recovering from a failure):
  /// see [`OutputGate::not_stored`].
  pub fn refuse_pending(&self) {
    let upto = {
      let mut counts = self.counts.lock();
      counts.failures += 1;
      counts.applied = counts.changed;
      counts.changed
    };
    self.not_stored(upto);
  }

  /// Commits and flushes that failed so far.
  pub fn failures(&self) -> u64 {
    self.counts.lock().failures
  }

  /// Waits until a commit asks for a flush, or, while writes wait for the replica to answer
  /// again, for [`REPLICA_RETRY`] at most.
  pub async fn next_round(&self) {
    let retrying = self.counts.lock().replicas.retrying();
    if retrying {
      let _ = tokio::time::timeout(REPLICA_RETRY, self.flush_wanted.notified()).await;
    } else {
      self.flush_wanted.notified().await;
    }
  }

  /// Cluster mode: whether giving the claim of `actor` (its directory key) up must wait until
  /// its writes are in the replica; then the replica is asked to give it up once they are.
  pub fn release_after_writes(&self, actor: &str) -> bool {
    self.counts.lock().replicas.defer_release(actor)
  }

  /// One group commit: flushes `store` (and writes through to the replica, when there is one)
  /// for everything applied so far, then releases the frames that waited for it. A failed flush
  /// is reported and the frames behind it never leave ([`OutputGate::not_stored`]); false then,
  /// the store needs reopening. Writes the replica refuses are reported and their frames
  /// dropped ([`OutputGate::refused`]); writes it could not take (unreachable) are reported
  /// and answered like a failed flush ([`OutputGate::not_stored`]).
  pub async fn flush_round(
    &self,
    store: &Store,
    replica: Option<&Arc<dyn Replica>>,
    report: &impl Fn(&StoreError),
  ) -> bool {
    let (upto, (replicating, fresh), committed_at) = {
      let mut counts = self.counts.lock();
      (
        counts.applied,
        counts.replicas.round(),
        std::mem::take(&mut counts.committed_at),
      )
    };
    if let Err(error) = store.flush().await {
      self.counts.lock().failures += 1;
      report(&error);
      self.not_stored(upto);
      return false;
    }
    for at in committed_at {
      self.metrics.commit_seconds.observe(at.elapsed());
    }
    let replicated = match replica {
      Some(replica) if !replicating.is_empty() => {
        let started = Instant::now();
        let replicated = replica.commit(&replicating).await;
        self.metrics.redis_commit_seconds.observe(started.elapsed());
        let releases = self.counts.lock().replicas.finished(replicating, &replicated);
        for actor in releases {
          replica.release(&actor);
        }
        replicated
      }
      _ => Ok(()),
    };
    match replicated {
      Ok(()) => self.made_durable(upto),
      Err(ReplicaError::Fenced(why)) => {
        report(&StoreError::Io(format!(
          "cluster: writes refused by Redis: {why}"
        )));
        self.refused(upto);
      }
      Err(ReplicaError::Unreachable(why)) => {
        // Retried every REPLICA_RETRY while Redis stays away: reported for new changes only.
        if fresh > 0 {
          self.counts.lock().failures += 1;
          report(&StoreError::Io(format!(
            "cluster: writes not stored in Redis (written again once it answers): {why}"
          )));
        }
        self.not_stored(upto);
      }
    }
    true
  }

  /// The store is gone (released): nothing will be flushed any more, so nothing waits.
  pub fn release_all(&self) {
    self.made_durable(u64::MAX);
  }

  /// Wakes the flusher so it notices the store is gone.
  pub fn stop(&self) {
    self.flush_wanted.notify_one();
  }
}
