//! Rooms placed on one node (cluster mode; see [`crate::cluster::rooms`]). This node's
//! membership changes (a member of its own joins or leaves a room, a room leaves its memory)
//! do not reach its JS directly: they go, in order, through one task that learns where the room
//! lives (claiming it on first use) and either tells JS here (this node owns the room: its
//! hooks run here) or sends them to the owner, which adds the member to the room's membership
//! and runs the hooks there. `members()` is answered by the owner.
//!
//! A room's owner that dies is noticed every third of a lease: the nodes with members in
//! it send their members' joins again, so the room is placed anew (`onInit`, then `onJoin` once
//! per live member, on the new owner, from the state Redis holds). An owner that notices a node
//! with members die makes them leave (`onLeave`).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, Weak};

use parking_lot::Mutex;
use tokio::runtime::Handle;
use tokio::sync::{mpsc, oneshot};

use super::Core;

/// How long a member's join on a node that does not own the room waits for this node to be
/// subscribed to the room before the join goes to the owner anyway (Redis is slow or gone: the
/// subscriber then re-syncs the room's sessions when it catches up).
const ROOM_SUBSCRIBE_WAIT: std::time::Duration = std::time::Duration::from_secs(2);
use crate::cluster::nodes::{self, NodeMessage};
use crate::cluster::rooms::room_owner_key;
use crate::cluster::{Cluster, Placement};
use crate::config::{MAX_PENDING_ROOM_CHANGES, MAX_PENDING_ROOM_QUERIES};
use crate::durability::Fence;
use crate::error::CoreError;
use crate::events::{Event, EventSink, Level};
use crate::ids::HandlerId;
use crate::registry::rooms::{Listed, RoomChange, RoomRouter};

/// Room → the node that owns it (this node's id when here), as last learned.
type Owners = Arc<Mutex<HashMap<Arc<str>, Arc<str>>>>;

/// Where this node's rooms live, and its questions to other nodes about them.
#[derive(Default)]
pub(super) struct RoomPlaces {
  /// Where rooms live. Locked after the registry (the router reads it under the registry's
  /// lock), never before it.
  owners: Owners,
  /// Membership changes queued or being routed: while there are any, a change of a room placed
  /// here waits its turn behind them instead of reaching JS at once.
  routing: Arc<AtomicUsize>,
  /// `members()` requests waiting for the owner's answer, by id.
  queries: Mutex<HashMap<u64, oneshot::Sender<Option<String>>>>,
  next_query: AtomicU64,
  /// `fetchMembers()` requests of JS being answered (bounded by [`MAX_PENDING_ROOM_QUERIES`]).
  asking: AtomicUsize,
  /// The queue of membership changes to route (set once the node joined the cluster).
  changes: OnceLock<mpsc::Sender<RoomChange>>,
}

impl RoomPlaces {
  /// Forgets every placement (the node lost its lease: its rooms may be elsewhere now).
  pub(super) fn forget_all(&self) {
    self.owners.lock().clear();
  }
}

/// The registry's side: a join or leave of a room placed here, with nothing queued before it,
/// reaches JS at once (in order with the session events around it, as on one node); any other
/// change is queued without waiting (bounded).
struct Router {
  changes: mpsc::Sender<RoomChange>,
  events: Arc<EventSink>,
  owners: Owners,
  routing: Arc<AtomicUsize>,
  node: Arc<str>,
}

impl Router {
  fn placed_here(&self, change: &RoomChange) -> bool {
    let name = match change {
      RoomChange::Joined { name, .. } | RoomChange::Left { name, .. } => name,
      _ => return false,
    };
    self.routing.load(Ordering::Acquire) == 0
      && self
        .owners
        .lock()
        .get(name)
        .is_some_and(|owner| *owner == self.node)
  }
}

impl RoomRouter for Router {
  fn route(&self, change: RoomChange) {
    if self.placed_here(&change) {
      self.events.push(change.event());
      return;
    }
    self.routing.fetch_add(1, Ordering::AcqRel);
    match self.changes.try_send(change) {
      Ok(()) => {}
      Err(mpsc::error::TrySendError::Full(_)) => {
        self.routing.fetch_sub(1, Ordering::AcqRel);
        self.events.push(Event::Log {
          level: Level::Error,
          message: "cluster: too many room membership changes wait for their rooms' owners; one was dropped",
        });
      }
      // The node is stopping: nothing is owed to the rooms' owners then.
      Err(mpsc::error::TrySendError::Closed(_)) => {
        self.routing.fetch_sub(1, Ordering::AcqRel);
      }
    }
  }
}

