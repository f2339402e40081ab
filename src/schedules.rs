//! Scheduled events: `ctx.schedule.after(ms, event, data)` and `.at(date, ...)`. Each one is
//! stored (so it survives restarts) and indexed here by due time; one timer task fires them in
//! order. A fired event is removed before it is handed to JS (at most once, no retries, as in
//! Rivet), and it wakes or re-creates its actor when needed.
//!
//! Bound: [`MAX_SCHEDULES_PER_ACTOR`] pending per actor; adding past it is refused.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use parking_lot::Mutex;
use serde_json::{json, Value};
use tokio::sync::Notify;

/// Pending schedules one actor may have.
pub const MAX_SCHEDULES_PER_ACTOR: usize = 1000;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Schedule {
  pub id: Arc<str>,
  pub endpoint: usize,
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
  pub fn from_stored(id: &str, bytes: &[u8], endpoint_of: impl Fn(&str) -> Option<usize>) -> Option<Self> {
    let value: Value = serde_json::from_slice(bytes).ok()?;
    Some(Schedule {
      id: Arc::from(id),
      endpoint: endpoint_of(value.get("definition")?.as_str()?)?,
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
      .filter(|s| s.endpoint == schedule.endpoint && s.user == schedule.user)
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
  pub fn of(&self, endpoint: usize, user: &str) -> Vec<Schedule> {
    let inner = self.inner.lock();
    inner
      .by_time
      .values()
      .filter(|s| s.endpoint == endpoint && &*s.user == user)
      .cloned()
      .collect()
  }

  /// Drops every schedule of an actor (destroy).
  pub fn remove_actor(&self, endpoint: usize, user: &str) -> Vec<Schedule> {
    let mut inner = self.inner.lock();
    let gone: Vec<(u64, u64)> = inner
      .by_time
      .iter()
      .filter(|(_, s)| s.endpoint == endpoint && &*s.user == user)
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

  pub async fn changed(&self) {
    self.changed.notified().await;
  }
}

#[cfg(test)]
mod tests {
  use super::*;

  fn schedule(id: &str, user: &str, at_ms: u64) -> Schedule {
    Schedule {
      id: Arc::from(id),
      endpoint: 0,
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
      schedules.of(0, "u").iter().map(|s| &*s.id).collect::<Vec<_>>(),
      vec!["a", "b"]
    );
    assert!(schedules.cancel("b").is_some());
    let (due, next) = schedules.take_due(25);
    assert_eq!(due.iter().map(|s| &*s.id).collect::<Vec<_>>(), vec!["a"]);
    assert_eq!(next, Some(30));
    let stored = schedule("c", "v", 30).to_stored("Counter");
    assert_eq!(
      Schedule::from_stored("c", &stored, |name| (name == "Counter").then_some(0)),
      Some(schedule("c", "v", 30))
    );
  }
}
