//! The bounded queue of frames between the rest of the server and one socket's writer.
//!
//! Anyone may push (JS emits, room fan-out, the session's own pongs); only the session's writer
//! takes. Frames are shared bytes, so a broadcast costs one reference per recipient here.
//!
//! Bound: `limit` bytes of frames not yet handed to the socket. Past it the session is a slow
//! consumer: under [`OverflowPolicy::Close`] its queued frames are discarded and it is closed
//! with 1008 "slow consumer"; under [`OverflowPolicy::Drop`] the frame is dropped and counted.
//! Either way the sender never waits and other sessions are unaffected.
//!
//! Resume: a session whose client can resume keeps a replay buffer here: every numbered frame
//! handed to a writer stays until the client acknowledges it (or the buffer passes its byte
//! limit, dropping the oldest). Frames are kept from the moment a writer takes them, not once
//! written, so a frame in flight on a socket that dies is still here. When a new socket resumes
//! the session, the frames after the client's last number go out again, then the queue, and the
//! old socket's writer finds itself superseded (its socket generation is no longer current) and stops.

use std::collections::VecDeque;

use parking_lot::Mutex;
use tokio::sync::Notify;
use tokio_tungstenite::tungstenite::Utf8Bytes;

use crate::config::OverflowPolicy;
use crate::error::CloseCode;

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
  pub frame: Utf8Bytes,
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

/// Numbered frames taken by a writer and not yet acknowledged by the client.
struct Replay {
  sent: VecDeque<(u64, Utf8Bytes)>,
  bytes: usize,
  limit: usize,
  /// Highest number dropped before it was acknowledged: a resume from below it is refused.
  lost: u64,
}

impl Replay {
  fn keep(&mut self, seq: u64, frame: &Utf8Bytes) {
    self.bytes += frame.len();
    self.sent.push_back((seq, frame.clone()));
    while self.bytes > self.limit {
      let Some((seq, frame)) = self.sent.pop_front() else {
        break;
      };
      self.bytes -= frame.len();
      self.lost = self.lost.max(seq);
    }
  }

  fn forget_upto(&mut self, seq: u64) {
    while self.sent.front().is_some_and(|(kept, _)| *kept <= seq) {
      if let Some((_, frame)) = self.sent.pop_front() {
        self.bytes -= frame.len();
      }
    }
  }
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
  bytes: usize,
  close: Option<CloseRequest>,
  dropped: u64,
  /// The writer allowed to take frames; bumped when a resumed socket takes the session over.
  generation: u64,
  replay: Option<Replay>,
}

pub struct Outbox {
  state: Mutex<State>,
  /// Wakes the writer when frames or a close request arrive.
  ready: Notify,
  /// Wakes a writer blocked on a full socket when an urgent close is requested.
  urgent: Notify,
  limit: usize,
  policy: OverflowPolicy,
}

impl Outbox {
  pub fn new(limit: usize, policy: OverflowPolicy) -> Self {
    Self {
      state: Mutex::new(State {
        frames: VecDeque::new(),
        bytes: 0,
        close: None,
        dropped: 0,
        generation: 0,
        replay: None,
      }),
      ready: Notify::new(),
      urgent: Notify::new(),
      limit,
      policy,
    }
  }

  /// Keeps up to `limit` bytes of sent frames until the client acknowledges them, so that a
  /// new socket can resume the session.
  pub fn keep_for_replay(&self, limit: usize) {
    self.state.lock().replay = Some(Replay {
      sent: VecDeque::new(),
      bytes: 0,
      limit,
      lost: 0,
    });
  }

  /// Queues a frame that is never replayed (pongs, errors about the client's own frames).
  pub fn push(&self, frame: Utf8Bytes) -> Pushed {
    self.push_numbered(0, frame)
  }

  /// Queues frame number `seq` for the socket; never waits.
  pub fn push_numbered(&self, seq: u64, frame: Utf8Bytes) -> Pushed {
    let mut state = self.state.lock();
    if state.close.is_some() {
      return Pushed::Closed;
    }
    let len = frame.len();
    if state.bytes + len > self.limit {
      return match self.policy {
        OverflowPolicy::Drop => {
          state.dropped += 1;
          Pushed::Dropped
        }
        OverflowPolicy::Close => {
          state.frames.clear();
          state.bytes = 0;
          state.close = Some(CloseRequest {
            code: CloseCode::Policy.as_u16(),
            reason: "slow consumer".into(),
            urgent: true,
          });
          drop(state);
          self.ready.notify_one();
          self.urgent.notify_one();
          Pushed::Overflowed
        }
      };
    }
    let was_empty = state.frames.is_empty();
    state.frames.push_back(Queued { seq, frame });
    state.bytes += len;
    drop(state);
    if was_empty {
      self.ready.notify_one();
    }
    Pushed::Queued
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
    loop {
      {
        let mut state = self.state.lock();
        if state.generation != generation {
          return Err(Superseded);
        }
        if !state.frames.is_empty() || state.close.is_some() {
          std::mem::swap(&mut state.frames, into);
          state.bytes = 0;
          if let Some(replay) = state.replay.as_mut() {
            for queued in into.iter().filter(|queued| queued.seq != 0) {
              replay.keep(queued.seq, &queued.frame);
            }
          }
          return Ok(state.close.clone());
        }
      }
      self.ready.notified().await;
    }
  }

