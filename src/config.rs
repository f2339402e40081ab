//! Server limits and timeouts. Every bound the server enforces is named here with its default,
//! so the documentation of a limit and its value live in one place.

use std::time::Duration;

/// Largest inbound message (and frame): past it the socket is closed with 1009.
/// 1 MiB matches socket.io's `maxHttpBufferSize` and is ample for JSON events.
pub const DEFAULT_MAX_PAYLOAD_BYTES: usize = 1 << 20;

/// Frames one inbound message may be split into (its first frame and its continuations; pings
/// between them do not count): past it the socket is closed with 1009 "too many fragments"
/// before the message is assembled. Each frame costs a header's worth of parsing and
/// bookkeeping, so a client splitting a message into one-byte frames works the server ~10×
/// harder per byte than one sending it whole. 4096 lets a message of the default
/// `maxPayloadBytes` arrive in 256-byte pieces; browsers and common clients send one frame.
pub const DEFAULT_MAX_FRAGMENTS: usize = 4096;

/// Bytes of frames a session may have that its socket has not accepted (queued, or refused by
/// the kernel) before it counts as a slow consumer (closed 1008, or its frames dropped under
/// [`OverflowPolicy::Drop`]), once the socket also stalls (see [`SLOW_CONSUMER_STALL`]).
pub const DEFAULT_MAX_BACKPRESSURE_BYTES: usize = 1 << 20;

/// How long a socket over `maxBackpressure` may take no byte at all before its session is a
/// slow consumer. A client that reads, however slowly, keeps its session; one that stopped
/// reading is cut within one to two stalls. One second covers a reading client's GC pause or
/// busy event loop; Go servers' usual write deadline (10 s) would let a stalled session pin
/// ten times as much.
pub const SLOW_CONSUMER_STALL: Duration = Duration::from_secs(1);

/// How far over `maxBackpressure` a session's unaccepted bytes may go while its socket keeps
/// draining (a burst: one tick emitting more than the limit to a client that reads). Past
/// `maxBackpressure` × this the session is a slow consumer at once, so a session never pins
/// more than this many times its limit. 4 lets a 2 MiB burst through under the default 1 MiB
/// limit with room to spare.
pub const MAX_BURST_FACTOR: usize = 4;

/// Shared frames whose MessagePack form the process keeps, so that a room broadcast to
/// `encoding=msgpack` sockets is transcoded once, not once per member (the members' writers
/// send it within moments of each other; 64 covers that many broadcasts in flight at once).
pub const MSGPACK_CACHE_FRAMES: usize = 64;

/// Bytes (the JSON and its MessagePack form) those cached frames may pin at most; a frame
/// larger than a quarter of it is not cached.
pub const MSGPACK_CACHE_BYTES: usize = 1 << 20;

/// Time from TCP accept to the 101 answer, `extractMeta` included. Slow or silent clients are
/// dropped when it runs out, so they cannot hold sockets open.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Time a closing socket gets to finish the close handshake before it is dropped.
pub const DEFAULT_CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// Bytes read and discarded from a peer after the server closed (a close frame sent, or an
/// HTTP error answered) while waiting for the peer to close its side, within `closeTimeoutMs`.
/// A client still streaming a too-big message or a request body gets this far before the
/// socket is dropped anyway (4× the default `maxPayloadBytes`).
pub const MAX_LINGER_BYTES: usize = 4 << 20;

/// Time a call may take before the client gets a `timeout` error (Rivet's action default).
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// Time a session whose socket dropped waits for its client to resume it (socket.io's
/// connection state recovery waits 2 minutes too). Its rooms and frames are kept meanwhile.
pub const DEFAULT_RESUME_WINDOW: Duration = Duration::from_secs(120);

/// Bytes of sent frames a resumable session keeps until its client acknowledges them (acks
/// ride on heartbeat pings). A client that missed more cannot resume and re-syncs instead.
/// Frames are shared between recipients, so this bounds what one session pins, not copies.
pub const DEFAULT_RESUME_BUFFER_BYTES: usize = 1 << 20;

/// Idle time after which an actor with no open session leaves memory.
pub const DEFAULT_HIBERNATE_AFTER: Duration = Duration::from_secs(30);