/// Routes this node's membership changes from now on, and watches the rooms' owners.
pub(super) fn start(core: &Arc<Core>, cluster: &Arc<Cluster>, runtime: &Handle) {
  let (sender, receiver) = mpsc::channel(MAX_PENDING_ROOM_CHANGES);
  let _ = core.rooms_placed.changes.set(sender.clone());
  core.registry.set_room_router(Arc::new(Router {
    changes: sender,
    events: core.events.clone(),
    owners: core.rooms_placed.owners.clone(),
    routing: core.rooms_placed.routing.clone(),
    node: Arc::from(cluster.node()),
  }));
  runtime.spawn(core.clone().route_rooms(cluster.clone(), receiver));
  runtime.spawn(core.clone().watch_room_nodes(cluster.clone()));
}

impl Core {
  fn is_here(&self, cluster: &Cluster, room: &str) -> bool {
    self
      .rooms_placed
      .owners
      .lock()
      .get(room)
      .is_some_and(|owner| **owner == *cluster.node())
  }

  /// Live members as JSON, as this node has them: every member where the room is placed (or
  /// without a cluster); elsewhere an error, since only the owner knows them all.
  pub fn room_members_here(&self, room: &str) -> Result<String, CoreError> {
    self.check_room_here(room, "only its owner knows every member (use fetchMembers())")?;
    Ok(self.room_members_json(room))
  }

  /// Cluster mode: an error saying `why` when this node does not own `room`.
  pub(super) fn check_room_here(&self, room: &str, why: &str) -> Result<(), CoreError> {
    let Some(cluster) = &self.cluster else {
      return Ok(());
    };
    if self.is_here(cluster, room) {
      return Ok(());
    }
    let owner = self.rooms_placed.owners.lock().get(room).cloned();
    let placed = owner.map_or_else(
      || "is not placed on this node".to_string(),
      |owner| format!("lives on node {owner}"),
    );
    Err(CoreError::RoomElsewhere(format!("room {room:?} {placed}: {why}")))
  }

  /// Cluster mode: the claim a room's state is written under, if this node owns the room.
  pub(super) fn fence_of_room(&self, room: &str) -> Option<Fence> {
    self.cluster.as_ref()?;
    let actor = room_owner_key(room);
    let token = *self.claims.lock().get(&actor)?;
    Some(Fence { actor, token })
  }

  /// The node that owns `room`: the one last learned, or claimed now (for this node unless a
  /// live node holds it). A room placed here is opened (it leaves memory, and gives its claim
  /// up, once it has had no member for `hibernateAfterMs`).
  async fn room_owner(
    &self,
    cluster: &Cluster,
    room: &str,
    handler: HandlerId,
  ) -> Result<Arc<str>, CoreError> {
    if let Some(owner) = self.rooms_placed.owners.lock().get(room) {
      return Ok(owner.clone());
    }
    let handler_name = self
      .config
      .room_handlers
      .get(handler.get())
      .ok_or_else(|| CoreError::InvalidArgument(format!("no room handler {handler}")))?;
    let owner = match cluster.claim_room(handler_name, room).await? {
      Placement::Here { fence, records } => {
        self.storage.cache(records)?;
        self.claims.lock().insert(fence.actor, fence.token);
        self.registry.open_room(room, handler);
        Arc::from(cluster.node())
      }
      Placement::Elsewhere { owner } => owner,
    };
    self
      .rooms_placed
      .owners
      .lock()
      .insert(Arc::from(room), owner.clone());
    Ok(owner)
  }

  /// Forgets where `room` lives unless it is in memory here: a placement learned only to ask
  /// or tell its owner something is not kept (a room in memory forgets it when it leaves).
  fn forget_unused_placement(&self, room: &str) {
    if !self.registry.has_room(room) {
      self.rooms_placed.owners.lock().remove(room);
    }
  }

  /// Routes this node's membership changes in order, until shutdown.
  async fn route_rooms(self: Arc<Self>, cluster: Arc<Cluster>, mut changes: mpsc::Receiver<RoomChange>) {
    let mut shutdown = self.shutdown.subscribe();
    loop {
      let change = tokio::select! {
        _ = shutdown.wait_for(|stopping| *stopping) => return,
        change = changes.recv() => change,
      };
      let Some(change) = change else {
        return;
      };
      self.route_room_change(&cluster, change).await;
      self.rooms_placed.routing.fetch_sub(1, Ordering::AcqRel);
    }
  }

