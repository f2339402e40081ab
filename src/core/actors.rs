//! Actors and rooms as JS drives them: room lists (kept on disk so a user re-joins after a
//! restart), room queries, persisted state, hibernation, destruction and schedules. Each method
//! is one complete step: the registry change, the write, the event JS hears.

use std::sync::{Arc, Weak};

use super::Core;
use crate::cluster::{nodes, Cluster, Placement};
use crate::durability::records::{decode_room_list, encode_room_list, StateOf};
use crate::durability::store::{Key, Write, SCHEDULE_PREFIX};
use crate::durability::Fence;
use crate::error::{CloseCode, CoreError, StoreError};
use crate::events::{Event, Level};
use crate::ids::{ActorId, DefinitionId, HandlerId, RoomId};
use crate::json::{push_array, push_int, push_string};
use crate::registry::rooms::Listed;
use crate::schedules::{list_json, Schedule, ScheduleError, MAX_SCHEDULES_PER_ACTOR};

impl Core {
  pub(super) fn definition_name(&self, definition: DefinitionId) -> &str {
    self
      .config
      .definitions
      .get(definition.get())
      .map_or("", |d| d.name.as_str())
  }

  /// Applies writes outside the JS state path (room lists, schedules, wipes). A failure is
  /// reported to the log; the in-memory registry stays authoritative.
  fn write_now(&self, writes: Vec<Write>) {
    if let Err(error) = self.storage.write(writes) {
      self.report(Level::Error, &error.to_string());
    }
  }

  /// Adds a room to an actor's list (live membership while it has a session) and stores the
  /// list. False when the room was already listed.
  pub fn join_room(
    &self,
    actor: ActorId,
    name: &str,
    handler: HandlerId,
    metadata_json: &str,
  ) -> Result<bool, CoreError> {
    self.check_handler(handler)?;
    let listed = Listed {
      name: Arc::from(name),
      handler,
      metadata: Arc::from(metadata_json),
    };
    let joined = self.registry.join_room(actor, listed)?;
    if joined {
      self.store_room_list(actor);
    }
    Ok(joined)
  }

  /// Removes a room from an actor's list; false when it was not listed.
  pub fn leave_room(&self, actor: ActorId, name: &str) -> Result<bool, CoreError> {
    let left = self.registry.leave_room(actor, name)?;
    if left {
      self.store_room_list(actor);
    }
    Ok(left)
  }

  /// Names of the rooms on an actor's list, in join order.
  pub fn rooms_of(&self, actor: ActorId) -> Result<Vec<String>, CoreError> {
    let listed = self.registry.room_list(actor)?;
    Ok(listed.iter().map(|room| room.name.to_string()).collect())
  }

  /// The room instance called `name` (created, empty, when missing), and whether it was created.
  /// In cluster mode only on the room's owner (its state lives there).
  pub fn open_room(&self, name: &str, handler: HandlerId) -> Result<(RoomId, bool), CoreError> {
    self.check_handler(handler)?;
    self.check_room_here(
      name,
      "its state lives with its owner (use it in the room's hooks)",
    )?;
    Ok(self.registry.open_room(name, handler))
  }

  fn check_handler(&self, handler: HandlerId) -> Result<(), CoreError> {
    if handler.get() >= self.config.room_handlers.len() {
      return Err(CoreError::InvalidArgument(format!("no room handler {handler}")));
    }
    Ok(())
  }

  fn check_definition(&self, definition: DefinitionId) -> Result<(), CoreError> {
    if definition.get() >= self.config.definitions.len() {
      return Err(CoreError::InvalidArgument(format!(
        "no connection definition {definition}"
      )));
    }
    Ok(())
  }

