//! Schedules in Redis (cluster mode): an actor's schedules live with its other records, so
//! whichever node holds the actor fires them, and one whose actor no node holds still fires.
//!
//! - each schedule's record is `warren:data:<its store key>` like any record of the actor, and
//!   the actor's schedules are indexed by due time in `warren:schedules:<actor>` (a sorted set);
//!   both are written in the actor's fenced commits ([`scripts::WRITE_SCHEDULE_FENCED`]);
//! - the cluster's *alarms* (`warren:alarms`, a sorted set) hold each actor with schedules at
//!   its soonest due time. The owner fires from its own index; every node also looks at the
//!   alarms that are due ([`crate::config::ALARM_POLL`]) and claims the actor of any that no live
//!   node holds, which loads its schedules and fires them there;
//! - a schedule fires once: it is taken out of Redis under the actor's claim
//!   ([`scripts::TAKE_SCHEDULE`]) before JS hears it, and only the one holder of the claim can.

use super::{data_key, redis_error, scripts, Cluster};
use crate::durability::store::{Key, SCHEDULE_PREFIX};
use crate::durability::{Fence, ReplicaWrite};
use crate::error::CoreError;

/// The cluster's alarms: actor directory key by its soonest due time (ms).
pub const ALARMS_KEY: &str = "warren:alarms";

/// The prefix of actor directory keys (see [`super::wire::actor_key`]).
const ACTOR_PREFIX: &str = "warren:actor:";

/// The key of an actor's schedules (sorted set: id by due time), from its directory key.
pub fn schedules_key(actor: &str) -> String {
  format!(
    "warren:schedules:{}",
    actor.strip_prefix(ACTOR_PREFIX).unwrap_or(actor)
  )
}

/// The definition and key an actor directory key names (see [`super::wire::actor_key`]).
pub fn actor_of_key(actor: &str) -> Option<(&str, &str)> {
  let rest = actor.strip_prefix(ACTOR_PREFIX)?;
  let (length, rest) = rest.split_once(':')?;
  let length: usize = length.parse().ok()?;
  let definition = rest.get(..length)?;
  let key = rest.get(length..)?.strip_prefix(':')?;
  Some((definition, key))
}

/// The schedule id a store key names, when it is a schedule's record.
pub fn schedule_id(key: &[u8]) -> Option<&str> {
  std::str::from_utf8(key.strip_prefix(SCHEDULE_PREFIX)?).ok()
}

/// Adds the write of a schedule's record to a commit pipeline.
pub(super) fn push_schedule_write(
  pipe: &mut redis::Pipeline,
  script: &redis::Script,
  node: &str,
  id: &str,
  write: &ReplicaWrite,
) {
  let (op, value, at) = match &write.value {
    Some(value) => {
      let at = serde_json::from_slice::<serde_json::Value>(value)
        .ok()
        .and_then(|stored| stored.get("at").and_then(serde_json::Value::as_u64))
        .unwrap_or(0);
      ("set", value.as_slice(), at)
    }
    None => ("del", &[][..], 0),
  };
  pipe
    .cmd("EVALSHA")
    .arg(script.get_hash())
    .arg(4)
    .arg(data_key(&write.key))
    .arg(&write.fence.actor)
    .arg(schedules_key(&write.fence.actor))
    .arg(ALARMS_KEY)
    .arg(node)
    .arg(write.fence.token)
    .arg(op)
    .arg(value)
    .arg(id)
    .arg(at)
    .ignore();
}

impl Cluster {
  /// The stored schedules of an actor this node holds: `(id, record)`, soonest first.
  pub async fn schedules_of(&self, actor: &str) -> Result<Vec<(String, Vec<u8>)>, CoreError> {
    let mut commands = self.commands();
    let ids: Vec<String> = redis::cmd("ZRANGE")
      .arg(schedules_key(actor))
      .arg(0)
      .arg(-1)
      .query_async(&mut commands)
      .await
      .map_err(|e| redis_error("cannot read the actor's schedules", e))?;
    if ids.is_empty() {
      return Ok(Vec::new());
    }
    let mut read = redis::cmd("MGET");
    for id in &ids {
      read.arg(data_key(&Key::Schedule { id }.encode()));
    }
    let records: Vec<Option<Vec<u8>>> = read
      .query_async(&mut commands)
      .await
      .map_err(|e| redis_error("cannot read the actor's schedules", e))?;
    Ok(
      ids
        .into_iter()
        .zip(records)
        .filter_map(|(id, record)| Some((id, record?)))
        .collect(),
    )
  }

  /// Takes a due schedule out of Redis under `fence`: true when this call took it (fire it),
  /// false when it was already gone; an error when the claim is no longer this node's.
  pub async fn take_schedule(&self, fence: &Fence, id: &str) -> Result<bool, CoreError> {
    let mut commands = self.commands();
    let taken: i64 = redis::Script::new(scripts::TAKE_SCHEDULE)
      .key(data_key(&Key::Schedule { id }.encode()))
      .key(&fence.actor)
      .key(schedules_key(&fence.actor))
      .key(ALARMS_KEY)
      .arg(&*self.node)
      .arg(fence.token)
      .arg(id)
      .invoke_async(&mut commands)
      .await
      .map_err(|e| redis_error("cannot take a due schedule", e))?;
    Ok(taken == 1)
  }

  /// Directory keys of actors with a schedule due at `now_ms`, soonest first (at most `limit`).
  pub async fn due_alarms(&self, now_ms: u64, limit: usize) -> Result<Vec<String>, CoreError> {
    let mut commands = self.commands();
    redis::cmd("ZRANGE")
      .arg(ALARMS_KEY)
      .arg("-inf")
      .arg(now_ms)
      .arg("BYSCORE")
      .arg("LIMIT")
      .arg(0)
      .arg(limit)
      .query_async(&mut commands)
      .await
      .map_err(|e| redis_error("cannot read the due alarms", e))
  }
}

#[cfg(test)]
mod tests {
  use super::*;
  use crate::cluster::wire::actor_key;

  #[test]
  fn actor_keys_read_back_whatever_their_names_hold() {
    let key = actor_key("User:Connection", "ann:1");
    assert_eq!(actor_of_key(&key), Some(("User:Connection", "ann:1")));
    assert_eq!(schedules_key(&key), "warren:schedules:15:User:Connection:ann:1");
    assert_eq!(actor_of_key("warren:actor:99:x:y"), None);
    assert_eq!(actor_of_key("elsewhere"), None);
    assert_eq!(schedule_id(&Key::Schedule { id: "abc" }.encode()), Some("abc"));
    assert_eq!(schedule_id(b"a\0x\0y"), None);
  }
}
