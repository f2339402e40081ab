//! The napi skin over the core: the `NativeServer` class the JS layer drives. It converts
//! arguments, calls [`Core`] (and nothing else of the crate's engine), turns [`CoreError`]s
//! into JS errors whose `code` is the error's stable code, and owns the threadsafe function that
//! wakes the JS thread. No I/O and no state machine lives here.
//!
//! Every method is `#[napi(catch_unwind)]`: should a panic happen anyway, it reaches JS as an
//! error instead of unwinding into Node (which aborts the process). Arguments are checked
//! before they reach the core: ids that name nothing answer false or `invalid_argument`, and
//! JSON that the core copies raw into event batches is validated here.
//!
//! Every method is synchronous and only enqueues (frames into outboxes or behind the output
//! gate, decisions into channels, writes into the store's batch): JS never waits on Rust per
//! message.
//!
//! - this file: the class, its lifecycle, the event batch, upgrades;
//! - [`messaging`]: frames to sessions, users and rooms, replies and closes;
//! - [`observe`]: `metrics()` and the states JS shows the inspector;
//! - [`state`]: rooms, persisted state, hibernation and destruction.

mod convert;
mod messaging;
mod observe;
mod state;

use std::sync::{Arc, OnceLock};

use napi::bindgen_prelude::*;
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi_derive::napi;
use tokio::runtime::Runtime;

use crate::core::{Core, Decision};
use crate::error::CoreError;
use crate::events::Waker;
use crate::ids::RequestId;
use crate::transport::Identity;

pub use convert::{NativeCluster, NativeEndpoint, NativeOptions, NativeTls};

/// A core error as a JS error: its `code` is the [`CoreError::code`].
fn js_error(error: CoreError) -> Error<String> {
  Error::new(error.code().to_string(), error.to_string())
}

/// An argument from JS that the core cannot take.
fn invalid(message: impl Into<String>) -> Error<String> {
  js_error(CoreError::InvalidArgument(message.into()))
}

/// The one tokio runtime of the addon, shared by every server in the process. Its worker count
/// is the CPU count this process may use (`WARREN_WORKER_THREADS` overrides it).
fn runtime() -> Result<&'static Runtime, String> {
  static RUNTIME: OnceLock<std::result::Result<Runtime, String>> = OnceLock::new();
  let built = RUNTIME.get_or_init(|| {
    let workers = std::env::var("WARREN_WORKER_THREADS")
      .ok()
      .and_then(|v| v.parse::<usize>().ok())
      .filter(|n| *n > 0)
      .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
    tokio::runtime::Builder::new_multi_thread()
      .worker_threads(workers)
      .thread_name("warren")
      .enable_all()
      .build()
      .map_err(|err| err.to_string())
  });
  built
    .as_ref()
    .map_err(|err| js_error(CoreError::Runtime(err.clone())))
}

/// The wake-up call into JS: no arguments, nothing returned, errors not passed to the callee.
type WakeFunction = ThreadsafeFunction<(), (), (), Status, false>;

#[napi(object)]
pub struct ListenAddress {
  pub host: String,
  pub port: u32,
}

#[napi(object)]
pub struct NativeStats {
  /// Open sessions.
  pub sessions: u32,
  /// Actors in memory (awake, hibernated, or idle without sessions and not yet evicted).
  pub actors: u32,
  /// Actors whose JS side is hibernated (their sockets stay open).
  pub hibernated: u32,
  /// Room instances in memory.
  pub rooms: u32,
  /// TCP connections in any phase.
  pub connections: u32,
  /// Frames waiting behind the output gate for a flush (they count against their recipients'
  /// `maxBackpressure`).
  pub held_frames: u32,
  /// Bytes of those frames.
  pub held_bytes: u32,
  /// Commits and flushes the store refused (a full or failing disk).
  pub storage_failures: u32,
  /// Sessions whose socket dropped, waiting for their client to resume them.
  pub detached: u32,
}

/// One warren server. Created by the JS `createServer`; see `lib/server.ts`.
#[napi]
pub struct NativeServer {
  core: Arc<Core>,
  /// Wakes the JS thread when a batch starts; dropped by `release` so Node can exit.
  wake: Option<Arc<WakeFunction>>,
}

#[napi]
impl NativeServer {
  /// `onWake` is called (with no arguments) whenever events are waiting in `takeBatch`.
  /// Opens the storage: throws when another process owns the directory.
  #[napi(constructor, catch_unwind)]
  pub fn new(options: NativeOptions, on_wake: Function<(), ()>) -> Result<Self, String> {
    let config = convert::server_config(options).map_err(js_error)?;
    let runtime = runtime()?;
    // Joining a cluster waits for Redis (a bounded connect); otherwise nothing here waits.
    let core = runtime
      .block_on(Core::start(config, runtime.handle()))
      .map_err(js_error)?;
    let wake: Arc<WakeFunction> = Arc::new(
      on_wake
        .build_threadsafe_function::<()>()
        .callee_handled::<false>()
        .build()
        .map_err(|error| js_error(CoreError::Runtime(error.reason)))?,
    );
    let caller = wake.clone();
    let waker: Waker = Arc::new(move || {
      caller.call((), ThreadsafeFunctionCallMode::NonBlocking);
    });
    core.set_waker(Some(waker));
    Ok(Self {
      core,
      wake: Some(wake),
    })
  }

