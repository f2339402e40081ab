//! The single owner of sessions, actors and rooms, and the fan-out to them.
//!
//! An actor is keyed by `(endpoint, userId)` and holds every open session of that user (tabs,
//! devices). A session belongs to exactly one actor. An actor's room list says which rooms it
//! joined; while it has a session it is a live member of each (see [`crate::rooms`]). JS refers
//! to all of them by number and mirrors only what user code needs (state, meta, hooks).
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
use crate::rooms::{Listed, MemberInfo, RoomChange, Rooms};

struct SessionEntry {
  actor: u64,
  outbox: Arc<Outbox>,
}

struct ActorEntry {
  endpoint: usize,
  key: Arc<str>,
  sessions: Vec<u64>,
  /// Rooms joined and not left; live memberships while `sessions` is not empty.
  rooms: Vec<Listed>,
  /// Set when the last session left; the actor is evicted once idle long enough.
  idle_since: Option<Instant>,
}

#[derive(Default)]
struct Inner {
  sessions: HashMap<u64, SessionEntry>,
  actors: HashMap<u64, ActorEntry>,
  by_key: HashMap<(usize, Arc<str>), u64>,
  next_actor: u64,
  rooms: Rooms,
}

impl Inner {
  /// Queues `frame` for every session of `actor` but `except`; returns how many took it.
  fn deliver_to_actor(&self, actor: u64, frame: &Utf8Bytes, except: Option<u64>) -> u32 {
    let Some(actor) = self.actors.get(&actor) else {
      return 0;
    };
    let mut reached = 0;
    for session in actor.sessions.iter().filter(|id| Some(**id) != except) {
      if let Some(entry) = self.sessions.get(session) {
        if entry.outbox.push(frame.clone()) == Pushed::Queued {
          reached += 1;
        }
      }
    }
    reached
  }
}

/// Why a room operation was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RoomError {
  /// The actor left memory (its sessions closed and it was evicted).
  NoSuchActor,
}

