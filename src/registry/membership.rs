//! Joining and leaving rooms, and what the room API asks of the registry. Every membership
//! change is announced to JS here.

use std::sync::Arc;

use super::{Inner, Registry};
use crate::error::CoreError;
use crate::events::Event;
use crate::ids::{ActorId, HandlerId, RoomId};
use crate::registry::rooms::{Listed, Member, MemberInfo, RoomChange, RoomRouter};

/// What `leave_room` and `join_room` did to the actor's list.
pub type Joined = bool;

impl Registry {
  /// Adds a room to the actor's list and, when it has a session, makes it a live member.
  /// False when the room was already listed (a no-op).
  pub fn join_room(&self, actor: ActorId, listed: Listed) -> Result<Joined, CoreError> {
    let mut inner = self.inner.lock();
    let entry = inner.actors.get_mut(&actor).ok_or(CoreError::NoSuchActor)?;
    if entry.rooms.iter().any(|room| room.name == listed.name) {
      return Ok(false);
    }
    entry.rooms.push(listed.clone());
    let live = !entry.sessions.is_empty();
    let user = entry.key.clone();
    inner.membership_version += 1;
    if live {
      if let Some(change) = inner.rooms.add_member(&listed, &user, actor) {
        inner.rooms.announce(&self.events, change);
      }
    }
    Ok(true)
  }

  /// Removes a room from the actor's list and ends its live membership. False when the room
  /// was not on the list.
  pub fn leave_room(&self, actor: ActorId, name: &str) -> Result<bool, CoreError> {
    let mut inner = self.inner.lock();
    let entry = inner.actors.get_mut(&actor).ok_or(CoreError::NoSuchActor)?;
    let before = entry.rooms.len();
    entry.rooms.retain(|room| &*room.name != name);
    if entry.rooms.len() == before {
      return Ok(false);
    }
    let user = entry.key.clone();
    inner.membership_version += 1;
    if let Some(change) = inner.rooms.remove_member(name, &user) {
      inner.rooms.announce(&self.events, change);
    }
    Ok(true)
  }

  /// Puts a stored room list back on a freshly created actor, joining live where it has a
  /// session. Rooms already listed are skipped.
  pub fn restore_rooms(&self, actor: ActorId, listed: Vec<Listed>) {
    let mut inner = self.inner.lock();
    let Some(entry) = inner.actors.get_mut(&actor) else {
      return;
    };
    let fresh: Vec<Listed> = listed
      .into_iter()
      .filter(|room| !entry.rooms.iter().any(|known| known.name == room.name))
      .collect();
    entry.rooms.extend(fresh.iter().cloned());
    let live = !entry.sessions.is_empty();
    let user = entry.key.clone();
    inner.membership_version += 1;
    if !live {
      return;
    }
    for room in &fresh {
      if let Some(change) = inner.rooms.add_member(room, &user, actor) {
        inner.rooms.announce(&self.events, change);
      }
    }
  }

  /// The actor's room list, in join order.
  pub fn room_list(&self, actor: ActorId) -> Result<Vec<Listed>, CoreError> {
    let inner = self.inner.lock();
    Ok(
      inner
        .actors
        .get(&actor)
        .ok_or(CoreError::NoSuchActor)?
        .rooms
        .clone(),
    )
  }

  /// The room called `name`, created when missing: its id and whether it was created.
  pub fn open_room(&self, name: &str, handler: HandlerId) -> (RoomId, bool) {
    let mut inner = self.inner.lock();
    let (room, created) = inner.rooms.open(name, handler);
    (room.id, created)
  }

  /// Live members of a room, in join order.
  pub fn room_members(&self, name: &str) -> Vec<MemberInfo> {
    self.inner.lock().rooms.members(name)
  }

