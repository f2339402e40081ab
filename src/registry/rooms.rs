//! Room instances: who is a live member of each room, and the changes JS must hear about.
//!
//! Membership is per user. An actor keeps a *room list* (what it joined and did not leave); it
//! is a live *member* of those rooms while it has at least one open session. This module holds
//! the data; [`crate::registry`] owns it under its lock and turns membership into fan-out.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crate::events::{Event, EventSink};
use crate::ids::{ActorId, HandlerId, RoomId, SessionId};
use crate::transport::outbox::Outbox;

/// A room the actor joined and has not left, kept while it has no session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listed {
  pub name: Arc<str>,
  pub handler: HandlerId,
  /// The metadata given at join (JSON), reused when the user re-joins.
  pub metadata: Arc<str>,
}

/// A live member of a room.
#[derive(Clone, Debug)]
pub struct Member {
  /// Its actor here; `None` for a member whose actor lives on another node (cluster mode: this
  /// node owns the room and holds its whole membership, but fans out only to its own sessions).
  pub actor: Option<ActorId>,
  /// The node a member from another node lives on.
  pub node: Option<Arc<str>>,
  pub joined_at_ms: u64,
  pub metadata: Arc<str>,
}

pub struct RoomEntry {
  pub id: RoomId,
  pub handler: HandlerId,
  pub name: Arc<str>,
  /// userId → member.
  pub members: HashMap<Arc<str>, Member>,
  /// Set while the room has no member; an idle room leaves memory like an idle actor.
  pub idle_since: Option<Instant>,
  /// Last membership change or access; a room with members but none for `hibernateAfterMs`
  /// leaves the JS heap (its members stay here).
  pub last_activity: Instant,
  /// True once JS was told to drop this room's JS side, until the next activity.
  pub hibernated: bool,
  /// Every session of every live member, with the registry generation it was built at: a
  /// fan-out is then one pass over a list. Rebuilt when sessions or memberships changed.
  pub fanout: Option<(u64, FanoutList)>,
}

/// Sessions a room's frames go to: `(session id, its outbox)`.
pub type FanoutList = Vec<(SessionId, Arc<Outbox>)>;

impl RoomEntry {
  fn touch(&mut self) {
    self.last_activity = Instant::now();
    self.hibernated = false;
  }
}

/// A change of live membership, or of a room's life, that JS hears about (hooks run there).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RoomChange {
  Joined {
    room: RoomId,
    created: bool,
    handler: HandlerId,
    name: Arc<str>,
    user: Arc<str>,
    metadata: Arc<str>,
  },
  Left {
    room: RoomId,
    name: Arc<str>,
    user: Arc<str>,
  },
  Evicted {
    room: RoomId,
    name: Arc<str>,
  },
  /// The room has members but no activity: its JS side (hooks' state) leaves the heap.
  Hibernated {
    room: RoomId,
  },
}

impl RoomChange {
  /// The event JS hears for this change.
  pub fn event(&self) -> Event<'_> {
    match self {
      RoomChange::Joined {
        room,
        created,
        handler,
        name,
        user,
        metadata,
      } => Event::RoomJoin {
        room: *room,
        created: *created,
        handler: *handler,
        name,
        user,
        metadata_json: metadata,
      },
      RoomChange::Left { room, user, .. } => Event::RoomLeave { room: *room, user },
      RoomChange::Evicted { room, .. } => Event::RoomEvict { room: *room },
      RoomChange::Hibernated { room } => Event::RoomHibernate { room: *room },
    }
  }
}

/// Where changes of live membership go instead of JS (cluster mode: to the room's owner, whose
/// JS runs the room's hooks). It must not wait, nor call back into the registry.
pub trait RoomRouter: Send + Sync {
  fn route(&self, change: RoomChange);
}

/// A live member as `members()` reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberInfo {
  pub user: Arc<str>,
  pub joined_at_ms: u64,
  pub metadata: Arc<str>,
}

pub fn now_ms() -> u64 {
  SystemTime::now()
    .duration_since(UNIX_EPOCH)
    .map_or(0, |d| d.as_millis() as u64)
}

#[derive(Default)]
pub struct Rooms {
  by_name: HashMap<Arc<str>, RoomEntry>,
  next_id: u64,
  /// Signalled when a room enters or leaves memory (cluster mode follows room channels).
  changed: Arc<tokio::sync::Notify>,
  /// Cluster mode: where joins, leaves and evictions of this node's members go.
  router: Option<Arc<dyn RoomRouter>>,
}

impl Rooms {
  /// The signal of rooms entering or leaving memory.
  pub fn changed(&self) -> &Arc<tokio::sync::Notify> {
    &self.changed
  }

  /// Sends this node's membership changes to `router` from now on instead of to JS.
  pub fn set_router(&mut self, router: Arc<dyn RoomRouter>) {
    self.router = Some(router);
  }

  /// Tells JS of a change of this node's members, or hands it to the router (cluster mode).
  pub fn announce(&self, events: &EventSink, change: RoomChange) {
    match (&self.router, &change) {
      (Some(router), RoomChange::Joined { .. } | RoomChange::Left { .. } | RoomChange::Evicted { .. }) => {
        router.route(change)
      }
      _ => events.push(change.event()),
    }
  }

  /// [`Rooms::announce`] for several changes (one push into the sink without a router).
  pub fn announce_all(&self, events: &EventSink, changes: Vec<RoomChange>) {
    match &self.router {
      Some(_) => changes
        .into_iter()
        .for_each(|change| self.announce(events, change)),
      None => events.push_all(changes.iter().map(RoomChange::event)),
    }
  }

