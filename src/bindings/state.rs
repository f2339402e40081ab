//! Rooms, persisted state, hibernation, destruction and schedules, as the JS runtime drives
//! them.

use napi::bindgen_prelude::*;
use napi_derive::napi;
use serde_json::value::RawValue;

use super::convert::{actor, definition, handler};
use super::{invalid, js_error, NativeServer};
use crate::durability::records::StateOf;

/// `StateWrite.kind` of a connection actor's state.
const STATE_OF_ACTOR: u32 = 0;
/// `StateWrite.kind` of a room's state.
const STATE_OF_ROOM: u32 = 1;

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

fn state_of<'a>(kind: u32, owner: &'a str, name: &'a str) -> Result<StateOf<'a>, String> {
  match kind {
    STATE_OF_ACTOR => Ok(StateOf::Actor {
      definition: owner,
      user: name,
    }),
    STATE_OF_ROOM => Ok(StateOf::Room {
      handler: owner,
      room: name,
    }),
    other => Err(invalid(format!("unknown state kind {other}"))),
  }
}

/// JSON from JS that the core copies as it is (into event batches and storage): checked once
/// here, so a bad value is refused at the call instead of breaking a later batch.
pub(super) fn checked_json(json: &str, what: &str) -> Result<(), String> {
  serde_json::from_str::<&RawValue>(json)
    .map(|_| ())
    .map_err(|_| invalid(format!("{what} must be JSON")))
}

#[napi]
impl NativeServer {
  /// Adds a room to an actor's list (live membership while it has a session) and stores the
  /// list. Returns false when the room was already listed. The membership change reaches JS as
  /// a batch event.
  #[napi(catch_unwind)]
  pub fn join_room(
    &self,
    actor_id: i64,
    name: String,
    handler_id: u32,
    metadata_json: String,
  ) -> Result<bool, String> {
    checked_json(&metadata_json, "room metadata")?;
    self
      .core
      .join_room(actor(actor_id), &name, handler(handler_id), &metadata_json)
      .map_err(js_error)
  }

  /// Removes a room from an actor's list; false when it was not listed.
  #[napi(catch_unwind)]
  pub fn leave_room(&self, actor_id: i64, name: String) -> Result<bool, String> {
    self.core.leave_room(actor(actor_id), &name).map_err(js_error)
  }

  /// Names of the rooms on an actor's list.
  #[napi(catch_unwind)]
  pub fn rooms_of(&self, actor_id: i64) -> Result<Vec<String>, String> {
    self.core.rooms_of(actor(actor_id)).map_err(js_error)
  }

  /// The room instance called `name` (created, empty, when missing).
  #[napi(catch_unwind)]
  pub fn open_room(&self, name: String, handler_id: u32) -> Result<OpenedRoom, String> {
    let (id, created) = self
      .core
      .open_room(&name, handler(handler_id))
      .map_err(js_error)?;
    Ok(OpenedRoom {
      id: i64::try_from(id.get()).unwrap_or(i64::MAX),
      created,
    })
  }

  /// Asks for a room's live members as its owner has them (cluster mode: the node that owns the
  /// room; otherwise this one). Returns a request id; the answer comes as a `RoomMembers`
  /// event with it.
  #[napi(catch_unwind)]
  pub fn fetch_room_members(&self, name: String, handler_id: u32) -> Result<i64, String> {
    let handler = handler(handler_id);
    if handler.get() >= self.core.config().room_handlers.len() {
      return Err(invalid(format!("no room handler {handler}")));
    }
    let request = self.core.ask_room_members(&name, handler);
    Ok(i64::try_from(request).unwrap_or(i64::MAX))
  }

  /// Live members as JSON: `[{"userId","joinedAt","metadata"}]`, in join order. In cluster
  /// mode only on the node that owns the room (`room_elsewhere` on the others).
  #[napi(catch_unwind)]
  pub fn room_members(&self, name: String) -> Result<String, String> {
    self.core.room_members_here(&name).map_err(js_error)
  }