  async fn route_room_change(&self, cluster: &Arc<Cluster>, change: RoomChange) {
    let node = cluster.node();
    match &change {
      RoomChange::Joined {
        name,
        handler,
        user,
        metadata,
        ..
      } => match self.room_owner(cluster, name, *handler).await {
        Ok(owner) if *owner == *node => self.events.push(change.event()),
        Ok(owner) => {
          let handler_name = self
            .config
            .room_handlers
            .get(handler.get())
            .map_or("", String::as_str);
          // The owner answers the join with a broadcast (onJoin's): hear the room first.
          let _ = tokio::time::timeout(ROOM_SUBSCRIBE_WAIT, cluster.until_subscribed(name)).await;
          cluster.send_to(&owner, nodes::room_join(node, name, handler_name, user, metadata));
        }
        Err(error) => {
          let message =
            format!("cluster: {user:?} joined room {name:?} but its owner cannot be reached: {error}");
          self.report(Level::Warn, &message);
        }
      },
      RoomChange::Left { name, user, .. } => {
        let owner = self.rooms_placed.owners.lock().get(name).cloned();
        match owner {
          Some(owner) if *owner == *node => self.events.push(change.event()),
          Some(owner) => cluster.send_to(&owner, nodes::room_leave(node, name, user)),
          None => {}
        }
      }
      RoomChange::Evicted { name, .. } => {
        let owner = self.rooms_placed.owners.lock().remove(name);
        // A claim made stale by a lost lease goes too (giving it up is checked in Redis).
        let directory = room_owner_key(name);
        let claimed = self.claims.lock().remove(&directory).is_some();
        // A write of its state Redis has not taken yet goes first: the claim is given up after.
        let deferred = claimed && self.storage.release_after_writes(&directory);
        if !deferred && (claimed || owner.is_some_and(|owner| *owner == *node)) {
          // Awaited: the next change of this room is routed (and may claim it) after.
          if let Err(error) = cluster.release_room(name).await {
            self.report(Level::Warn, &error.to_string());
          }
        }
        self.events.push(change.event());
      }
      RoomChange::Hibernated { .. } => self.events.push(change.event()),
    }
  }

  /// A room message from another node (see [`nodes`]).
  pub(super) fn on_room_message(&self, cluster: &Arc<Cluster>, message: NodeMessage<'_>) {
    match message {
      NodeMessage::RoomJoin {
        from,
        room,
        handler,
        user,
        metadata,
      } => {
        let Some(index) = self.config.room_handlers.iter().position(|h| *h == handler) else {
          return;
        };
        let listed = Listed {
          name: Arc::from(&*room),
          handler: HandlerId(index),
          metadata: Arc::from(metadata.get()),
        };
        let from: Arc<str> = Arc::from(&*from);
        if self.is_here(cluster, &room) {
          self.registry.add_remote_member(&listed, &user, from);
          return;
        }
        // Not placed here (any more): this join is a use of the room, which places it.
        let Some(core) = self.itself.get().and_then(Weak::upgrade) else {
          return;
        };
        let (cluster, user) = (cluster.clone(), user.to_string());
        self.runtime.spawn(async move {
          match core.room_owner(&cluster, &listed.name, listed.handler).await {
            Ok(owner) if *owner == *cluster.node() => {
              core.registry.add_remote_member(&listed, &user, from);
            }
            Ok(owner) => {
              core.forget_unused_placement(&listed.name);
              let join = nodes::room_join(
                &from,
                &listed.name,
                &handler_name(&core, listed.handler),
                &user,
                &listed.metadata,
              );
              cluster.send_to(&owner, join);
            }
            Err(error) => core.report(
              Level::Warn,
              &format!("cluster: cannot place room {:?}: {error}", listed.name),
            ),
          }
        });
      }
      NodeMessage::RoomLeave { room, user, .. } => {
        self.registry.remove_remote_member(&room, &user);
      }
      NodeMessage::RoomMemberMetadata { room, user, metadata } => {
        if let Some(actor) = self.registry.set_member_metadata(&room, &user, metadata.get()) {
          self.store_room_list(actor);
        }
      }
      NodeMessage::MembersAsk { from, id, room } => {
        let members = self
          .is_here(cluster, &room)
          .then(|| self.room_members_json(&room));
        cluster.send_to(&from, nodes::members(id, members.as_deref()));
      }
      NodeMessage::Members { id, members } => {
        if let Some(waiting) = self.rooms_placed.queries.lock().remove(&id) {
          let _ = waiting.send(members.map(|members| members.get().to_string()));
        }
      }
      NodeMessage::RoomDestroy { from, room, handler }
        if self.config.room_handlers.iter().any(|h| *h == handler) =>
      {
        self.destroy_placed_room(cluster, &handler, &room, Some(&from));
      }
      _ => {}
    }
  }

