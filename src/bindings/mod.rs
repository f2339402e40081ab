//! The napi skin over the core: the `NativeServer` class the JS layer drives. It converts
//! arguments, forwards to the core and owns the threadsafe function that wakes the JS thread.
//! No I/O and no state machine lives here.
//!
//! Every method is synchronous and only enqueues (frames into outboxes or behind the output
//! gate, decisions into channels, writes into the store's batch): JS never waits on Rust per
//! message.
//!
//! - this file: the class, its lifecycle, the event batch, upgrades;
//! - [`messaging`]: frames to sessions, users and rooms, replies and closes;
//! - [`state`]: rooms, persisted state, hibernation and destruction.

mod convert;
mod messaging;
mod state;

use std::sync::{Arc, OnceLock};

use napi::bindgen_prelude::*;
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi_derive::napi;
use tokio::runtime::Runtime;

use crate::dispatch::Waker;
use crate::protocol::{event_frame, Unsealed};
use crate::server::{Decision, Server};
use crate::store::StoreError;

pub use convert::{NativeEndpoint, NativeOptions};

/// The one tokio runtime of the addon, shared by every server in the process. Its worker count
/// is the CPU count this process may use (`WARREN_WORKER_THREADS` overrides it).
fn runtime() -> Result<&'static Runtime> {
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
    .map_err(|err| Error::from_reason(format!("cannot start the warren runtime: {err}")))
}

/// The wake-up call into JS: no arguments, nothing returned, errors not passed to the callee.
type WakeFunction = ThreadsafeFunction<(), (), (), Status, false>;

fn invalid(message: impl Into<String>) -> Error {
  Error::new(Status::InvalidArg, message.into())
}

fn storage_error(error: StoreError) -> Error {
  Error::from_reason(error.to_string())
}

/// Encodes an event frame once, for any number of recipients.
fn frame_of(event: &str, payload_json: Option<&str>) -> Result<Unsealed> {
  event_frame(event, payload_json).map_err(|_| invalid("event payloads must be plain objects"))
}

fn to_id(value: i64) -> u64 {
  u64::try_from(value).unwrap_or(0)
}

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
  /// Frames waiting behind the output gate for a flush.
  pub held_frames: u32,
  /// Sessions whose socket dropped, waiting for their client to resume them.
  pub detached: u32,
}

/// One warren server. Created by the JS `createServer`; see `lib/server.ts`.
#[napi]
pub struct NativeServer {
  server: Arc<Server>,
  /// Wakes the JS thread when a batch starts; dropped by `release` so Node can exit.
  wake: Option<Arc<WakeFunction>>,
}

#[napi]
impl NativeServer {
  /// `onWake` is called (with no arguments) whenever events are waiting in `takeBatch`.
  /// Opens the storage: throws when another process owns the directory.
  #[napi(constructor)]
  pub fn new(options: NativeOptions, on_wake: Function<(), ()>) -> Result<Self> {
    let config = convert::server_config(options).map_err(invalid)?;
    let server = Server::new(config, runtime()?.handle()).map_err(storage_error)?;
    let wake: Arc<WakeFunction> = Arc::new(
      on_wake
        .build_threadsafe_function::<()>()
        .callee_handled::<false>()
        .build()?,
    );
    let caller = wake.clone();
    let waker: Waker = Arc::new(move || {
      caller.call((), ThreadsafeFunctionCallMode::NonBlocking);
    });
    server.dispatcher.set_waker(Some(waker));
    Ok(Self {
      server,
      wake: Some(wake),
    })
  }

  /// Binds and starts accepting. Throws on a busy port or a bad host.
  #[napi]
  pub fn listen(&self, host: String, port: u32) -> Result<ListenAddress> {
    let port = u16::try_from(port).map_err(|_| invalid(format!("port out of range: {port}")))?;
    let address = self
      .server
      .listen(runtime()?.handle(), &host, port)
      .map_err(|err| Error::from_reason(format!("cannot listen on {host}:{port}: {err}")))?;
    Ok(ListenAddress {
      host: address.ip().to_string(),
      port: u32::from(address.port()),
    })
  }

  /// Everything queued for JS as one JSON array text, or null.
  #[napi]
  pub fn take_batch(&self) -> Option<String> {
    self.server.dispatcher.take()
  }

  /// Opens the socket of an upgrade request for user `key` with `metaJson` as its meta.
  #[napi]
  pub fn accept_upgrade(&self, request: i64, key: String, meta_json: String) -> bool {
    self
      .server
      .decide_upgrade(to_id(request), Decision::Accept { key, meta_json })
  }

  /// Refuses an upgrade request with an HTTP status and `{"error": message, "code": code}`.
  #[napi]
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
    self.server.decide_upgrade(to_id(request), decision)
  }

  #[napi]
  pub fn stats(&self) -> NativeStats {
    let stats = self.server.stats();
    let clamp = |v: usize| u32::try_from(v).unwrap_or(u32::MAX);
    NativeStats {
      sessions: clamp(stats.sessions),
      actors: clamp(stats.actors),
      hibernated: clamp(stats.hibernated),
      rooms: clamp(stats.rooms),
      connections: clamp(stats.connections),
      held_frames: clamp(stats.held_frames),
      detached: clamp(stats.detached),
    }
  }

  /// Starts shutdown; the batch ends with the shutdown event once every socket is released.
  #[napi]
  pub fn shutdown(&self) -> Result<()> {
    self.server.begin_shutdown(runtime()?.handle());
    Ok(())
  }

  /// Flushes and closes the storage, and drops the wake-up function so the Node process may
  /// exit. Called once, after shutdown and the last state commit.
  #[napi]
  pub fn release(&mut self) -> Result<()> {
    self.server.dispatcher.set_waker(None);
    self.wake = None;
    self.server.release_store().map_err(storage_error)
  }

  /// Whether a listening server keeps the Node process alive (like `net.Server#ref`).
  #[napi]
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
      self.server.begin_shutdown(runtime.handle());
    }
    self.server.dispatcher.set_waker(None);
    let _ = self.server.release_store();
  }
}
