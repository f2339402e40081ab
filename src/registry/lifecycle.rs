//! Actors leaving and re-entering the JS heap: hibernation when idle with open sessions,
//! eviction when idle without any, and explicit destruction.
//!
//! Hibernation keeps everything that lives here (sessions, meta, memberships): only the JS side
//! goes. The matching events are queued while the registry lock is held, so JS always hears of a
//! hibernation before the wake-up that follows it, and of a wake-up before the event that
//! caused it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::Registry;
use crate::dispatch::Dispatcher;
use crate::outbox::Outbox;
use crate::rooms::RoomChange;

/// What a sweep removed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Swept {
  /// Actors without sessions that were idle long enough and left memory.
  pub evicted: Vec<u64>,
  /// Actors that hibernated (their sessions stay open).
  pub hibernated: usize,
}

/// What destroying an actor took apart.
pub struct Destroyed {
  pub endpoint: usize,
  pub key: Arc<str>,
  /// Live memberships that ended.
  pub left: Vec<RoomChange>,
  /// Outboxes of its sessions, to close.
  pub sessions: Vec<Arc<Outbox>>,
}

impl Registry {
  /// Hibernates actors whose last event is older than `idle_for` and evicts actors that have had
  /// no session for as long. Both events are queued for JS here.
  pub fn sweep_actors(&self, idle_for: Duration, dispatcher: &Dispatcher) -> Swept {
    let mut inner = self.inner.lock();
    let now = Instant::now();
    let mut swept = Swept::default();
    for (id, actor) in inner.actors.iter_mut() {
      if actor
        .idle_since
        .is_some_and(|since| now.duration_since(since) >= idle_for)
      {
        swept.evicted.push(*id);
      } else if !actor.sessions.is_empty()
        && !actor.hibernated
        && now.duration_since(actor.last_event) >= idle_for
      {
        actor.hibernated = true;
        swept.hibernated += 1;
        dispatcher.push_hibernate(*id);
      }
    }
    for id in &swept.evicted {
      if let Some(actor) = inner.actors.remove(id) {
        inner.by_key.remove(&(actor.endpoint, actor.key));
        dispatcher.push_evict(*id);
      }
    }
    swept
  }

  /// Hibernates one actor now (it must have a session and be awake). False otherwise.
  pub fn hibernate(&self, actor: u64, dispatcher: &Dispatcher) -> bool {
    let mut inner = self.inner.lock();
    match inner.actors.get_mut(&actor) {
      Some(entry) if !entry.hibernated && !entry.sessions.is_empty() => {
        entry.hibernated = true;
        dispatcher.push_hibernate(actor);
        true
      }
      _ => false,
    }
  }

  /// The actor of `(endpoint, key)`, created without sessions when it is not in memory (a
  /// scheduled event is due) and woken when it hibernates. Returns it and whether it was created.
  pub fn ensure_actor(&self, endpoint: usize, key: &str, dispatcher: &Dispatcher) -> (u64, bool) {
    let mut inner = self.inner.lock();
    let lookup = (endpoint, Arc::<str>::from(key));
    if let Some(actor) = inner.by_key.get(&lookup).copied() {
      inner.wake(actor, dispatcher);
      return (actor, false);
    }
    inner.next_actor += 1;
    let actor = inner.next_actor;
    inner.by_key.insert(lookup.clone(), actor);
    let entry = super::ActorEntry {
      endpoint,
      key: lookup.1,
      sessions: Vec::new(),
      rooms: Vec::new(),
      idle_since: Some(Instant::now()),
      last_event: Instant::now(),
      hibernated: false,
    };
    inner.actors.insert(actor, entry);
    (actor, true)
  }

  /// JS declined a hibernation (work still in flight): the actor counts as awake and busy.
  pub fn keep_awake(&self, actor: u64) {
    if let Some(entry) = self.inner.lock().actors.get_mut(&actor) {
      entry.hibernated = false;
      entry.last_event = Instant::now();
    }
  }

  /// Takes an actor apart: it leaves its rooms, is forgotten (its next session creates a fresh
  /// actor) and its sessions are handed back to be closed.
  pub fn destroy_actor(&self, actor: u64) -> Option<Destroyed> {
    let mut inner = self.inner.lock();
    let entry = inner.actors.remove(&actor)?;
    inner.by_key.remove(&(entry.endpoint, entry.key.clone()));
    inner.generation += 1;
    let live = !entry.sessions.is_empty();
    let left = if live {
      entry
        .rooms
        .iter()
        .filter_map(|listed| inner.rooms.remove_member(&listed.name, &entry.key))
        .collect()
    } else {
      Vec::new()
    };
    let sessions = entry
      .sessions
      .iter()
      .filter_map(|id| inner.sessions.get(id).map(|s| s.outbox.clone()))
      .collect();
    Some(Destroyed {
      endpoint: entry.endpoint,
      key: entry.key,
      left,
      sessions,
    })
  }
}

#[cfg(test)]
mod tests {
  use super::super::tests::attach;
  use super::*;

  #[test]
  fn idle_actors_hibernate_and_the_next_event_wakes_them_first() {
    let registry = Registry::default();
    let dispatcher = Dispatcher::new();
    let (alice, _) = attach(&registry, "alice", 1);
    let swept = registry.sweep_actors(Duration::ZERO, &dispatcher);
    assert_eq!(
      swept,
      Swept {
        evicted: vec![],
        hibernated: 1
      }
    );
    assert_eq!(
      dispatcher.take().as_deref(),
      Some(format!("[[11,{}]]", alice.actor).as_str())
    );
    assert_eq!(registry.sweep_actors(Duration::ZERO, &dispatcher).hibernated, 0);
    assert!(registry.touch(1, &dispatcher));
    assert_eq!(
      dispatcher.take().as_deref(),
      Some(format!("[[10,{},0,\"alice\",[[1,{{}}]]]]", alice.actor).as_str())
    );
    assert!(registry.touch(1, &dispatcher));
    assert_eq!(dispatcher.take(), None);
  }

  #[test]
  fn an_actor_without_sessions_is_evicted_once_idle() {
    let registry = Registry::default();
    let dispatcher = Dispatcher::new();
    let (attached, _) = attach(&registry, "alice", 1);
    assert_eq!(registry.detach(1, &dispatcher), vec![]);
    assert_eq!(
      registry
        .sweep_actors(Duration::from_secs(3600), &dispatcher)
        .evicted,
      Vec::<u64>::new()
    );
    assert_eq!(
      registry.sweep_actors(Duration::ZERO, &dispatcher).evicted,
      vec![attached.actor]
    );
    assert!(attach(&registry, "alice", 2).0.created);
  }

  #[test]
  fn a_destroyed_actor_is_forgotten_and_its_sessions_handed_back() {
    let registry = Registry::default();
    let (alice, _) = attach(&registry, "alice", 1);
    attach(&registry, "alice", 2);
    let destroyed = registry.destroy_actor(alice.actor).expect("exists");
    assert_eq!(destroyed.sessions.len(), 2);
    assert!(registry.destroy_actor(alice.actor).is_none());
    assert!(attach(&registry, "alice", 3).0.created);
  }
}
