//! The actor entry: what the registry keeps of an actor (its sessions, its room list, its idle
//! clocks), and the one place an actor is created or woken.

use std::sync::Arc;
use std::time::Instant;

use super::Inner;
use crate::events::{Event, EventSink};
use crate::ids::{ActorId, DefinitionId, SessionId};
use crate::registry::rooms::Listed;

pub(super) struct ActorEntry {
  pub definition: DefinitionId,
  pub key: Arc<str>,
  pub sessions: Vec<SessionId>,
  /// Rooms joined and not left; live memberships while `sessions` is not empty.
  pub rooms: Vec<Listed>,
  /// Set while the actor has no session; it is evicted once idle long enough.
  pub idle_since: Option<Instant>,
  /// When the sweep found the actor's latest event (an event only sets `active`, sparing a
  /// clock read per message; hibernation may come up to one sweep period late, never early).
  /// Idle past `hibernateAfterMs` from here, it hibernates.
  pub last_event: Instant,
  /// An event reached JS for this actor since the last sweep.
  pub active: bool,
  /// True while the actor is out of the JS heap; the next event wakes it first.
  pub hibernated: bool,
}

impl Inner {
  /// The actor of `(definition, key)`: found (and woken if it hibernates), or created without
  /// sessions. Returns it and whether it was created.
  pub(super) fn actor_for(
    &mut self,
    definition: DefinitionId,
    key: &str,
    events: &EventSink,
  ) -> (ActorId, bool) {
    let lookup = (definition, Arc::<str>::from(key));
    if let Some(actor) = self.by_key.get(&lookup).copied() {
      self.wake(actor, events);
      return (actor, false);
    }
    self.next_actor += 1;
    let actor = ActorId(self.next_actor);
    let now = Instant::now();
    let entry = ActorEntry {
      definition,
      key: lookup.1.clone(),
      sessions: Vec::new(),
      rooms: Vec::new(),
      idle_since: Some(now),
      last_event: now,
      active: false,
      hibernated: false,
    };
    self.by_key.insert(lookup, actor);
    self.actors.insert(actor, entry);
    (actor, true)
  }

  /// Notes activity of an actor; when it hibernates, JS hears `Wake` (its sessions and their
  /// meta) before anything else of it, and it counts as awake again.
  pub(super) fn wake(&mut self, actor: ActorId, events: &EventSink) {
    let Some(entry) = self.actors.get_mut(&actor) else {
      return;
    };
    entry.active = true;
    if !entry.hibernated {
      return;
    }
    entry.hibernated = false;
    let sessions: Vec<(SessionId, Arc<str>)> = entry
      .sessions
      .iter()
      .filter_map(|id| self.sessions.get(id).map(|s| (*id, s.meta.clone())))
      .collect();
    events.push(Event::Wake {
      actor,
      definition: entry.definition,
      key: &entry.key,
      sessions: &sessions,
    });
  }
}
