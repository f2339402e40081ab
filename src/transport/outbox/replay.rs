//! A session's replay buffer: the numbered frames a writer took and the client has not
//! acknowledged yet, so that a new socket can resume the session from the client's last number.
//! Bounded in bytes; past the bound the oldest frames go, and a resume from before them is refused.

use std::collections::VecDeque;

use super::WireFrame;

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