  /// Live members as JSON: `[{"userId","joinedAt","metadata"}]`, in join order.
  pub fn room_members_json(&self, name: &str) -> String {
    let mut out = String::new();
    push_array(&mut out, self.registry.room_members(name), |out, member| {
      out.push_str(r#"{"userId":"#);
      push_string(out, &member.user);
      out.push_str(r#","joinedAt":"#);
      push_int(out, member.joined_at_ms);
      out.push_str(r#","metadata":"#);
      out.push_str(&member.metadata);
      out.push('}');
    });
    out
  }

  /// Replaces a live member's metadata; false when the user is not a member.
  pub fn set_member_metadata(&self, name: &str, user: &str, metadata_json: &str) -> bool {
    match self.registry.set_member_metadata(name, user, metadata_json) {
      Some(actor) => {
        self.store_room_list(actor);
        true
      }
      // Cluster mode: a member from another node, as this node (the room's owner) lists it; its
      // node keeps it too, for the member's joins to come (to a next owner, say).
      None => match self
        .registry
        .set_remote_member_metadata(name, user, metadata_json)
      {
        Some(node) => {
          if let Some(cluster) = &self.cluster {
            let update = crate::cluster::nodes::room_member_metadata(name, user, metadata_json);
            cluster.send_to(&node, update);
          }
          true
        }
        None => false,
      },
    }
  }

  /// Destroys a room: its members leave (and drop it from their lists) and its stored state is
  /// wiped, in memory or not. False when it was not in memory. In cluster mode on every node
  /// (see [`Core::destroy_placed_room`]).
  pub fn destroy_room(&self, handler_name: &str, name: &str) -> bool {
    match &self.cluster {
      Some(cluster) => self.destroy_placed_room(cluster, handler_name, name, None),
      None => self.destroy_room_here(handler_name, name, None),
    }
  }

  /// [`Core::destroy_room`] on this node: its members leave, and the state is wiped (in Redis
  /// too under `fence`, the room's claim, which is given up with it).
  pub(super) fn destroy_room_here(&self, handler_name: &str, name: &str, fence: Option<Fence>) -> bool {
    let touched = self.registry.destroy_room(name);
    for actor in touched.iter().flatten() {
      self.store_room_list(*actor);
    }
    let state = StateOf::Room {
      handler: handler_name,
      room: name,
    };
    if let Err(error) = self
      .storage
      .write_actor(vec![(state.key().encode(), None)], fence, true)
    {
      self.report(Level::Error, &error.to_string());
    }
    touched.is_some()
  }

  /// Stores an actor's room list (after a join, a leave or a metadata change).
  pub(super) fn store_room_list(&self, actor: ActorId) {
    let (Some((definition, user)), Ok(listed)) =
      (self.registry.identity(actor), self.registry.room_list(actor))
    else {
      return;
    };
    let key = Key::RoomList {
      definition: self.definition_name(definition),
      user: &user,
    };
    let value = encode_room_list(&listed, &self.config.room_handlers);
    let fence = self.fence_of(self.definition_name(definition), &user);
    if let Err(error) = self
      .storage
      .write_actor(vec![(key.encode(), value)], fence, false)
    {
      self.report(Level::Error, &error.to_string());
    }
  }

  /// Loads the stored room list of a freshly created actor and re-joins it.
  pub(super) fn restore_room_list(&self, actor: ActorId, definition: DefinitionId, user: &str) {
    let key = Key::RoomList {
      definition: self.definition_name(definition),
      user,
    };
    if let Ok(Some(bytes)) = self.storage.get(&key) {
      let listed = decode_room_list(&bytes, &self.config.room_handlers);
      self.registry.restore_rooms(actor, listed);
    }
  }

  /// The stored state of an actor or a room, if any.
  pub fn load_state(&self, of: StateOf<'_>) -> Result<Option<Vec<u8>>, CoreError> {
    Ok(self.storage.load_state(of)?)
  }

  /// A persisted state changed: under strict durability, frames sent from now on wait until
  /// the commit that follows is flushed.
  pub fn state_changed(&self) {
    self.storage.gate().changed();
  }

  /// Applies a tick's state writes in one batch and asks for a flush (group commit).
  pub fn commit_state(&self, writes: Vec<(StateOf<'_>, Option<Vec<u8>>)>) -> Result<(), CoreError> {
    let fence = |of: StateOf<'_>| match of {
      StateOf::Actor { definition, user } => self.fence_of(definition, user),
      StateOf::Room { room, .. } => self.fence_of_room(room),
    };
    Ok(self.storage.commit_state(writes, fence)?)
  }

  /// Cluster mode: the claim an actor's records are written under, if this node holds it.
  pub(super) fn fence_of(&self, definition: &str, user: &str) -> Option<Fence> {
    self.cluster.as_ref()?;
    let actor = crate::cluster::wire::actor_key(definition, user);
    let token = *self.claims.lock().get(&actor)?;
    Some(Fence { actor, token })
  }

  /// Hibernates the actor of `(definition, key)` now (tests and tools). False when it is not in
  /// memory, has no session, or already hibernates.
  pub fn hibernate(&self, definition: DefinitionId, key: &str) -> bool {
    self
      .registry
      .actor_of(definition, key)
      .is_some_and(|actor| self.registry.hibernate(actor))
  }

  /// JS declined a hibernation (work still in flight).
  pub fn keep_awake(&self, actor: ActorId) {
    self.registry.keep_awake(actor);
  }

  /// Destroys an actor: it leaves its rooms, its sessions close with 1000 "Actor destroyed",
  /// its state, room list and schedules are wiped, and JS hears `Destroyed` (after the leaves).
  /// Its next session starts from the defaults. False when the actor is not in memory.
  pub fn destroy_actor(&self, actor: ActorId) -> bool {
    let Some(destroyed) = self.registry.destroy_actor(actor) else {
      return false;
    };
    self.wipe_actor(destroyed.definition, &destroyed.key);
    for outbox in destroyed.sessions {
      outbox.request_close(CloseCode::Normal.as_u16(), "Actor destroyed");
    }
    true
  }

  /// Destroys an actor that may not be in memory: its stored state and room list are wiped
  /// either way. Returns whether anything existed.
  pub fn destroy_actor_by_key(&self, definition: DefinitionId, user: &str) -> bool {
    if self.check_definition(definition).is_err() {
      return false;
    }
    if let Some(actor) = self.registry.actor_of(definition, user) {
      return self.destroy_actor(actor);
    }
    let state = Key::ActorState {
      definition: self.definition_name(definition),
      user,
    };
    let existed = matches!(self.storage.get(&state), Ok(Some(_)));
    self.wipe_actor(definition, user);
    if let Some(cluster) = &self.cluster {
      self.destroy_elsewhere(cluster, definition, user);
    }
    existed
  }

  /// Cluster mode: destroys an actor this node does not hold wherever it is: its owner destroys
  /// it, or, when no live node holds it, this node claims it and wipes its records in Redis.
  fn destroy_elsewhere(&self, cluster: &Arc<Cluster>, definition: DefinitionId, user: &str) {
    let Some(core) = self.itself.get().and_then(Weak::upgrade) else {
      return;
    };
    let cluster = cluster.clone();
    let name = self.definition_name(definition).to_string();
    let user = user.to_string();
    self.runtime.spawn(async move {
      match cluster.claim(&name, &user).await {
        Ok(Placement::Elsewhere { owner }) => cluster.send_to(&owner, nodes::destroy(&name, &user)),
        Ok(Placement::Here { fence, .. }) => {
          let schedules = match cluster.schedules_of(&fence.actor).await {
            Ok(schedules) => schedules,
            Err(error) => {
              core.report(Level::Error, &error.to_string());
              Vec::new()
            }
          };
          let mut records: Vec<Write> = schedules
            .iter()
            .map(|(id, _)| (Key::Schedule { id }.encode(), None))
            .collect();
          records.extend([
            (
              Key::ActorState {
                definition: &name,
                user: &user,
              }
              .encode(),
              None,
            ),
            (
              Key::RoomList {
                definition: &name,
                user: &user,
              }
              .encode(),
              None,
            ),
          ]);
          if let Err(error) = core.storage.write_actor(records, Some(fence), true) {
            core.report(Level::Error, &error.to_string());
          }
        }
        Err(error) => {
          let message = format!("cannot destroy {name} {user:?} across the cluster: {error}");
          core.report(Level::Error, &message);
        }
      }
    });
  }

  /// Cluster mode: an actor that left memory here is no longer this node's.
  pub(super) fn release_claim(&self, definition: DefinitionId, key: &str) {
    if let Some(cluster) = &self.cluster {
      let name = self.definition_name(definition);
      let actor = crate::cluster::wire::actor_key(name, key);
      self.claims.lock().remove(&actor);
      // Its schedules stay in Redis: the node that holds it next fires them.
      self.schedules.remove_actor(definition, key);
      // A write of it Redis has not taken yet goes first: the claim is given up after it.
      if !self.storage.release_after_writes(&actor) {
        cluster.release(name, key);
      }
    }
  }

  /// Wipes an actor's records and schedules; in cluster mode its records in Redis too (under
  /// its claim, which is given up with the last write).
  fn wipe_actor(&self, definition: DefinitionId, user: &str) {
    self.forget_inspected(definition, user);
    let name = self.definition_name(definition);
    // Schedules first: in cluster mode they go under the claim, given up with the last write.
    let mut records: Vec<Write> = self
      .schedules
      .remove_actor(definition, user)
      .iter()
      .map(|schedule| (Key::Schedule { id: &schedule.id }.encode(), None))
      .collect();
    records.extend([
      (
        Key::ActorState {
          definition: name,
          user,
        }
        .encode(),
        None,
      ),
      (
        Key::RoomList {
          definition: name,
          user,
        }
        .encode(),
        None,
      ),
    ]);
    let fence = self.fence_of(name, user);
    if fence.is_some() {
      self
        .claims
        .lock()
        .remove(&crate::cluster::wire::actor_key(name, user));
    }
    if let Err(error) = self.storage.write_actor(records, fence, true) {
      self.report(Level::Error, &error.to_string());
    }
  }

  /// Loads every stored schedule (start-up). Schedules of definitions that no longer exist are
  /// left in storage untouched. In cluster mode schedules come from Redis with their actor's
  /// claim instead (see [`crate::cluster::alarms`]).
  pub(super) fn load_schedules(&self) -> Result<(), StoreError> {
    if self.cluster.is_some() {
      return Ok(());
    }
    let definition_of = |name: &str| {
      self
        .config
        .definitions
        .iter()
        .position(|d| d.name == name)
        .map(DefinitionId)
    };
    for (key, value) in self.storage.scan(SCHEDULE_PREFIX)? {
      let Some(Ok(id)) = key.get(SCHEDULE_PREFIX.len()..).map(std::str::from_utf8) else {
        continue;
      };
      if let Some(schedule) = Schedule::from_stored(id, &value, definition_of) {
        // Capacity is not enforced for what was already accepted.
        let _ = self.schedules.add(schedule);
      }
    }
    Ok(())
  }

  /// Stores and indexes a schedule for the actor of `(definition, key)` at `at_ms` (epoch
  /// milliseconds); returns its id. It survives restarts.
  pub fn add_schedule(
    &self,
    definition: DefinitionId,
    key: &str,
    at_ms: f64,
    event: String,
    data_json: String,
  ) -> Result<String, CoreError> {
    self.check_definition(definition)?;
    if !at_ms.is_finite() || at_ms < 0.0 {
      return Err(CoreError::InvalidArgument(
        "schedule time must be a finite, non-negative number".into(),
      ));
    }
    let id = uuid::Uuid::new_v4().to_string();
    let schedule = Schedule {
      id: Arc::from(id.as_str()),
      definition,
      user: Arc::from(key),
      at_ms: at_ms as u64,
      event,
      data: data_json,
    };
    let name = self.definition_name(definition);
    let stored = schedule.to_stored(name);
    // Cluster mode: stored in Redis under the actor's claim, with its state.
    let fence = self.fence_of(name, key);
    if self.cluster.is_some() && fence.is_none() {
      return Err(CoreError::Cluster(format!(
        "this node does not hold {name} {key:?} (it lost its claim): the schedule was not made"
      )));
    }
    self
      .schedules
      .add(schedule)
      .map_err(|ScheduleError::TooMany| CoreError::TooManySchedules(MAX_SCHEDULES_PER_ACTOR))?;
    let record = vec![(Key::Schedule { id: &id }.encode(), Some(stored))];
    if let Err(error) = self.storage.write_actor(record, fence, false) {
      self.report(Level::Error, &error.to_string());
    }
    Ok(id)
  }

  /// Cancels a schedule; false when it already fired or never existed.
  pub fn cancel_schedule(&self, id: &str) -> bool {
    let Some(schedule) = self.schedules.cancel(id) else {
      return false;
    };
    let fence = self.fence_of(self.definition_name(schedule.definition), &schedule.user);
    let record = vec![(Key::Schedule { id }.encode(), None)];
    if let Err(error) = self.storage.write_actor(record, fence, false) {
      self.report(Level::Error, &error.to_string());
    }
    true
  }

  /// Pending schedules of an actor as JSON: `[{"id","at","event","data"}]`, soonest first.
  pub fn schedules_json(&self, definition: DefinitionId, key: &str) -> String {
    list_json(&self.schedules.of(definition, key))
  }

  /// A schedule is due: it leaves storage, its actor is found (woken, or created without
  /// sessions, back in its rooms) and JS hears `Scheduled`.
  pub(super) fn fire(&self, schedule: Schedule) {
    self.write_now(vec![(Key::Schedule { id: &schedule.id }.encode(), None)]);
    self.announce_schedule(schedule);
  }

  /// A fired schedule reaches JS: its actor is found (woken, or created without sessions, back
  /// in its rooms) and JS hears `Scheduled`.
  pub(super) fn announce_schedule(&self, schedule: Schedule) {
    let (actor, created) = self.registry.ensure_actor(schedule.definition, &schedule.user);
    if created {
      self.restore_room_list(actor, schedule.definition, &schedule.user);
    }
    self.events.push(Event::Scheduled {
      actor,
      definition: schedule.definition,
      key: &schedule.user,
      id: &schedule.id,
      event: &schedule.event,
      data_json: &schedule.data,
    });
  }
}