  /// Binds and starts accepting. Throws on a busy port or a bad host.
  #[napi(catch_unwind)]
  pub fn listen(&self, host: String, port: u32) -> Result<ListenAddress, String> {
    let port = u16::try_from(port).map_err(|_| invalid(format!("port out of range: {port}")))?;
    let address = self
      .core
      .listen(runtime()?.handle(), &host, port)
      .map_err(js_error)?;
    Ok(ListenAddress {
      host: address.ip().to_string(),
      port: u32::from(address.port()),
    })
  }

  /// Whether an upgrade request for `target` (path and query, as `req.url`) is this server's.
  #[napi(catch_unwind)]
  pub fn serves(&self, target: String) -> bool {
    self.core.serves(&target)
  }

  /// Serves the connected TCP socket `fd` of a Node HTTP server from its upgrade request:
  /// `read` is the request head rebuilt as bytes followed by what Node read past it. The
  /// descriptor is duplicated; the caller closes its own afterwards. Throws
  /// `socket_not_adoptable` when `fd` is not a connected TCP socket (or not on Unix).
  #[napi(catch_unwind)]
  pub fn adopt(&self, fd: i32, read: Buffer) -> Result<(), String> {
    self
      .core
      .adopt(runtime()?.handle(), fd, read.to_vec())
      .map_err(js_error)
  }

  /// Serves a new certificate to the `wss://` handshakes from now on (open ones keep theirs).
  #[napi(catch_unwind)]
  pub fn set_tls(&self, tls: NativeTls) -> Result<(), String> {
    self.core.set_tls(&convert::tls_config(tls)).map_err(js_error)
  }

  /// Everything queued for JS as one JSON array text, or null. A batch that is all ASCII (nearly
  /// every one) is made a one-byte string by copying, without V8's UTF-8 decoding.
  #[napi(catch_unwind, ts_return_type = "string | null")]
  pub fn take_batch<'env>(&self, env: &'env Env) -> Result<Option<napi::JsString<'env>>> {
    let made = self.core.take_events_with(|text| {
      if text.is_ascii() {
        env.create_string_latin1(text.as_bytes())
      } else {
        env.create_string(text)
      }
    });
    made.transpose()
  }

  /// Opens the socket of an upgrade request for user `key` with `metaJson` (JSON) as its meta.
  #[napi(catch_unwind)]
  pub fn accept_upgrade(&self, request: i64, key: String, meta_json: String) -> Result<bool, String> {
    // The meta is copied raw into event batches: a bad one would break every later batch.
    state::checked_json(&meta_json, "meta")?;
    Ok(self.core.decide_upgrade(
      RequestId(request.try_into().unwrap_or(0)),
      Decision::Accept(Identity { key, meta_json }),
    ))
  }

  /// Refuses an upgrade request with an HTTP status and `{"error": message, "code": code}`.
  #[napi(catch_unwind)]
  pub fn reject_upgrade(&self, request: i64, status: u32, message: String, code: Option<String>) -> bool {
    let status = u16::try_from(status)
      .ok()
      .filter(|s| (400..600).contains(s))
      .unwrap_or(401);
    let decision = Decision::Reject {
      status,
      message,
      code,
    };
    self
      .core
      .decide_upgrade(RequestId(request.try_into().unwrap_or(0)), decision)
  }

  #[napi(catch_unwind)]
  pub fn stats(&self) -> NativeStats {
    let stats = self.core.stats();
    let clamp = |v: usize| u32::try_from(v).unwrap_or(u32::MAX);
    NativeStats {
      sessions: clamp(stats.sessions),
      actors: clamp(stats.actors),
      hibernated: clamp(stats.hibernated),
      rooms: clamp(stats.rooms),
      connections: clamp(stats.connections),
      held_frames: clamp(stats.held_frames),
      held_bytes: clamp(stats.held_bytes),
      storage_failures: u32::try_from(stats.storage_failures).unwrap_or(u32::MAX),
      detached: clamp(stats.detached),
    }
  }

  /// Starts shutdown; the batch ends with the shutdown event once every socket is released.
  #[napi(catch_unwind)]
  pub fn shutdown(&self) -> Result<(), String> {
    self.core.begin_shutdown(runtime()?.handle());
    Ok(())
  }

  /// Flushes and closes the storage, and drops the wake-up function so the Node process may
  /// exit. Called once, after shutdown and the last state commit.
  #[napi(catch_unwind)]
  pub fn release(&mut self) -> Result<(), String> {
    self.wake = None;
    self.core.release().map_err(js_error)
  }

  /// Whether a listening server keeps the Node process alive (like `net.Server#ref`).
  #[napi(catch_unwind)]
  pub fn set_ref(&self, env: Env, referenced: bool) -> Result<()> {
    if let Some(wake) = &self.wake {
      let status = unsafe {
        if referenced {
          napi::sys::napi_ref_threadsafe_function(env.raw(), wake.raw())
        } else {
          napi::sys::napi_unref_threadsafe_function(env.raw(), wake.raw())
        }
      };
      if status != napi::sys::Status::napi_ok {
        return Err(Error::from_reason("cannot change the server's ref state"));
      }
    }
    Ok(())
  }
}

impl Drop for NativeServer {
  /// A server is only dropped after `close()` (the JS layer keeps it referenced until then);
  /// should it be collected anyway, it shuts down instead of leaving sockets orphaned.
  fn drop(&mut self) {
    if let Ok(runtime) = runtime() {
      self.core.begin_shutdown(runtime.handle());
    }
    let _ = self.core.release();
  }
}
