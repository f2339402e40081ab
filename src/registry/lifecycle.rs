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
use crate::events::Event;
use crate::ids::{ActorId, DefinitionId};
use crate::transport::outbox::Outbox;

/// What destroying an actor took apart.
pub struct Destroyed {
  pub definition: DefinitionId,
  pub key: Arc<str>,
  /// Outboxes of its sessions, to close.
  pub sessions: Vec<Arc<Outbox>>,
}

impl Registry {
  /// Hibernates actors whose last event is older than `idle_for`, evicts actors that have had
  /// no session for as long, and does the same for rooms. JS hears of each. Returns the actors
  /// evicted.
  pub fn sweep(&self, idle_for: Duration) -> Vec<(DefinitionId, Arc<str>)> {
    let mut inner = self.inner.lock();
    let now = Instant::now();
    let mut evicted = Vec::new();
    for (id, actor) in inner.actors.iter_mut() {
      if std::mem::take(&mut actor.active) {
        actor.last_event = now;
      }
      if actor
        .idle_since
        .is_some_and(|since| now.duration_since(since) >= idle_for)
      {
        evicted.push(*id);
      } else if !actor.sessions.is_empty()
        && !actor.hibernated
        && now.duration_since(actor.last_event) >= idle_for
      {
        actor.hibernated = true;
        self.events.push(Event::Hibernate { actor: *id });
      }
    }
    let mut gone = Vec::with_capacity(evicted.len());
    for id in evicted {
      if let Some(actor) = inner.actors.remove(&id) {
        inner.by_key.remove(&(actor.definition, actor.key.clone()));
        self.events.push(Event::Evict { actor: id });
        gone.push((actor.definition, actor.key));
      }
    }
    let changes = inner.rooms.sweep(idle_for);
    super::announce(&self.events, &inner.rooms, changes);
    gone
  }

  /// Evicts one actor now if it has no session (as the sweep does once it idled long enough);
  /// JS hears of it. False when it has sessions or is not in memory.
  pub fn evict(&self, actor: ActorId) -> bool {
    let mut inner = self.inner.lock();
    if !inner
      .actors
      .get(&actor)
      .is_some_and(|entry| entry.sessions.is_empty())
    {
      return false;
    }
    if let Some(entry) = inner.actors.remove(&actor) {
      inner.by_key.remove(&(entry.definition, entry.key.clone()));
      self.events.push(Event::Evict { actor });
    }
    true
  }

  /// Hibernates one actor now (it must have a session and be awake). False otherwise.
  pub fn hibernate(&self, actor: ActorId) -> bool {
    let mut inner = self.inner.lock();
    match inner.actors.get_mut(&actor) {
      Some(entry) if !entry.hibernated && !entry.sessions.is_empty() => {
        entry.hibernated = true;
        self.events.push(Event::Hibernate { actor });
        true
      }
      _ => false,
    }
  }

  /// The actor of `(definition, key)`, created without sessions when it is not in memory (a
  /// scheduled event is due) and woken when it hibernates. Returns it and whether it was created.
  pub fn ensure_actor(&self, definition: DefinitionId, key: &str) -> (ActorId, bool) {
    self.inner.lock().actor_for(definition, key, &self.events)
  }

  /// JS declined a hibernation (work still in flight): the actor counts as awake and busy.
  pub fn keep_awake(&self, actor: ActorId) {
    if let Some(entry) = self.inner.lock().actors.get_mut(&actor) {
      entry.hibernated = false;
      entry.last_event = Instant::now();
    }
  }

  /// Takes an actor apart: it leaves its rooms, is forgotten (its next session creates a fresh
  /// actor), JS hears the leaves then `Destroyed`, and its sessions are handed back to be closed.
  pub fn destroy_actor(&self, actor: ActorId) -> Option<Destroyed> {
    let mut inner = self.inner.lock();
    let entry = inner.actors.remove(&actor)?;
    inner.by_key.remove(&(entry.definition, entry.key.clone()));
    inner.membership_version += 1;
    if !entry.sessions.is_empty() {
      for listed in &entry.rooms {
        if let Some(change) = inner.rooms.remove_member(&listed.name, &entry.key) {
          inner.rooms.announce(&self.events, change);
        }
      }
    }
    self.events.push(Event::Destroyed { actor });
    let sessions = entry
      .sessions
      .iter()
      .filter_map(|id| inner.sessions.get(id).map(|s| s.outbox.clone()))
      .collect();
    Some(Destroyed {
      definition: entry.definition,
      key: entry.key,
      sessions,
    })
  }
}

#[cfg(test)]
mod tests {
  use super::super::tests::{add, registry};
  use super::*;
  use crate::error::SessionEnd;
  use crate::ids::SessionId;

  #[test]
  fn idle_actors_hibernate_and_the_next_event_wakes_them_first() {
    let (registry, events) = registry();
    let alice = add(&registry, "alice", 1);
    registry.sweep(Duration::ZERO);
    assert_eq!(
      events.take().as_deref(),
      Some(format!("[[11,{}]]", alice.actor).as_str())
    );
    registry.sweep(Duration::ZERO);
    assert_eq!(events.take(), None);
    let message = Event::Message {
      session: SessionId(1),
      kind_json: "\"x\"",
      data_json: None,
    };
    assert!(registry.deliver(SessionId(1), message));
    assert_eq!(
      events.take().as_deref(),
      Some(format!("[[10,{},0,\"alice\",[[1,{{}}]]],[2,1,\"x\",null]]", alice.actor).as_str())
    );
    assert!(!registry.deliver(SessionId(7), message));
  }

  #[test]
  fn an_actor_without_sessions_is_evicted_once_idle() {
    let (registry, events) = registry();
    let added = add(&registry, "alice", 1);
    assert!(registry.end(SessionId(1), 0, &SessionEnd::dropped()));
    registry.sweep(Duration::from_secs(3600));
    assert_eq!(events.take().as_deref(), Some(r#"[[4,1,1006,""]]"#));
    registry.sweep(Duration::ZERO);
    assert_eq!(
      events.take().as_deref(),
      Some(format!("[[5,{}]]", added.actor).as_str())
    );
    assert!(add(&registry, "alice", 2).created);
  }

  #[test]
  fn a_destroyed_actor_is_forgotten_and_its_sessions_handed_back() {
    let (registry, _) = registry();
    let alice = add(&registry, "alice", 1);
    add(&registry, "alice", 2);
    let destroyed = registry.destroy_actor(alice.actor);
    assert_eq!(destroyed.map(|d| d.sessions.len()), Some(2));
    assert!(registry.destroy_actor(alice.actor).is_none());
    assert!(add(&registry, "alice", 3).created);
  }
}
