//! The single owner of sessions, actors and rooms, and the fan-out to them.
//!
//! An actor is keyed by `(definition, userId)` and holds every open session of that user (tabs,
//! devices). A session belongs to exactly one actor and keeps its meta (the attachment), so an
//! actor can leave the JS heap (hibernate) while its sockets stay open here. An actor's room
//! list says which rooms it joined; while it has a session it is a live member of each (see
//! [`rooms`]). JS refers to all of them by number and mirrors only what user code needs.
//!
//! Every change JS must hear of (a wake-up, a hibernation, a room join or leave, a close) is
//! pushed into the [`EventSink`] here, under the lock, in the order it happened: callers never
//! forward events themselves.
//!
//! - this file: the maps, sessions coming and going, fan-out to a [`Target`];
//! - [`actors`]: the actor entry and its one constructor;
//! - [`membership`]: joining and leaving rooms, room queries;
//! - [`inspect`]: read-only views of actors, sessions and rooms for the inspector;
//! - [`lifecycle`]: hibernation, waking, eviction and destruction of actors;
//! - [`resume`]: sessions whose socket dropped, kept for their client to resume;
//! - [`rooms`]: room instances and live membership (the index this module locks).
//!
//! Locking: one mutex over every map, held for updates and for pushing shared frames into
//! outboxes (which never wait). Lock order: output gate, registry, event sink, outbox. The lock
//! is never held across an `.await` or a call into JS.

mod actors;
mod inspect;
mod lifecycle;
mod membership;
mod resume;
pub mod rooms;

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;

use crate::error::SessionEnd;
use crate::events::{Event, EventSink};
use crate::ids::{ActorId, DefinitionId, IdMap, SessionId};
use crate::transport::outbox::{Outbox, Pushed, WireFrame};
use actors::ActorEntry;
use rooms::{RoomChange, Rooms};

pub use inspect::{ActorView, Overview, RoomView};
pub use lifecycle::Destroyed;
pub use membership::Joined;
pub use resume::{ResumeError, Resumed, Suspended};

struct SessionEntry {
  actor: ActorId,
  outbox: Arc<Outbox>,
  /// The session's meta as JSON: restored into JS when its actor wakes.
  meta: Arc<str>,
  /// The secret a client presents to resume this session; none when it cannot be resumed.
  token: Option<Arc<str>>,
  /// Set while the session has no socket and waits for its client to resume it.
  waiting: Option<resume::Waiting>,
}

#[derive(Default)]
struct Inner {
  sessions: IdMap<SessionId, SessionEntry>,
  actors: IdMap<ActorId, ActorEntry>,
  by_key: HashMap<(DefinitionId, Arc<str>), ActorId>,
  /// Resume tokens of the sessions that have one.
  by_token: HashMap<Arc<str>, SessionId>,
  /// Sessions waiting for a resume (they count against `maxSessions` like open sockets).
  waiting: usize,
  next_actor: u64,
  rooms: Rooms,
  /// Bumped whenever a session or a live membership comes or goes; rooms' cached fan-out
  /// lists built at an older version are rebuilt before use.
  membership_version: u64,
}

/// Who a frame goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target<'a> {
  Session(SessionId),
  /// Every session of the user `key` of `definition`, but `except`.
  User {
    definition: DefinitionId,
    key: &'a str,
    except: Option<SessionId>,
  },
  /// Every session of every live member of the room, but `except`.
  Room {
    name: &'a str,
    except: Option<SessionId>,
  },
}

/// Where an added session landed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Added {
  pub actor: ActorId,
  /// True when the session created the actor.
  pub created: bool,
}

/// A session to add to the registry.
pub struct NewSession<'a> {
  pub id: SessionId,
  pub definition: DefinitionId,
  pub key: &'a str,
  pub outbox: Arc<Outbox>,
  pub meta: Arc<str>,
  pub token: Option<Arc<str>>,
}

pub struct Registry {
  inner: Mutex<Inner>,
  events: Arc<EventSink>,
  /// Signalled when a room enters or leaves memory (shared with the room index).
  rooms_changed: Arc<tokio::sync::Notify>,
}

