//! Sessions between sockets: a session whose socket dropped stays registered (detached) for the
//! resume window, still a member of its rooms and still collecting frames in its outbox, so a
//! client that comes back with the session's token continues it as if nothing happened. JS hears
//! of neither the drop nor the return; it hears `CLOSE` only when the window runs out, the
//! session is closed while detached, or the server shuts down.
//!
//! The transport number in the session's outbox says which socket serves it. Ending a session
//! (or detaching it) names the socket it ends for; when a resumed socket has taken over since,
//! the call does nothing, so an old socket dying late can never end its successor's session.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_tungstenite::tungstenite::Utf8Bytes;

use super::Registry;
use crate::dispatch::Dispatcher;
use crate::outbox::{Outbox, ResumeRefused};
use crate::rooms::RoomChange;
use crate::session::Ended;

/// Why a session has no socket, and since when.
pub(super) struct Detached {
  since: Instant,
  ended: Ended,
}

/// What happened to a session whose socket dropped.
#[derive(Debug, PartialEq, Eq)]
pub enum Suspended {
  /// It waits for its client to resume it.
  Waiting,
  /// A resumed socket serves it already: nothing to do.
  Superseded,
  /// It cannot be resumed (no token, or it is closing): end it.
  End,
}

/// A session continued on a new socket.
pub struct Resumed {
  pub session: u64,
  pub outbox: Arc<Outbox>,
  /// The new socket's writer number.
  pub transport: u64,
}

/// Why a resume was refused (the client then gets a fresh session).
#[derive(Debug, PartialEq, Eq)]
pub enum ResumeError {
  /// No session has this token (never had, ended, or the server restarted).
  Unknown,
  /// The token belongs to another endpoint or user.
  Mismatch,
  /// The session cannot continue from the client's frame number.
  Refused(ResumeRefused),
}

impl Registry {
  /// The socket `transport` of `session` dropped: keep the session for a resume when it has a
  /// token. It stays a member of its rooms meanwhile, so frames for it are kept in its outbox.
  pub fn suspend(&self, session: u64, transport: u64, ended: Ended) -> Suspended {
    let mut inner = self.inner.lock();
    let Some(entry) = inner.sessions.get_mut(&session) else {
      return Suspended::End;
    };
    if entry.outbox.transport() != transport {
      return Suspended::Superseded;
    }
    if entry.token.is_none() || entry.outbox.is_closing() {
      return Suspended::End;
    }
    let was_detached = entry
      .detached
      .replace(Detached {
        since: Instant::now(),
        ended,
      })
      .is_some();
    if !was_detached {
      inner.detached += 1;
    }
    Suspended::Waiting
  }

  /// Hands the session of `token` to a new socket, replaying what the client missed after
  /// `last_seq` behind `first` (the `session` frame). `key` is the user the new socket
  /// authenticated as (none when the endpoint does not authenticate): it must be the session's.
  pub fn resume(
    &self,
    token: &str,
    endpoint: usize,
    key: Option<&str>,
    last_seq: u64,
    first: Utf8Bytes,
  ) -> Result<Resumed, ResumeError> {
    let mut inner = self.inner.lock();
    let session = *inner.by_token.get(token).ok_or(ResumeError::Unknown)?;
    let entry = inner.sessions.get(&session).ok_or(ResumeError::Unknown)?;
    let owner = inner.actors.get(&entry.actor).ok_or(ResumeError::Unknown)?;
    if owner.endpoint != endpoint || key.is_some_and(|key| *owner.key != *key) {
      return Err(ResumeError::Mismatch);
    }
    let outbox = entry.outbox.clone();
    match outbox.resume(last_seq, first) {
      Ok(transport) => {
        let was_detached = inner
          .sessions
          .get_mut(&session)
          .and_then(|entry| entry.detached.take())
          .is_some();
        if was_detached {
          inner.detached -= 1;
        }
        Ok(Resumed {
          session,
          outbox,
          transport,
        })
      }
      Err(refused) => {
        // The client starts afresh: the old session ends (at once when detached, else when its
        // socket closes).
        outbox.request_close(1001, "session could not be resumed");
        Err(ResumeError::Refused(refused))
      }
    }
  }

  /// Ends the session served by socket `transport`: the same as [`Registry::detach`], unless a
  /// resumed socket took the session over (then `None`, and nothing changes).
  pub fn end(&self, session: u64, transport: u64, dispatcher: &Dispatcher) -> Option<Vec<RoomChange>> {
    let mut inner = self.inner.lock();
    let current = inner.sessions.get(&session)?.outbox.transport();
    if current != transport {
      return None;
    }
    Some(inner.detach(session, dispatcher))
  }

