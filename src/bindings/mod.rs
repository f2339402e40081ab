//! The napi skin over the core: the `NativeServer` class the JS layer drives. It converts
//! arguments, forwards to the core and owns the threadsafe function that wakes the JS thread.
//! No I/O and no state machine lives here.
//!
//! Every method is synchronous and only enqueues (frames into outboxes, decisions into
//! channels): JS never waits on Rust per message.

mod convert;

use std::sync::{Arc, OnceLock};

use napi::bindgen_prelude::*;
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi_derive::napi;
use tokio::runtime::Runtime;

use crate::dispatch::Waker;
use crate::error::CloseCode;
use crate::protocol::{event_frame, push_json_string, reply_error_frame, reply_frame};
use crate::registry::RoomError;
use crate::rooms::Listed;
use crate::server::{Decision, Server};
use tokio_tungstenite::tungstenite::Utf8Bytes;

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

/// Encodes an event frame once, for any number of recipients.
fn frame_of(event: &str, payload_json: Option<&str>) -> Result<Utf8Bytes> {
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
pub struct OpenedRoom {
  pub id: i64,
  pub created: bool,
}

fn room_error(error: RoomError) -> Error {
  match error {
    RoomError::NoSuchActor => Error::new(
      Status::GenericFailure,
      "the actor is no longer in memory".to_string(),
    ),
  }
}

#[napi(object)]
pub struct NativeStats {
  /// Open sessions.
  pub sessions: u32,
  /// Actors in memory (with sessions, or idle and not yet evicted).
  pub actors: u32,
  /// Room instances in memory.
  pub rooms: u32,
  /// TCP connections in any phase.
  pub connections: u32,
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
  #[napi(constructor)]
  pub fn new(options: NativeOptions, on_wake: Function<(), ()>) -> Result<Self> {
    let config = convert::server_config(options).map_err(invalid)?;
    runtime()?;
    let wake: Arc<WakeFunction> = Arc::new(
      on_wake
        .build_threadsafe_function::<()>()
        .callee_handled::<false>()
        .build()?,
    );
    let server = Server::new(config);
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

  /// Refuses an upgrade request with an HTTP status and `{"error": message}`.
  #[napi]
  pub fn reject_upgrade(&self, request: i64, status: u32, message: String) -> bool {
    let status = u16::try_from(status)
      .ok()
      .filter(|s| (400..600).contains(s))
      .unwrap_or(401);
    self
      .server
      .decide_upgrade(to_id(request), Decision::Reject { status, message })
  }

  /// Sends an event to one session; false when it is gone or closing.
  #[napi]
  pub fn emit(&self, session: i64, event: String, payload_json: Option<String>) -> Result<bool> {
    let frame = frame_of(&event, payload_json.as_deref())?;
    Ok(self.server.registry.send(to_id(session), frame))
  }

  /// Sends an event to every session of a user (but `exceptSession`); returns how many.
  #[napi]
  pub fn emit_to_user(
    &self,
    endpoint: u32,
    key: String,
    event: String,
    payload_json: Option<String>,
    except_session: Option<i64>,
  ) -> Result<u32> {
    let frame = frame_of(&event, payload_json.as_deref())?;
    Ok(
      self
        .server
        .registry
        .send_to_user(endpoint as usize, &key, &frame, except_session.map(to_id)),
    )
  }

  /// Adds a room to an actor's list (live membership while it has a session). Returns false
  /// when the room was already listed. The membership change reaches JS as a batch event.
  #[napi]
  pub fn join_room(&self, actor: i64, name: String, handler: u32, metadata_json: String) -> Result<bool> {
    let listed = Listed {
      name: name.into(),
      handler: handler as usize,
      metadata: metadata_json.into(),
    };
    let joined = self
      .server
      .registry
      .join_room(to_id(actor), listed)
      .map_err(room_error)?;
    if let Some(change) = &joined.change {
      self.server.dispatcher.push_room_change(change);
    }
    Ok(joined.listed)
  }

  /// Removes a room from an actor's list; false when it was not listed.
  #[napi]
  pub fn leave_room(&self, actor: i64, name: String) -> Result<bool> {
    let (listed, change) = self
      .server
      .registry
      .leave_room(to_id(actor), &name)
      .map_err(room_error)?;
    if let Some(change) = &change {
      self.server.dispatcher.push_room_change(change);
    }
    Ok(listed)
  }

  /// Names of the rooms on an actor's list.
  #[napi]
  pub fn rooms_of(&self, actor: i64) -> Result<Vec<String>> {
    let rooms = self.server.registry.rooms_of(to_id(actor)).map_err(room_error)?;
    Ok(rooms.iter().map(|name| name.to_string()).collect())
  }

  /// The room instance called `name` (created, empty, when missing).
  #[napi]
  pub fn open_room(&self, name: String, handler: u32) -> OpenedRoom {
    let (id, created) = self.server.registry.open_room(&name, handler as usize);
    OpenedRoom {
      id: id as i64,
      created,
    }
  }

  /// Live members as JSON: `[{"userId","joinedAt","metadata"}]`, in join order.
  #[napi]
  pub fn room_members(&self, name: String) -> String {
    let members = self.server.registry.room_members(&name);
    let mut out = String::from("[");
    for (i, member) in members.iter().enumerate() {
      if i > 0 {
        out.push(',');
      }
      out.push_str(r#"{"userId":"#);
      push_json_string(&mut out, &member.user);
      out.push_str(r#","joinedAt":"#);
      out.push_str(&member.joined_at_ms.to_string());
      out.push_str(r#","metadata":"#);
      out.push_str(&member.metadata);
      out.push('}');
    }
    out.push(']');
    out
  }

  /// Replaces a live member's metadata; false when the user is not a member.
  #[napi]
  pub fn set_member_metadata(&self, name: String, user: String, metadata_json: String) -> bool {
    self
      .server
      .registry
      .set_member_metadata(&name, &user, &metadata_json)
  }

  /// Sends an event to every session of every live member (but `exceptSession`); returns how
  /// many sessions it was queued for. Encoded once; the bytes are shared by all recipients.
  #[napi]
  pub fn emit_to_room(
    &self,
    name: String,
    event: String,
    payload_json: Option<String>,
    except_session: Option<i64>,
  ) -> Result<u32> {
    let frame = frame_of(&event, payload_json.as_deref())?;
    Ok(
      self
        .server
        .registry
        .send_to_room(&name, &frame, except_session.map(to_id)),
    )
  }

  /// Answers a call with its result (JSON text, or null for undefined).
  #[napi]
  pub fn reply(&self, session: i64, call: i64, result_json: Option<String>) -> bool {
    self
      .server
      .registry
      .send(to_id(session), reply_frame(to_id(call), result_json.as_deref()))
  }

  /// Answers a call with an error.
  #[napi]
  pub fn reply_error(
    &self,
    session: i64,
    call: i64,
    code: String,
    message: String,
    meta_json: Option<String>,
  ) -> bool {
    let frame = reply_error_frame(to_id(call), &code, &message, meta_json.as_deref());
    self.server.registry.send(to_id(session), frame)
  }

  /// Closes a session after the frames already queued for it.
  /// `code` must be 1000 or 3000–4999 unless `internal` (1008, 1011 from the runtime itself).
  #[napi]
  pub fn close_session(
    &self,
    session: i64,
    code: u32,
    reason: String,
    internal: Option<bool>,
  ) -> Result<bool> {
    let code = u16::try_from(code).map_err(|_| invalid(format!("invalid close code {code}")))?;
    let runtime_code = internal.unwrap_or(false)
      && matches!(
        CloseCode::from_u16(code),
        CloseCode::Policy | CloseCode::InternalError
      );
    if !runtime_code && !CloseCode::is_sendable_by_app(code) {
      return Err(invalid(format!(
        "close code must be 1000 or 3000-4999, got {code}"
      )));
    }
    if reason.len() > 123 {
      return Err(invalid("close reason must be at most 123 bytes"));
    }
    Ok(self.server.registry.close_session(to_id(session), code, &reason))
  }

  /// Session ids of an actor, in connection order.
  #[napi]
  pub fn sessions_of(&self, actor: i64) -> Vec<i64> {
    self
      .server
      .registry
      .sessions_of(to_id(actor))
      .into_iter()
      .map(|id| id as i64)
      .collect()
  }

  #[napi]
  pub fn stats(&self) -> NativeStats {
    let stats = self.server.stats();
    let clamp = |v: usize| u32::try_from(v).unwrap_or(u32::MAX);
    NativeStats {
      sessions: clamp(stats.sessions),
      actors: clamp(stats.actors),
      rooms: clamp(stats.rooms),
      connections: clamp(stats.connections),
    }
  }

  /// Starts shutdown; the batch ends with the shutdown event once every socket is released.
  #[napi]
  pub fn shutdown(&self) -> Result<()> {
    self.server.begin_shutdown(runtime()?.handle());
    Ok(())
  }

  /// Drops the wake-up function so the Node process may exit. Called once after shutdown.
  #[napi]
  pub fn release(&mut self) {
    self.server.dispatcher.set_waker(None);
    self.wake = None;
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
  }
}
