//! The bounded queue of frames between the rest of the server and one socket's writer.
//!
//! Anyone may push (JS emits, room fan-out, the session's own pongs); only the session's writer
//! takes. Frames are shared bytes, so a broadcast costs one reference per recipient here.
//!
//! Bound: what counts is what the *socket* has not accepted, as in uWebSockets: the
//! wire bytes of every frame queued here or handed to the writer, less the bytes the kernel took
//! (the writer reports them, [`Outbox::accepted`]). A session over `limit` (`maxBackpressure`)
//! is a slow consumer once its socket took no byte for [`SLOW_CONSUMER_STALL`] (the writer's
//! watchdog calls [`Outbox::stalled`]); while the socket keeps taking bytes a burst may queue
//! up to [`MAX_BURST_FACTOR`] × `limit`, so a client draining one tick's 2 MiB of emits is
//! never cut, and past that cap the session is a slow consumer at once. A slow consumer under
//! [`OverflowPolicy::Close`] has its queued frames discarded and is closed with 1008 "slow
//! consumer"; under [`OverflowPolicy::Drop`] frames that do not fit are dropped and counted.
//! Either way the sender never waits and other sessions are unaffected. Frames the output gate
//! holds for this session until a flush count too, from the moment they are held
//! ([`Outbox::hold`]): a disk that falls behind cannot make the gate pin more for one session
//! than its socket could.
//!
//! Resume: a session whose client can resume keeps a replay buffer here: every numbered frame
//! handed to a writer stays until the client acknowledges it (or the buffer passes its byte
//! limit, dropping the oldest). Frames are kept from the moment a writer takes them, not once
//! written, so a frame in flight on a socket that dies is still here. When a new socket resumes
//! the session, the frames after the client's last number go out again, then the queue, and the
//! old socket's writer finds itself superseded (its socket generation is no longer current) and stops.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::Notify;

use crate::config::{OverflowPolicy, MAX_BURST_FACTOR};
use crate::error::CloseCode;
use crate::metrics::Metrics;

pub use super::wire_frame::{wire_len, WireFrame};
pub use direct::{corked, SocketFd, WriteThrough};
use replay::Replay;

mod direct;
mod replay;
pub use crate::config::SLOW_CONSUMER_STALL;

/// A request to close the socket once the frames before it are written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CloseRequest {
  pub code: u16,
  pub reason: String,
  /// True when queued frames were discarded and a blocked write should be abandoned
  /// (slow consumer): waiting for the socket would never end.
  pub urgent: bool,
}

/// A frame waiting for the socket, with its number (0 for frames that are never replayed).
pub struct Queued {
  pub seq: u64,
  pub frame: WireFrame,
}

/// The writer asking for frames no longer owns the session: a resumed socket took it over.
#[derive(Debug, PartialEq, Eq)]
pub struct Superseded;

/// Why a session cannot be resumed from the number a client gave.
#[derive(Debug, PartialEq, Eq)]
pub enum ResumeRefused {
  /// The session keeps no replay buffer (its client did not ask for one).
  NotResumable,
  /// The session is closing (closed by the server, or a slow consumer).
  Closing,
  /// Frames after the client's number were dropped from the bounded buffer.
  Overflowed,
}

/// What happened to a pushed frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pushed {
  Queued,
  /// Over the limit under [`OverflowPolicy::Drop`]: dropped and counted.
  Dropped,
  /// Over the limit under [`OverflowPolicy::Close`]: the session is being closed with 1008.
  Overflowed,
  /// The session is closing; nothing more is sent.
  Closed,
}

