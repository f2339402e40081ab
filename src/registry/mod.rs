//! The single owner of sessions, actors and rooms, and the fan-out to them.
//!
//! An actor is keyed by `(endpoint, userId)` and holds every open session of that user (tabs,
//! devices). A session belongs to exactly one actor and keeps its meta (the attachment), so an
//! actor can leave the JS heap (hibernate) while its sockets stay open here. An actor's room
//! list says which rooms it joined; while it has a session it is a live member of each (see
//! [`crate::rooms`]). JS refers to all of them by number and mirrors only what user code needs.
//!
//! - this file: the maps, sessions coming and going, fan-out to a [`Target`];
//! - [`membership`]: joining and leaving rooms, room queries;
//! - [`lifecycle`]: hibernation, waking, eviction and destruction of actors;
//! - [`resume`]: sessions whose socket dropped, kept for their client to resume.
//!
//! Locking: one mutex over every map, held for updates and for pushing shared frames into
//! outboxes (which never wait). Lock order: output gate, registry, dispatcher queue, outbox.
//! Events whose order matters relative to a state change here (wake, hibernate) are queued for
//! JS while the lock is held. The lock is never held across an `.await` or a call into JS.

mod lifecycle;
mod membership;
mod resume;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use parking_lot::Mutex;
use tokio_tungstenite::tungstenite::Utf8Bytes;

use crate::dispatch::Dispatcher;
use crate::outbox::{Outbox, Pushed};
use crate::rooms::{Listed, RoomChange, Rooms};

pub use lifecycle::{Destroyed, Swept};
pub use membership::{Joined, RoomError};
pub use resume::{Resumed, Suspended};

struct SessionEntry {
  actor: u64,
  outbox: Arc<Outbox>,
  /// The session's meta as JSON: restored into JS when its actor wakes.
  meta: Arc<str>,
  /// The secret a client presents to resume this session; none when it cannot be resumed.
  token: Option<Arc<str>>,
  /// Set while the session has no socket and waits for its client to resume it.
  detached: Option<resume::Detached>,
}

struct ActorEntry {
  endpoint: usize,
  key: Arc<str>,
  sessions: Vec<u64>,
  /// Rooms joined and not left; live memberships while `sessions` is not empty.
  rooms: Vec<Listed>,
  /// Set when the last session left; the actor is evicted once idle long enough.
  idle_since: Option<Instant>,
  /// Last event that reached JS for this actor; idle past `hibernateAfterMs`, it hibernates.
  last_event: Instant,
  /// True while the actor is out of the JS heap; the next event wakes it first.
  hibernated: bool,
}

#[derive(Default)]
struct Inner {
  sessions: HashMap<u64, SessionEntry>,
  actors: HashMap<u64, ActorEntry>,
  by_key: HashMap<(usize, Arc<str>), u64>,
  /// Resume tokens of the sessions that have one.
  by_token: HashMap<Arc<str>, u64>,
  /// Sessions waiting for a resume (they count against `maxSessions` like open sockets).
  detached: usize,
  next_actor: u64,
  rooms: Rooms,
  /// Bumped whenever a session or a live membership comes or goes; rooms' cached fan-out
  /// lists built at an older generation are rebuilt before use.
  generation: u64,
}

/// Who a frame goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target<'a> {
  Session(u64),
  /// Every session of the user `key` at `endpoint`, but `except`.
  User {
    endpoint: usize,
    key: &'a str,
    except: Option<u64>,
  },
  /// Every session of every live member of the room, but `except`.
  Room {
    name: &'a str,
    except: Option<u64>,
  },
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

impl Inner {
  /// Calls `f` for every session of `actor` but `except`; counts the calls that returned true.
  fn visit_actor(&self, actor: u64, except: Option<u64>, f: &mut impl FnMut(&Arc<Outbox>) -> bool) -> u32 {
    let Some(actor) = self.actors.get(&actor) else {
      return 0;
    };
    let mut reached = 0;
    for session in actor.sessions.iter().filter(|id| Some(**id) != except) {
      if let Some(entry) = self.sessions.get(session) {
        if f(&entry.outbox) {
          reached += 1;
        }
      }
    }
    reached
  }

  /// Queues the wake-up of a hibernated actor (its sessions and their meta) and marks it awake.
  fn wake(&mut self, actor: u64, dispatcher: &Dispatcher) {
    let Some(entry) = self.actors.get_mut(&actor) else {
      return;
    };
    entry.last_event = Instant::now();
    if !entry.hibernated {
      return;
    }
    entry.hibernated = false;
    let sessions: Vec<(u64, Arc<str>)> = entry
      .sessions
      .iter()
      .filter_map(|id| self.sessions.get(id).map(|s| (*id, s.meta.clone())))
      .collect();
    dispatcher.push_wake(actor, entry.endpoint, &entry.key, &sessions);
  }