  /// Replaces a live member's metadata (also on its actor's room list, for re-joins). Returns
  /// the member's actor when it changed, so its room list can be stored.
  pub fn set_member_metadata(&self, name: &str, user: &str, metadata: &str) -> Option<ActorId> {
    let mut inner = self.inner.lock();
    let metadata: Arc<str> = Arc::from(metadata);
    let actor = inner
      .rooms
      .get(name)
      .and_then(|room| room.members.get(user))
      .and_then(|m| m.actor)?;
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

  /// Cluster mode: this node's membership changes go to `router` from now on.
  pub fn set_room_router(&self, router: Arc<dyn RoomRouter>) {
    self.inner.lock().rooms.set_router(router);
  }

  /// Cluster mode, on a room's owner: `user`, whose actor lives on `node`, became a live member
  /// (JS hears the join here, where the room's hooks run). False when it already was one.
  pub fn add_remote_member(&self, listed: &Listed, user: &str, node: Arc<str>) -> bool {
    let mut inner = self.inner.lock();
    let member = Member {
      actor: None,
      node: Some(node),
      joined_at_ms: super::rooms::now_ms(),
      metadata: listed.metadata.clone(),
    };
    match inner.rooms.insert_member(listed, &Arc::from(user), member) {
      Some(change) => {
        self.events.push(change.event());
        true
      }
      None => false,
    }
  }

  /// Cluster mode, on a room's owner: a member from another node left. False when `user` is
  /// not a member from another node.
  pub fn remove_remote_member(&self, name: &str, user: &str) -> bool {
    let mut inner = self.inner.lock();
    let remote = is_remote_member(&inner, name, user);
    if !remote {
      return false;
    }
    if let Some(change) = inner.rooms.remove_member(name, user) {
      self.events.push(change.event());
    }
    true
  }

  /// Cluster mode: the members whose actors lived on `nodes` (gone) leave every room here.
  pub fn remove_members_of(&self, nodes: &std::collections::HashSet<Arc<str>>) {
    let mut inner = self.inner.lock();
    let gone: Vec<(Arc<str>, Arc<str>)> = inner
      .rooms
      .all()
      .flat_map(|room| {
        room
          .members
          .iter()
          .filter(|(_, member)| member.node.as_ref().is_some_and(|node| nodes.contains(node)))
          .map(|(user, _)| (room.name.clone(), user.clone()))
      })
      .collect();
    for (name, user) in gone {
      if let Some(change) = inner.rooms.remove_member(&name, &user) {
        self.events.push(change.event());
      }
    }
  }

  /// Cluster mode, on a room's owner: replaces the metadata of a member from another node as
  /// the owner lists it. Returns the node the member lives on (to be told), or `None` when
  /// `user` is not such a member.
  pub fn set_remote_member_metadata(&self, name: &str, user: &str, metadata: &str) -> Option<Arc<str>> {
    let mut inner = self.inner.lock();
    if !is_remote_member(&inner, name, user) {
      return None;
    }
    let node = inner.rooms.get(name)?.members.get(user)?.node.clone()?;
    inner
      .rooms
      .set_member_metadata(name, user, Arc::from(metadata))
      .then_some(node)
  }

  /// Whether the room called `name` is in memory.
  pub fn has_room(&self, name: &str) -> bool {
    self.inner.lock().rooms.get(name).is_some()
  }

  /// Cluster mode: the nodes the members of `name` from other nodes live on.
  pub fn room_member_nodes(&self, name: &str) -> std::collections::HashSet<Arc<str>> {
    let inner = self.inner.lock();
    inner
      .rooms
      .get(name)
      .map(|room| {
        room
          .members
          .values()
          .filter_map(|member| member.node.clone())
          .collect()
      })
      .unwrap_or_default()
  }

  /// Cluster mode: the nodes the members from other nodes live on.
  pub fn remote_member_nodes(&self) -> std::collections::HashSet<Arc<str>> {
    let inner = self.inner.lock();
    inner
      .rooms
      .all()
      .flat_map(|room| room.members.values().filter_map(|member| member.node.clone()))
      .collect()
  }

  /// Cluster mode: this node's own live members of `name`, as joins to send again (the room's
  /// owner is gone: the next one must hear of them).
  pub fn local_joins(&self, name: &str) -> Vec<RoomChange> {
    let inner = self.inner.lock();
    let Some(room) = inner.rooms.get(name) else {
      return Vec::new();
    };
    room
      .members
      .iter()
      .filter(|(_, member)| member.actor.is_some())
      .map(|(user, member)| RoomChange::Joined {
        room: room.id,
        created: false,
        handler: room.handler,
        name: room.name.clone(),
        user: user.clone(),
        metadata: member.metadata.clone(),
      })
      .collect()
  }

  /// Removes a room: every live member leaves and the room leaves every member's list; JS hears
  /// the leaves, then `RoomDestroyed`. Returns the actors whose lists changed (to store them),
  /// or `None` when the room is not in memory.
  pub fn destroy_room(&self, name: &str) -> Option<Vec<ActorId>> {
    let mut inner = self.inner.lock();
    let room = inner.rooms.remove(name)?;
    for user in room.members.keys() {
      self.events.push(Event::RoomLeave { room: room.id, user });
    }
    let mut touched = Vec::new();
    for (id, actor) in inner.actors.iter_mut() {
      let before = actor.rooms.len();
      actor.rooms.retain(|listed| &*listed.name != name);
      if actor.rooms.len() != before {
        touched.push(*id);
      }
    }
    self.events.push(Event::RoomDestroyed { room: room.id });
    Some(touched)
  }
}

/// Whether `user` is a member of `name` that joined from another node (no actor here).
fn is_remote_member(inner: &Inner, name: &str, user: &str) -> bool {
  inner
    .rooms
    .get(name)
    .and_then(|room| room.members.get(user))
    .is_some_and(|member| member.actor.is_none())
}

#[cfg(test)]
mod tests {
  use super::super::tests::{add, registry};
  use super::super::Target;
  use super::*;
  use crate::error::SessionEnd;
  use crate::ids::SessionId;
  use tokio_tungstenite::tungstenite::Utf8Bytes;

  fn listed(name: &str) -> Listed {
    Listed {
      name: Arc::from(name),
      handler: HandlerId(0),
      metadata: Arc::from("{}"),
    }
  }

