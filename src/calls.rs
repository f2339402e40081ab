//! Call deadlines. Every call frame passed to JS is registered here with its deadline; the
//! first answer wins: JS's reply, or the `timeout` error sent by the sweep once the deadline
//! passes (a reply arriving later is dropped, so a client never gets two). Entries of a
//! session go when it closes.
//!
//! Bound: one entry per call in flight; a client can only have as many as it sends before the
//! dispatcher's bound pauses its reader.

use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::ids::{IdMap, SessionId};

pub struct PendingCalls {
  timeout: Duration,
  /// session → (call id, when it was handed to JS), oldest first.
  by_session: Mutex<IdMap<SessionId, Vec<(u64, Instant)>>>,
}

impl PendingCalls {
  pub fn new(timeout: Duration) -> Self {
    Self {
      timeout,
      by_session: Mutex::new(IdMap::default()),
    }
  }

  pub fn timeout(&self) -> Duration {
    self.timeout
  }

  /// A call was handed to JS.
  pub fn started(&self, session: SessionId, call: u64) {
    self
      .by_session
      .lock()
      .entry(session)
      .or_default()
      .push((call, Instant::now()));
  }

  /// JS answers a call: how long it took, or `None` when it already timed out (or its session
  /// closed), in which case the answer must not be sent.
  pub fn answered(&self, session: SessionId, call: u64) -> Option<Duration> {
    let mut by_session = self.by_session.lock();
    let calls = by_session.get_mut(&session)?;
    let index = calls.iter().position(|(id, _)| *id == call)?;
    let (_, started) = calls.remove(index);
    if calls.is_empty() {
      by_session.remove(&session);
    }
    Some(started.elapsed())
  }

  pub fn session_closed(&self, session: SessionId) {
    self.by_session.lock().remove(&session);
  }

  /// Removes and returns the calls whose deadline passed, as `(session, call, time since it
  /// was handed to JS)`.
  pub fn expired(&self, now: Instant) -> Vec<(SessionId, u64, Duration)> {
    let mut by_session = self.by_session.lock();
    let mut expired = Vec::new();
    by_session.retain(|session, calls| {
      calls.retain(|(id, started)| {
        let late = *started + self.timeout <= now;
        if late {
          expired.push((*session, *id, now.saturating_duration_since(*started)));
        }
        !late
      });
      !calls.is_empty()
    });
    expired
  }
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn the_first_answer_wins() {
    let calls = PendingCalls::new(Duration::from_secs(60));
    let (one, two) = (SessionId(1), SessionId(2));
    calls.started(one, 7);
    assert!(calls.answered(one, 7).is_some());
    assert!(calls.answered(one, 7).is_none());
    calls.started(one, 8);
    let expired = calls.expired(Instant::now() + Duration::from_secs(61));
    assert_eq!(expired.len(), 1);
    assert!(expired
      .first()
      .is_some_and(|(session, call, elapsed)| *session == one
        && *call == 8
        && *elapsed >= Duration::from_secs(61)));
    assert!(calls.answered(one, 8).is_none());
    calls.started(two, 1);
    calls.session_closed(two);
    assert!(calls.answered(two, 1).is_none());
  }
}