struct State {
  frames: VecDeque<Queued>,
  /// Wire bytes queued here or handed to the writer that the socket has not accepted yet.
  unsent: usize,
  /// Bytes the socket accepted since the session began (the writer's watchdog compares them).
  accepted: u64,
  /// Wire bytes of frames the output gate holds for this session (see [`Outbox::hold`]).
  held: usize,
  /// Set by the writer's watchdog when the socket took nothing for [`SLOW_CONSUMER_STALL`]
  /// while over the limit; cleared by the next byte it accepts.
  stalled: bool,
  close: Option<CloseRequest>,
  dropped: u64,
  /// The writer allowed to take frames; bumped when a resumed socket takes the session over.
  generation: u64,
  replay: Option<Replay>,
  /// The socket frames are written straight to while nothing is queued (see [`direct`]), and
  /// the writer generation that registered it.
  direct: Option<(SocketFd, u64)>,
  /// The writer is writing frames it took: a frame pushed now must queue behind them.
  writing: bool,
  /// Bytes of the front frame already written straight to the socket (it was counted then).
  front_written: usize,
  /// A corked thread will write the queue out when it uncorks (see [`corked`]): pushes queue
  /// without waking the writer.
  cork_pending: bool,
}

pub struct Outbox {
  state: Mutex<State>,
  /// Wakes the writer when frames or a close request arrive.
  ready: Notify,
  /// Wakes a writer blocked on a full socket when an urgent close is requested.
  urgent: Notify,
  limit: usize,
  /// `limit` × [`MAX_BURST_FACTOR`]: past it a session is a slow consumer even while its
  /// socket drains.
  burst_limit: usize,
  policy: OverflowPolicy,
  /// A raw endpoint's session: it takes raw frames only (see [`Outbox::takes`]).
  raw: AtomicBool,
  /// Where frames sent, frames dropped and slow-consumer closes are counted (none in tests).
  meter: Option<Arc<Metrics>>,
}

impl Outbox {
  pub fn new(limit: usize, policy: OverflowPolicy) -> Self {
    Self {
      state: Mutex::new(State {
        frames: VecDeque::new(),
        unsent: 0,
        accepted: 0,
        held: 0,
        stalled: false,
        close: None,
        dropped: 0,
        generation: 0,
        replay: None,
        direct: None,
        writing: false,
        front_written: 0,
        cork_pending: false,
      }),
      ready: Notify::new(),
      urgent: Notify::new(),
      limit,
      burst_limit: limit.saturating_mul(MAX_BURST_FACTOR),
      policy,
      raw: AtomicBool::new(false),
      meter: None,
    }
  }

  /// Counts this session's traffic into `metrics`.
  pub fn metered(mut self, metrics: Arc<Metrics>) -> Self {
    self.meter = Some(metrics);
    self
  }

  /// Makes this a raw endpoint's session: from now on it takes raw frames only.
  pub fn serve_raw(&self) {
    self.raw.store(true, Ordering::Relaxed);
  }

  /// Whether a broadcast of `frame` is for this session: raw frames go to raw sessions, protocol
  /// frames to the others (a room may have members of both kinds).
  pub fn takes(&self, frame: &WireFrame) -> bool {
    frame.is_raw() == self.raw.load(Ordering::Relaxed)
  }

  /// Queues a frame that is never replayed (pongs, errors about the client's own frames).
  pub fn push(&self, frame: impl Into<WireFrame>) -> Pushed {
    self.push_numbered(0, frame)
  }

  /// Queues frame number `seq` for the socket; never waits.
  pub fn push_numbered(&self, seq: u64, frame: impl Into<WireFrame>) -> Pushed {
    self.push_from(None, seq, frame.into())
  }

  /// [`Outbox::push_numbered`] from a caller holding the outbox shared, which lets a corked
  /// thread (see [`corked`]) write the frame out later with the others it pushes.
  pub fn push_shared(self: &Arc<Self>, seq: u64, frame: WireFrame) -> Pushed {
    self.push_from(Some(self), seq, frame)
  }

  fn push_from(&self, shared: Option<&Arc<Self>>, seq: u64, frame: WireFrame) -> Pushed {
    let mut state = self.state.lock();
    if state.close.is_some() {
      return Pushed::Closed;
    }
    let wire = wire_len(frame.len());
    if let Err(refused) = self.admit(&mut state, wire) {
      if refused == Pushed::Overflowed {
        self.overflow(state);
      }
      return refused;
    }
    self.enqueue(state, shared, seq, frame, wire);
    Pushed::Queued
  }

