//! Read-only views of what the registry holds, for the inspector: actors with their sessions
//! and rooms, and rooms with their live members. Taken under the registry's lock in one pass and
//! bounded (at most [`MAX_INSPECTED`] actors and rooms), so a scrape of a big server costs a
//! bounded copy, never a walk outside the lock.

use std::sync::Arc;

use super::Registry;
use crate::config::MAX_INSPECTED;
use crate::ids::{DefinitionId, SessionId};

/// One actor as the inspector lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ActorView {
  pub definition: DefinitionId,
  pub key: Arc<str>,
  pub hibernated: bool,
  pub sessions: Vec<SessionId>,
  /// Names of the rooms it joined and has not left.
  pub rooms: Vec<Arc<str>>,
}

/// One room as the inspector lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoomView {
  pub name: Arc<str>,
  pub hibernated: bool,
  /// Live members' user ids, sorted.
  pub members: Vec<Arc<str>>,
}

/// Actors and rooms in memory (the first [`MAX_INSPECTED`] of each, sorted), and the totals.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Overview {
  pub actors: Vec<ActorView>,
  pub rooms: Vec<RoomView>,
  pub total_actors: usize,
  pub total_rooms: usize,
}

impl Registry {
  pub fn overview(&self) -> Overview {
    let inner = self.inner.lock();
    let mut actors: Vec<ActorView> = inner
      .actors
      .values()
      .take(MAX_INSPECTED)
      .map(|entry| ActorView {
        definition: entry.definition,
        key: entry.key.clone(),
        hibernated: entry.hibernated,
        sessions: entry.sessions.clone(),
        rooms: entry.rooms.iter().map(|listed| listed.name.clone()).collect(),
      })
      .collect();
    let mut rooms: Vec<RoomView> = inner
      .rooms
      .iter()
      .take(MAX_INSPECTED)
      .map(|room| {
        let mut members: Vec<Arc<str>> = room.members.keys().cloned().collect();
        members.sort();
        RoomView {
          name: room.name.clone(),
          hibernated: room.hibernated,
          members,
        }
      })
      .collect();
    let overview_totals = (inner.actors.len(), inner.rooms.count());
    drop(inner);
    actors.sort_by(|a, b| (a.definition.get(), &a.key).cmp(&(b.definition.get(), &b.key)));
    rooms.sort_by(|a, b| a.name.cmp(&b.name));
    Overview {
      actors,
      rooms,
      total_actors: overview_totals.0,
      total_rooms: overview_totals.1,
    }
  }

  /// One actor's view, if it is in memory.
  pub fn actor_view(&self, definition: DefinitionId, key: &str) -> Option<ActorView> {
    let inner = self.inner.lock();
    let actor = inner.by_key.get(&(definition, Arc::<str>::from(key)))?;
    inner.actors.get(actor).map(|entry| ActorView {
      definition: entry.definition,
      key: entry.key.clone(),
      hibernated: entry.hibernated,
      sessions: entry.sessions.clone(),
      rooms: entry.rooms.iter().map(|listed| listed.name.clone()).collect(),
    })
  }

  /// The actor a session belongs to, as `(definition, key)`.
  pub fn owner_of(&self, session: SessionId) -> Option<(DefinitionId, Arc<str>)> {
    let inner = self.inner.lock();
    let actor = inner.sessions.get(&session)?.actor;
    inner
      .actors
      .get(&actor)
      .map(|entry| (entry.definition, entry.key.clone()))
  }
}