impl Inner {
  /// Calls `f` for every session of `actor` but `except`; counts the calls that returned true.
  fn visit_actor(
    &self,
    actor: ActorId,
    except: Option<SessionId>,
    f: &mut impl FnMut(&Arc<Outbox>) -> bool,
  ) -> u32 {
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

  /// Forgets a session: JS hears `Close`, then, when it was its actor's last session, the
  /// actor's room leaves (it keeps its room list). Its actor is woken first, so JS can run
  /// `onDisconnect`; the actor stays (idle) until evicted.
  fn remove_session(&mut self, session: SessionId, end: &SessionEnd, events: &EventSink) {
    // Woken while the session is still listed: JS gets it back with the others, then its end.
    if let Some(actor) = self.sessions.get(&session).map(|entry| entry.actor) {
      self.wake(actor, events);
    }
    let Some(entry) = self.sessions.remove(&session) else {
      return;
    };
    if let Some(token) = &entry.token {
      self.by_token.remove(token);
    }
    if entry.waiting.is_some() {
      self.waiting -= 1;
    }
    self.membership_version += 1;
    events.push(Event::Close {
      session,
      code: end.code,
      reason: &end.reason,
    });
    let Some(actor) = self.actors.get_mut(&entry.actor) else {
      return;
    };
    actor.sessions.retain(|id| *id != session);
    if !actor.sessions.is_empty() {
      return;
    }
    actor.idle_since = Some(std::time::Instant::now());
    let user = actor.key.clone();
    let leave: Vec<Arc<str>> = actor.rooms.iter().map(|listed| listed.name.clone()).collect();
    for name in leave {
      if let Some(change) = self.rooms.remove_member(&name, &user) {
        self.rooms.announce(events, change);
      }
    }
  }
}

fn announce(events: &EventSink, rooms: &Rooms, changes: Vec<RoomChange>) {
  rooms.announce_all(events, changes);
}

impl Registry {
  pub fn new(events: Arc<EventSink>) -> Self {
    let inner = Inner::default();
    let rooms_changed = inner.rooms.changed().clone();
    Self {
      inner: Mutex::new(inner),
      events,
      rooms_changed,
    }
  }

  /// Signalled when a room enters or leaves memory.
  pub fn rooms_changed(&self) -> &tokio::sync::Notify {
    &self.rooms_changed
  }

  /// Names of the rooms in memory.
  pub fn room_names(&self) -> Vec<Arc<str>> {
    self.inner.lock().rooms.names()
  }

  /// Adds a session to the actor of `(definition, key)`, creating the actor if needed (and
  /// waking it if it hibernates). When it is the actor's only session, the actor re-joins its
  /// listed rooms (JS hears the joins now, before the session's `Open`). `None` (nothing
  /// changed) when `max_sessions` sessions, open or waiting, exist already: checked under the
  /// lock, so concurrent upgrades cannot pass the limit together.
  pub fn add_session(&self, new: NewSession<'_>, max_sessions: usize) -> Option<Added> {
    let NewSession {
      id: session,
      definition,
      key,
      outbox,
      meta,
      token,
    } = new;
    let mut inner = self.inner.lock();
    if inner.sessions.len() >= max_sessions {
      return None;
    }
    let (actor, created) = inner.actor_for(definition, key, &self.events);
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
      waiting: None,
    };
    inner.sessions.insert(session, entry);
    inner.membership_version += 1;
    let user: Arc<str> = Arc::from(key);
    let changes: Vec<RoomChange> = rejoin
      .iter()
      .filter_map(|listed| inner.rooms.add_member(listed, &user, actor))
      .collect();
    announce(&self.events, &inner.rooms, changes);
    Some(Added { actor, created })
  }

  /// Sessions, open or waiting for a resume (what `maxSessions` bounds).
  pub fn session_count(&self) -> usize {
    self.inner.lock().sessions.len()
  }

