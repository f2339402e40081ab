//! What the server keeps on disk, and the operations that change it: actor and room state
//! (written by JS, through the output gate), room lists (written here when they change), and
//! destruction (which wipes both).

use std::sync::Arc;

use serde_json::{json, Value};

use crate::error::CloseCode;
use crate::rooms::{Listed, RoomChange};
use crate::schedules::{Schedule, ScheduleError};
use crate::server::Server;
use crate::store::{Key, StoreError, Write, SCHEDULE_PREFIX};

/// Which state a JS write or read is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StateOf<'a> {
  /// A connection actor: its definition's name and its user.
  Actor { definition: &'a str, user: &'a str },
  /// A room: its handler's name and its full name.
  Room { handler: &'a str, room: &'a str },
}

impl<'a> StateOf<'a> {
  fn key(self) -> Key<'a> {
    match self {
      StateOf::Actor { definition, user } => Key::ActorState { definition, user },
      StateOf::Room { handler, room } => Key::RoomState { handler, room },
    }
  }
}

fn closed() -> StoreError {
  StoreError::Io("the server is closed".into())
}

impl Server {
  /// Reads a stored state (bytes of the JS codec), if any.
  pub fn load_state(&self, of: StateOf<'_>) -> Result<Option<Vec<u8>>, StoreError> {
    self.store().ok_or_else(closed)?.get(&of.key())
  }

  /// Applies state writes from JS (one batch per tick across all actors and rooms) and asks
  /// for a flush; frames held behind these changes leave once it is done.
  pub fn commit_state(&self, writes: Vec<(StateOf<'_>, Option<Vec<u8>>)>) -> Result<(), StoreError> {
    let store = self.store().ok_or_else(closed)?;
    let writes: Vec<Write> = writes
      .into_iter()
      .map(|(of, value)| (of.key().encode(), value))
      .collect();
    self.gate.commit(&store, writes)
  }

  /// Stores an actor's room list (after a join, a leave or a metadata change).
  pub fn persist_room_list(&self, actor: u64) {
    let (Some((endpoint, user)), Ok(listed)) =
      (self.registry.identity(actor), self.registry.room_list(actor))
    else {
      return;
    };
    let value = if listed.is_empty() {
      None
    } else {
      let entries: Vec<Value> = listed
        .iter()
        .map(|room| {
          let metadata = serde_json::from_str::<Value>(&room.metadata).unwrap_or_else(|_| json!({}));
          let handler = self
            .config
            .room_handlers
            .get(room.handler)
            .cloned()
            .unwrap_or_default();
          json!({ "room": &*room.name, "handler": handler, "metadata": metadata })
        })
        .collect();
      Some(Value::Array(entries).to_string().into_bytes())
    };
    let key = Key::RoomList {
      definition: &self.config.endpoints[endpoint].name,
      user: &user,
    };
    self.write_now(vec![(key.encode(), value)]);
  }

  /// Loads the stored room list of a freshly created actor and re-joins it.
  pub fn restore_room_list(&self, actor: u64, endpoint: usize, user: &str) -> Vec<RoomChange> {
    let key = Key::RoomList {
      definition: &self.config.endpoints[endpoint].name,
      user,
    };
    let Some(Ok(Some(bytes))) = self.store().map(|store| store.get(&key)) else {
      return Vec::new();
    };
    let Ok(Value::Array(entries)) = serde_json::from_slice::<Value>(&bytes) else {
      return Vec::new();
    };
    let listed: Vec<Listed> = entries
      .iter()
      .filter_map(|entry| {
        let room = entry.get("room")?.as_str()?;
        let handler_name = entry.get("handler")?.as_str()?;
        // A room whose handler is gone from the configuration is dropped from the list.
        let handler = self
          .config
          .room_handlers
          .iter()
          .position(|name| name == handler_name)?;
        let metadata = entry
          .get("metadata")
          .map_or_else(|| "{}".to_string(), Value::to_string);
        Some(Listed {
          name: Arc::from(room),
          handler,
          metadata: Arc::from(metadata),
        })
      })
      .collect();
    self.registry.restore_rooms(actor, listed)
  }

  /// Writes outside the JS state path (room lists, wipes): applied now, flushed with the next
  /// group commit. A failure is reported; the in-memory registry stays authoritative.
  fn write_now(&self, writes: Vec<Write>) {
    let result = match self.store() {
      Some(store) => self.gate.commit(&store, writes),
      None => Err(closed()),
    };
    if let Err(error) = result {
      eprintln!("[warren] {error}");
    }
  }

  /// Destroys an actor: it leaves its rooms, its sessions close with 1000 "Actor destroyed",
  /// its state and room list are wiped, and JS hears `DESTROYED` (after the leaves). Its next
  /// session starts from the defaults. False when the actor is not in memory.
  pub fn destroy_actor(&self, actor: u64) -> bool {
    let Some(destroyed) = self.registry.destroy_actor(actor) else {
      return false;
    };
    self.dispatcher.push_room_changes(&destroyed.left);
    let definition = &self.config.endpoints[destroyed.endpoint].name;
    let user = &*destroyed.key;
    self.write_now(vec![
      (Key::ActorState { definition, user }.encode(), None),
      (Key::RoomList { definition, user }.encode(), None),
    ]);
    self.drop_schedules(destroyed.endpoint, user);
    self.dispatcher.push_destroyed(actor);
    for outbox in destroyed.sessions {
      outbox.request_close(CloseCode::Normal.as_u16(), "Actor destroyed");
    }
    true
  }

  /// Destroys an actor that may not be in memory: its stored state and room list are wiped
  /// either way. Returns whether anything existed.
  pub fn destroy_actor_by_key(&self, endpoint: usize, user: &str) -> bool {
    if let Some(actor) = self.registry.actor_of(endpoint, user) {
      return self.destroy_actor(actor);
    }
    let definition = &self.config.endpoints[endpoint].name;
    let state = Key::ActorState { definition, user };
    let existed = self
      .store()
      .is_some_and(|store| matches!(store.get(&state), Ok(Some(_))));
    self.write_now(vec![
      (state.encode(), None),
      (Key::RoomList { definition, user }.encode(), None),
    ]);
    existed
  }

  /// Destroys a room: its members leave (and drop it from their lists), its state is wiped,
  /// and JS hears `ROOM_DESTROYED` after the leaves. False when the room is not in memory.
  pub fn destroy_room(&self, name: &str) -> bool {
    let Some((room, left, touched)) = self.registry.destroy_room(name) else {
      return false;
    };
    self.dispatcher.push_room_changes(&left);
    for actor in touched {
      self.persist_room_list(actor);
    }
    self.dispatcher.push_room_destroyed(room);
    true
  }

  /// Wipes a room's stored state.
  pub fn wipe_room_state(&self, handler: &str, room: &str) {
    self.write_now(vec![(Key::RoomState { handler, room }.encode(), None)]);
  }
}

impl Server {
  /// Loads every stored schedule (start-up). Schedules of definitions that no longer exist
  /// are left in storage untouched.
  pub fn load_schedules(&self) -> Result<(), StoreError> {
    let store = self.store().ok_or_else(closed)?;
    let endpoint_of = |name: &str| self.config.endpoints.iter().position(|e| e.name == name);
    for (key, value) in store.scan(SCHEDULE_PREFIX)? {
      let Ok(id) = std::str::from_utf8(&key[SCHEDULE_PREFIX.len()..]) else {
        continue;
      };
      if let Some(schedule) = Schedule::from_stored(id, &value, endpoint_of) {
        // Capacity is not enforced for what was already accepted.
        let _ = self.schedules.add(schedule);
      }
    }
    Ok(())
  }