/// Sessions (open, or waiting for a resume); further upgrades are answered 503. A connection
/// counts only once its session opens: handshakes in progress have their own bound.
pub const DEFAULT_MAX_SESSIONS: usize = 100_000;

/// Connections accepted whose handshake (head, `extractMeta`, 101) has not finished. Past it the
/// server stops accepting until one finishes, so new connections wait in the kernel's listen
/// backlog; a flood of sockets that never send their head (slowloris) holds at most this many
/// until `handshakeTimeoutMs`, and cannot take the place of open sessions. Global rather than
/// per address: clients behind one proxy or NAT share an address. 1024 handshakes cost at most
/// about 18 MiB (a 16 KiB head buffer each), and an accept rate of 6,000/s with `extractMeta`
/// keeps far fewer than that in flight.
pub const DEFAULT_MAX_PENDING_HANDSHAKES: usize = 1024;

/// Largest HTTP request head accepted before the upgrade; larger heads get 431.
pub const MAX_REQUEST_HEAD_BYTES: usize = 16 * 1024;

/// Headers parsed in a request head; more get 431.
pub const MAX_REQUEST_HEADERS: usize = 64;

/// The read buffer of each runtime worker thread: every socket read on the thread goes into it
/// and is decoded at once, so no socket keeps a read buffer of its own (an idle socket costs
/// no buffer at all). It also bounds what one read can hand to JS past the dispatch limits
/// below: a reader waits for room before each read, then delivers every message the chunk
/// completed, at most this many bytes' worth (a masked empty frame takes 6 bytes, so at most
/// ~11,000 messages).
pub const READ_CHUNK_BYTES: usize = 64 * 1024;

/// Whether frames pushed to a plain TCP session with nothing queued are written straight into
/// the socket by the pushing thread (see `transport::outbox::direct`) rather than by the
/// session's writer task. Off: measured on two cores, it cost more per server CPU-second than
/// it saved whenever frames come in bursts (echo with 8 in flight, room fan-out), since the
/// writer task gathers a burst into one system call and runs beside the JS thread.
pub const WRITE_THROUGH: bool = false;

/// Slices (a frame's header, its payload) gathered into one write system call: at most half
/// as many frames per call, well under the kernel's `IOV_MAX` (1024).
pub const MAX_WRITE_SLICES: usize = 128;

/// A frame part (header or payload) this short is copied into the writing thread's buffer
/// next to its neighbours rather than given a slice of its own: the kernel copies a few large
/// slices much faster than many small ones (room fan-out gathers dozens of short frames per
/// write). Longer payloads are written from their shared bytes, uncopied.
pub const COALESCE_PART_BYTES: usize = 512;

/// The buffer each runtime thread copies short frame parts into for one write (allocated on
/// the thread's first write): at most this many bytes are copied per system call.
pub const COALESCE_BUFFER_BYTES: usize = 16 * 1024;

/// Bytes of inbound events waiting for the JS thread before socket readers pause. Readers
/// then stop reading, so TCP pushes back on clients instead of memory growing. A session with
/// nothing in the batch may still add one frame up to twice this (so one flooding client
/// cannot lock the others out), never past it.
pub const MAX_PENDING_DISPATCH_BYTES: usize = 64 << 20;

/// Bytes of one session's events in the batch waiting for the JS thread before that session's
/// reader pauses (until JS takes the batch). It bounds what one client adds to every batch, so
/// a flooding client delays a quiet client's call by the time JS takes to handle this much,
/// not 64 MiB: measured with `benchmark/fairness.mjs` (debug build, a flood of 1 KiB events
/// costing 20 µs of JS each), a quiet client's call went from p50 9 s / p99 10 s to p50 4–6 ms
/// / p99 30–50 ms (256 KiB: 25 / 100 ms). 64 KiB is about 60 such events per JS turn for one
/// client, and a larger frame still gets in alone.
pub const MAX_PENDING_DISPATCH_BYTES_PER_SESSION: usize = 64 << 10;

/// Capacity of a taken event batch's buffer that is kept, emptied, to queue the next batch into
/// (one spare buffer per server). Reusing it spares a large allocation and its first-touch page
/// faults on every take; a buffer grown past this by a burst is freed instead.
pub const SPARE_BATCH_BUFFER_BYTES: usize = 1 << 20;