  /// Whether `wire` more bytes fit the session's budget (see the module doc); counts a dropped
  /// frame. `Err(Overflowed)` asks the caller to close the session.
  fn admit(&self, state: &mut State, wire: usize) -> Result<(), Pushed> {
    let backlog = state.unsent + state.held + wire;
    if backlog <= self.limit || (backlog <= self.burst_limit && !state.stalled) {
      return Ok(());
    }
    match self.policy {
      OverflowPolicy::Drop => {
        state.dropped += 1;
        if let Some(meter) = &self.meter {
          meter.frames_dropped.inc();
        }
        Err(Pushed::Dropped)
      }
      OverflowPolicy::Close => Err(Pushed::Overflowed),
    }
  }

  fn enqueue(
    &self,
    mut state: parking_lot::MutexGuard<'_, State>,
    shared: Option<&Arc<Self>>,
    seq: u64,
    frame: WireFrame,
    wire: usize,
  ) {
    let mut written = 0;
    let can_write = state.direct.is_some() && state.frames.is_empty() && !state.writing;
    if state.cork_pending || (can_write && shared.is_some_and(direct::cork)) {
      // Written out with the frames after it when the corked thread uncorks.
      state.cork_pending = true;
      state.frames.push_back(Queued { seq, frame });
      state.unsent += wire;
      return;
    }
    if let (Some((fd, _)), true) = (state.direct, can_write) {
      written = direct::write_frame(fd, &frame).unwrap_or(0);
      if written > 0 {
        self.count_sent(state.replay.as_mut(), std::iter::once((seq, &frame)), true);
        state.accepted += written as u64;
        state.stalled = false;
      }
      if written >= wire {
        return;
      }
      state.front_written = written;
    }
    let was_empty = state.frames.is_empty();
    state.frames.push_back(Queued { seq, frame });
    state.unsent += wire - written;
    drop(state);
    if was_empty {
      self.ready.notify_one();
    }
  }

  /// Frames leaving for the socket: kept for replay when numbered, and counted (their bytes
  /// too unless `bytes` is false: a socket's writer counts those as it sends them, in its
  /// encoding, see [`Outbox::sent_bytes`]).
  fn count_sent<'f>(
    &self,
    replay: Option<&mut Replay>,
    frames: impl Iterator<Item = (u64, &'f WireFrame)> + Clone,
    bytes: bool,
  ) {
    if let Some(replay) = replay {
      for (seq, frame) in frames.clone().filter(|(seq, _)| *seq != 0) {
        replay.keep(seq, frame);
      }
    }
    if let Some(meter) = &self.meter {
      let (count, payload) = frames.fold((0u64, 0u64), |(count, payload), (_, frame)| {
        (count + 1, payload + frame.len() as u64)
      });
      if count > 0 {
        meter.frames_sent.add(count);
        if bytes {
          meter.bytes_sent.add(payload);
        }
      }
    }
  }

  /// Gives up the queued frames (a slow consumer, or a close that cannot wait), all but a front
  /// frame partly written already: the socket must get the rest of it before anything else.
  fn discard_queue(state: &mut State) {
    if state.front_written > 0 {
      state.frames.truncate(1);
      state.unsent = state.frames.front().map_or(0, |front| {
        wire_len(front.frame.len()).saturating_sub(state.front_written)
      });
    } else {
      state.frames.clear();
      state.unsent = 0;
    }
  }

  /// Reserves room for a frame of `len` bytes that the output gate holds until a flush, as if
  /// it were queued: `Queued` when it fits (then [`Outbox::release_held`] must follow), else
  /// what [`Outbox::push`] would have answered.
  pub fn hold(&self, len: usize) -> Pushed {
    let mut state = self.state.lock();
    if state.close.is_some() {
      return Pushed::Closed;
    }
    let wire = wire_len(len);
    if let Err(refused) = self.admit(&mut state, wire) {
      if refused == Pushed::Overflowed {
        self.overflow(state);
      }
      return refused;
    }
    state.held += wire;
    Pushed::Queued
  }

