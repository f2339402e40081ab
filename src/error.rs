//! Typed outcomes at each boundary: the close codes a session ends with, how a session ended,
//! why a client frame was refused, why an upgrade was refused, why storage failed, and the
//! errors the core returns to its caller (each with a stable code JS programs can branch on).

use std::fmt;

/// WebSocket close codes warren sends (DESIGN §3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloseCode {
  /// 1000: normal closure, also "Actor destroyed".
  Normal,
  /// 1001: the server is shutting down.
  GoingAway,
  /// 1007: a text frame that is not UTF-8.
  InvalidPayload,
  /// 1008: a policy limit, e.g. a slow consumer over its backpressure limit.
  Policy,
  /// 1009: a message over `maxPayloadBytes`.
  TooBig,
  /// 1011: a handler failed in a way that ends the session (e.g. `onConnect` threw).
  InternalError,
  /// 1006: no close frame was exchanged (the peer vanished); never sent, only reported.
  Abnormal,
  /// Any other code, e.g. 4000–4999 chosen by the application.
  Other(u16),
}

impl CloseCode {
  pub fn as_u16(self) -> u16 {
    match self {
      CloseCode::Normal => 1000,
      CloseCode::GoingAway => 1001,
      CloseCode::InvalidPayload => 1007,
      CloseCode::Policy => 1008,
      CloseCode::TooBig => 1009,
      CloseCode::InternalError => 1011,
      CloseCode::Abnormal => 1006,
      CloseCode::Other(code) => code,
    }
  }

  pub fn from_u16(code: u16) -> Self {
    match code {
      1000 => CloseCode::Normal,
      1001 => CloseCode::GoingAway,
      1006 => CloseCode::Abnormal,
      1007 => CloseCode::InvalidPayload,
      1008 => CloseCode::Policy,
      1009 => CloseCode::TooBig,
      1011 => CloseCode::InternalError,
      other => CloseCode::Other(other),
    }
  }

  /// Whether an application may ask for this code in `close(code, reason)`: 1000 or 3000–4999,
  /// the same rule browsers and `ws` apply.
  pub fn is_sendable_by_app(code: u16) -> bool {
    code == 1000 || (3000..=4999).contains(&code)
  }
}

/// Why a client frame was refused. The session stays open; the client gets a `system:error`
/// event carrying [`FrameError::code`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameError {
  /// Not JSON, not an object, or `type` missing or not a string.
  Malformed,
  /// A `call` frame without a non-negative integer `id` or a string `event`.
  BadCall,
  /// A binary frame; the protocol is JSON text.
  Binary,
  /// A binary frame on an `encoding=msgpack` socket that is not one MessagePack value JSON can
  /// represent.
  BadMsgpack,
}

impl FrameError {
  pub fn code(self) -> &'static str {
    match self {
      FrameError::Malformed => "bad_frame",
      FrameError::BadCall => "bad_call",
      FrameError::Binary => "binary_unsupported",
      FrameError::BadMsgpack => "bad_msgpack",
    }
  }

  pub fn message(self) -> &'static str {
    match self {
      FrameError::Malformed => "frames must be JSON objects with a string \"type\"",
      FrameError::BadCall => "call frames need an integer \"id\" and a string \"event\"",
      FrameError::Binary => "binary frames are not supported; send JSON text",
      FrameError::BadMsgpack => {
        "binary frames must hold one MessagePack value JSON can represent (no bin or ext values, string map keys, at most 128 levels deep)"
      }
    }
  }
}

impl fmt::Display for FrameError {
  fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    f.write_str(self.message())
  }
}

/// Why an HTTP request did not become a WebSocket. Each variant is one HTTP status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UpgradeRejection {
  /// 400: not a parseable HTTP/1.1 request, or a broken WebSocket handshake.
  BadRequest(&'static str),
  /// 400 `unsupported_encoding`: an `encoding=` other than `json` or `msgpack`, or `msgpack`
  /// on a raw endpoint.
  UnsupportedEncoding(&'static str),
  /// 404: no endpoint at this path.
  NotFound,
  /// 405: a socket path requested with a method other than GET.
  MethodNotAllowed,
  /// 426: a plain request on a socket path.
  UpgradeRequired,
  /// 431: request head too large or too many headers.
  HeadTooLarge,
  /// 401: an admin request without the right bearer token.
  Unauthorized,
  /// 503: the server is at `maxSessions` or shutting down.
  Unavailable(&'static str),
  /// Any status chosen by `onBeforeConnect` or `extractMeta` (401 by default), with its
  /// message and an optional error code.
  Refused {
    status: u16,
    message: String,
    code: Option<String>,
  },
}

impl UpgradeRejection {
  pub fn status(&self) -> u16 {
    match self {
      UpgradeRejection::BadRequest(_) | UpgradeRejection::UnsupportedEncoding(_) => 400,
      UpgradeRejection::NotFound => 404,
      UpgradeRejection::MethodNotAllowed => 405,
      UpgradeRejection::UpgradeRequired => 426,
      UpgradeRejection::HeadTooLarge => 431,
      UpgradeRejection::Unauthorized => 401,
      UpgradeRejection::Unavailable(_) => 503,
      UpgradeRejection::Refused { status, .. } => *status,
    }
  }

  /// The error code put in the JSON body, when there is one.
  pub fn code(&self) -> Option<&str> {
    match self {
      UpgradeRejection::Refused { code, .. } => code.as_deref(),
      UpgradeRejection::UnsupportedEncoding(_) => Some("unsupported_encoding"),
      _ => None,
    }
  }

  pub fn message(&self) -> &str {
    match self {
      UpgradeRejection::BadRequest(why) | UpgradeRejection::UnsupportedEncoding(why) => why,
      UpgradeRejection::NotFound => "not found",
      UpgradeRejection::MethodNotAllowed => "method not allowed",
      UpgradeRejection::UpgradeRequired => "this path only accepts WebSocket upgrades",
      UpgradeRejection::HeadTooLarge => "request head too large",
      UpgradeRejection::Unauthorized => "unauthorized",
      UpgradeRejection::Unavailable(why) => why,
      UpgradeRejection::Refused { message, .. } => message,
    }
  }
}

/// How a session ended: the close code and reason JS receives in `onDisconnect`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionEnd {
  pub code: u16,
  pub reason: String,
  /// The connection dropped, or the client closed it meaning to come back: the session may
  /// wait for a resume instead of ending.
  pub blip: bool,
}

impl SessionEnd {
  /// The connection dropped without a close handshake (1006): a blip.
  pub fn dropped() -> Self {
    Self {
      code: CloseCode::Abnormal.as_u16(),
      reason: String::new(),
      blip: true,
    }
  }
}

/// Why storage failed. Each variant says what a user can do about it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreError {
  /// Another process (or another server in this one) has the directory open.
  Locked(std::path::PathBuf),
  /// The directory cannot be created or opened, or its files are damaged.
  Open(String),
  /// The directory held a store, but sled opened it without warren's marker record: its
  /// snapshot (`snap.*`) was lost or damaged, and starting would silently start empty.
  Corrupt(std::path::PathBuf),
  /// A read, write or flush failed.
  Io(String),
  /// The disk is too full for a batch; nothing of it was written.
  Full(String),
  /// The server was closed; its storage is released.
  Closed,
}

