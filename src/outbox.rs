//! The bounded queue of frames between the rest of the server and one socket's writer.
//!
//! Anyone may push (JS emits, room fan-out, the session's own pongs); only the session's writer
//! takes. Frames are shared bytes, so a broadcast costs one reference per recipient here.
//!
//! Bound: `limit` bytes of frames not yet handed to the socket. Past it the session is a slow
//! consumer: under [`OverflowPolicy::Close`] its queued frames are discarded and it is closed
//! with 1008 "slow consumer"; under [`OverflowPolicy::Drop`] the frame is dropped and counted.
//! Either way the sender never waits and other sessions are unaffected.

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
  frames: VecDeque<Utf8Bytes>,
  bytes: usize,
  close: Option<CloseRequest>,
  dropped: u64,
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
      }),
      ready: Notify::new(),
      urgent: Notify::new(),
      limit,
      policy,
    }
  }

  /// Queues a frame for the socket; never waits.
  pub fn push(&self, frame: Utf8Bytes) -> Pushed {
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
    state.frames.push_back(frame);
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

  /// Frames dropped under [`OverflowPolicy::Drop`].
  pub fn dropped(&self) -> u64 {
    self.state.lock().dropped
  }

  /// Moves every queued frame into `into` (which the writer reuses) and returns the close
  /// request, if any. Waits until there is something to do.
  pub async fn take(&self, into: &mut VecDeque<Utf8Bytes>) -> Option<CloseRequest> {
    loop {
      {
        let mut state = self.state.lock();
        if !state.frames.is_empty() || state.close.is_some() {
          std::mem::swap(&mut state.frames, into);
          state.bytes = 0;
          return state.close.clone();
        }
      }
      self.ready.notified().await;
    }
  }

  /// Resolves when an urgent close is requested (a writer blocked on the socket gives up).
  pub async fn urgent_close(&self) {
    loop {
      let notified = self.urgent.notified();
      tokio::pin!(notified);
      notified.as_mut().enable();
      if self.state.lock().close.as_ref().is_some_and(|close| close.urgent) {
        return;
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
    let close = outbox.take(&mut frames).await;
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
    assert_eq!(outbox.take(&mut frames).await, None);
    assert_eq!(frames.len(), 1);
    assert_eq!(outbox.push(Utf8Bytes::from("1")), Pushed::Queued);
  }
}
