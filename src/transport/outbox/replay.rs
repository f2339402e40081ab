//! A session's replay buffer: the numbered frames a writer took and the client has not
//! acknowledged yet, so that a new socket can resume the session from the client's last number.
//! Bounded in bytes; past the bound the oldest frames go, and a resume from before them is refused.

use std::collections::VecDeque;

use tokio_tungstenite::tungstenite::Utf8Bytes;

use super::{wire_len, Outbox, Queued, ResumeRefused, WireFrame};

/// Numbered frames taken by a writer and not yet acknowledged by the client.
pub(super) struct Replay {
  pub(super) sent: VecDeque<(u64, WireFrame)>,
  pub(super) bytes: usize,
  pub(super) limit: usize,
  /// Highest number dropped before it was acknowledged: a resume from below it is refused.
  pub(super) lost: u64,
}

impl Replay {
  pub(super) fn keep(&mut self, seq: u64, frame: &WireFrame) {
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

  pub(super) fn forget_upto(&mut self, seq: u64) {
    while self.sent.front().is_some_and(|(kept, _)| *kept <= seq) {
      if let Some((_, frame)) = self.sent.pop_front() {
        self.bytes -= frame.len();
      }
    }
  }
}

/// Resume: the replay buffer kept, acknowledged and handed to a new socket.
impl Outbox {
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
    let partly_written = state.front_written > 0;
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
    frames.push_front(Queued {
      seq: 0,
      frame: first.into(),
    });
    if partly_written && state.frames.front().is_some_and(|front| front.seq != 0) {
      // Kept for replay when its first bytes went out: it is among the frames above.
      state.frames.pop_front();
    }
    frames.append(&mut state.frames);
    state.front_written = 0;
    state.direct = None;
    state.writing = false;
    state.unsent = frames.iter().map(|queued| wire_len(queued.frame.len())).sum();
    state.stalled = false;
    state.frames = frames;
    state.generation += 1;
    let generation = state.generation;
    drop(state);
    // Wake the old writer, waiting for frames or blocked on its socket, so it stops.
    self.ready.notify_waiters();
    self.urgent.notify_waiters();
    Ok(generation)
  }
}