  /// Queues a frame held since [`Outbox::hold`] (its room is already reserved).
  pub fn release_held(self: &Arc<Self>, seq: u64, frame: WireFrame) {
    let mut state = self.state.lock();
    let wire = wire_len(frame.len());
    state.held = state.held.saturating_sub(wire);
    if state.close.is_some() {
      return;
    }
    self.enqueue(state, Some(self), seq, frame, wire);
  }

  /// Gives up a frame held since [`Outbox::hold`] (the state it followed could not be stored):
  /// its room is freed and the session closes with `code`, after what was queued before it.
  pub fn abandon_held(&self, len: usize, code: u16, reason: &str) {
    self.forget_held(len);
    self.request_close(code, reason);
  }

  /// Gives up a frame held since [`Outbox::hold`]: its room is freed, nothing is sent.
  pub fn forget_held(&self, len: usize) {
    let mut state = self.state.lock();
    state.held = state.held.saturating_sub(wire_len(len));
  }

  /// Makes the session a slow consumer: its queue is discarded and the writer is told to close
  /// with 1008 at once.
  fn overflow(&self, mut state: parking_lot::MutexGuard<'_, State>) {
    if let Some(meter) = &self.meter {
      meter.backpressure_closes.inc();
    }
    Self::discard_queue(&mut state);
    state.close = Some(CloseRequest {
      code: CloseCode::Policy.as_u16(),
      reason: "slow consumer".into(),
      urgent: true,
    });
    drop(state);
    self.ready.notify_one();
    self.urgent.notify_one();
  }

  /// The socket of writer `generation` accepted `bytes` (called by the writer's socket).
  pub fn accepted(&self, generation: u64, bytes: usize) {
    let mut state = self.state.lock();
    if state.generation != generation || bytes == 0 {
      return;
    }
    state.unsent = state.unsent.saturating_sub(bytes);
    state.accepted += bytes as u64;
    state.stalled = false;
  }

  /// A socket's writer sends `bytes` of payload it took (in the socket's encoding).
  pub fn sent_bytes(&self, bytes: u64) {
    if let Some(meter) = self.meter.as_ref().filter(|_| bytes > 0) {
      meter.bytes_sent.add(bytes);
    }
  }

  /// The writer of `generation` sends a frame of `queued` payload bytes as `sent` payload bytes
  /// (a socket whose encoding is not the queued JSON): the budget counts what the socket sends.
  pub fn encoded(&self, generation: u64, queued: usize, sent: usize) {
    if queued == sent {
      return;
    }
    let mut state = self.state.lock();
    if state.generation == generation {
      state.unsent = (state.unsent + wire_len(sent)).saturating_sub(wire_len(queued));
    }
  }

  /// Bytes the socket accepted so far (the writer's watchdog compares two readings).
  pub fn accepted_total(&self) -> u64 {
    self.state.lock().accepted
  }

  /// The writer's watchdog: the socket took no byte for [`SLOW_CONSUMER_STALL`]. Over the limit,
  /// the session is a slow consumer now (closed, or its frames dropped until the socket moves).
  /// A session already closing gives its queued frames up and closes at once.
  pub fn stalled(&self, generation: u64) {
    let mut state = self.state.lock();
    if state.generation != generation {
      return;
    }
    if let Some(close) = state.close.as_mut() {
      // Closing (a shutdown, say) behind frames a socket takes nothing of: the close would wait
      // for them forever, under either policy. It goes first now, the frames are given up.
      if !close.urgent {
        close.urgent = true;
        Self::discard_queue(&mut state);
        drop(state);
        self.ready.notify_one();
        self.urgent.notify_one();
      }
      return;
    }
    if state.unsent + state.held <= self.limit {
      return;
    }
    match self.policy {
      OverflowPolicy::Drop => state.stalled = true,
      OverflowPolicy::Close => self.overflow(state),
    }
  }