/// What `join_room` did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Joined {
  /// False when the room was already on the actor's list (a no-op).
  pub listed: bool,
  /// The live membership it started, if the actor has a session.
  pub change: Option<RoomChange>,
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
  /// Adds a session to the actor of `(endpoint, key)`, creating the actor if needed. When it is
  /// the actor's only session, the actor re-joins its listed rooms (the returned changes).
  pub fn attach(
    &self,
    endpoint: usize,
    key: &str,
    session: u64,
    outbox: Arc<Outbox>,
  ) -> (Attached, Vec<RoomChange>) {
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
          rooms: Vec::new(),
          idle_since: None,
        };
        inner.actors.insert(actor, entry);
        (actor, true)
      }
    };
    let mut rejoin = Vec::new();
    if let Some(entry) = inner.actors.get_mut(&actor) {
      entry.sessions.push(session);
      entry.idle_since = None;
      if entry.sessions.len() == 1 {
        rejoin = entry.rooms.clone();
      }
    }
    inner.sessions.insert(session, SessionEntry { actor, outbox });
    let user: Arc<str> = Arc::from(key);
    let changes = rejoin
      .iter()
      .filter_map(|listed| inner.rooms.add_member(listed, &user, actor))
      .collect();
    (Attached { actor, created }, changes)
  }

  /// Removes a session; its actor stays (idle) until evicted. When it was the actor's last
  /// session, the actor stops being a live member of its rooms (the returned changes) but keeps
  /// its room list.
  pub fn detach(&self, session: u64) -> Vec<RoomChange> {
    let mut inner = self.inner.lock();
    let Some(entry) = inner.sessions.remove(&session) else {
      return Vec::new();
    };
    let mut leave = Vec::new();
    let mut user = None;
    if let Some(actor) = inner.actors.get_mut(&entry.actor) {
      actor.sessions.retain(|id| *id != session);
      if actor.sessions.is_empty() {
        actor.idle_since = Some(Instant::now());
        leave = actor
          .rooms
          .iter()
          .map(|listed| listed.name.clone())
          .collect::<Vec<_>>();
        user = Some(actor.key.clone());
      }
    }
    let Some(user) = user else {
      return Vec::new();
    };
    leave
      .iter()
      .filter_map(|name| inner.rooms.remove_member(name, &user))
      .collect()
  }

  /// Adds a room to the actor's list and, when it has a session, makes it a live member.
  pub fn join_room(&self, actor: u64, listed: Listed) -> Result<Joined, RoomError> {
    let mut inner = self.inner.lock();
    let entry = inner.actors.get_mut(&actor).ok_or(RoomError::NoSuchActor)?;
    if entry.rooms.iter().any(|room| room.name == listed.name) {
      return Ok(Joined {
        listed: false,
        change: None,
      });
    }
    entry.rooms.push(listed.clone());
    let live = !entry.sessions.is_empty();
    let user = entry.key.clone();
    let change = if live {
      inner.rooms.add_member(&listed, &user, actor)
    } else {
      None
    };
    Ok(Joined { listed: true, change })
  }

  /// Removes a room from the actor's list and ends its live membership. `Ok(None)` when the
  /// room was not on the list or the actor was not live.
  pub fn leave_room(&self, actor: u64, name: &str) -> Result<(bool, Option<RoomChange>), RoomError> {
    let mut inner = self.inner.lock();
    let entry = inner.actors.get_mut(&actor).ok_or(RoomError::NoSuchActor)?;
    let before = entry.rooms.len();
    entry.rooms.retain(|room| &*room.name != name);
    if entry.rooms.len() == before {
      return Ok((false, None));
    }
    let user = entry.key.clone();
    Ok((true, inner.rooms.remove_member(name, &user)))
  }

  /// Names of the rooms on an actor's list, in join order.
  pub fn rooms_of(&self, actor: u64) -> Result<Vec<Arc<str>>, RoomError> {
    let inner = self.inner.lock();
    let entry = inner.actors.get(&actor).ok_or(RoomError::NoSuchActor)?;
    Ok(entry.rooms.iter().map(|room| room.name.clone()).collect())
  }

  /// The room called `name`, created when missing: its id and whether it was created.
  pub fn open_room(&self, name: &str, handler: usize) -> (u64, bool) {
    let mut inner = self.inner.lock();
    let (room, created) = inner.rooms.open(name, handler);
    (room.id, created)
  }

  pub fn room_members(&self, name: &str) -> Vec<MemberInfo> {
    self.inner.lock().rooms.members(name)
  }

  /// Replaces a live member's metadata (also on its actor's room list, for re-joins).
  pub fn set_member_metadata(&self, name: &str, user: &str, metadata: &str) -> bool {
    let mut inner = self.inner.lock();
    let metadata: Arc<str> = Arc::from(metadata);
    let Some(actor) = inner
      .rooms
      .get(name)
      .and_then(|room| room.members.get(user))
      .map(|m| m.actor)
    else {
      return false;
    };
    if let Some(listed) = inner
      .actors
      .get_mut(&actor)
      .and_then(|a| a.rooms.iter_mut().find(|r| &*r.name == name))
    {
      listed.metadata = metadata.clone();
    }
    inner.rooms.set_member_metadata(name, user, metadata)
  }

  /// Sends a frame to every session of every live member of the room but `except`; returns how
  /// many sessions it was queued for. The frame is shared, not copied.
  pub fn send_to_room(&self, name: &str, frame: &Utf8Bytes, except: Option<u64>) -> u32 {
    let inner = self.inner.lock();
    let Some(room) = inner.rooms.get(name) else {
      return 0;
    };
    room
      .members
      .values()
      .map(|member| inner.deliver_to_actor(member.actor, frame, except))
      .sum()
  }

  /// Removes rooms without members idle for at least `idle_for`.
  pub fn evict_idle_rooms(&self, idle_for: Duration) -> Vec<RoomChange> {
    self.inner.lock().rooms.evict_idle(idle_for)
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
    match inner.by_key.get(&(endpoint, Arc::<str>::from(key))) {
      Some(actor) => inner.deliver_to_actor(*actor, frame, except),
      None => 0,
    }
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

  pub fn room_count(&self) -> usize {
    self.inner.lock().rooms.count()
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
    let (first, _) = registry.attach(0, "alice", 1, outbox());
    let (second, _) = registry.attach(0, "alice", 2, outbox());
    let (other, _) = registry.attach(0, "bob", 3, outbox());
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
    let (attached, _) = registry.attach(0, "alice", 1, outbox());
    assert!(registry.evict_idle(Duration::ZERO).is_empty());
    assert_eq!(registry.detach(1), vec![]);
    assert_eq!(registry.evict_idle(Duration::from_secs(3600)), Vec::<u64>::new());
    assert_eq!(registry.evict_idle(Duration::ZERO), vec![attached.actor]);
    assert!(registry.attach(0, "alice", 2, outbox()).0.created);
  }

  fn listed(name: &str) -> Listed {
    Listed {
      name: Arc::from(name),
      handler: 0,
      metadata: Arc::from("{}"),
    }
  }

  #[test]
  fn a_user_is_a_live_member_while_it_has_a_session_and_keeps_its_room_list() {
    let registry = Registry::default();
    let (alice, _) = registry.attach(0, "alice", 1, outbox());
    registry.attach(0, "alice", 2, outbox());
    let (bob, _) = registry.attach(0, "bob", 3, outbox());
    let joined = registry.join_room(alice.actor, listed("chat"));
    assert!(matches!(
      joined,
      Ok(Joined {
        listed: true,
        change: Some(RoomChange::Joined { created: true, .. })
      })
    ));
    assert_eq!(
      registry.join_room(alice.actor, listed("chat")),
      Ok(Joined {
        listed: false,
        change: None
      })
    );
    assert!(registry
      .join_room(bob.actor, listed("chat"))
      .is_ok_and(|j| j.change.is_some()));
    let frame = Utf8Bytes::from("x");
    assert_eq!(registry.send_to_room("chat", &frame, None), 3);
    assert_eq!(registry.send_to_room("chat", &frame, Some(3)), 2);
    assert_eq!(registry.room_members("chat").len(), 2);
    assert_eq!(registry.detach(1), vec![]);
    let left = registry.detach(2);
    assert!(matches!(left.as_slice(), [RoomChange::Left { .. }]));
    assert_eq!(registry.send_to_room("chat", &frame, None), 1);
    let (_, rejoined) = registry.attach(0, "alice", 4, outbox());
    assert!(matches!(
      rejoined.as_slice(),
      [RoomChange::Joined { created: false, .. }]
    ));
    assert_eq!(registry.send_to_room("chat", &frame, None), 2);
    assert!(registry
      .leave_room(alice.actor, "chat")
      .is_ok_and(|(listed, change)| listed && change.is_some()));
    assert_eq!(registry.rooms_of(alice.actor), Ok(vec![]));
  }
}
