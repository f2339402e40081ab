//! The single owner of sessions and actors.
//!
//! An actor is keyed by `(endpoint, userId)` and holds every open session of that user (tabs,
//! devices). A session belongs to exactly one actor. JS refers to both by number and mirrors
//! only what user code needs (state, meta); membership lives here.
//!
//! Locking: one mutex over both maps, held for map updates and for pushing shared frames into
//! outboxes (which never wait). Lock order is registry, then outbox; an outbox never calls
//! back into the registry. The lock is never held across an `.await` or a call into JS.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio_tungstenite::tungstenite::Utf8Bytes;

use crate::outbox::{Outbox, Pushed};

struct SessionEntry {
  actor: u64,
  outbox: Arc<Outbox>,
}

struct ActorEntry {
  endpoint: usize,
  key: Arc<str>,
  sessions: Vec<u64>,
  /// Set when the last session left; the actor is evicted once idle long enough.
  idle_since: Option<Instant>,
}

#[derive(Default)]
struct Inner {
  sessions: HashMap<u64, SessionEntry>,
  actors: HashMap<u64, ActorEntry>,
  by_key: HashMap<(usize, Arc<str>), u64>,
  next_actor: u64,
}

/// Where an attached session landed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Attached {
  pub actor: u64,
  /// True when the session created the actor.
  pub created: bool,
}

#[derive(Default)]
pub struct Registry {
  inner: Mutex<Inner>,
}

impl Registry {
  /// Adds a session to the actor of `(endpoint, key)`, creating the actor if needed.
  pub fn attach(&self, endpoint: usize, key: &str, session: u64, outbox: Arc<Outbox>) -> Attached {
    let mut inner = self.inner.lock();
    let lookup = (endpoint, Arc::<str>::from(key));
    let (actor, created) = match inner.by_key.get(&lookup) {
      Some(actor) => (*actor, false),
      None => {
        inner.next_actor += 1;
        let actor = inner.next_actor;
        inner.by_key.insert(lookup.clone(), actor);
        let entry = ActorEntry {
          endpoint,
          key: lookup.1,
          sessions: Vec::new(),
          idle_since: None,
        };
        inner.actors.insert(actor, entry);
        (actor, true)
      }
    };
    if let Some(entry) = inner.actors.get_mut(&actor) {
      entry.sessions.push(session);
      entry.idle_since = None;
    }
    inner.sessions.insert(session, SessionEntry { actor, outbox });
    Attached { actor, created }
  }

  /// Removes a session; its actor stays (idle) until evicted. Returns the actor.
  pub fn detach(&self, session: u64) -> Option<u64> {
    let mut inner = self.inner.lock();
    let entry = inner.sessions.remove(&session)?;
    if let Some(actor) = inner.actors.get_mut(&entry.actor) {
      actor.sessions.retain(|id| *id != session);
      if actor.sessions.is_empty() {
        actor.idle_since = Some(Instant::now());
      }
    }
    Some(entry.actor)
  }

  /// Removes and returns the actors that have had no session for at least `idle_for`.
  pub fn evict_idle(&self, idle_for: Duration) -> Vec<u64> {
    let mut inner = self.inner.lock();
    let now = Instant::now();
    let idle: Vec<u64> = inner
      .actors
      .iter()
      .filter(|(_, actor)| {
        actor
          .idle_since
          .is_some_and(|since| now.duration_since(since) >= idle_for)
      })
      .map(|(id, _)| *id)
      .collect();
    for id in &idle {
      if let Some(actor) = inner.actors.remove(id) {
        inner.by_key.remove(&(actor.endpoint, actor.key));
      }
    }
    idle
  }

  /// Sends a frame to one session. False when the session is gone or closing.
  pub fn send(&self, session: u64, frame: Utf8Bytes) -> bool {
    let inner = self.inner.lock();
    match inner.sessions.get(&session) {
      Some(entry) => matches!(entry.outbox.push(frame), Pushed::Queued),
      None => false,
    }
  }

  /// Sends a frame to every session of the user `key` at `endpoint` (but `except`), returning
  /// how many sessions it was queued for.
  pub fn send_to_user(&self, endpoint: usize, key: &str, frame: &Utf8Bytes, except: Option<u64>) -> u32 {
    let inner = self.inner.lock();
    let Some(actor) = inner.by_key.get(&(endpoint, Arc::<str>::from(key))) else {
      return 0;
    };
    let Some(actor) = inner.actors.get(actor) else {
      return 0;
    };
    let mut reached = 0;
    for session in actor.sessions.iter().filter(|id| Some(**id) != except) {
      if let Some(entry) = inner.sessions.get(session) {
        if entry.outbox.push(frame.clone()) == Pushed::Queued {
          reached += 1;
        }
      }
    }
    reached
  }

  /// Asks a session to close; false when it is gone or already closing.
  pub fn close_session(&self, session: u64, code: u16, reason: &str) -> bool {
    let inner = self.inner.lock();
    inner
      .sessions
      .get(&session)
      .is_some_and(|entry| entry.outbox.request_close(code, reason))
  }

  /// Asks every session to close (server shutdown).
  pub fn close_all(&self, code: u16, reason: &str) {
    let inner = self.inner.lock();
    for entry in inner.sessions.values() {
      entry.outbox.request_close(code, reason);
    }
  }

  /// Open sessions of an actor, in the order they connected.
  pub fn sessions_of(&self, actor: u64) -> Vec<u64> {
    self
      .inner
      .lock()
      .actors
      .get(&actor)
      .map(|a| a.sessions.clone())
      .unwrap_or_default()
  }

  pub fn session_count(&self) -> usize {
    self.inner.lock().sessions.len()
  }

  pub fn actor_count(&self) -> usize {
    self.inner.lock().actors.len()
  }
}

#[cfg(test)]
mod tests {
  use super::*;
  use crate::config::OverflowPolicy;

  fn outbox() -> Arc<Outbox> {
    Arc::new(Outbox::new(1 << 20, OverflowPolicy::Close))
  }

  #[test]
  fn sessions_of_one_user_share_an_actor() {
    let registry = Registry::default();
    let first = registry.attach(0, "alice", 1, outbox());
    let second = registry.attach(0, "alice", 2, outbox());
    let other = registry.attach(0, "bob", 3, outbox());
    assert!(first.created && !second.created && other.created);
    assert_eq!(first.actor, second.actor);
    assert_ne!(first.actor, other.actor);
    assert_eq!(registry.send_to_user(0, "alice", &Utf8Bytes::from("x"), None), 2);
    assert_eq!(
      registry.send_to_user(0, "alice", &Utf8Bytes::from("x"), Some(1)),
      1
    );
    assert_eq!(registry.send_to_user(1, "alice", &Utf8Bytes::from("x"), None), 0);
  }

  #[test]
  fn an_actor_without_sessions_is_evicted_once_idle() {
    let registry = Registry::default();
    let attached = registry.attach(0, "alice", 1, outbox());
    assert!(registry.evict_idle(Duration::ZERO).is_empty());
    assert_eq!(registry.detach(1), Some(attached.actor));
    assert_eq!(registry.evict_idle(Duration::from_secs(3600)), Vec::<u64>::new());
    assert_eq!(registry.evict_idle(Duration::ZERO), vec![attached.actor]);
    assert!(registry.attach(0, "alice", 2, outbox()).created);
  }
}
