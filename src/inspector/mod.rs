//! The inspector's memory: a bounded journal of recent actor events, the last state JS showed of
//! each actor, and the page itself (static HTML and JS embedded in the binary).
//!
//! Nothing here exists unless the server runs with `inspector: true`: the core records into an
//! [`Inspector`] only then, so a server without it pays one branch per frame.
//!
//! Bounds: the journal keeps the last [`MAX_INSPECTOR_EVENTS`] events of all actors, each with
//! at most [`MAX_INSPECTOR_EVENT_DATA_BYTES`] of its data; at most [`MAX_INSPECTED`] actors'
//! states are kept (the oldest shown goes first), each at most [`MAX_INSPECTED_STATE_BYTES`].
//! State is JSON rendered by JS (stored state is V8-serialized: only JS can read it), pushed
//! when it is committed or loaded.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;

use crate::config::{
  MAX_INSPECTED, MAX_INSPECTED_STATE_BYTES, MAX_INSPECTOR_EVENTS, MAX_INSPECTOR_EVENT_DATA_BYTES,
};
use crate::ids::DefinitionId;

/// The page served at `/_warren/inspector`.
pub const PAGE_HTML: &str = include_str!("page.html");
/// Its script, served at `/_warren/inspector.js` (a separate file, so the page's CSP can forbid
/// inline scripts).
pub const PAGE_JS: &str = include_str!("page.js");

/// One journal entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recorded {
  /// Increases by one per entry: the page asks for entries after the last it has.
  pub seq: u64,
  pub at_ms: u64,
  pub definition: DefinitionId,
  pub key: Arc<str>,
  /// `event`, `call` or `state`.
  pub kind: &'static str,
  /// The event or call name (raw JSON string), empty for `state`.
  pub name: String,
  /// The frame's data (raw JSON, cut at the byte limit, then not valid JSON: `truncated` says).
  pub data: String,
  pub truncated: bool,
}

#[derive(Default)]
struct Journal {
  entries: VecDeque<Recorded>,
  next_seq: u64,
}

#[derive(Default)]
struct States {
  by_actor: HashMap<(DefinitionId, Arc<str>), Arc<str>>,
  /// Insertion order, for evicting the oldest past [`MAX_INSPECTED`].
  order: VecDeque<(DefinitionId, Arc<str>)>,
}

#[derive(Default)]
pub struct Inspector {
  journal: Mutex<Journal>,
  states: Mutex<States>,
}

/// `text` cut to at most `limit` bytes on a character boundary, and whether it was cut.
fn cut(text: &str, limit: usize) -> (String, bool) {
  if text.len() <= limit {
    return (text.to_string(), false);
  }
  let mut end = limit;
  while !text.is_char_boundary(end) {
    end -= 1;
  }
  (text.get(..end).unwrap_or("").to_string(), true)
}

impl Inspector {
  /// Appends an event of an actor to the journal (dropping the oldest past the bound).
  pub fn record(&self, definition: DefinitionId, key: Arc<str>, kind: &'static str, name: &str, data: &str) {
    let (name, _) = cut(name, MAX_INSPECTOR_EVENT_DATA_BYTES);
    let (data, truncated) = cut(data, MAX_INSPECTOR_EVENT_DATA_BYTES);
    let at_ms = SystemTime::now()
      .duration_since(UNIX_EPOCH)
      .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    let mut journal = self.journal.lock();
    journal.next_seq += 1;
    let seq = journal.next_seq;
    if journal.entries.len() >= MAX_INSPECTOR_EVENTS {
      journal.entries.pop_front();
    }
    journal.entries.push_back(Recorded {
      seq,
      at_ms,
      definition,
      key,
      kind,
      name,
      data,
      truncated,
    });
  }

  /// The journal entries of one actor, oldest first.
  pub fn events_of(&self, definition: DefinitionId, key: &str) -> Vec<Recorded> {
    self
      .journal
      .lock()
      .entries
      .iter()
      .filter(|entry| entry.definition == definition && &*entry.key == key)
      .cloned()
      .collect()
  }

  /// JS shows the state of an actor (JSON). A state past the byte bound is replaced by a note.
  pub fn set_state(&self, definition: DefinitionId, key: &str, state_json: &str) {
    let shown: Arc<str> = if state_json.len() > MAX_INSPECTED_STATE_BYTES {
      Arc::from(format!(
        "{{\"$inspector\":\"state of {} bytes, over the {MAX_INSPECTED_STATE_BYTES}-byte limit\"}}",
        state_json.len()
      ))
    } else {
      Arc::from(state_json)
    };
    let id = (definition, Arc::<str>::from(key));
    let mut states = self.states.lock();
    if states.by_actor.insert(id.clone(), shown).is_none() {
      states.order.push_back(id);
      while states.order.len() > MAX_INSPECTED {
        if let Some(oldest) = states.order.pop_front() {
          states.by_actor.remove(&oldest);
        }
      }
    }
  }

  pub fn state_of(&self, definition: DefinitionId, key: &str) -> Option<Arc<str>> {
    let id = (definition, Arc::<str>::from(key));
    self.states.lock().by_actor.get(&id).cloned()
  }

  /// Forgets an actor's state (it was destroyed).
  pub fn forget(&self, definition: DefinitionId, key: &str) {
    let id = (definition, Arc::<str>::from(key));
    let mut states = self.states.lock();
    if states.by_actor.remove(&id).is_some() {
      states.order.retain(|kept| kept != &id);
    }
  }
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn the_journal_keeps_the_last_events_and_cuts_long_data() {
    let inspector = Inspector::default();
    let key: Arc<str> = Arc::from("ann");
    for i in 0..MAX_INSPECTOR_EVENTS + 5 {
      inspector.record(DefinitionId(0), key.clone(), "event", "\"tick\"", &i.to_string());
    }
    let events = inspector.events_of(DefinitionId(0), "ann");
    assert_eq!(events.len(), MAX_INSPECTOR_EVENTS);
    assert_eq!(events.first().map(|e| e.data.as_str()), Some("5"));
    let long = "é".repeat(MAX_INSPECTOR_EVENT_DATA_BYTES);
    inspector.record(DefinitionId(1), key, "call", "\"x\"", &long);
    let cut = inspector.events_of(DefinitionId(1), "ann");
    assert!(cut
      .first()
      .is_some_and(|e| e.truncated && e.data.len() <= MAX_INSPECTOR_EVENT_DATA_BYTES));
  }

  #[test]
  fn states_are_bounded_and_forgotten() {
    let inspector = Inspector::default();
    for i in 0..MAX_INSPECTED + 1 {
      inspector.set_state(DefinitionId(0), &i.to_string(), "{}");
    }
    assert_eq!(
      inspector.state_of(DefinitionId(0), "0"),
      None,
      "the oldest went first"
    );
    assert!(inspector.state_of(DefinitionId(0), "1").is_some());
    inspector.forget(DefinitionId(0), "1");
    assert_eq!(inspector.state_of(DefinitionId(0), "1"), None);
  }
}
