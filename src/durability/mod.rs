//! Durability: the store (the only place that names sled), the output gate that holds frames
//! until the state they follow is on disk, and the records kept beside JS state.
//!
//! [`Storage`] owns the store until the server is released and the gate in front of it; the
//! core asks it to read, commit and wipe, and never touches sled itself.

pub mod gate;
pub mod records;
pub mod store;

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use crate::config::ServerConfig;
use crate::error::StoreError;
use gate::OutputGate;
use records::StateOf;
use store::{Key, Record, Store, Write};

/// Longest wait in [`Storage::release`] for other holders of the store to drop it.
const STORE_RELEASE_WAIT: Duration = Duration::from_secs(5);

pub struct Storage {
  /// The store until the server is released; taking it out closes the database (and frees
  /// the directory for another owner) once in-flight flushes end.
  store: Mutex<Option<Arc<Store>>>,
  gate: OutputGate,
}

impl Storage {
  /// Opens the store of `config` (a clear error when another server owns the directory).
  pub fn open(config: &ServerConfig) -> Result<Self, StoreError> {
    let store = Store::open(&config.storage)?;
    Ok(Self {
      store: Mutex::new(Some(Arc::new(store))),
      gate: OutputGate::new(config.durability, !config.resume_window.is_zero()),
    })
  }

  pub fn gate(&self) -> &OutputGate {
    &self.gate
  }

  /// The store, until the server is released.
  pub fn store(&self) -> Option<Arc<Store>> {
    self.store.lock().clone()
  }

  fn open_store(&self) -> Result<Arc<Store>, StoreError> {
    self.store().ok_or(StoreError::Closed)
  }

  /// Flushes the store whenever a commit asks for it, until it is released.
  pub async fn run_flusher(&self, report: impl Fn(&StoreError)) {
    self.gate.run_flusher(|| self.store(), report).await;
  }

  /// Reads a stored state (bytes of the JS codec), if any.
  pub fn load_state(&self, of: StateOf<'_>) -> Result<Option<Vec<u8>>, StoreError> {
    self.open_store()?.get(&of.key())
  }

  /// Reads any record.
  pub fn get(&self, key: &Key<'_>) -> Result<Option<Vec<u8>>, StoreError> {
    self.open_store()?.get(key)
  }

  /// Every record under a key prefix (start-up loading).
  pub fn scan(&self, prefix: &[u8]) -> Result<Vec<Record>, StoreError> {
    self.open_store()?.scan(prefix)
  }

  /// Applies state writes from JS (one batch per tick across all actors and rooms) and asks
  /// for a flush; frames held behind these changes leave once it is done.
  pub fn commit_state(&self, writes: Vec<(StateOf<'_>, Option<Vec<u8>>)>) -> Result<(), StoreError> {
    let writes: Vec<Write> = writes
      .into_iter()
      .map(|(of, value)| (of.key().encode(), value))
      .collect();
    self.write(writes)
  }

  /// Applies writes outside the JS state path (room lists, schedules, wipes): visible at once,
  /// flushed with the next group commit.
  pub fn write(&self, writes: Vec<Write>) -> Result<(), StoreError> {
    self.gate.commit(&*self.open_store()?, writes)
  }

  /// Flushes and closes the store; later storage calls fail with [`StoreError::Closed`].
  /// Returns once the database is closed (its directory free for another server), waiting a
  /// bounded time for a flush in progress on another thread to let go of it.
  pub fn release(&self) -> Result<(), StoreError> {
    let store = self.store.lock().take();
    self.gate.stop();
    let Some(store) = store else {
      return Ok(());
    };
    let flushed = store.flush_now();
    let closed = Arc::downgrade(&store);
    drop(store);
    let deadline = std::time::Instant::now() + STORE_RELEASE_WAIT;
    while closed.strong_count() > 0 && std::time::Instant::now() < deadline {
      std::thread::sleep(Duration::from_millis(1));
    }
    flushed
  }
}
