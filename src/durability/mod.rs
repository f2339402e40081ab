//! Durability: the store (the only place that names sled), the output gate that holds frames
//! until the state they follow is on disk, and the records kept beside JS state.
//!
//! [`Storage`] owns the store until the server is released and the gate in front of it; the
//! core asks it to read, commit and wipe, and never touches sled itself.
//!
//! In cluster mode the actors' records are also written through to a [`Replica`] (Redis): each
//! write carries the fencing token of its actor's claim, the group commit waits for the replica
//! as well as for the disk, and a refused write (the actor has another owner now) never lets the
//! frames behind it out. sled then is this node's cache of what the replica holds.

pub mod gate;
pub mod records;
mod replica_writes;
pub mod store;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use parking_lot::Mutex;

use crate::config::{Location, ServerConfig};
use crate::error::StoreError;
use crate::events::Level;
use crate::metrics::Metrics;
use gate::OutputGate;
use records::StateOf;
use store::{Key, Record, Store, Write};

/// The claim an actor's record is written under: its directory key and fencing token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fence {
  pub actor: String,
  pub token: u64,
}

/// A write for the replica: the record's store key, its value (`None` deletes it), and the
/// claim it must be written under.
#[derive(Clone, Debug)]
pub struct ReplicaWrite {
  pub key: Vec<u8>,
  pub value: Option<Vec<u8>>,
  pub fence: Fence,
  /// Give the actor's claim up once this is written (its last write: it was destroyed).
  pub release: bool,
}

/// Why the replica did not take a batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReplicaError {
  /// It refused the writes: another node owns their actor now (the writer was fenced). The
  /// frames behind them must never leave, and their sessions belong to the new owner.
  Fenced(String),
  /// It could not be reached or did not answer in time: the writes may or may not be there.
  /// Nothing behind them is acknowledged; a later write carries the whole record again.
  Unreachable(String),
}

impl std::fmt::Display for ReplicaError {
  fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
    match self {
      ReplicaError::Fenced(why) => write!(f, "writes refused (fenced): {why}"),
      ReplicaError::Unreachable(why) => write!(f, "writes not stored (replica unreachable): {why}"),
    }
  }
}

/// Where actors' records are written through to (cluster mode: Redis).
pub trait Replica: Send + Sync + 'static {
  /// Writes a batch, in order; resolves once it is durable there, or with why it was not.
  fn commit<'a>(
    &'a self,
    writes: &'a [ReplicaWrite],
  ) -> Pin<Box<dyn Future<Output = Result<(), ReplicaError>> + Send + 'a>>;

  /// Gives up the claim of `actor` (its directory key), once its last writes are in.
  fn release(&self, actor: &str);
}

/// What storage calls answer while a failed store is being reopened.
const RECOVERING: &str = "the store is recovering from a failure (is the disk full?)";

/// What commits answer while the node does not hold its cluster lease.
const FENCED: &str = "this node lost its cluster lease: nothing is committed until it holds it again";

/// Wait between attempts to reopen a failed store.
const REOPEN_RETRY: Duration = Duration::from_millis(250);

/// Longest wait in [`Storage::release`] for other holders of the store to drop it.
const STORE_RELEASE_WAIT: Duration = Duration::from_secs(5);

pub struct Storage {
  /// The store until the server is released; taking it out closes the database (and frees
  /// the directory for another owner) once in-flight flushes end.
  store: Mutex<Option<Arc<Store>>>,
  /// Where the store lives (to reopen it after a failure).
  location: Location,
  gate: OutputGate,
  /// Cluster mode: where actors' records are written through to.
  replica: OnceLock<Arc<dyn Replica>>,
  /// Set when the store failed a write or a flush (a full disk). sled does not recover from
  /// that in place, so commits are refused until the flusher has reopened the store.
  broken: AtomicBool,
  /// Set once the server releases its storage: the flusher stops.
  released: AtomicBool,
  /// Set while the node does not hold its cluster lease: no commit may be made for it.
  fenced: AtomicBool,
}

