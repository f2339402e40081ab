//! Rooms placed on one node (cluster mode): a room is claimed like an actor, in the same
//! directory with a fencing token ([`super::scripts::CLAIM_ACTOR`]), under its own key. Its
//! owner runs the room's hooks, holds its state (written through under the claim) and its whole
//! membership, and answers `members()`; the other nodes send it their members' joins and
//! leaves. Fan-out does not go through the owner: each node still sends a room's messages to
//! its own members' sessions.

use super::{data_key, redis_error, scripts, Cluster, Placement};
use crate::durability::store::Key;
use crate::durability::Fence;
use crate::error::CoreError;

/// The directory key of a room (who owns it, and its fencing token).
pub fn room_owner_key(room: &str) -> String {
  format!("warren:roomowner:{room}")
}

impl Cluster {
  /// Where the room `room` of handler `handler` lives: claimed for this node unless a live node
  /// holds it. Here, its records are its state as Redis holds it.
  pub async fn claim_room(&self, handler: &str, room: &str) -> Result<Placement, CoreError> {
    let mut commands = self.commands();
    let state = Key::RoomState { handler, room }.encode();
    let directory = room_owner_key(room);
    let (owner, token, value, _): (String, u64, Option<Vec<u8>>, Option<Vec<u8>>) =
      redis::Script::new(scripts::CLAIM_ACTOR)
        .key(&directory)
        .key(data_key(&state))
        .key(data_key(&state))
        .arg(&*self.node)
        .arg(super::wire::NODE_KEY_PREFIX)
        .invoke_async(&mut commands)
        .await
        .map_err(|e| redis_error("cannot place the room", e))?;
    if owner != *self.node {
      return Ok(Placement::Elsewhere {
        owner: std::sync::Arc::from(owner),
      });
    }
    Ok(Placement::Here {
      fence: Fence {
        actor: directory,
        token,
      },
      records: vec![(state, value)],
    })
  }

  /// Gives up this node's claim on a room that left memory, and returns once Redis did (so a
  /// claim made after it cannot be undone by it).
  pub async fn release_room(&self, room: &str) -> Result<(), CoreError> {
    let mut commands = self.commands();
    let _: i64 = redis::Script::new(scripts::RELEASE_ACTOR)
      .key(room_owner_key(room))
      .arg(&*self.node)
      .invoke_async(&mut commands)
      .await
      .map_err(|e| redis_error("cannot give the room up", e))?;
    Ok(())
  }
}