  /// Removes a session (see [`Registry::detach`]).
  fn detach(&mut self, session: u64, dispatcher: &Dispatcher) -> Vec<RoomChange> {
    let Some(entry) = self.sessions.remove(&session) else {
      return Vec::new();
    };
    if let Some(token) = &entry.token {
      self.by_token.remove(token);
    }
    if entry.detached.is_some() {
      self.detached -= 1;
    }
    self.generation += 1;
    self.wake(entry.actor, dispatcher);
    let Some(actor) = self.actors.get_mut(&entry.actor) else {
      return Vec::new();
    };
    actor.sessions.retain(|id| *id != session);
    if !actor.sessions.is_empty() {
      return Vec::new();
    }
    actor.idle_since = Some(Instant::now());
    let leave: Vec<Arc<str>> = actor.rooms.iter().map(|listed| listed.name.clone()).collect();
    let user = actor.key.clone();
    leave
      .iter()
      .filter_map(|name| self.rooms.remove_member(name, &user))
      .collect()
  }
}

/// A session to add to the registry.
pub struct NewSession<'a> {
  pub id: u64,
  pub endpoint: usize,
  pub key: &'a str,
  pub outbox: Arc<Outbox>,
  pub meta: Arc<str>,
  pub token: Option<Arc<str>>,
}

impl Registry {
  /// Adds a session to the actor of `(endpoint, key)`, creating the actor if needed (and waking
  /// it if it hibernates). When it is the actor's only session, the actor re-joins its listed
  /// rooms: the returned changes, which JS must hear before the session's open event.
  pub fn attach(&self, new: NewSession<'_>, dispatcher: &Dispatcher) -> (Attached, Vec<RoomChange>) {
    let NewSession {
      id: session,
      endpoint,
      key,
      outbox,
      meta,
      token,
    } = new;
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
          last_event: Instant::now(),
          hibernated: false,
        };
        inner.actors.insert(actor, entry);
        (actor, true)
      }
    };
    inner.wake(actor, dispatcher);
    let mut rejoin = Vec::new();
    if let Some(entry) = inner.actors.get_mut(&actor) {
      entry.sessions.push(session);
      entry.idle_since = None;
      if entry.sessions.len() == 1 {
        rejoin = entry.rooms.clone();
      }
    }
    if let Some(token) = &token {
      inner.by_token.insert(token.clone(), session);
    }
    let entry = SessionEntry {
      actor,
      outbox,
      meta,
      token,
      detached: None,
    };
    inner.sessions.insert(session, entry);
    inner.generation += 1;
    let user: Arc<str> = Arc::from(key);
    let changes = rejoin
      .iter()
      .filter_map(|listed| inner.rooms.add_member(listed, &user, actor))
      .collect();
    (Attached { actor, created }, changes)
  }

  /// Notes an event of a session for JS, waking its actor first if it hibernates. False when
  /// the session is gone (the event must not be sent).
  pub fn touch(&self, session: u64, dispatcher: &Dispatcher) -> bool {
    let mut inner = self.inner.lock();
    let Some(actor) = inner.sessions.get(&session).map(|s| s.actor) else {
      return false;
    };
    inner.wake(actor, dispatcher);
    true
  }

  /// Removes a session (waking its actor, so JS can run `onDisconnect`); the actor stays (idle)
  /// until evicted. When it was the actor's last session, the actor stops being a live member
  /// of its rooms (the returned changes) but keeps its room list.
  pub fn detach(&self, session: u64, dispatcher: &Dispatcher) -> Vec<RoomChange> {
    self.inner.lock().detach(session, dispatcher)
  }

  /// Calls `f` with the outbox of every session `target` designates; returns how many calls
  /// returned true.
  pub fn visit(&self, target: Target<'_>, mut f: impl FnMut(&Arc<Outbox>) -> bool) -> u32 {
    let mut inner = self.inner.lock();
    match target {
      Target::Session(session) => inner
        .sessions
        .get(&session)
        .map_or(0, |entry| u32::from(f(&entry.outbox))),
      Target::User {
        endpoint,
        key,
        except,
      } => match inner.by_key.get(&(endpoint, Arc::<str>::from(key))) {
        Some(actor) => inner.visit_actor(*actor, except, &mut f),
        None => 0,
      },
      Target::Room { name, except } => {
        let Inner {
          rooms,
          actors,
          sessions,
          generation,
          ..
        } = &mut *inner;
        let Some(room) = rooms.get_mut(name) else {
          return 0;
        };
        if room.fanout.as_ref().is_none_or(|(built, _)| built != generation) {
          let mut list = Vec::new();
          for member in room.members.values() {
            for session in actors
              .get(&member.actor)
              .map(|a| a.sessions.as_slice())
              .unwrap_or(&[])
            {
              if let Some(entry) = sessions.get(session) {
                list.push((*session, entry.outbox.clone()));
              }
            }
          }
          room.fanout = Some((*generation, list));
        }
        let list = room
          .fanout
          .as_ref()
          .map(|(_, list)| list.as_slice())
          .unwrap_or(&[]);
        list
          .iter()
          .filter(|(session, _)| Some(*session) != except)
          .map(|(_, outbox)| u32::from(f(outbox)))
          .sum()
      }
    }
  }

  /// Queues frame number `seq` for every session of `target`; returns how many sessions took
  /// it. The frame is shared, not copied.
  pub fn send(&self, target: Target<'_>, seq: u64, frame: &Utf8Bytes) -> u32 {
    self.visit(target, |outbox| {
      outbox.push_numbered(seq, frame.clone()) == Pushed::Queued
    })
  }

  /// The outboxes of `target` that still accept frames (to hold them behind the output gate).
  pub fn recipients(&self, target: Target<'_>, into: &mut Vec<Arc<Outbox>>) -> u32 {
    self.visit(target, |outbox| {
      let open = !outbox.is_closing();
      if open {
        into.push(outbox.clone());
      }
      open
    })
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

  /// The actor of `(endpoint, key)`, if it is in memory.
  pub fn actor_of(&self, endpoint: usize, key: &str) -> Option<u64> {
    self
      .inner
      .lock()
      .by_key
      .get(&(endpoint, Arc::<str>::from(key)))
      .copied()
  }

  /// The endpoint and key of an actor.
  pub fn identity(&self, actor: u64) -> Option<(usize, Arc<str>)> {
    self
      .inner
      .lock()
      .actors
      .get(&actor)
      .map(|a| (a.endpoint, a.key.clone()))
  }

  pub fn session_count(&self) -> usize {
    self.inner.lock().sessions.len()
  }

  pub fn actor_count(&self) -> usize {
    self.inner.lock().actors.len()
  }

  pub fn hibernated_count(&self) -> usize {
    self.inner.lock().actors.values().filter(|a| a.hibernated).count()
  }

  pub fn room_count(&self) -> usize {
    self.inner.lock().rooms.count()
  }
}