  /// Replaces a live member's metadata; false when the user is not a member.
  #[napi(catch_unwind)]
  pub fn set_member_metadata(
    &self,
    name: String,
    user: String,
    metadata_json: String,
  ) -> Result<bool, String> {
    checked_json(&metadata_json, "member metadata")?;
    Ok(self.core.set_member_metadata(&name, &user, &metadata_json))
  }

  /// Destroys a room: members leave, its stored state is wiped. False when not in memory
  /// (its stored state is wiped anyway).
  #[napi(catch_unwind)]
  pub fn destroy_room(&self, handler_name: String, name: String) -> bool {
    self.core.destroy_room(&handler_name, &name)
  }

  /// The stored state of an actor (kind 0) or a room (kind 1), if any.
  #[napi(catch_unwind)]
  pub fn load_state(&self, kind: u32, owner: String, name: String) -> Result<Option<Buffer>, String> {
    let bytes = self
      .core
      .load_state(state_of(kind, &owner, &name)?)
      .map_err(js_error)?;
    Ok(bytes.map(Buffer::from))
  }

  /// A persisted state changed: under strict durability, frames sent from now on wait until
  /// the commit that follows is flushed.
  #[napi(catch_unwind)]
  pub fn state_changed(&self) {
    self.core.state_changed();
  }

  /// Applies this tick's state writes in one batch and asks for a flush (group commit).
  #[napi(catch_unwind)]
  pub fn commit_state(&self, writes: Vec<StateWrite>) -> Result<(), String> {
    let writes = writes
      .iter()
      .map(|w| {
        Ok((
          state_of(w.kind, &w.owner, &w.name)?,
          w.value.as_ref().map(|v| v.to_vec()),
        ))
      })
      .collect::<Result<Vec<_>, String>>()?;
    self.core.commit_state(writes).map_err(js_error)
  }

  /// Hibernates the actor of `(endpoint, key)` now (tests and tools). False when it is not in
  /// memory, has no session, or already hibernates.
  #[napi(catch_unwind)]
  pub fn hibernate(&self, endpoint: u32, key: String) -> bool {
    self.core.hibernate(definition(endpoint), &key)
  }

  /// JS declined a hibernation (work still in flight).
  #[napi(catch_unwind)]
  pub fn keep_awake(&self, actor_id: i64) {
    self.core.keep_awake(actor(actor_id));
  }

  /// Destroys an actor by id (from its own context).
  #[napi(catch_unwind)]
  pub fn destroy_actor(&self, actor_id: i64) -> bool {
    self.core.destroy_actor(actor(actor_id))
  }

  /// Destroys the actor of `(endpoint, key)`, in memory or only in storage.
  #[napi(catch_unwind)]
  pub fn destroy_actor_by_key(&self, endpoint: u32, key: String) -> bool {
    self.core.destroy_actor_by_key(definition(endpoint), &key)
  }

  /// Schedules `event` (with `dataJson`) for the actor of `(endpoint, key)` at `atMs` (epoch
  /// milliseconds); returns the schedule's id. Stored: it survives restarts.
  #[napi(catch_unwind)]
  pub fn schedule_add(
    &self,
    endpoint: u32,
    key: String,
    at_ms: f64,
    event: String,
    data_json: String,
  ) -> Result<String, String> {
    checked_json(&data_json, "schedule data")?;
    self
      .core
      .add_schedule(definition(endpoint), &key, at_ms, event, data_json)
      .map_err(js_error)
  }

  /// Cancels a schedule; false when it already fired or never existed.
  #[napi(catch_unwind)]
  pub fn schedule_cancel(&self, id: String) -> bool {
    self.core.cancel_schedule(&id)
  }

  /// Pending schedules of an actor as JSON: `[{"id","at","event","data"}]`, soonest first.
  #[napi(catch_unwind)]
  pub fn schedule_list(&self, endpoint: u32, key: String) -> String {
    self.core.schedules_json(definition(endpoint), &key)
  }
}