impl Storage {
  /// Opens the store of `config` (a clear error when another server owns the directory).
  pub fn open(config: &ServerConfig, metrics: Arc<Metrics>) -> Result<Self, StoreError> {
    let store = Store::open(&config.storage)?;
    Ok(Self {
      store: Mutex::new(Some(Arc::new(store))),
      location: config.storage.clone(),
      gate: OutputGate::new(config.durability, !config.resume_window.is_zero(), metrics),
      replica: OnceLock::new(),
      broken: AtomicBool::new(false),
      released: AtomicBool::new(false),
      fenced: AtomicBool::new(false),
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

  /// Applies a batch through the gate; a store that fails it is marked for reopening.
  fn commit(&self, writes: Vec<Write>, replicated: Vec<ReplicaWrite>) -> Result<(), StoreError> {
    let usable = if self.fenced.load(Ordering::Acquire) {
      Err(StoreError::Io(FENCED.into()))
    } else if self.broken.load(Ordering::Acquire) {
      Err(StoreError::Io(RECOVERING.into()))
    } else {
      self.open_store()
    };
    let store = match usable {
      Ok(store) => store,
      Err(error) => {
        // Nothing can be stored now: what waited for these changes must not leave.
        self.gate.refuse_pending();
        return Err(error);
      }
    };
    let committed = self.gate.commit(&store, writes, replicated);
    // A batch refused for want of room never reached sled; any other failure may have left it
    // unusable until reopened.
    if matches!(committed, Err(ref error) if !matches!(error, StoreError::Full(_))) {
      self.broken.store(true, Ordering::Release);
      self.gate.stop();
    }
    committed
  }

  /// Refuses every commit while `fenced` (the node lost its cluster lease).
  pub fn fence(&self, fenced: bool) {
    self.fenced.store(fenced, Ordering::Release);
    if fenced {
      self.gate.refuse_pending();
    }
  }

  /// Writes actors' records through to `replica` from now on (cluster mode; set once).
  pub fn set_replica(&self, replica: Arc<dyn Replica>) {
    let _ = self.replica.set(replica);
  }

  /// Whether actors' records are written through to a replica.
  pub fn replicated(&self) -> bool {
    self.replica.get().is_some()
  }

  /// Cluster mode: whether giving the claim of `actor` (its directory key) up must wait until
  /// its writes are in the replica (which then gives it up); false: give it up now.
  pub fn release_after_writes(&self, actor: &str) -> bool {
    self.replicated() && self.gate.release_after_writes(actor)
  }

  /// Flushes the store whenever a commit asks for it, until it is released.
  pub async fn run_flusher(&self, report: impl Fn(Level, &str)) {
    let failed = |error: &StoreError| report(Level::Error, &format!("storage flush failed: {error}"));
    loop {
      if self.released.load(Ordering::Acquire) {
        self.gate.release_all();
        return;
      }
      if self.broken.load(Ordering::Acquire) {
        match self.reopen() {
          Ok(()) => {
            self.broken.store(false, Ordering::Release);
            report(
              Level::Warn,
              "the store was reopened after a failure: commits go on",
            );
          }
          Err(error) => {
            failed(&error);
            tokio::time::sleep(REOPEN_RETRY).await;
          }
        }
        continue;
      }
      self.gate.next_round().await;
      let Some(store) = self.store() else {
        continue;
      };
      if self.broken.load(Ordering::Acquire) {
        continue;
      }
      if !self.gate.flush_round(&store, self.replica.get(), &failed).await {
        self.broken.store(true, Ordering::Release);
      }
    }
  }

  /// Closes the failed store and opens its directory again (sled recovers from its log what was
  /// flushed). The old handle is let go on a thread of its own: a store wedged by a failure may
  /// block while it closes.
  fn reopen(&self) -> Result<(), StoreError> {
    if let Some(old) = self.store.lock().take() {
      std::thread::spawn(move || drop(old));
    }
    // Until the old handle lets its directory go this fails (locked): the flusher tries again.
    let store = Store::open(&self.location)?;
    *self.store.lock() = Some(Arc::new(store));
    Ok(())
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
  /// for a flush; frames held behind these changes leave once it is done. `fence` names the
  /// claim of an actor's record (cluster mode): those are written through to the replica.
  pub fn commit_state(
    &self,
    writes: Vec<(StateOf<'_>, Option<Vec<u8>>)>,
    fence: impl Fn(StateOf<'_>) -> Option<Fence>,
  ) -> Result<(), StoreError> {
    let mut replicated = Vec::new();
    let writes: Vec<Write> = writes
      .into_iter()
      .map(|(of, value)| {
        let key = of.key().encode();
        if let Some(fence) = self.replica.get().and_then(|_| fence(of)) {
          replicated.push(ReplicaWrite {
            key: key.clone(),
            value: value.clone(),
            fence,
            release: false,
          });
        }
        (key, value)
      })
      .collect();
    self.commit(writes, replicated)
  }

  /// Applies writes outside the JS state path (room lists, schedules, wipes): visible at once,
  /// flushed with the next group commit.
  pub fn write(&self, writes: Vec<Write>) -> Result<(), StoreError> {
    self.commit(writes, Vec::new())
  }

  /// [`Storage::write`] for an actor's records: written through to the replica under `fence`
  /// (when there is one), the claim given up after the last when `release`.
  pub fn write_actor(
    &self,
    writes: Vec<Write>,
    fence: Option<Fence>,
    release: bool,
  ) -> Result<(), StoreError> {
    let replicated = match fence.filter(|_| self.replicated()) {
      Some(fence) => {
        let last = writes.len().saturating_sub(1);
        writes
          .iter()
          .enumerate()
          .map(|(i, (key, value))| ReplicaWrite {
            key: key.clone(),
            value: value.clone(),
            fence: fence.clone(),
            release: release && i == last,
          })
          .collect()
      }
      None => Vec::new(),
    };
    self.commit(writes, replicated)
  }

  /// Puts what the replica holds into this node's store (a claimed actor's records), without
  /// writing it back.
  pub fn cache(&self, writes: Vec<Write>) -> Result<(), StoreError> {
    self.open_store()?.apply(writes)
  }

  /// Flushes and closes the store; later storage calls fail with [`StoreError::Closed`].
  /// Returns once the database is closed (its directory free for another server), waiting a
  /// bounded time for a flush in progress on another thread to let go of it.
  pub fn release(&self) -> Result<(), StoreError> {
    self.released.store(true, Ordering::Release);
    let store = self.store.lock().take();
    self.gate.stop();
    let Some(store) = store else {
      return Ok(());
    };
    let flushed = store.seal();
    let closed = Arc::downgrade(&store);
    drop(store);
    let deadline = std::time::Instant::now() + STORE_RELEASE_WAIT;
    while closed.strong_count() > 0 && std::time::Instant::now() < deadline {
      std::thread::sleep(Duration::from_millis(1));
    }
    flushed
  }
}