impl fmt::Display for StoreError {
  fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    match self {
      StoreError::Locked(path) => write!(
        f,
        "storage directory {} is in use by another warren server (one process owns a directory)",
        path.display()
      ),
      StoreError::Open(why) => write!(f, "cannot open storage: {why}"),
      StoreError::Corrupt(path) => write!(
        f,
        "storage directory {} has lost its data (sled's snap.* file is missing or damaged, so the store would open empty); restore it from a backup, or move it away to start with an empty store",
        path.display()
      ),
      StoreError::Io(why) => write!(f, "storage failed: {why}"),
      StoreError::Full(why) => write!(f, "storage full: {why}"),
      StoreError::Closed => f.write_str("storage failed: the server is closed"),
    }
  }
}

/// What the core's operations fail with. [`CoreError::code`] is stable: the JS layer exposes
/// it as `error.code` (the README lists them); the message is for people.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CoreError {
  /// A server option is invalid; the message names it and the rule.
  InvalidOption(String),
  /// An argument of a call from JS is invalid; the message names it and the rule.
  InvalidArgument(String),
  /// The port is taken (`EADDRINUSE`, as Node's `net` reports it).
  AddressInUse(String),
  /// Binding or accepting failed for another reason.
  Listen(String),
  /// Storage failed (see [`StoreError`]).
  Store(StoreError),
  /// The actor is no longer in memory.
  NoSuchActor,
  /// An actor has as many pending schedules as it may.
  TooManySchedules(usize),
  /// The background runtime could not start.
  Runtime(String),
  /// Cluster mode cannot work: Redis unreachable or unfit, or the node id taken.
  Cluster(String),
  /// The `tls` certificate or key cannot be used; the message says why.
  Tls(String),
  /// A socket handed over by an HTTP server cannot be taken by the core (no file descriptor
  /// of its own, such as a TLS socket, or the platform cannot share it).
  NotAdoptable(String),
  /// Cluster mode: what was asked of a room only its owner, another node, knows.
  RoomElsewhere(String),
}

impl CoreError {
  /// The stable code of this error.
  pub fn code(&self) -> &'static str {
    match self {
      CoreError::InvalidOption(_) => "invalid_option",
      CoreError::InvalidArgument(_) => "invalid_argument",
      CoreError::AddressInUse(_) => "EADDRINUSE",
      CoreError::Listen(_) => "listen_failed",
      CoreError::Store(StoreError::Locked(_)) => "storage_locked",
      CoreError::Store(StoreError::Open(_)) => "storage_open_failed",
      CoreError::Store(StoreError::Corrupt(_)) => "storage_corrupt",
      CoreError::Store(StoreError::Io(_)) => "storage_failed",
      CoreError::Store(StoreError::Full(_)) => "storage_full",
      CoreError::Store(StoreError::Closed) => "server_closed",
      CoreError::NoSuchActor => "actor_gone",
      CoreError::TooManySchedules(_) => "too_many_schedules",
      CoreError::Runtime(_) => "runtime_failed",
      CoreError::Cluster(_) => "cluster_unavailable",
      CoreError::Tls(_) => "invalid_tls",
      CoreError::NotAdoptable(_) => "socket_not_adoptable",
      CoreError::RoomElsewhere(_) => "room_elsewhere",
    }
  }
}

impl fmt::Display for CoreError {
  fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    match self {
      CoreError::InvalidOption(why)
      | CoreError::InvalidArgument(why)
      | CoreError::Listen(why)
      | CoreError::AddressInUse(why)
      | CoreError::Cluster(why)
      | CoreError::Tls(why)
      | CoreError::NotAdoptable(why)
      | CoreError::RoomElsewhere(why) => f.write_str(why),
      CoreError::Store(error) => error.fmt(f),
      CoreError::NoSuchActor => f.write_str("the actor is no longer in memory"),
      CoreError::TooManySchedules(limit) => write!(f, "an actor may have at most {limit} pending schedules"),
      CoreError::Runtime(why) => write!(f, "cannot start the warren runtime: {why}"),
    }
  }
}

impl From<StoreError> for CoreError {
  fn from(error: StoreError) -> Self {
    CoreError::Store(error)
  }
}