  /// Stores and indexes a schedule; returns its id.
  pub fn add_schedule(
    &self,
    endpoint: usize,
    user: &str,
    at_ms: u64,
    event: String,
    data: String,
  ) -> Result<Arc<str>, ScheduleError> {
    let id: Arc<str> = Arc::from(uuid::Uuid::new_v4().to_string());
    let schedule = Schedule {
      id: id.clone(),
      endpoint,
      user: Arc::from(user),
      at_ms,
      event,
      data,
    };
    let stored = schedule.to_stored(&self.config.endpoints[endpoint].name);
    self.schedules.add(schedule)?;
    self.write_now(vec![(Key::Schedule { id: &id }.encode(), Some(stored))]);
    Ok(id)
  }

  pub fn cancel_schedule(&self, id: &str) -> bool {
    let cancelled = self.schedules.cancel(id).is_some();
    if cancelled {
      self.write_now(vec![(Key::Schedule { id }.encode(), None)]);
    }
    cancelled
  }

  /// Fires due schedules until shutdown: each is removed from storage, its actor found (woken,
  /// or created without sessions) and the event queued for JS.
  pub async fn schedule_loop(self: Arc<Self>) {
    let mut shutdown = self.shutdown_receiver();
    loop {
      let (due, next) = self.schedules.take_due(crate::rooms::now_ms());
      for schedule in due {
        self.write_now(vec![(Key::Schedule { id: &schedule.id }.encode(), None)]);
        let (actor, created) =
          self
            .registry
            .ensure_actor(schedule.endpoint, &schedule.user, &self.dispatcher);
        if created {
          self.restore_room_list(actor, schedule.endpoint, &schedule.user);
        }
        self.dispatcher.push_scheduled(actor, &schedule);
      }
      let wait = next.map(|at| std::time::Duration::from_millis(at.saturating_sub(crate::rooms::now_ms())));
      tokio::select! {
        _ = shutdown.wait_for(|stopping| *stopping) => return,
        _ = self.schedules.changed() => {}
        _ = async {
          match wait {
            Some(wait) => tokio::time::sleep(wait).await,
            None => std::future::pending().await,
          }
        } => {}
      }
    }
  }

  /// Drops an actor's schedules from the index and from storage (destroy).
  fn drop_schedules(&self, endpoint: usize, user: &str) {
    let removed = self.schedules.remove_actor(endpoint, user);
    if !removed.is_empty() {
      self.write_now(
        removed
          .iter()
          .map(|s| (Key::Schedule { id: &s.id }.encode(), None))
          .collect(),
      );
    }
  }
}