  /// The rooms in memory, in no order.
  pub fn iter(&self) -> impl Iterator<Item = &RoomEntry> {
    self.by_name.values()
  }

  /// Names of the rooms in memory.
  pub fn names(&self) -> Vec<Arc<str>> {
    self.by_name.keys().cloned().collect()
  }

  /// Every room in memory.
  pub fn all(&self) -> impl Iterator<Item = &RoomEntry> {
    self.by_name.values()
  }

  pub fn get(&self, name: &str) -> Option<&RoomEntry> {
    self.by_name.get(name)
  }

  pub fn get_mut(&mut self, name: &str) -> Option<&mut RoomEntry> {
    self.by_name.get_mut(name)
  }

  /// The room called `name`, created (empty) when missing. Returns it and whether it was created.
  pub fn open(&mut self, name: &str, handler: HandlerId) -> (&mut RoomEntry, bool) {
    let created = !self.by_name.contains_key(name);
    if created {
      self.next_id += 1;
      let name: Arc<str> = Arc::from(name);
      let entry = RoomEntry {
        id: RoomId(self.next_id),
        handler,
        name: name.clone(),
        members: HashMap::new(),
        idle_since: Some(Instant::now()),
        last_activity: Instant::now(),
        hibernated: false,
        fanout: None,
      };
      self.by_name.insert(name, entry);
      self.changed.notify_one();
    }
    match self.by_name.get_mut(name) {
      Some(entry) => {
        entry.touch();
        (entry, created)
      }
      None => unreachable!("inserted above"),
    }
  }

  /// Makes `user` (of `actor`) a live member. `None` when it already was one.
  pub fn add_member(&mut self, listed: &Listed, user: &Arc<str>, actor: ActorId) -> Option<RoomChange> {
    let member = Member {
      actor: Some(actor),
      node: None,
      joined_at_ms: now_ms(),
      metadata: listed.metadata.clone(),
    };
    self.insert_member(listed, user, member)
  }

  /// Makes `user` a live member as `member` says. `None` when it already was one.
  pub fn insert_member(&mut self, listed: &Listed, user: &Arc<str>, member: Member) -> Option<RoomChange> {
    let (room, created) = self.open(&listed.name, listed.handler);
    if room.members.contains_key(user) {
      return None;
    }
    room.members.insert(user.clone(), member);
    room.idle_since = None;
    Some(RoomChange::Joined {
      room: room.id,
      created,
      handler: room.handler,
      name: room.name.clone(),
      user: user.clone(),
      metadata: listed.metadata.clone(),
    })
  }

  /// Ends `user`'s live membership of `name`. `None` when it was not a member.
  pub fn remove_member(&mut self, name: &str, user: &str) -> Option<RoomChange> {
    let room = self.by_name.get_mut(name)?;
    room.members.remove(user)?;
    room.touch();
    if room.members.is_empty() {
      room.idle_since = Some(Instant::now());
    }
    Some(RoomChange::Left {
      room: room.id,
      name: room.name.clone(),
      user: Arc::from(user),
    })
  }

  /// Removes rooms without members idle for at least `idle_for` (evicted), and reports rooms
  /// with members but no activity for as long (hibernated), once per idle spell.
  pub fn sweep(&mut self, idle_for: std::time::Duration) -> Vec<RoomChange> {
    let now = Instant::now();
    let mut changes = Vec::new();
    let mut evicted = Vec::new();
    for room in self.by_name.values_mut() {
      if room
        .idle_since
        .is_some_and(|since| now.duration_since(since) >= idle_for)
      {
        evicted.push(room.name.clone());
      } else if !room.hibernated && now.duration_since(room.last_activity) >= idle_for {
        room.hibernated = true;
        changes.push(RoomChange::Hibernated { room: room.id });
      }
    }
    for name in evicted {
      if let Some(room) = self.by_name.remove(&name) {
        changes.push(RoomChange::Evicted {
          room: room.id,
          name: room.name.clone(),
        });
        self.changed.notify_one();
      }
    }
    changes
  }

  /// Removes a room outright (destroy).
  pub fn remove(&mut self, name: &str) -> Option<RoomEntry> {
    let removed = self.by_name.remove(name);
    if removed.is_some() {
      self.changed.notify_one();
    }
    removed
  }

  pub fn set_member_metadata(&mut self, name: &str, user: &str, metadata: Arc<str>) -> bool {
    match self
      .by_name
      .get_mut(name)
      .and_then(|room| room.members.get_mut(user))
    {
      Some(member) => {
        member.metadata = metadata;
        true
      }
      None => false,
    }
  }

  /// Live members, in join order.
  pub fn members(&self, name: &str) -> Vec<MemberInfo> {
    let Some(room) = self.by_name.get(name) else {
      return Vec::new();
    };
    let mut members: Vec<MemberInfo> = room
      .members
      .iter()
      .map(|(user, m)| MemberInfo {
        user: user.clone(),
        joined_at_ms: m.joined_at_ms,
        metadata: m.metadata.clone(),
      })
      .collect();
    members.sort_by(|a, b| {
      a.joined_at_ms
        .cmp(&b.joined_at_ms)
        .then_with(|| a.user.cmp(&b.user))
    });
    members
  }

  pub fn count(&self) -> usize {
    self.by_name.len()
  }
}
