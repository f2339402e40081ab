//! Rooms, persisted state, hibernation and destruction, as the JS runtime drives them.

use napi::bindgen_prelude::*;
use napi_derive::napi;

use super::{storage_error, to_id, NativeServer};
use crate::durable::StateOf;
use crate::protocol::push_json_string;
use crate::registry::RoomError;
use crate::rooms::Listed;
use crate::schedules::MAX_SCHEDULES_PER_ACTOR;

fn room_error(error: RoomError) -> Error {
  match error {
    RoomError::NoSuchActor => Error::new(
      Status::GenericFailure,
      "the actor is no longer in memory".to_string(),
    ),
  }
}

#[napi(object)]
pub struct OpenedRoom {
  pub id: i64,
  pub created: bool,
}

/// One state write of a group commit.
#[napi(object)]
pub struct StateWrite {
  /// 0: a connection actor (`owner` = definition name, `name` = userId);
  /// 1: a room (`owner` = room handler name, `name` = full room name).
  pub kind: u32,
  pub owner: String,
  pub name: String,
  /// The encoded state, or null to delete it.
  pub value: Option<Buffer>,
}

/// A JSON array of `items`, each written by `write` (the values are raw JSON already).
fn json_array<T>(items: &[T], mut write: impl FnMut(&mut String, &T)) -> String {
  let mut out = String::from("[");
  for (i, item) in items.iter().enumerate() {
    if i > 0 {
      out.push(',');
    }
    write(&mut out, item);
  }
  out.push(']');
  out
}

fn state_of<'a>(kind: u32, owner: &'a str, name: &'a str) -> StateOf<'a> {
  if kind == 1 {
    StateOf::Room {
      handler: owner,
      room: name,
    }
  } else {
    StateOf::Actor {
      definition: owner,
      user: name,
    }
  }
}

#[napi]
impl NativeServer {
  /// Adds a room to an actor's list (live membership while it has a session) and stores the
  /// list. Returns false when the room was already listed. The membership change reaches JS as
  /// a batch event.
  #[napi]
  pub fn join_room(&self, actor: i64, name: String, handler: u32, metadata_json: String) -> Result<bool> {
    let listed = Listed {
      name: name.into(),
      handler: handler as usize,
      metadata: metadata_json.into(),
    };
    let joined = self
      .server
      .registry
      .join_room(to_id(actor), listed)
      .map_err(room_error)?;
    if let Some(change) = &joined.change {
      self.server.dispatcher.push_room_change(change);
    }
    if joined.listed {
      self.server.persist_room_list(to_id(actor));
    }
    Ok(joined.listed)
  }

  /// Removes a room from an actor's list; false when it was not listed.
  #[napi]
  pub fn leave_room(&self, actor: i64, name: String) -> Result<bool> {
    let (listed, change) = self
      .server
      .registry
      .leave_room(to_id(actor), &name)
      .map_err(room_error)?;
    if let Some(change) = &change {
      self.server.dispatcher.push_room_change(change);
    }
    if listed {
      self.server.persist_room_list(to_id(actor));
    }
    Ok(listed)
  }

  /// Names of the rooms on an actor's list.
  #[napi]
  pub fn rooms_of(&self, actor: i64) -> Result<Vec<String>> {
    let rooms = self.server.registry.room_list(to_id(actor)).map_err(room_error)?;
    Ok(rooms.iter().map(|room| room.name.to_string()).collect())
  }

  /// The room instance called `name` (created, empty, when missing).
  #[napi]
  pub fn open_room(&self, name: String, handler: u32) -> OpenedRoom {
    let (id, created) = self.server.registry.open_room(&name, handler as usize);
    OpenedRoom {
      id: id as i64,
      created,
    }
  }

