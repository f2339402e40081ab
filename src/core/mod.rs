//! The core: the one API the bindings call. It owns the registry, the output gate and store
//! ([`Storage`]), call deadlines, schedules and the event queue to JS, and it is the [`Host`]
//! the transport calls up into. Every operation that takes several engine steps (join a room and
//! store the list, answer a call once, destroy and wipe) is one method here, so a behaviour
//! lives in one place.
//!
//! - this file: construction, listening, stats, shutdown and release;
//! - [`sessions`]: the transport's side: upgrades, sessions opening, resuming and ending;
//! - [`messaging`]: frames from JS to sessions, users and rooms; replies; closes;
//! - [`actors`]: rooms, state, hibernation, destruction and schedules as JS drives them;
//! - [`alarms`]: schedules in cluster mode (fired once, by the node that holds the actor);
//! - [`inspect`]: the inspector's views, the journal of recent events, `/metrics`' text;
//! - [`upkeep`]: the timers (idle sweeps, call deadlines, resume windows, schedules, flushes);
//! - [`cluster`]: the core as a node of a cluster (what other nodes publish reaches it here);
//! - [`forwarding`]: sessions whose actor lives on another node, and the other nodes' sessions
//!   of this node's actors;
//! - [`placement`]: rooms placed on one node, whose hooks and membership it holds.

mod actors;
mod alarms;
mod cluster;
mod forwarding;
mod inspect;
mod messaging;
mod placement;
mod sessions;
mod upkeep;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::runtime::Handle;
use tokio::sync::{oneshot, watch};
use tokio::time::Instant;

use crate::calls::PendingCalls;
use crate::cluster::Cluster;
use crate::config::ServerConfig;
use crate::durability::Storage;
use crate::error::{CloseCode, CoreError};
use crate::events::{Event, EventSink, Level, Waker};
use crate::ids::RequestId;
use crate::inspector::Inspector;
use crate::metrics::{Gauges, Metrics};
use crate::registry::Registry;
use crate::schedules::Schedules;
use crate::transport::tls::TlsSlot;
use crate::transport::{adopt, listener, Connections, Identity};

pub use messaging::Frame;

/// The answer of `extractMeta` to an upgrade request.
#[derive(Debug)]
pub enum Decision {
  /// Open the socket for this user with this meta (its attachment).
  Accept(Identity),
  /// Answer with this HTTP status and `{"error": message, "code": code}`.
  Reject {
    status: u16,
    message: String,
    code: Option<String>,
  },
}

/// Counters for tests and benchmarks.
#[derive(Clone, Copy, Debug, Default)]
pub struct Stats {
  pub sessions: usize,
  pub actors: usize,
  pub hibernated: usize,
  pub rooms: usize,
  pub connections: usize,
  pub held_frames: usize,
  /// Bytes of those frames (each counted once).
  pub held_bytes: usize,
  /// Commits and flushes the store refused (a full or failing disk).
  pub storage_failures: u64,
  /// Sessions whose socket dropped, waiting for a resume.
  pub detached: usize,
}

pub struct Core {
  config: ServerConfig,
  events: Arc<EventSink>,
  registry: Registry,
  storage: Storage,
  calls: PendingCalls,
  schedules: Schedules,
  connections: Connections,
  /// Upgrades waiting for `extractMeta`. Dropping a sender answers its client 503.
  pending_upgrades: Mutex<HashMap<RequestId, oneshot::Sender<Decision>>>,
  next_session: AtomicU64,
  next_request: AtomicU64,
  /// Flips to true once, when shutdown begins.
  shutdown: watch::Sender<bool>,
  /// This node's cluster membership, in cluster mode.
  cluster: Option<Arc<Cluster>>,
  /// Sessions forwarded between this node and others (cluster mode).
  forwarding: Mutex<forwarding::Forwarding>,
  /// The fencing token of each actor (and room) this node claimed, by directory key (cluster
  /// mode).
  claims: Mutex<HashMap<String, u64>>,
  /// Where rooms live (cluster mode).
  rooms_placed: placement::RoomPlaces,
  /// Set while this node does not hold its lease (cluster mode): it serves no one.
  fenced: std::sync::atomic::AtomicBool,
  /// This core, for the tasks it starts from `&self` methods (set once it is built).
  itself: std::sync::OnceLock<std::sync::Weak<Core>>,
  /// Where those tasks run (methods may be called from the JS thread, outside the runtime).
  runtime: Handle,
  /// The certificate of the `wss://` listener, when the server has `tls`.
  tls: Option<Arc<TlsSlot>>,
  /// What the server counts about itself (`/metrics`, `stats()`).
  metrics: Arc<Metrics>,
  /// The inspector's journal and shown states, with `inspector: true`.
  inspector: Option<Inspector>,
  /// When JS last took a non-empty batch: its next take ends that batch's handling time.
  batch_taken: Mutex<Option<Instant>>,
}

