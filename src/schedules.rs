//! Scheduled events: `ctx.schedule.after(ms, event, data)` and `.at(date, ...)`. Each one is
//! stored (so it survives restarts) and indexed here by due time; one timer task fires them in
//! order ([`Schedules::next_due`]). A fired event is removed before it is handed to JS (at most
//! once, no retries, as in Rivet), and it wakes or re-creates its actor when needed. In cluster
//! mode this index holds the schedules of the actors this node holds; they live in Redis (see
//! [`crate::cluster::alarms`]).
//!
//! Bound: [`MAX_SCHEDULES_PER_ACTOR`] pending per actor; adding past it is refused.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use parking_lot::Mutex;
use serde_json::{json, Value};
use tokio::sync::{watch, Notify};

use crate::ids::DefinitionId;
use crate::json::{push_array, push_int, push_string};
use crate::registry::rooms::now_ms;

/// Pending schedules one actor may have.
pub const MAX_SCHEDULES_PER_ACTOR: usize = 1000;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Schedule {
  pub id: Arc<str>,
  pub definition: DefinitionId,
  pub user: Arc<str>,
  pub at_ms: u64,
  pub event: String,
  /// The event's data as JSON text.
  pub data: String,
}

impl Schedule {
  /// The stored form; the definition is stored by name so indexes may change across restarts.
  pub fn to_stored(&self, definition: &str) -> Vec<u8> {
    let data = serde_json::from_str::<Value>(&self.data).unwrap_or(Value::Null);
    json!({ "definition": definition, "user": &*self.user, "at": self.at_ms, "event": self.event, "data": data })
      .to_string()
      .into_bytes()
  }

  /// Reads a stored schedule; `None` when damaged or its definition no longer exists.
  pub fn from_stored(
    id: &str,
    bytes: &[u8],
    definition_of: impl Fn(&str) -> Option<DefinitionId>,
  ) -> Option<Self> {
    let value: Value = serde_json::from_slice(bytes).ok()?;
    Some(Schedule {
      id: Arc::from(id),
      definition: definition_of(value.get("definition")?.as_str()?)?,
      user: Arc::from(value.get("user")?.as_str()?),
      at_ms: value.get("at")?.as_u64()?,
      event: value.get("event")?.as_str()?.to_string(),
      data: value
        .get("data")
        .map_or_else(|| "null".to_string(), Value::to_string),
    })
  }
}

/// Why a schedule was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScheduleError {
  TooMany,
}

#[derive(Default)]
struct Inner {
  /// (due, sequence) → schedule: the firing order.
  by_time: BTreeMap<(u64, u64), Schedule>,
  /// id → its place in `by_time`.
  by_id: HashMap<Arc<str>, (u64, u64)>,
  next_seq: u64,
}

#[derive(Default)]
pub struct Schedules {
  inner: Mutex<Inner>,
  /// Wakes the timer when an earlier schedule arrives.
  changed: Notify,
}

impl Schedules {
  pub fn add(&self, schedule: Schedule) -> Result<(), ScheduleError> {
    let mut inner = self.inner.lock();
    let pending = inner
      .by_time
      .values()
      .filter(|s| s.definition == schedule.definition && s.user == schedule.user)
      .count();
    if pending >= MAX_SCHEDULES_PER_ACTOR {
      return Err(ScheduleError::TooMany);
    }
    inner.next_seq += 1;
    let slot = (schedule.at_ms, inner.next_seq);
    inner.by_id.insert(schedule.id.clone(), slot);
    inner.by_time.insert(slot, schedule);
    drop(inner);
    self.changed.notify_one();
    Ok(())
  }

  pub fn cancel(&self, id: &str) -> Option<Schedule> {
    let mut inner = self.inner.lock();
    let slot = inner.by_id.remove(id)?;
    inner.by_time.remove(&slot)
  }

  /// Pending schedules of an actor, soonest first.
  pub fn of(&self, definition: DefinitionId, user: &str) -> Vec<Schedule> {
    let inner = self.inner.lock();
    inner
      .by_time
      .values()
      .filter(|s| s.definition == definition && &*s.user == user)
      .cloned()
      .collect()
  }

  /// Drops every schedule of an actor (destroy).
  pub fn remove_actor(&self, definition: DefinitionId, user: &str) -> Vec<Schedule> {
    let mut inner = self.inner.lock();
    let gone: Vec<(u64, u64)> = inner
      .by_time
      .iter()
      .filter(|(_, s)| s.definition == definition && &*s.user == user)
      .map(|(slot, _)| *slot)
      .collect();
    let mut removed = Vec::with_capacity(gone.len());
    for slot in gone {
      if let Some(schedule) = inner.by_time.remove(&slot) {
        inner.by_id.remove(&schedule.id);
        removed.push(schedule);
      }
    }
    removed
  }