  /// The session's socket is gone (it waits for a resume): nothing drains it, so past the
  /// limit it is a slow consumer at once, as if its socket had stalled.
  pub fn lost_socket(&self) {
    let mut state = self.state.lock();
    state.stalled = true;
    let over = state.unsent + state.held > self.limit;
    if over && state.close.is_none() && self.policy == OverflowPolicy::Close {
      self.overflow(state);
    }
  }

  /// Wire bytes the socket has not accepted yet.
  pub fn unsent(&self) -> usize {
    self.state.lock().unsent
  }

  /// Asks the writer to close the socket after the frames already queued. The first request
  /// wins; returns false when the session was already closing.
  pub fn request_close(&self, code: u16, reason: &str) -> bool {
    let mut state = self.state.lock();
    if state.close.is_some() {
      return false;
    }
    state.close = Some(CloseRequest {
      code,
      reason: reason.into(),
      urgent: false,
    });
    drop(state);
    self.ready.notify_one();
    true
  }

  pub fn is_closing(&self) -> bool {
    self.state.lock().close.is_some()
  }

  /// The close requested, if any.
  pub fn close_request(&self) -> Option<CloseRequest> {
    self.state.lock().close.clone()
  }

  /// Frames dropped under [`OverflowPolicy::Drop`].
  pub fn dropped(&self) -> u64 {
    self.state.lock().dropped
  }

  /// The writer currently allowed to take frames.
  pub fn generation(&self) -> u64 {
    self.state.lock().generation
  }

  /// Moves every queued frame into `into` (which the writer reuses) and returns the close
  /// request, if any. Waits until there is something to do. Numbered frames are kept for
  /// replay from here on. Fails once `generation` is no longer the session's writer.
  pub async fn take(
    &self,
    generation: u64,
    into: &mut VecDeque<Queued>,
  ) -> Result<Option<CloseRequest>, Superseded> {
    let mut front_written = 0;
    self
      .take_counted(generation, into, &mut front_written, true)
      .await
  }

  /// [`Outbox::take`] for a socket's writer, which also learns how many bytes of the front
  /// frame were written straight to the socket already (`front_written`), and counts the bytes
  /// it sends itself ([`Outbox::sent_bytes`]). Until it asks again, frames pushed queue behind
  /// the ones it took.
  pub async fn take_from(
    &self,
    generation: u64,
    into: &mut VecDeque<Queued>,
    front_written: &mut usize,
  ) -> Result<Option<CloseRequest>, Superseded> {
    self.take_counted(generation, into, front_written, false).await
  }

  async fn take_counted(
    &self,
    generation: u64,
    into: &mut VecDeque<Queued>,
    front_written: &mut usize,
    count_bytes: bool,
  ) -> Result<Option<CloseRequest>, Superseded> {
    loop {
      {
        let mut state = self.state.lock();
        if state.generation != generation {
          return Err(Superseded);
        }
        state.writing = false;
        if !state.frames.is_empty() || state.close.is_some() {
          std::mem::swap(&mut state.frames, into);
          *front_written = std::mem::take(&mut state.front_written);
          // A front frame partly written straight to the socket was counted then.
          let skip = usize::from(*front_written > 0);
          let taken = into.iter().skip(skip).map(|queued| (queued.seq, &queued.frame));
          self.count_sent(state.replay.as_mut(), taken, count_bytes);
          state.writing = true;
          return Ok(state.close.clone());
        }
      }
      self.ready.notified().await;
    }
  }

  /// Resolves when the writer of `generation` should abandon a blocked write: an urgent close was
  /// requested, or a resumed socket took the session over.
  pub async fn interrupted(&self, generation: u64) {
    loop {
      let notified = self.urgent.notified();
      tokio::pin!(notified);
      notified.as_mut().enable();
      {
        let state = self.state.lock();
        if state.generation != generation || state.close.as_ref().is_some_and(|close| close.urgent) {
          return;
        }
      }
      notified.await;
    }
  }
}

#[cfg(test)]
mod tests;