impl Core {
  /// Validates the configuration, opens the store, loads the schedules and starts the timers on
  /// `runtime`. A configuration with `cluster` needs [`Core::start`].
  pub fn new(config: ServerConfig, runtime: &Handle) -> Result<Arc<Self>, CoreError> {
    if config.cluster.is_some() {
      return Err(CoreError::InvalidOption(
        "a cluster node is started with Core::start".into(),
      ));
    }
    Self::build(config, runtime, None)
  }

  /// [`Core::new`], joining the cluster first when the configuration has one.
  pub async fn start(config: ServerConfig, runtime: &Handle) -> Result<Arc<Self>, CoreError> {
    config.validate().map_err(CoreError::InvalidOption)?;
    let cluster = match &config.cluster {
      Some(cluster) => Some(Arc::new(Cluster::connect(cluster, config.durability).await?)),
      None => None,
    };
    let core = Self::build(config, runtime, cluster.clone())?;
    if let Some(cluster) = &cluster {
      core.storage.set_replica(Arc::new(cluster::Replicas {
        cluster: cluster.clone(),
        core: Arc::downgrade(&core),
      }));
      cluster.start(&core, runtime);
      runtime.spawn(core.clone().watch_peers(cluster.clone()));
      runtime.spawn(core.clone().watch_alarms(cluster.clone()));
      placement::start(&core, cluster, runtime);
    }
    Ok(core)
  }

  fn build(
    config: ServerConfig,
    runtime: &Handle,
    cluster: Option<Arc<Cluster>>,
  ) -> Result<Arc<Self>, CoreError> {
    config.validate().map_err(CoreError::InvalidOption)?;
    let tls = match &config.tls {
      Some(tls) => Some(Arc::new(TlsSlot::new(tls).map_err(CoreError::Tls)?)),
      None => None,
    };
    let metrics = Arc::new(Metrics::default());
    let storage = Storage::open(&config, metrics.clone())?;
    let events = Arc::new(EventSink::new());
    let core = Arc::new(Self {
      registry: Registry::new(events.clone()),
      events,
      storage,
      calls: PendingCalls::new(config.call_timeout),
      schedules: Schedules::default(),
      connections: Connections::default(),
      pending_upgrades: Mutex::new(HashMap::new()),
      next_session: AtomicU64::new(0),
      next_request: AtomicU64::new(0),
      shutdown: watch::channel(false).0,
      cluster,
      forwarding: Mutex::default(),
      claims: Mutex::default(),
      rooms_placed: placement::RoomPlaces::default(),
      fenced: std::sync::atomic::AtomicBool::new(false),
      itself: std::sync::OnceLock::new(),
      runtime: runtime.clone(),
      tls,
      metrics,
      batch_taken: Mutex::new(None),
      inspector: config.inspector.then(Inspector::default),
      config,
    });
    let _ = core.itself.set(Arc::downgrade(&core));
    core.load_schedules()?;
    upkeep::start(&core, runtime);
    Ok(core)
  }

  pub fn config(&self) -> &ServerConfig {
    &self.config
  }

  /// Installs (or removes) the function that wakes the JS thread when events wait.
  pub fn set_waker(&self, waker: Option<Waker>) {
    self.events.set_waker(waker);
  }

  /// Everything queued for JS as one JSON array text, or `None`. JS takes batches until it gets
  /// `None`, so the time between two takes is how long it spent on the first batch.
  pub fn take_events(&self) -> Option<String> {
    self.take_events_with(str::to_owned)
  }

  /// [`Self::take_events`], reading the batch in place with `read` (the bindings make the JS
  /// string from it), so its buffer can be reused.
  pub fn take_events_with<R>(&self, read: impl FnOnce(&str) -> R) -> Option<R> {
    let now = Instant::now();
    let mut taken = self.batch_taken.lock();
    if let Some(previous) = taken.take() {
      self
        .metrics
        .js_batch_seconds
        .observe(now.duration_since(previous));
    }
    let batch = self.events.take_with(read);
    if batch.is_some() {
      *taken = Some(now);
    }
    batch
  }

