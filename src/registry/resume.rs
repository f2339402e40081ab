//! Sessions between sockets: a session whose socket dropped stays registered (waiting) for the
//! resume window, still a member of its rooms and still collecting frames in its outbox, so a
//! client that comes back with the session's token continues it as if nothing happened. JS hears
//! of neither the drop nor the return; it hears `Close` only when the window runs out, the
//! session is closed while waiting, or the server shuts down.
//!
//! The socket generation in the session's outbox says which socket serves it. Ending a session
//! (or suspending it) names the generation it ends for; when a resumed socket has taken over
//! since, the call does nothing, so an old socket dying late can never end its successor's
//! session.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_tungstenite::tungstenite::Utf8Bytes;

use super::Registry;
use crate::error::{CloseCode, SessionEnd};
use crate::ids::{DefinitionId, SessionId};
use crate::transport::outbox::{Outbox, ResumeRefused};

/// Why a session has no socket, and since when.
pub(super) struct Waiting {
  since: Instant,
  end: SessionEnd,
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
  pub session: SessionId,
  pub outbox: Arc<Outbox>,
  /// The new socket's generation.
  pub generation: u64,
}

/// Why a resume was refused (the client then gets a fresh session).
#[derive(Debug, PartialEq, Eq)]
pub enum ResumeError {
  /// No session has this token (never had, ended, or the server restarted).
  Unknown,
  /// The token belongs to another definition or user.
  Mismatch,
  /// The session cannot continue from the client's frame number.
  Refused(ResumeRefused),
}

impl Registry {
  /// Socket `generation` of `session` dropped: keep the session for a resume when it has a
  /// token. It stays a member of its rooms meanwhile, so frames for it are kept in its outbox.
  pub fn suspend(&self, session: SessionId, generation: u64, end: SessionEnd) -> Suspended {
    let mut inner = self.inner.lock();
    let Some(entry) = inner.sessions.get_mut(&session) else {
      return Suspended::End;
    };
    if entry.outbox.generation() != generation {
      return Suspended::Superseded;
    }
    if entry.token.is_none() || entry.outbox.is_closing() {
      return Suspended::End;
    }
    let was_waiting = entry
      .waiting
      .replace(Waiting {
        since: Instant::now(),
        end,
      })
      .is_some();
    if !was_waiting {
      inner.waiting += 1;
    }
    Suspended::Waiting
  }

  /// Hands the session of `token` to a new socket, replaying what the client missed after
  /// `last_seq` behind `first` (the `session` frame). `key` is the user the new socket
  /// authenticated as (none when the definition does not authenticate): it must be the session's.
  pub fn resume(
    &self,
    token: &str,
    definition: DefinitionId,
    key: Option<&str>,
    last_seq: u64,
    first: Utf8Bytes,
  ) -> Result<Resumed, ResumeError> {
    let mut inner = self.inner.lock();
    let session = *inner.by_token.get(token).ok_or(ResumeError::Unknown)?;
    let entry = inner.sessions.get(&session).ok_or(ResumeError::Unknown)?;
    let owner = inner.actors.get(&entry.actor).ok_or(ResumeError::Unknown)?;
    if owner.definition != definition || key.is_some_and(|key| *owner.key != *key) {
      return Err(ResumeError::Mismatch);
    }
    let outbox = entry.outbox.clone();
    match outbox.resume(last_seq, first) {
      Ok(generation) => {
        let was_waiting = inner
          .sessions
          .get_mut(&session)
          .and_then(|entry| entry.waiting.take())
          .is_some();
        if was_waiting {
          inner.waiting -= 1;
        }
        Ok(Resumed {
          session,
          outbox,
          generation,
        })
      }
      Err(refused) => {
        outbox.request_close(CloseCode::GoingAway.as_u16(), "session could not be resumed");
        Err(ResumeError::Refused(refused))
      }
    }
  }

  /// Ends the session served by socket `generation` (JS hears `Close`, then the room leaves of
  /// a last session), unless a resumed socket took it over: then false, and nothing changes.
  pub fn end(&self, session: SessionId, generation: u64, end: &SessionEnd) -> bool {
    let mut inner = self.inner.lock();
    let current = inner
      .sessions
      .get(&session)
      .map(|entry| entry.outbox.generation());
    if current != Some(generation) {
      return false;
    }
    inner.remove_session(session, end, &self.events);
    true
  }