  /// Destroys a room across the cluster. Its owner destroys it (every member leaves, on every
  /// node: `onLeave` runs there, then `onDestroy`), wipes its state in Redis and gives its claim
  /// up, and tells the nodes with members in it, which drop it from their members' lists. Any
  /// other node does the same for its own members and asks the owner (placing the room here
  /// when no node holds it). `from`: the node that told this one. False when the room was not
  /// in memory here.
  pub(super) fn destroy_placed_room(
    &self,
    cluster: &Arc<Cluster>,
    handler_name: &str,
    room: &str,
    from: Option<&str>,
  ) -> bool {
    let node = cluster.node();
    if self.is_here(cluster, room) {
      let nodes = self.registry.room_member_nodes(room);
      let fence = self.fence_of_room(room);
      self.claims.lock().remove(&room_owner_key(room));
      self.rooms_placed.owners.lock().remove(room);
      let existed = self.destroy_room_here(handler_name, room, fence);
      for member_node in nodes.iter().filter(|n| Some(&***n) != from) {
        cluster.send_to(member_node, nodes::room_destroy(node, room, handler_name));
      }
      return existed;
    }
    let existed = self.destroy_room_here(handler_name, room, None);
    self.rooms_placed.owners.lock().remove(room);
    if from.is_some() {
      // The owner's word: nothing more to do here.
      return existed;
    }
    let Some(handler) = self.config.room_handlers.iter().position(|h| h == handler_name) else {
      return existed;
    };
    let Some(core) = self.itself.get().and_then(Weak::upgrade) else {
      return existed;
    };
    let (cluster, handler_name, room) = (cluster.clone(), handler_name.to_string(), room.to_string());
    self.runtime.spawn(async move {
      match core.room_owner(&cluster, &room, HandlerId(handler)).await {
        Ok(owner) if *owner == *cluster.node() => {
          core.destroy_placed_room(&cluster, &handler_name, &room, None);
        }
        Ok(owner) => {
          core.forget_unused_placement(&room);
          cluster.send_to(&owner, nodes::room_destroy(cluster.node(), &room, &handler_name));
        }
        Err(error) => core.report(
          Level::Warn,
          &format!("cluster: cannot destroy room {room:?}: {error}"),
        ),
      }
    });
    existed
  }

  /// Live members of a room, as its owner has them (`[{"userId","joinedAt","metadata"}]`, in
  /// join order): on every node, asked of the owner (one request, one answer); placed here on
  /// first use. Without a cluster, this node's.
  pub async fn fetch_room_members(&self, room: &str, handler: HandlerId) -> Result<String, CoreError> {
    let Some(cluster) = &self.cluster else {
      return Ok(self.room_members_json(room));
    };
    // Twice at most: an owner that no longer holds the room says so, and is asked no more.
    for _ in 0..2 {
      let owner = self.room_owner(cluster, room, handler).await?;
      if *owner == *cluster.node() {
        return Ok(self.room_members_json(room));
      }
      let id = self.rooms_placed.next_query.fetch_add(1, Ordering::Relaxed) + 1;
      let (sender, answer) = oneshot::channel();
      {
        let mut queries = self.rooms_placed.queries.lock();
        if queries.len() >= MAX_PENDING_ROOM_QUERIES {
          return Err(CoreError::Cluster(format!(
            "{MAX_PENDING_ROOM_QUERIES} members() requests already wait for other nodes"
          )));
        }
        queries.insert(id, sender);
      }
      cluster.send_to(&owner, nodes::members_ask(cluster.node(), id, room));
      let answer = tokio::time::timeout(self.config.call_timeout, answer).await;
      self.rooms_placed.queries.lock().remove(&id);
      self.forget_unused_placement(room);
      match answer {
        Ok(Ok(Some(members))) => return Ok(members),
        Ok(Ok(None)) => {
          self.rooms_placed.owners.lock().remove(room);
        }
        _ => {
          return Err(CoreError::Cluster(format!(
            "node {owner}, which owns room {room:?}, did not answer within {} ms",
            self.config.call_timeout.as_millis()
          )))
        }
      }
    }
    Err(CoreError::Cluster(format!(
      "room {room:?} moved between nodes while its members were asked for"
    )))
  }