  /// Removes and returns the schedules due at `now_ms`, and the next due time after them.
  pub fn take_due(&self, now_ms: u64) -> (Vec<Schedule>, Option<u64>) {
    let mut inner = self.inner.lock();
    let mut due = Vec::new();
    while let Some((&slot, _)) = inner.by_time.first_key_value() {
      if slot.0 > now_ms {
        break;
      }
      if let Some(schedule) = inner.by_time.remove(&slot) {
        inner.by_id.remove(&schedule.id);
        due.push(schedule);
      }
    }
    let next = inner.by_time.first_key_value().map(|(slot, _)| slot.0);
    (due, next)
  }

  /// Waits until schedules are due and returns them (removed from the index), in due order;
  /// `None` at shutdown.
  pub async fn next_due(&self, shutdown: &mut watch::Receiver<bool>) -> Option<Vec<Schedule>> {
    loop {
      let (due, next) = self.take_due(now_ms());
      if !due.is_empty() {
        return Some(due);
      }
      let wait = next.map(|at| std::time::Duration::from_millis(at.saturating_sub(now_ms())));
      tokio::select! {
        _ = shutdown.wait_for(|stopping| *stopping) => return None,
        _ = self.changed.notified() => {}
        _ = async {
          match wait {
            Some(wait) => tokio::time::sleep(wait).await,
            None => std::future::pending().await,
          }
        } => {}
      }
    }
  }

  /// Puts back a schedule that was already accepted (loaded from storage): no capacity check,
  /// and one already indexed is left as it is.
  pub fn restore(&self, schedule: Schedule) {
    let mut inner = self.inner.lock();
    if inner.by_id.contains_key(&schedule.id) {
      return;
    }
    inner.next_seq += 1;
    let slot = (schedule.at_ms, inner.next_seq);
    inner.by_id.insert(schedule.id.clone(), slot);
    inner.by_time.insert(slot, schedule);
    drop(inner);
    self.changed.notify_one();
  }
}

/// Pending schedules as JSON for `ctx.schedule.list()`: `[{"id","at","event","data"}]`.
pub fn list_json(schedules: &[Schedule]) -> String {
  let mut out = String::new();
  push_array(&mut out, schedules, |out, schedule| {
    out.push_str(r#"{"id":"#);
    push_string(out, &schedule.id);
    out.push_str(r#","at":"#);
    push_int(out, schedule.at_ms);
    out.push_str(r#","event":"#);
    push_string(out, &schedule.event);
    out.push_str(r#","data":"#);
    out.push_str(&schedule.data);
    out.push('}');
  });
  out
}

#[cfg(test)]
mod tests {
  use super::*;

  fn schedule(id: &str, user: &str, at_ms: u64) -> Schedule {
    Schedule {
      id: Arc::from(id),
      definition: DefinitionId(0),
      user: Arc::from(user),
      at_ms,
      event: "tick".into(),
      data: "{}".into(),
    }
  }

  #[test]
  fn schedules_fire_in_due_order_and_can_be_cancelled() {
    let schedules = Schedules::default();
    schedules.add(schedule("b", "u", 20)).expect("add");
    schedules.add(schedule("a", "u", 10)).expect("add");
    schedules.add(schedule("c", "v", 30)).expect("add");
    assert_eq!(
      schedules
        .of(DefinitionId(0), "u")
        .iter()
        .map(|s| &*s.id)
        .collect::<Vec<_>>(),
      vec!["a", "b"]
    );
    assert!(schedules.cancel("b").is_some());
    let (due, next) = schedules.take_due(25);
    assert_eq!(due.iter().map(|s| &*s.id).collect::<Vec<_>>(), vec!["a"]);
    assert_eq!(next, Some(30));
    // Restoring what is indexed already changes nothing; a new one is indexed past the cap.
    schedules.restore(schedule("c", "v", 30));
    schedules.restore(schedule("d", "v", 40));
    assert_eq!(schedules.of(DefinitionId(0), "v").len(), 2);
    let stored = schedule("c", "v", 30).to_stored("Counter");
    assert_eq!(
      Schedule::from_stored("c", &stored, |name| (name == "Counter")
        .then_some(DefinitionId(0))),
      Some(schedule("c", "v", 30))
    );
  }
}