/// Largest static file served (the demo's page and scripts are far smaller).
pub const MAX_STATIC_FILE_BYTES: u64 = 8 << 20;

/// Commits timed per flush for `warren_commit_seconds`. Commits are one per JS tick and a flush
/// takes milliseconds, so a flush rarely covers more than a few; past this many (a disk that
/// stalls) the rest of that flush's commits are not observed, so the timing list stays bounded.
pub const MAX_TIMED_COMMITS: usize = 1024;

/// Actors and rooms the inspector lists (the rest are counted, not listed), and actors whose
/// last shown state it keeps.
pub const MAX_INSPECTED: usize = 1000;

/// Recent actor events the inspector keeps, across all actors (the oldest goes first).
pub const MAX_INSPECTOR_EVENTS: usize = 1000;

/// Bytes of an event's data (and of its name) the inspector keeps; past it the data is cut.
/// With [`MAX_INSPECTOR_EVENTS`], the journal holds at most about 1 MiB.
pub const MAX_INSPECTOR_EVENT_DATA_BYTES: usize = 512;

/// Bytes of one actor's state (as JSON) the inspector keeps; a larger state shows a note.
/// With [`MAX_INSPECTED`], at most 64 MiB; states are usually far smaller.
pub const MAX_INSPECTED_STATE_BYTES: usize = 64 << 10;

/// Memory sled may use to cache the store. Hot actor state is read on wake-ups only, so a
/// small cache is enough; sled's 1 GiB default would dominate an idle server's RSS.
pub const STORE_CACHE_BYTES: u64 = 32 << 20;

/// What to do with a session whose outbox is over [`ServerConfig::max_backpressure_bytes`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OverflowPolicy {
  /// Close the socket with 1008 "slow consumer" (the default: a client that cannot keep up
  /// learns it, and reconnects to a fresh state).
  Close,
  /// Drop frames that do not fit and count them; the socket stays open.
  Drop,
}

/// When frames that follow a state change may leave.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durability {
  /// Only once the change is flushed to disk.
  Strict,
  /// At once; the change is flushed in the background.
  Relaxed,
}

/// Where a server keeps its data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Location {
  /// A directory, owned by one process at a time.
  Directory(std::path::PathBuf),
  /// A temporary store removed when the server closes (tests).
  Memory,
}

/// Cluster mode: several warren processes share rooms and users through one Redis.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterConfig {
  /// `redis://host:port[/db]`.
  pub redis_url: String,
  /// This process's name among the nodes: letters, digits, `.`, `_` and `-` (at most 64).
  pub node_id: String,
  /// How long the node's lease lasts without renewal ([`NODE_LEASE`]); it is renewed three
  /// times as often.
  pub lease: Duration,
}

/// How long a node's lease in Redis lasts without renewal; another node may take over its
/// actors after it (see the cluster module).
pub const NODE_LEASE: Duration = Duration::from_secs(10);

/// How often writes through to Redis that it did not take (unreachable, or no answer in time)
/// are tried again while nothing else is committed (see `durability::replica_writes`).
pub const REPLICA_RETRY: Duration = Duration::from_millis(500);

/// The shortest lease `cluster.leaseMs` accepts: a node renews every third of it, and each
/// renewal must reach Redis and back within that third.
pub const MIN_NODE_LEASE: Duration = Duration::from_millis(300);

/// The longest lease `cluster.leaseMs` accepts (a dead node's actors wait this long for another
/// node to take them over).
pub const MAX_NODE_LEASE: Duration = Duration::from_secs(600);

/// Messages waiting to be published to other nodes; past it a publish is dropped and reported
/// (the JS thread never waits on Redis).
pub const MAX_PENDING_PUBLISHES: usize = 65_536;

/// Bytes of the messages waiting to be published to other nodes (a raw room frame may be up to
/// `maxPayloadBytes`); past it a publish is dropped and reported, as past
/// [`MAX_PENDING_PUBLISHES`].
pub const MAX_PENDING_PUBLISH_BYTES: usize = 64 * 1024 * 1024;

/// Publishes sent to Redis in one pipeline (one round trip).
pub const PUBLISH_BATCH: usize = 256;