  /// [`Core::fetch_room_members`] for JS: returns a request id at once; the answer reaches JS
  /// as a `RoomMembers` event with that id.
  pub fn ask_room_members(&self, room: &str, handler: HandlerId) -> u64 {
    let request = self.rooms_placed.next_query.fetch_add(1, Ordering::Relaxed) + 1;
    let here = self
      .cluster
      .as_ref()
      .is_none_or(|cluster| self.is_here(cluster, room));
    if here {
      let members = self.room_members_json(room);
      self.events.push(Event::RoomMembers {
        request,
        answer: Ok(&members),
      });
      return request;
    }
    let refused = |why: &str| {
      let answer = Err(("cluster_unavailable", why));
      self.events.push(Event::RoomMembers { request, answer });
      request
    };
    let Some(core) = self.itself.get().and_then(Weak::upgrade) else {
      return refused("the server was closed");
    };
    if self.rooms_placed.asking.fetch_add(1, Ordering::AcqRel) >= MAX_PENDING_ROOM_QUERIES {
      self.rooms_placed.asking.fetch_sub(1, Ordering::AcqRel);
      return refused("too many members() requests wait for other nodes");
    }
    let room = room.to_string();
    self.runtime.spawn(async move {
      let answer = core.fetch_room_members(&room, handler).await;
      core.rooms_placed.asking.fetch_sub(1, Ordering::AcqRel);
      match answer {
        Ok(members) => core.events.push(Event::RoomMembers {
          request,
          answer: Ok(&members),
        }),
        Err(error) => {
          let message = error.to_string();
          core.events.push(Event::RoomMembers {
            request,
            answer: Err((error.code(), &message)),
          });
        }
      }
    });
    request
  }

  /// Every third of a lease until shutdown: members from nodes that died leave this
  /// node's rooms, and this node's members of rooms whose owner died join again (which places
  /// those rooms anew).
  async fn watch_room_nodes(self: Arc<Self>, cluster: Arc<Cluster>) {
    let mut ticks = self.ticker(cluster.lease() / 3);
    while ticks.tick().await {
      let node = cluster.node();
      let mut peers: HashSet<Arc<str>> = self.registry.remote_member_nodes();
      peers.extend(
        self
          .rooms_placed
          .owners
          .lock()
          .values()
          .filter(|owner| ***owner != *node)
          .cloned(),
      );
      if peers.is_empty() {
        continue;
      }
      let peers: Vec<Arc<str>> = peers.into_iter().collect();
      let Ok(dead) = cluster.dead_among(peers).await else {
        continue;
      };
      if !dead.is_empty() {
        self.forget_room_nodes(&dead);
      }
    }
  }

  fn forget_room_nodes(&self, dead: &HashSet<Arc<str>>) {
    self.registry.remove_members_of(dead);
    let orphaned: Vec<Arc<str>> = {
      let mut owners = self.rooms_placed.owners.lock();
      let orphaned = owners
        .iter()
        .filter(|(_, owner)| dead.contains(*owner))
        .map(|(room, _)| room.clone())
        .collect::<Vec<_>>();
      for room in &orphaned {
        owners.remove(room);
      }
      orphaned
    };
    let Some(changes) = self.rooms_placed.changes.get() else {
      return;
    };
    for room in orphaned {
      for join in self.registry.local_joins(&room) {
        self.rooms_placed.routing.fetch_add(1, Ordering::AcqRel);
        if changes.try_send(join).is_err() {
          self.rooms_placed.routing.fetch_sub(1, Ordering::AcqRel);
          self.report(
            Level::Error,
            "cluster: too many room membership changes wait; a member was not re-joined",
          );
        }
      }
    }
  }
}

fn handler_name(core: &Core, handler: HandlerId) -> String {
  core
    .config
    .room_handlers
    .get(handler.get())
    .cloned()
    .unwrap_or_default()
}