#[cfg(test)]
mod tests {
  use super::*;
  use crate::config::OverflowPolicy;

  pub(super) fn outbox() -> Arc<Outbox> {
    Arc::new(Outbox::new(1 << 20, OverflowPolicy::Close))
  }

  pub(super) fn attach(registry: &Registry, key: &str, session: u64) -> (Attached, Vec<RoomChange>) {
    let new = NewSession {
      id: session,
      endpoint: 0,
      key,
      outbox: outbox(),
      meta: Arc::from("{}"),
      token: None,
    };
    registry.attach(new, &Dispatcher::new())
  }

  #[test]
  fn sessions_of_one_user_share_an_actor() {
    let registry = Registry::default();
    let (first, _) = attach(&registry, "alice", 1);
    let (second, _) = attach(&registry, "alice", 2);
    let (other, _) = attach(&registry, "bob", 3);
    assert!(first.created && !second.created && other.created);
    assert_eq!(first.actor, second.actor);
    assert_ne!(first.actor, other.actor);
    let frame = Utf8Bytes::from("x");
    assert_eq!(
      registry.send(
        Target::User {
          endpoint: 0,
          key: "alice",
          except: None
        },
        0,
        &frame
      ),
      2
    );
    assert_eq!(
      registry.send(
        Target::User {
          endpoint: 0,
          key: "alice",
          except: Some(1)
        },
        0,
        &frame
      ),
      1
    );
    assert_eq!(
      registry.send(
        Target::User {
          endpoint: 1,
          key: "alice",
          except: None
        },
        0,
        &frame
      ),
      0
    );
    assert_eq!(registry.send(Target::Session(3), 0, &frame), 1);
    assert_eq!(registry.send(Target::Session(9), 0, &frame), 0);
  }
}