  /// Queues an event of a session for JS, waking its actor first if it hibernates. False when
  /// the session is gone (nothing was queued).
  pub fn deliver(&self, session: SessionId, event: Event<'_>) -> bool {
    let mut inner = self.inner.lock();
    let Some(actor) = inner.sessions.get(&session).map(|s| s.actor) else {
      return false;
    };
    inner.wake(actor, &self.events);
    self.events.push(event);
    true
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
        definition,
        key,
        except,
      } => match inner.by_key.get(&(definition, Arc::<str>::from(key))) {
        Some(actor) => inner.visit_actor(*actor, except, &mut f),
        None => 0,
      },
      Target::Room { name, except } => {
        let Inner {
          rooms,
          actors,
          sessions,
          membership_version,
          ..
        } = &mut *inner;
        let Some(room) = rooms.get_mut(name) else {
          return 0;
        };
        if room
          .fanout
          .as_ref()
          .is_none_or(|(built, _)| built != membership_version)
        {
          let mut list = Vec::new();
          for member in room.members.values() {
            let member_sessions = member
              .actor
              .and_then(|actor| actors.get(&actor))
              .map_or(&[][..], |a| a.sessions.as_slice());
            for session in member_sessions {
              if let Some(entry) = sessions.get(session) {
                list.push((*session, entry.outbox.clone()));
              }
            }
          }
          room.fanout = Some((*membership_version, list));
        }
        let list = room.fanout.as_ref().map_or(&[][..], |(_, list)| list.as_slice());
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
  pub fn send(&self, target: Target<'_>, seq: u64, frame: &WireFrame) -> u32 {
    // Corked: a frame for many sockets is written to each after the visit, outside the lock.
    crate::transport::outbox::corked(|| {
      self.visit(target, |outbox| {
        outbox.takes(frame) && outbox.push_shared(seq, frame.clone()) == Pushed::Queued
      })
    })
  }

  /// [`Registry::send`] of each numbered frame to its session, in order, under one lock;
  /// returns how many sessions took theirs.
  pub fn send_to_sessions(&self, frames: impl Iterator<Item = (SessionId, u64, WireFrame)>) -> u32 {
    let inner = self.inner.lock();
    let mut reached = 0;
    for (session, seq, frame) in frames {
      let taken = inner.sessions.get(&session).is_some_and(|entry| {
        entry.outbox.takes(&frame) && entry.outbox.push_numbered(seq, frame) == Pushed::Queued
      });
      reached += u32::from(taken);
    }
    reached
  }

  /// The outboxes of `target` that take `frame` to hold behind the output gate
  /// (it counts against each one's budget from now on, see [`Outbox::hold`]).
  pub fn hold_for(&self, target: Target<'_>, frame: &WireFrame, into: &mut Vec<Arc<Outbox>>) -> u32 {
    self.visit(target, |outbox| {
      let held = outbox.takes(frame) && outbox.hold(frame.len()) == Pushed::Queued;
      if held {
        into.push(outbox.clone());
      }
      held
    })
  }

  /// Asks a session to close; false when it is gone or already closing.
  pub fn close_session(&self, session: SessionId, code: u16, reason: &str) -> bool {
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

  /// The actor of `(definition, key)`, if it is in memory.
  pub fn actor_of(&self, definition: DefinitionId, key: &str) -> Option<ActorId> {
    self
      .inner
      .lock()
      .by_key
      .get(&(definition, Arc::<str>::from(key)))
      .copied()
  }

  /// The definition and key of an actor.
  pub fn identity(&self, actor: ActorId) -> Option<(DefinitionId, Arc<str>)> {
    self
      .inner
      .lock()
      .actors
      .get(&actor)
      .map(|a| (a.definition, a.key.clone()))
  }

  /// Counts for `stats()`.
  pub fn counts(&self) -> Counts {
    let inner = self.inner.lock();
    Counts {
      sessions: inner.sessions.len(),
      actors: inner.actors.len(),
      hibernated: inner.actors.values().filter(|a| a.hibernated).count(),
      rooms: inner.rooms.count(),
      waiting: inner.waiting,
    }
  }
}

/// What the registry holds, for `stats()`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
  pub sessions: usize,
  pub actors: usize,
  pub hibernated: usize,
  pub rooms: usize,
  /// Sessions whose socket dropped, waiting for a resume.
  pub waiting: usize,
}

#[cfg(test)]
pub(crate) mod tests {
  use super::*;
  use crate::config::OverflowPolicy;

  pub fn outbox() -> Arc<Outbox> {
    Arc::new(Outbox::new(1 << 20, OverflowPolicy::Close))
  }

  pub fn registry() -> (Registry, Arc<EventSink>) {
    let events = Arc::new(EventSink::new());
    (Registry::new(events.clone()), events)
  }

  pub fn add(registry: &Registry, key: &str, session: u64) -> Added {
    let new = NewSession {
      id: SessionId(session),
      definition: DefinitionId(0),
      key,
      outbox: outbox(),
      meta: Arc::from("{}"),
      token: None,
    };
    registry.add_session(new, usize::MAX).expect("no limit")
  }

  pub fn user(key: &str, except: Option<u64>) -> Target<'_> {
    Target::User {
      definition: DefinitionId(0),
      key,
      except: except.map(SessionId),
    }
  }

  #[test]
  fn sessions_of_one_user_share_an_actor() {
    let (registry, _) = registry();
    let first = add(&registry, "alice", 1);
    let second = add(&registry, "alice", 2);
    let other = add(&registry, "bob", 3);
    assert!(first.created && !second.created && other.created);
    assert_eq!(first.actor, second.actor);
    assert_ne!(first.actor, other.actor);
    let frame = WireFrame::from(tokio_tungstenite::tungstenite::Utf8Bytes::from("x"));
    assert_eq!(registry.send(user("alice", None), 0, &frame), 2);
    assert_eq!(registry.send(user("alice", Some(1)), 0, &frame), 1);
    let elsewhere = Target::User {
      definition: DefinitionId(1),
      key: "alice",
      except: None,
    };
    assert_eq!(registry.send(elsewhere, 0, &frame), 0);
    assert_eq!(registry.send(Target::Session(SessionId(3)), 0, &frame), 1);
    assert_eq!(registry.send(Target::Session(SessionId(9)), 0, &frame), 0);
  }
}