/// How often a node looks for due schedules of actors no node holds (cluster mode): such a
/// schedule fires at most this late.
pub const ALARM_POLL: Duration = Duration::from_millis(500);

/// Changes of this node's room memberships waiting to reach their rooms' owners (cluster mode);
/// past it a change is dropped and the log says so.
pub const MAX_PENDING_ROOM_CHANGES: usize = 65_536;

/// `members()` requests of one node waiting for other nodes' answers (cluster mode); past it a
/// request fails at once.
pub const MAX_PENDING_ROOM_QUERIES: usize = 1024;

/// Due alarms a node takes on per look (the rest wait for the next one, or another node).
pub const ALARM_BATCH: usize = 64;

/// A connection definition as the core sees it: where its sockets upgrade and whether the
/// upgrade waits for `extractMeta` in JS.
#[derive(Clone, Debug)]
pub struct Definition {
  /// The connection definition's name: its actors' storage keys start with it.
  pub name: String,
  /// Request path that upgrades, e.g. `/ws`.
  pub path: String,
  /// When true the upgrade waits for the JS `extractMeta`; otherwise meta is made in Rust.
  pub authenticates: bool,
  /// When true, `path` is a prefix and the rest of the request path (one non-empty segment)
  /// names the actor: `/actors/counter/` serves `/actors/counter/<key>`.
  pub prefix: bool,
  /// True for a raw endpoint: its messages (text or binary) go to JS as they are, and what JS
  /// sends goes out as it is; no JSON protocol, no resume.
  pub raw: bool,
}

/// The certificate warren's own listener serves `wss://` with (PEM text, as given to
/// `createServer({ tls })`). The transport turns it into a rustls configuration when the server
/// is created, so a bad certificate or key fails there, not at the first handshake.
#[derive(Clone, PartialEq, Eq)]
pub struct TlsConfig {
  /// The server's certificate, optionally followed by its chain (PEM).
  pub cert_pem: Vec<u8>,
  /// The private key of the certificate (PEM: PKCS #8, PKCS #1 or SEC1).
  pub key_pem: Vec<u8>,
  /// Further chain certificates sent after `cert_pem`'s (PEM), if any.
  pub ca_pem: Option<Vec<u8>>,
}

impl std::fmt::Debug for TlsConfig {
  /// Never prints the key.
  fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
    f.debug_struct("TlsConfig").finish_non_exhaustive()
  }
}

/// Everything a server needs to run; validated once, in [`Self::validate`].
#[derive(Clone, Debug)]
pub struct ServerConfig {
  /// Connection definitions; a definition id is an index here.
  pub definitions: Vec<Definition>,
  pub max_payload_bytes: usize,
  /// Frames one inbound message may arrive in; past it the socket is closed with 1009.
  pub max_fragments: usize,
  pub max_backpressure_bytes: usize,
  pub overflow_policy: OverflowPolicy,
  pub handshake_timeout: Duration,
  pub close_timeout: Duration,
  pub hibernate_after: Duration,
  /// Zero turns resume off (frames are then not numbered either).
  pub resume_window: Duration,
  pub resume_buffer_bytes: usize,
  pub max_sessions: usize,
  pub max_pending_handshakes: usize,
  /// Directory served over plain GET for paths that are not endpoints, if any.
  pub static_dir: Option<std::path::PathBuf>,
  /// Names of the room handlers, by index: stored room lists name handlers, not indexes.
  pub room_handlers: Vec<String>,
  pub storage: Location,
  pub durability: Durability,
  pub call_timeout: Duration,
  /// Bearer token of the admin HTTP API (`DELETE /actors/<kind>/<key>`); none disables it.
  pub admin_token: Option<String>,
  /// Cluster mode; none runs this process alone.
  pub cluster: Option<ClusterConfig>,
  /// `wss://` on warren's own listener; none serves plain `ws://`.
  pub tls: Option<TlsConfig>,
  /// Serves `GET /metrics` (Prometheus text; behind `admin_token` when one is set).
  pub metrics: bool,
  /// Serves the inspector under `/_warren/` (needs `admin_token`).
  pub inspector: bool,
}