  /// The client has every frame up to `seq`: they need not be kept any longer.
  pub fn acknowledge(&self, seq: u64) {
    if let Some(replay) = self.state.lock().replay.as_mut() {
      replay.forget_upto(seq);
    }
  }

  /// A new socket takes the session over from the client's last frame number `last_seq`:
  /// `first` (the `session` frame), then every kept frame after `last_seq`, then the queue, go
  /// to the new writer, whose generation is returned. The old writer is superseded.
  pub fn resume(&self, last_seq: u64, first: Utf8Bytes) -> Result<u64, ResumeRefused> {
    let mut state = self.state.lock();
    if state.close.is_some() {
      return Err(ResumeRefused::Closing);
    }
    let Some(replay) = state.replay.as_mut() else {
      return Err(ResumeRefused::NotResumable);
    };
    if last_seq < replay.lost {
      return Err(ResumeRefused::Overflowed);
    }
    replay.forget_upto(last_seq);
    replay.bytes = 0;
    let mut frames: VecDeque<Queued> = std::mem::take(&mut replay.sent)
      .into_iter()
      .map(|(seq, frame)| Queued { seq, frame })
      .collect();
    frames.push_front(Queued { seq: 0, frame: first });
    frames.append(&mut state.frames);
    state.bytes = frames.iter().map(|queued| queued.frame.len()).sum();
    state.frames = frames;
    state.generation += 1;
    let generation = state.generation;
    drop(state);
    // Wake the old writer, waiting for frames or blocked on its socket, so it stops.
    self.ready.notify_waiters();
    self.urgent.notify_waiters();
    Ok(generation)
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
mod tests {
  use super::*;

  #[tokio::test]
  async fn a_slow_consumer_is_closed_with_1008_and_its_frames_discarded() {
    let outbox = Outbox::new(10, OverflowPolicy::Close);
    assert_eq!(outbox.push(Utf8Bytes::from("12345")), Pushed::Queued);
    assert_eq!(outbox.push(Utf8Bytes::from("12345")), Pushed::Queued);
    assert_eq!(outbox.push(Utf8Bytes::from("1")), Pushed::Overflowed);
    assert_eq!(outbox.push(Utf8Bytes::from("1")), Pushed::Closed);
    let mut frames = VecDeque::new();
    let close = outbox.take(0, &mut frames).await.ok().flatten();
    assert!(frames.is_empty());
    assert_eq!(close.map(|c| (c.code, c.urgent)), Some((1008, true)));
  }

  #[tokio::test]
  async fn the_drop_policy_counts_what_it_drops() {
    let outbox = Outbox::new(10, OverflowPolicy::Drop);
    assert_eq!(outbox.push(Utf8Bytes::from("1234567890")), Pushed::Queued);
    assert_eq!(outbox.push(Utf8Bytes::from("1")), Pushed::Dropped);
    assert_eq!(outbox.dropped(), 1);
    let mut frames = VecDeque::new();
    assert_eq!(outbox.take(0, &mut frames).await, Ok(None));
    assert_eq!(frames.len(), 1);
    assert_eq!(outbox.push(Utf8Bytes::from("1")), Pushed::Queued);
  }

  fn texts(frames: &VecDeque<Queued>) -> Vec<String> {
    frames.iter().map(|queued| queued.frame.to_string()).collect()
  }

  #[tokio::test]
  async fn a_resumed_socket_gets_what_the_client_missed_in_order() {
    let outbox = Outbox::new(1 << 20, OverflowPolicy::Close);
    outbox.keep_for_replay(1 << 20);
    for seq in 1..=3 {
      outbox.push_numbered(seq, Utf8Bytes::from(format!("f{seq}")));
    }
    outbox.push(Utf8Bytes::from("pong"));
    let mut frames = VecDeque::new();
    assert_eq!(outbox.take(0, &mut frames).await, Ok(None));
    outbox.acknowledge(1);
    outbox.push_numbered(4, Utf8Bytes::from("f4"));
    // The client saw frame 2 before its socket died; 3 was lost on the way, 4 never sent.
    let generation = outbox.resume(2, Utf8Bytes::from("session"));
    assert_eq!(generation, Ok(1));
    assert_eq!(outbox.take(0, &mut frames).await, Err(Superseded));
    assert_eq!(outbox.take(1, &mut frames).await, Ok(None));
    assert_eq!(texts(&frames), ["session", "f3", "f4"]);
  }

  #[tokio::test]
  async fn a_resume_past_the_buffer_limit_is_refused() {
    let outbox = Outbox::new(1 << 20, OverflowPolicy::Close);
    outbox.keep_for_replay(4);
    outbox.push_numbered(1, Utf8Bytes::from("aaa"));
    outbox.push_numbered(2, Utf8Bytes::from("bbb"));
    let mut frames = VecDeque::new();
    assert_eq!(outbox.take(0, &mut frames).await, Ok(None));
    assert_eq!(
      outbox.resume(0, Utf8Bytes::from("s")),
      Err(ResumeRefused::Overflowed)
    );
    assert_eq!(outbox.resume(1, Utf8Bytes::from("s")), Ok(1));
    let plain = Outbox::new(1 << 20, OverflowPolicy::Close);
    assert_eq!(
      plain.resume(0, Utf8Bytes::from("s")),
      Err(ResumeRefused::NotResumable)
    );
  }
}
