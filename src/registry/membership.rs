//! Joining and leaving rooms, and what the room API asks of the registry.

use std::sync::Arc;
use std::time::Duration;

use super::Registry;
use crate::rooms::{Listed, MemberInfo, RoomChange};

/// Why a room operation was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RoomError {
  /// The actor left memory (destroyed, or evicted after its sessions closed).
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

impl Registry {
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
    inner.generation += 1;
    let entry = inner.actors.get_mut(&actor).ok_or(RoomError::NoSuchActor)?;
    let live = !entry.sessions.is_empty();
    let user = entry.key.clone();
    let change = if live {
      inner.rooms.add_member(&listed, &user, actor)
    } else {
      None
    };
    Ok(Joined { listed: true, change })
  }

  /// Removes a room from the actor's list and ends its live membership. The flag is false when
  /// the room was not on the list; the change is absent when the actor was not live.
  pub fn leave_room(&self, actor: u64, name: &str) -> Result<(bool, Option<RoomChange>), RoomError> {
    let mut inner = self.inner.lock();
    let entry = inner.actors.get_mut(&actor).ok_or(RoomError::NoSuchActor)?;
    let before = entry.rooms.len();
    entry.rooms.retain(|room| &*room.name != name);
    if entry.rooms.len() == before {
      return Ok((false, None));
    }
    let user = entry.key.clone();
    inner.generation += 1;
    Ok((true, inner.rooms.remove_member(name, &user)))
  }

  /// Puts a stored room list back on a freshly created actor, joining live where it has a
  /// session. Rooms already listed are skipped.
  pub fn restore_rooms(&self, actor: u64, listed: Vec<Listed>) -> Vec<RoomChange> {
    let mut inner = self.inner.lock();
    let Some(entry) = inner.actors.get_mut(&actor) else {
      return Vec::new();
    };
    let fresh: Vec<Listed> = listed
      .into_iter()
      .filter(|room| !entry.rooms.iter().any(|known| known.name == room.name))
      .collect();
    entry.rooms.extend(fresh.iter().cloned());
    let live = !entry.sessions.is_empty();
    let user = entry.key.clone();
    inner.generation += 1;
    if !live {
      return Vec::new();
    }
    fresh
      .iter()
      .filter_map(|room| inner.rooms.add_member(room, &user, actor))
      .collect()
  }

  /// The actor's room list, in join order.
  pub fn room_list(&self, actor: u64) -> Result<Vec<Listed>, RoomError> {
    let inner = self.inner.lock();
    Ok(
      inner
        .actors
        .get(&actor)
        .ok_or(RoomError::NoSuchActor)?
        .rooms
        .clone(),
    )
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

  /// Replaces a live member's metadata (also on its actor's room list, for re-joins). Returns
  /// the member's actor when it changed, so its room list can be stored.
  pub fn set_member_metadata(&self, name: &str, user: &str, metadata: &str) -> Option<u64> {
    let mut inner = self.inner.lock();
    let metadata: Arc<str> = Arc::from(metadata);
    let actor = inner
      .rooms
      .get(name)
      .and_then(|room| room.members.get(user))
      .map(|m| m.actor)?;
    if let Some(listed) = inner
      .actors
      .get_mut(&actor)
      .and_then(|a| a.rooms.iter_mut().find(|r| &*r.name == name))
    {
      listed.metadata = metadata.clone();
    }
    inner
      .rooms
      .set_member_metadata(name, user, metadata)
      .then_some(actor)
  }

  /// Removes a room: every live member leaves, and the room leaves every member's list.
  /// Returns the room's id, the changes, and the actors whose lists changed.
  pub fn destroy_room(&self, name: &str) -> Option<(u64, Vec<RoomChange>, Vec<u64>)> {
    let mut inner = self.inner.lock();
    let room = inner.rooms.remove(name)?;
    let mut changes = Vec::new();
    for (user, _) in room.members.iter() {
      changes.push(RoomChange::Left {
        room: room.id,
        user: user.clone(),
      });
    }
    let mut touched = Vec::new();
    for (id, actor) in inner.actors.iter_mut() {
      let before = actor.rooms.len();
      actor.rooms.retain(|listed| &*listed.name != name);
      if actor.rooms.len() != before {
        touched.push(*id);
      }
    }
    Some((room.id, changes, touched))
  }

  /// Rooms that leave memory: without members and idle (evicted), or with members but no
  /// membership change for `idle_for` (their JS side hibernates).
  pub fn sweep_rooms(&self, idle_for: Duration) -> Vec<RoomChange> {
    self.inner.lock().rooms.sweep(idle_for)
  }
}

#[cfg(test)]
mod tests {
  use super::super::tests::attach;
  use super::super::Target;
  use super::*;
  use tokio_tungstenite::tungstenite::Utf8Bytes;

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
    let dispatcher = crate::dispatch::Dispatcher::new();
    let (alice, _) = attach(&registry, "alice", 1);
    attach(&registry, "alice", 2);
    let (bob, _) = attach(&registry, "bob", 3);
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
    let room = |except| Target::Room { name: "chat", except };
    assert_eq!(registry.send(room(None), 0, &frame), 3);
    assert_eq!(registry.send(room(Some(3)), 0, &frame), 2);
    assert_eq!(registry.room_members("chat").len(), 2);
    assert_eq!(registry.detach(1, &dispatcher), vec![]);
    let left = registry.detach(2, &dispatcher);
    assert!(matches!(left.as_slice(), [RoomChange::Left { .. }]));
    assert_eq!(registry.send(room(None), 0, &frame), 1);
    let (_, rejoined) = attach(&registry, "alice", 4);
    assert!(matches!(
      rejoined.as_slice(),
      [RoomChange::Joined { created: false, .. }]
    ));
    assert_eq!(registry.send(room(None), 0, &frame), 2);
    assert!(registry
      .leave_room(alice.actor, "chat")
      .is_ok_and(|(listed, change)| listed && change.is_some()));
    assert_eq!(registry.room_list(alice.actor).map(|l| l.len()), Ok(0));
  }

  #[test]
  fn a_destroyed_room_leaves_every_members_list() {
    let registry = Registry::default();
    let (alice, _) = attach(&registry, "alice", 1);
    registry.join_room(alice.actor, listed("chat")).expect("join");
    let (_, changes, touched) = registry.destroy_room("chat").expect("room exists");
    assert!(matches!(changes.as_slice(), [RoomChange::Left { .. }]));
    assert_eq!(touched, vec![alice.actor]);
    assert_eq!(registry.room_list(alice.actor).map(|l| l.len()), Ok(0));
    assert_eq!(registry.destroy_room("chat"), None);
  }
}