  /// Ends waiting sessions whose window is over or that were closed meanwhile (destroyed,
  /// kicked, overflowed), or every waiting session when `all`. Returns the sessions ended.
  pub fn end_waiting(&self, window: Duration, all: bool) -> Vec<SessionId> {
    let mut inner = self.inner.lock();
    let now = Instant::now();
    let due: Vec<(SessionId, SessionEnd)> = inner
      .sessions
      .iter()
      .filter_map(|(id, entry)| {
        let waiting = entry.waiting.as_ref()?;
        if let Some(close) = entry.outbox.close_request() {
          let end = SessionEnd {
            code: close.code,
            reason: close.reason,
            blip: false,
          };
          return Some((*id, end));
        }
        let over = all || now.duration_since(waiting.since) >= window;
        over.then(|| (*id, waiting.end.clone()))
      })
      .collect();
    for (id, end) in &due {
      inner.remove_session(*id, end, &self.events);
    }
    due.into_iter().map(|(id, _)| id).collect()
  }

  /// Whether the session of `token` waits for a resume.
  pub fn is_waiting(&self, token: &str) -> bool {
    let inner = self.inner.lock();
    inner
      .by_token
      .get(token)
      .and_then(|session| inner.sessions.get(session))
      .is_some_and(|entry| entry.waiting.is_some())
  }
}

#[cfg(test)]
mod tests {
  use super::super::tests::registry;
  use super::*;
  use crate::config::OverflowPolicy;
  use crate::registry::NewSession;

  fn resumable(registry: &Registry, key: &str, session: u64, token: &str) -> Arc<Outbox> {
    let outbox = Arc::new(Outbox::new(1 << 20, OverflowPolicy::Close));
    outbox.keep_for_replay(1 << 20);
    let new = NewSession {
      id: SessionId(session),
      definition: DefinitionId(0),
      key,
      outbox: outbox.clone(),
      meta: Arc::from("{}"),
      token: Some(Arc::from(token)),
    };
    registry.add_session(new);
    outbox
  }

  #[test]
  fn a_dropped_session_waits_and_resumes_for_its_own_user_only() {
    let (registry, _) = registry();
    resumable(&registry, "alice", 1, "t1");
    let one = SessionId(1);
    assert_eq!(
      registry.suspend(one, 0, SessionEnd::dropped()),
      Suspended::Waiting
    );
    assert_eq!(registry.counts().waiting, 1);
    assert!(registry.is_waiting("t1") && !registry.is_waiting("t2"));
    let first = || Utf8Bytes::from("session");
    let zero = DefinitionId(0);
    assert_eq!(
      registry.resume("t1", zero, Some("bob"), 0, first()).err(),
      Some(ResumeError::Mismatch)
    );
    assert_eq!(
      registry.resume("nope", zero, None, 0, first()).err(),
      Some(ResumeError::Unknown)
    );
    let resumed = registry.resume("t1", zero, Some("alice"), 0, first());
    assert_eq!(resumed.map(|r| (r.session, r.generation)).ok(), Some((one, 1)));
    assert_eq!(registry.counts().waiting, 0);
    assert!(!registry.end(one, 0, &SessionEnd::dropped()));
    assert_eq!(
      registry.suspend(one, 0, SessionEnd::dropped()),
      Suspended::Superseded
    );
    assert_eq!(registry.counts().sessions, 1);
  }

  #[test]
  fn a_waiting_session_ends_when_its_window_is_over_or_it_is_closed() {
    let (registry, events) = registry();
    resumable(&registry, "alice", 1, "t1");
    let bob = resumable(&registry, "bob", 2, "t2");
    registry.suspend(SessionId(1), 0, SessionEnd::dropped());
    registry.suspend(SessionId(2), 0, SessionEnd::dropped());
    assert!(registry.end_waiting(Duration::from_secs(60), false).is_empty());
    bob.request_close(4001, "kicked");
    events.take();
    assert_eq!(
      registry.end_waiting(Duration::from_secs(60), false),
      [SessionId(2)]
    );
    assert_eq!(events.take().as_deref(), Some(r#"[[4,2,4001,"kicked"]]"#));
    assert_eq!(registry.counts().waiting, 1);
    assert_eq!(registry.end_waiting(Duration::ZERO, false).len(), 1);
    assert_eq!(registry.counts().sessions, 0);
    assert_eq!(registry.counts().waiting, 0);
    let first = Utf8Bytes::from("s");
    assert!(registry.resume("t1", DefinitionId(0), None, 0, first).is_err());
  }
}