  /// The server's counters, for tests and for the inspector.
  pub fn metrics(&self) -> &Metrics {
    &self.metrics
  }

  /// The Prometheus text exposition of this server's metrics.
  pub fn metrics_text(&self) -> String {
    let counts = self.registry.counts();
    let gate = self.storage.gate();
    let gauges = Gauges {
      sessions: counts.sessions,
      actors_awake: counts.actors.saturating_sub(counts.hibernated),
      actors_hibernated: counts.hibernated,
      rooms: counts.rooms,
      connections: self.connections.count(),
      detached: counts.waiting,
      held_frames: gate.held(),
      held_bytes: gate.held_bytes(),
      dispatch_queue_bytes: self.events.pending_bytes(),
      flush_failures: gate.failures(),
    };
    self.metrics.render(&gauges, self.cluster.is_some())
  }

  /// Binds and starts accepting (`wss://` when the server has `tls`).
  pub fn listen(self: &Arc<Self>, runtime: &Handle, host: &str, port: u16) -> Result<SocketAddr, CoreError> {
    listener::listen(self, runtime, host, port, self.tls.clone()).map_err(|error| {
      let message = format!("cannot listen on {host}:{port}: {error}");
      match error.kind() {
        std::io::ErrorKind::AddrInUse => CoreError::AddressInUse(message),
        _ => CoreError::Listen(message),
      }
    })
  }

  /// Whether an upgrade request for `target` (path and query) is one of this server's.
  pub fn serves(&self, target: &str) -> bool {
    adopt::serves(&self.config.definitions, target)
  }

  /// Serves the connected TCP socket `fd` of another HTTP server, from its upgrade request
  /// (`read`: the request head and what followed it). The descriptor stays the caller's.
  pub fn adopt(self: &Arc<Self>, runtime: &Handle, fd: i32, read: Vec<u8>) -> Result<(), CoreError> {
    adopt::adopt(self, runtime, fd, read)
      .map_err(|error| CoreError::NotAdoptable(format!("cannot take the socket: {error}")))
  }

  /// Serves a new certificate to the `wss://` handshakes from now on.
  pub fn set_tls(&self, tls: &crate::config::TlsConfig) -> Result<(), CoreError> {
    match &self.tls {
      Some(slot) => slot.replace(tls).map_err(CoreError::Tls),
      None => Err(CoreError::InvalidArgument(
        "setTls: the server was created without tls".into(),
      )),
    }
  }

  pub fn stats(&self) -> Stats {
    let counts = self.registry.counts();
    Stats {
      sessions: counts.sessions,
      actors: counts.actors,
      hibernated: counts.hibernated,
      rooms: counts.rooms,
      connections: self.connections.count(),
      held_frames: self.storage.gate().held(),
      held_bytes: self.storage.gate().held_bytes(),
      storage_failures: self.storage.gate().failures(),
      detached: counts.waiting,
    }
  }

  /// Tells the application's log (through JS) about something it should know.
  fn report(&self, level: Level, message: &str) {
    self.events.push(Event::Log { level, message });
  }

  /// Delivers the decision of `extractMeta`; false when the request is gone (timed out).
  pub fn decide_upgrade(&self, request: RequestId, decision: Decision) -> bool {
    match self.pending_upgrades.lock().remove(&request) {
      Some(sender) => sender.send(decision).is_ok(),
      None => false,
    }
  }

  /// Stops accepting, closes every socket with 1001, waits until all are released, ends the
  /// sessions waiting for a resume, then queues `Shutdown`. Idempotent.
  pub fn begin_shutdown(self: &Arc<Self>, runtime: &Handle) {
    if self.shutdown.send_replace(true) {
      return;
    }
    self.pending_upgrades.lock().clear();
    self
      .registry
      .close_all(CloseCode::GoingAway.as_u16(), "server shutdown");
    self.end_forwarding(CloseCode::GoingAway.as_u16(), "server shutdown");
    let core = self.clone();
    runtime.spawn(async move {
      core.connections.drained().await;
      // No socket is left to suspend a session now: the ones waiting for a resume end here.
      core.end_waiting(true);
      core.events.push(Event::Shutdown);
    });
  }

  /// Flushes and closes the store (its directory is free once this returns); later storage
  /// calls fail with a clear error. Stops waking JS.
  pub fn release(&self) -> Result<(), CoreError> {
    self.events.set_waker(None);
    Ok(self.storage.release()?)
  }
}