  /// Removes detached sessions whose window is over or that were closed meanwhile (destroyed,
  /// kicked, overflowed), or every detached session when `all`. Returns each with the end JS
  /// hears and the room memberships that ended.
  pub fn end_detached(
    &self,
    window: Duration,
    all: bool,
    dispatcher: &Dispatcher,
  ) -> Vec<(u64, Ended, Vec<RoomChange>)> {
    let mut inner = self.inner.lock();
    let now = Instant::now();
    let due: Vec<(u64, Ended)> = inner
      .sessions
      .iter()
      .filter_map(|(id, entry)| {
        let detached = entry.detached.as_ref()?;
        if let Some(close) = entry.outbox.close_request() {
          let ended = Ended {
            code: close.code,
            reason: close.reason,
            blip: false,
          };
          return Some((*id, ended));
        }
        let over = all || now.duration_since(detached.since) >= window;
        over.then(|| (*id, detached.ended.clone()))
      })
      .collect();
    due
      .into_iter()
      .map(|(id, ended)| {
        let left = inner.detach(id, dispatcher);
        (id, ended, left)
      })
      .collect()
  }

  /// Whether the session of `token` waits for a resume.
  pub fn is_waiting(&self, token: &str) -> bool {
    let inner = self.inner.lock();
    inner
      .by_token
      .get(token)
      .and_then(|session| inner.sessions.get(session))
      .is_some_and(|entry| entry.detached.is_some())
  }

  /// Sessions waiting for a resume.
  pub fn detached_count(&self) -> usize {
    self.inner.lock().detached
  }
}

#[cfg(test)]
mod tests {
  use super::*;
  use crate::config::OverflowPolicy;
  use crate::registry::NewSession;

  fn resumable(registry: &Registry, key: &str, session: u64, token: &str) -> Arc<Outbox> {
    let outbox = Arc::new(Outbox::new(1 << 20, OverflowPolicy::Close));
    outbox.keep_for_replay(1 << 20);
    let new = NewSession {
      id: session,
      endpoint: 0,
      key,
      outbox: outbox.clone(),
      meta: Arc::from("{}"),
      token: Some(Arc::from(token)),
    };
    registry.attach(new, &Dispatcher::new());
    outbox
  }

  fn dropped() -> Ended {
    Ended {
      code: 1006,
      reason: String::new(),
      blip: true,
    }
  }

  #[test]
  fn a_dropped_session_waits_and_resumes_for_its_own_user_only() {
    let registry = Registry::default();
    let dispatcher = Dispatcher::new();
    resumable(&registry, "alice", 1, "t1");
    assert_eq!(registry.suspend(1, 0, dropped()), Suspended::Waiting);
    assert_eq!(registry.detached_count(), 1);
    assert!(registry.is_waiting("t1") && !registry.is_waiting("t2"));
    let first = || Utf8Bytes::from("session");
    assert_eq!(
      registry.resume("t1", 0, Some("bob"), 0, first()).err(),
      Some(ResumeError::Mismatch)
    );
    assert_eq!(
      registry.resume("nope", 0, None, 0, first()).err(),
      Some(ResumeError::Unknown)
    );
    let resumed = registry.resume("t1", 0, Some("alice"), 0, first());
    assert_eq!(resumed.map(|r| (r.session, r.transport)).ok(), Some((1, 1)));
    assert_eq!(registry.detached_count(), 0);
    // The first socket ends late: it no longer owns the session.
    assert_eq!(registry.end(1, 0, &dispatcher), None);
    assert_eq!(registry.suspend(1, 0, dropped()), Suspended::Superseded);
    assert_eq!(registry.session_count(), 1);
  }

  #[test]
  fn a_detached_session_ends_when_its_window_is_over_or_it_is_closed() {
    let registry = Registry::default();
    let dispatcher = Dispatcher::new();
    resumable(&registry, "alice", 1, "t1");
    let bob = resumable(&registry, "bob", 2, "t2");
    registry.suspend(1, 0, dropped());
    registry.suspend(2, 0, dropped());
    assert!(registry
      .end_detached(Duration::from_secs(60), false, &dispatcher)
      .is_empty());
    bob.request_close(4001, "kicked");
    let ended = registry.end_detached(Duration::from_secs(60), false, &dispatcher);
    let ended: Vec<(u64, u16)> = ended.iter().map(|(id, e, _)| (*id, e.code)).collect();
    assert_eq!(ended, [(2, 4001)]);
    assert_eq!(registry.detached_count(), 1);
    let ended = registry.end_detached(Duration::ZERO, false, &dispatcher);
    assert_eq!(ended.len(), 1);
    assert_eq!(registry.session_count(), 0);
    assert_eq!(registry.detached_count(), 0);
    assert!(registry.resume("t1", 0, None, 0, Utf8Bytes::from("s")).is_err());
  }
}