impl Default for ServerConfig {
  fn default() -> Self {
    Self {
      definitions: vec![Definition {
        name: "Connection".into(),
        path: "/ws".into(),
        authenticates: false,
        prefix: false,
        raw: false,
      }],
      max_payload_bytes: DEFAULT_MAX_PAYLOAD_BYTES,
      max_fragments: DEFAULT_MAX_FRAGMENTS,
      max_backpressure_bytes: DEFAULT_MAX_BACKPRESSURE_BYTES,
      overflow_policy: OverflowPolicy::Close,
      handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
      close_timeout: DEFAULT_CLOSE_TIMEOUT,
      hibernate_after: DEFAULT_HIBERNATE_AFTER,
      resume_window: DEFAULT_RESUME_WINDOW,
      resume_buffer_bytes: DEFAULT_RESUME_BUFFER_BYTES,
      max_sessions: DEFAULT_MAX_SESSIONS,
      max_pending_handshakes: DEFAULT_MAX_PENDING_HANDSHAKES,
      static_dir: None,
      room_handlers: Vec::new(),
      storage: Location::Memory,
      durability: Durability::Strict,
      call_timeout: DEFAULT_CALL_TIMEOUT,
      admin_token: None,
      cluster: None,
      tls: None,
      metrics: false,
      inspector: false,
    }
  }
}

impl ServerConfig {
  /// Rejects configurations that cannot work, naming the option and the rule.
  pub fn validate(&self) -> Result<(), String> {
    if self.definitions.is_empty() {
      return Err("at least one connection definition is required".into());
    }
    for (i, definition) in self.definitions.iter().enumerate() {
      if !definition.path.starts_with('/') {
        return Err(format!(
          "websocketPath must start with '/': {:?}",
          definition.path
        ));
      }
      if definition.prefix && !definition.path.ends_with('/') {
        return Err(format!(
          "an actor path prefix must end with '/': {:?}",
          definition.path
        ));
      }
      if self.definitions[..i].iter().any(|e| e.path == definition.path) {
        return Err(format!(
          "two connection definitions share websocketPath {:?}",
          definition.path
        ));
      }
      if definition.path == "/healthz" {
        return Err("websocketPath /healthz is reserved for the health check".into());
      }
      if self.metrics && definition.path == "/metrics" {
        return Err("websocketPath /metrics is reserved for the metrics (metrics: true)".into());
      }
      if self.inspector && definition.path.starts_with("/_warren/") {
        return Err("websocketPaths under /_warren/ are reserved for the inspector".into());
      }
    }
    if self.inspector && self.admin_token.as_deref().is_none_or(str::is_empty) {
      return Err("inspector: true requires adminToken (the inspector shows and destroys actors)".into());
    }
    if self.max_payload_bytes < 128 {
      return Err("maxPayloadBytes must be at least 128".into());
    }
    if self.max_fragments == 0 {
      return Err("maxFragments must be at least 1".into());
    }
    if self.max_backpressure_bytes < 1024 {
      return Err("maxBackpressure must be at least 1024 bytes".into());
    }
    if self.resume_buffer_bytes < 1024 {
      return Err("resumeBufferBytes must be at least 1024 bytes".into());
    }
    if self.max_sessions == 0 {
      return Err("maxSessions must be at least 1".into());
    }
    if self.max_pending_handshakes == 0 {
      return Err("maxPendingHandshakes must be at least 1".into());
    }
    if let Some(cluster) = &self.cluster {
      let id = &cluster.node_id;
      let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
      if id.is_empty() || id.len() > 64 || !id.chars().all(allowed) {
        return Err(format!(
          "cluster.nodeId must be 1-64 letters, digits, '.', '_' or '-', got {id:?}"
        ));
      }
      if cluster.lease < MIN_NODE_LEASE || cluster.lease > MAX_NODE_LEASE {
        return Err(format!(
          "cluster.leaseMs must be between {} and {}, got {}",
          MIN_NODE_LEASE.as_millis(),
          MAX_NODE_LEASE.as_millis(),
          cluster.lease.as_millis()
        ));
      }
      if !cluster.redis_url.starts_with("redis://") {
        return Err(format!(
          "cluster.redis must be a redis:// URL, got {:?}",
          cluster.redis_url
        ));
      }
    }
    Ok(())
  }
}
