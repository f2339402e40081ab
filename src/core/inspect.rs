//! The core's side of the inspector: what it records (client frames of each actor, states JS
//! shows) and the JSON views its API serves. Without `inspector: true` nothing is recorded and
//! a frame costs one branch here.

use serde_json::{json, Value};

use super::Core;
use crate::ids::{DefinitionId, SessionId};
use crate::protocol::ClientFrame;
use crate::registry::ActorView;

impl Core {
  /// The definition named `kind`.
  pub(super) fn definition_of_kind(&self, kind: &str) -> Option<DefinitionId> {
    self
      .config
      .definitions
      .iter()
      .position(|definition| definition.name == kind)
      .map(DefinitionId)
  }

  /// Journals an event or call frame of a session this node holds.
  pub(super) fn record_frame(&self, session: SessionId, frame: &ClientFrame<'_>) {
    let Some(inspector) = &self.inspector else {
      return;
    };
    let (kind, name, data) = match *frame {
      ClientFrame::Event { kind, data } => ("event", kind, data),
      ClientFrame::Call { event, data, .. } => ("call", event, data),
      ClientFrame::Ping { .. } => return,
    };
    if let Some((definition, key)) = self.registry.owner_of(session) {
      let data = data.unwrap_or("null");
      inspector.record(definition, key, kind, name, data);
    }
  }

  /// JS shows the state (JSON) of the actor `key` of definition `kind`: kept for the inspector
  /// and journalled. False without the inspector or for an unknown kind.
  pub fn show_state_named(&self, kind: &str, key: &str, state_json: &str) -> bool {
    let (Some(inspector), Some(definition)) = (&self.inspector, self.definition_of_kind(kind)) else {
      return false;
    };
    inspector.set_state(definition, key, state_json);
    inspector.record(definition, key.into(), "state", "", state_json);
    true
  }

  /// Whether the server keeps what the inspector shows (JS renders states only then).
  pub fn inspects(&self) -> bool {
    self.inspector.is_some()
  }

  pub(super) fn forget_inspected(&self, definition: DefinitionId, key: &str) {
    if let Some(inspector) = &self.inspector {
      inspector.forget(definition, key);
    }
  }

  fn actor_value(&self, actor: &ActorView) -> Value {
    json!({
      "kind": self.definition_name(actor.definition),
      "key": &*actor.key,
      "hibernated": actor.hibernated,
      "sessions": actor.sessions.iter().map(|s| s.get()).collect::<Vec<_>>(),
      "rooms": actor.rooms.iter().map(|r| &**r).collect::<Vec<_>>(),
    })
  }

  /// Actors, sessions and rooms in memory, with the counts (`GET /_warren/api/actors`).
  pub(super) fn overview_json(&self) -> String {
    let overview = self.registry.overview();
    let counts = self.registry.counts();
    json!({
      "node": self.cluster.as_ref().map(|cluster| cluster.node().to_string()),
      "counts": {
        "sessions": counts.sessions,
        "actorsAwake": counts.actors.saturating_sub(counts.hibernated),
        "actorsHibernated": counts.hibernated,
        "rooms": counts.rooms,
        "actors": overview.total_actors,
      },
      "actors": overview.actors.iter().map(|actor| self.actor_value(actor)).collect::<Vec<_>>(),
      "rooms": overview.rooms.iter().map(|room| json!({
        "name": &*room.name,
        "hibernated": room.hibernated,
        "members": room.members.iter().map(|m| &**m).collect::<Vec<_>>(),
      })).collect::<Vec<_>>(),
      "listedActors": overview.actors.len(),
      "listedRooms": overview.rooms.len(),
      "totalRooms": overview.total_rooms,
    })
    .to_string()
  }

  /// One actor: whether it is in memory, its sessions and rooms, the state JS last showed and
  /// its recent events (`GET /_warren/api/actor?kind=&key=`). `None` for an unknown kind.
  pub(super) fn actor_json(&self, kind: &str, key: &str) -> Option<String> {
    let definition = self.definition_of_kind(kind)?;
    let view = self.registry.actor_view(definition, key);
    let inspector = self.inspector.as_ref();
    let state = inspector
      .and_then(|inspector| inspector.state_of(definition, key))
      .and_then(|state| serde_json::from_str::<Value>(&state).ok())
      .unwrap_or(Value::Null);
    let events: Vec<Value> = inspector
      .map(|inspector| inspector.events_of(definition, key))
      .unwrap_or_default()
      .into_iter()
      .map(|event| {
        json!({
          "seq": event.seq,
          "at": event.at_ms,
          "kind": event.kind,
          "name": serde_json::from_str::<String>(&event.name).unwrap_or(event.name),
          "data": event.data,
          "truncated": event.truncated,
        })
      })
      .collect();
    let mut value = match &view {
      Some(actor) => self.actor_value(actor),
      None => json!({ "kind": kind, "key": key, "hibernated": false, "sessions": [], "rooms": [] }),
    };
    if let Value::Object(fields) = &mut value {
      fields.insert("inMemory".into(), Value::Bool(view.is_some()));
      fields.insert("state".into(), state);
      fields.insert("events".into(), Value::Array(events));
    }
    Some(value.to_string())
  }
}