  /// Live members as JSON: `[{"userId","joinedAt","metadata"}]`, in join order.
  #[napi]
  pub fn room_members(&self, name: String) -> String {
    json_array(&self.server.registry.room_members(&name), |out, member| {
      out.push_str(r#"{"userId":"#);
      push_json_string(out, &member.user);
      out.push_str(r#","joinedAt":"#);
      out.push_str(&member.joined_at_ms.to_string());
      out.push_str(r#","metadata":"#);
      out.push_str(&member.metadata);
      out.push('}');
    })
  }

  /// Replaces a live member's metadata; false when the user is not a member.
  #[napi]
  pub fn set_member_metadata(&self, name: String, user: String, metadata_json: String) -> bool {
    match self
      .server
      .registry
      .set_member_metadata(&name, &user, &metadata_json)
    {
      Some(actor) => {
        self.server.persist_room_list(actor);
        true
      }
      None => false,
    }
  }

  /// Destroys a room: members leave, its stored state is wiped. False when not in memory
  /// (its stored state is wiped anyway).
  #[napi]
  pub fn destroy_room(&self, handler_name: String, name: String) -> bool {
    let existed = self.server.destroy_room(&name);
    self.server.wipe_room_state(&handler_name, &name);
    existed
  }

  /// The stored state of an actor (kind 0) or a room (kind 1), if any.
  #[napi]
  pub fn load_state(&self, kind: u32, owner: String, name: String) -> Result<Option<Buffer>> {
    let bytes = self
      .server
      .load_state(state_of(kind, &owner, &name))
      .map_err(storage_error)?;
    Ok(bytes.map(Buffer::from))
  }

  /// A persisted state changed: under strict durability, frames sent from now on wait until
  /// the commit that follows is flushed.
  #[napi]
  pub fn state_changed(&self) {
    self.server.gate.changed();
  }

  /// Applies this tick's state writes in one batch and asks for a flush (group commit).
  #[napi]
  pub fn commit_state(&self, writes: Vec<StateWrite>) -> Result<()> {
    let writes = writes
      .iter()
      .map(|w| {
        (
          state_of(w.kind, &w.owner, &w.name),
          w.value.as_ref().map(|v| v.to_vec()),
        )
      })
      .collect();
    self.server.commit_state(writes).map_err(storage_error)
  }

  /// Hibernates the actor of `(endpoint, key)` now (tests and tools). False when it is not in
  /// memory, has no session, or already hibernates.
  #[napi]
  pub fn hibernate(&self, endpoint: u32, key: String) -> bool {
    match self.server.registry.actor_of(endpoint as usize, &key) {
      Some(actor) => self.server.registry.hibernate(actor, &self.server.dispatcher),
      None => false,
    }
  }

  /// JS declined a hibernation (work still in flight).
  #[napi]
  pub fn keep_awake(&self, actor: i64) {
    self.server.registry.keep_awake(to_id(actor));
  }

  /// Destroys an actor by id (from its own context).
  #[napi]
  pub fn destroy_actor(&self, actor: i64) -> bool {
    self.server.destroy_actor(to_id(actor))
  }

  /// Destroys the actor of `(endpoint, key)`, in memory or only in storage.
  #[napi]
  pub fn destroy_actor_by_key(&self, endpoint: u32, key: String) -> bool {
    self.server.destroy_actor_by_key(endpoint as usize, &key)
  }
}

#[napi]
impl NativeServer {
  /// Schedules `event` (with `dataJson`) for the actor of `(endpoint, key)` at `atMs` (epoch
  /// milliseconds); returns the schedule's id. Stored: it survives restarts.
  #[napi]
  pub fn schedule_add(
    &self,
    endpoint: u32,
    key: String,
    at_ms: f64,
    event: String,
    data_json: String,
  ) -> Result<String> {
    if !at_ms.is_finite() || at_ms < 0.0 {
      return Err(Error::new(
        Status::InvalidArg,
        "schedule time must be a finite, non-negative number".to_string(),
      ));
    }
    let id = self
      .server
      .add_schedule(endpoint as usize, &key, at_ms as u64, event, data_json)
      .map_err(|_| {
        Error::from_reason(format!(
          "an actor may have at most {MAX_SCHEDULES_PER_ACTOR} pending schedules"
        ))
      })?;
    Ok(id.to_string())
  }

  /// Cancels a schedule; false when it already fired or never existed.
  #[napi]
  pub fn schedule_cancel(&self, id: String) -> bool {
    self.server.cancel_schedule(&id)
  }

  /// Pending schedules of an actor as JSON: `[{"id","at","event","data"}]`, soonest first.
  #[napi]
  pub fn schedule_list(&self, endpoint: u32, key: String) -> String {
    json_array(
      &self.server.schedules.of(endpoint as usize, &key),
      |out, schedule| {
        out.push_str(r#"{"id":"#);
        push_json_string(out, &schedule.id);
        out.push_str(r#","at":"#);
        out.push_str(&schedule.at_ms.to_string());
        out.push_str(r#","event":"#);
        push_json_string(out, &schedule.event);
        out.push_str(r#","data":"#);
        out.push_str(&schedule.data);
        out.push('}');
      },
    )
  }
}