  #[test]
  fn a_user_is_a_live_member_while_it_has_a_session_and_keeps_its_room_list() {
    let (registry, events) = registry();
    let alice = add(&registry, "alice", 1);
    add(&registry, "alice", 2);
    let bob = add(&registry, "bob", 3);
    assert_eq!(registry.join_room(alice.actor, listed("chat")), Ok(true));
    assert_eq!(events.take().as_deref(), Some(r#"[[6,1,1,0,"chat","alice",{}]]"#));
    assert_eq!(registry.join_room(alice.actor, listed("chat")), Ok(false));
    assert_eq!(events.take(), None);
    assert_eq!(registry.join_room(bob.actor, listed("chat")), Ok(true));
    let frame = crate::transport::outbox::WireFrame::from(Utf8Bytes::from("x"));
    let room = |except: Option<u64>| Target::Room {
      name: "chat",
      except: except.map(SessionId),
    };
    assert_eq!(registry.send(room(None), 0, &frame), 3);
    assert_eq!(registry.send(room(Some(3)), 0, &frame), 2);
    assert_eq!(registry.room_members("chat").len(), 2);
    events.take();
    registry.end(SessionId(1), 0, &SessionEnd::dropped());
    assert_eq!(events.take().as_deref(), Some(r#"[[4,1,1006,""]]"#));
    registry.end(SessionId(2), 0, &SessionEnd::dropped());
    assert_eq!(events.take().as_deref(), Some(r#"[[4,2,1006,""],[7,1,"alice"]]"#));
    assert_eq!(registry.send(room(None), 0, &frame), 1);
    add(&registry, "alice", 4);
    assert_eq!(events.take().as_deref(), Some(r#"[[6,1,0,0,"chat","alice",{}]]"#));
    assert_eq!(registry.send(room(None), 0, &frame), 2);
    assert_eq!(registry.leave_room(alice.actor, "chat"), Ok(true));
    assert_eq!(registry.room_list(alice.actor).map(|l| l.len()), Ok(0));
  }

  /// Keeps what it is handed (the cluster's router, in tests).
  #[derive(Default)]
  struct Kept(parking_lot::Mutex<Vec<RoomChange>>);

  impl RoomRouter for Kept {
    fn route(&self, change: RoomChange) {
      self.0.lock().push(change);
    }
  }

  #[test]
  fn with_a_router_members_changes_go_to_it_and_members_from_other_nodes_are_listed_not_sent_to() {
    let (registry, events) = registry();
    let router = Arc::new(Kept::default());
    registry.set_room_router(router.clone());
    let alice = add(&registry, "alice", 1);
    assert_eq!(registry.join_room(alice.actor, listed("chat")), Ok(true));
    assert_eq!(events.take(), None, "JS does not hear it here");
    assert!(matches!(
      router.0.lock().as_slice(),
      [RoomChange::Joined { user, .. }] if &**user == "alice"
    ));

    // The owner's side: a member from another node is listed and heard of, never sent to.
    assert!(registry.add_remote_member(&listed("chat"), "bob", Arc::from("n2")));
    assert!(!registry.add_remote_member(&listed("chat"), "bob", Arc::from("n2")));
    assert_eq!(events.take().as_deref(), Some(r#"[[6,1,0,0,"chat","bob",{}]]"#));
    assert_eq!(registry.room_members("chat").len(), 2);
    let frame = crate::transport::outbox::WireFrame::from(Utf8Bytes::from("x"));
    let room = Target::Room {
      name: "chat",
      except: None,
    };
    assert_eq!(registry.send(room, 0, &frame), 1, "alice's session only");
    assert_eq!(registry.room_member_nodes("chat").len(), 1);
    assert!(registry
      .set_remote_member_metadata("chat", "bob", r#"{"seat":2}"#)
      .is_some());
    assert!(
      !registry.remove_remote_member("chat", "alice"),
      "a member of this node"
    );
    assert_eq!(registry.local_joins("chat").len(), 1, "alice, to send again");

    // The node of bob is gone: bob leaves.
    let gone: std::collections::HashSet<Arc<str>> = [Arc::from("n2")].into_iter().collect();
    registry.remove_members_of(&gone);
    assert_eq!(events.take().as_deref(), Some(r#"[[7,1,"bob"]]"#));
    assert_eq!(registry.room_members("chat").len(), 1);
  }

  #[test]
  fn a_destroyed_room_leaves_every_members_list() {
    let (registry, events) = registry();
    let alice = add(&registry, "alice", 1);
    assert_eq!(registry.join_room(alice.actor, listed("chat")), Ok(true));
    events.take();
    assert_eq!(registry.destroy_room("chat"), Some(vec![alice.actor]));
    assert_eq!(events.take().as_deref(), Some(r#"[[7,1,"alice"],[14,1]]"#));
    assert_eq!(registry.room_list(alice.actor).map(|l| l.len()), Ok(0));
    assert_eq!(registry.destroy_room("chat"), None);
  }
}
