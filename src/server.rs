//! The server: accept loop, the upgrade (with `extractMeta` in JS when the endpoint asks for
//! it), idle-actor eviction and shutdown.
//!
//! Every task a server spawns watches its shutdown signal, and every connection holds a
//! [`LiveGuard`], so shutdown can wait until the last socket is released before it tells JS
//! (the `SHUTDOWN` event): nothing is left running when `close()` resolves.
//!
//! A client that resumes sessions (`?_resume=`) gets a token in a `session` frame; when its
//! socket drops, the session waits (see [`crate::registry`]'s resume module) and a later upgrade
//! with `?_resume=<token>&_lastSeq=N` continues it after `extractMeta` accepted the same user.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Handle;
use tokio::sync::{oneshot, watch, Notify};
use tokio::time::{timeout_at, Instant};
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::WebSocketStream;

use crate::calls::PendingCalls;
use crate::config::{ServerConfig, READ_BUFFER_BYTES, WRITE_BUFFER_BYTES};
use crate::dispatch::{Dispatcher, OpenEvent};
use crate::error::{CloseCode, UpgradeRejection};
use crate::gate::OutputGate;
use crate::http::{self, HeadError, RequestHead, Route};
use crate::outbox::Outbox;
use crate::protocol::{reply_error_frame, session_frame};
use crate::registry::{NewSession, Registry, Resumed, Suspended, Target};
use crate::schedules::Schedules;
use crate::session::{self, Ended, Outcome, SessionLink};
use crate::static_files;
use crate::store::{Store, StoreError};

/// Longest wait in [`Server::release_store`] for other holders of the store to drop it.
const STORE_RELEASE_WAIT: Duration = Duration::from_secs(5);

/// The answer of `extractMeta` to an upgrade request.
#[derive(Debug)]
pub enum Decision {
  /// Open the socket for the user `key` with this meta (its attachment).
  Accept { key: String, meta_json: String },
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
  /// Sessions whose socket dropped, waiting for a resume.
  pub detached: usize,
}

pub struct Server {
  pub config: ServerConfig,
  pub registry: Registry,
  pub dispatcher: Arc<Dispatcher>,
  pub gate: OutputGate,
  pub calls: PendingCalls,
  pub schedules: Schedules,
  /// The store until the server is released; taking it out closes the database (and frees the
  /// directory for another owner) once in-flight flushes end.
  store: Mutex<Option<Arc<Store>>>,
  /// Upgrades waiting for `extractMeta`. Dropping a sender answers its client 503.
  pending_upgrades: Mutex<HashMap<u64, oneshot::Sender<Decision>>>,
  next_session: AtomicU64,
  next_request: AtomicU64,
  /// Connections in any phase (handshake or open).
  live: AtomicUsize,
  /// Signalled when `live` drops to zero.
  drained: Notify,
  /// Flips to true once, when shutdown begins.
  shutdown: watch::Sender<bool>,
}

/// Counts a connection as live for as long as it exists.
struct LiveGuard<'a>(&'a Server);

impl<'a> LiveGuard<'a> {
  fn new(server: &'a Server) -> Self {
    server.live.fetch_add(1, Ordering::SeqCst);
    Self(server)
  }
}

impl Drop for LiveGuard<'_> {
  fn drop(&mut self) {
    if self.0.live.fetch_sub(1, Ordering::SeqCst) == 1 {
      self.0.drained.notify_waiters();
    }
  }
}

impl Server {
  /// Opens the store and starts the flusher on `runtime`.
  pub fn new(config: ServerConfig, runtime: &Handle) -> Result<Arc<Self>, StoreError> {
    let store = Store::open(&config.storage)?;
    let server = Arc::new(Self {
      gate: OutputGate::new(config.durability, !config.resume_window.is_zero()),
      calls: PendingCalls::new(config.call_timeout),
      schedules: Schedules::default(),
      store: Mutex::new(Some(Arc::new(store))),
      config,
      registry: Registry::default(),
      dispatcher: Arc::new(Dispatcher::new()),
      pending_upgrades: Mutex::new(HashMap::new()),
      next_session: AtomicU64::new(0),
      next_request: AtomicU64::new(0),
      live: AtomicUsize::new(0),
      drained: Notify::new(),
      shutdown: watch::channel(false).0,
    });
    let flusher = server.clone();
    runtime.spawn(async move { flusher.gate.run_flusher(|| flusher.store()).await });
    server.load_schedules()?;
    runtime.spawn(server.clone().schedule_loop());
    Ok(server)
  }

  /// The store, until the server is released.
  pub fn store(&self) -> Option<Arc<Store>> {
    self.store.lock().clone()
  }

  /// Flushes and closes the store; later storage calls fail with a clear error. Returns once
  /// the database is closed (its directory free for another server), waiting a bounded time
  /// for a flush in progress on another thread to let go of it.
  pub fn release_store(&self) -> Result<(), StoreError> {
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

  pub fn is_shutting_down(&self) -> bool {
    *self.shutdown.borrow()
  }

  pub fn stats(&self) -> Stats {
    Stats {
      sessions: self.registry.session_count(),
      actors: self.registry.actor_count(),
      hibernated: self.registry.hibernated_count(),
      rooms: self.registry.room_count(),
      connections: self.live.load(Ordering::SeqCst),
      held_frames: self.gate.held(),
      detached: self.registry.detached_count(),
    }
  }

  /// Answers every call past its deadline with a `timeout` error (behind the output gate, like
  /// any reply).
  fn time_out_calls(&self) {
    let expired = self.calls.expired(std::time::Instant::now());
    if expired.is_empty() {
      return;
    }
    let message = format!(
      "the call did not finish within {} ms",
      self.calls.timeout().as_millis()
    );
    for (session, call) in expired {
      let frame = reply_error_frame(call, "timeout", &message, None);
      self.gate.send(&self.registry, Target::Session(session), frame);
    }
  }

  /// Binds synchronously (so a busy port is an immediate error) and starts accepting.
  pub fn listen(self: &Arc<Self>, runtime: &Handle, host: &str, port: u16) -> std::io::Result<SocketAddr> {
    let std_listener = std::net::TcpListener::bind((host, port))?;
    std_listener.set_nonblocking(true)?;
    let address = std_listener.local_addr()?;
    let listener = {
      let _entered = runtime.enter();
      TcpListener::from_std(std_listener)?
    };
    runtime.spawn(self.clone().accept_loop(listener));
    runtime.spawn(self.clone().eviction_loop());
    Ok(address)
  }

  /// A receiver of the shutdown flag (for loops that select on it).
  pub fn shutdown_receiver(&self) -> watch::Receiver<bool> {
    self.shutdown.subscribe()
  }

  /// Resolves when shutdown begins.
  async fn shutdown_signal(&self) {
    let mut receiver = self.shutdown.subscribe();
    let _ = receiver.wait_for(|stopping| *stopping).await;
  }

  async fn accept_loop(self: Arc<Self>, listener: TcpListener) {
    let mut backoff = Duration::from_millis(5);
    loop {
      tokio::select! {
        _ = self.shutdown_signal() => return,
        accepted = listener.accept() => match accepted {
          Ok((stream, peer)) => {
            backoff = Duration::from_millis(5);
            tokio::spawn(self.clone().serve_connection(stream, peer));
          }
          Err(_) => {
            // Out of file descriptors or a transient error: wait, then retry.
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(1));
          }
        }
      }
    }
  }

  /// Hibernates and evicts idle actors and rooms, and times out calls, on one timer.
  async fn eviction_loop(self: Arc<Self>) {
    let idle_for = self.config.hibernate_after;
    let mut period = (idle_for / 2).min(self.calls.timeout() / 4);
    if !self.config.resume_window.is_zero() {
      period = period.min(self.config.resume_window / 2);
    }
    let period = period.clamp(Duration::from_millis(10), Duration::from_secs(1));
    let mut ticks = tokio::time::interval(period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
      tokio::select! {
        _ = self.shutdown_signal() => return,
        _ = ticks.tick() => {
          self.registry.sweep_actors(idle_for, &self.dispatcher);
          self.dispatcher.push_room_changes(&self.registry.sweep_rooms(idle_for));
          self.time_out_calls();
          self.end_detached(false);
        }
      }
    }
  }

  async fn serve_connection(self: Arc<Self>, mut stream: TcpStream, peer: SocketAddr) {
    let _live = LiveGuard::new(&self);
    let _ = stream.set_nodelay(true);
    let deadline = Instant::now() + self.config.handshake_timeout;
    // Boxed, so that its state is freed once the socket opens instead of staying in this task
    // (a future's slots live as long as the whole function) for the socket's lifetime.
    let handshake = Box::pin(async {
      let head = match timeout_at(deadline, http::read_head(&mut stream)).await {
        Ok(Ok(head)) => head,
        Ok(Err(HeadError::Reject(rejection))) => return Err(Some(rejection)),
        Ok(Err(HeadError::Gone)) | Err(_) => return Err(None),
      };
      let serves_static = self.config.static_dir.is_some();
      let admin_token = self.config.admin_token.as_deref();
      let (endpoint, accept_key) =
        match http::route(&head, &self.config.endpoints, serves_static, admin_token) {
          Route::DestroyActor {
            kind,
            key,
            authorized,
          } => {
            let response = self.admin_destroy(&kind, &key, authorized);
            write_and_close(&mut stream, &response, deadline).await;
            return Err(None);
          }
          Route::Health => {
            write_and_close(&mut stream, &http::health_response(), deadline).await;
            return Err(None);
          }
          Route::Static => {
            let response = self.static_response(&head).await;
            write_and_close(&mut stream, &response, deadline).await;
            return Err(None);
          }
          Route::Reject(rejection) => return Err(Some(rejection)),
          Route::Upgrade { endpoint, accept_key } => (endpoint, accept_key),
        };
      // Sessions waiting for a resume hold memory like open ones: they count too, and the
      // client of one may always come back to it.
      let sessions = self.live.load(Ordering::SeqCst) + self.registry.detached_count();
      let resume = head.resume_request();
      let returning = resume
        .as_ref()
        .and_then(|request| request.token.as_deref())
        .is_some_and(|token| self.registry.is_waiting(token));
      if sessions > self.config.max_sessions && !returning {
        return Err(Some(UpgradeRejection::Unavailable(
          "server is at its session limit",
        )));
      }
      let authenticated = if self.config.endpoints[endpoint].authenticates {
        Some(
          self
            .authenticate(&head, endpoint, peer, deadline)
            .await
            .map_err(Some)?,
        )
      } else {
        None
      };
      // Only the bytes read past the head are needed from here on.
      Ok((head.leftover, endpoint, accept_key, authenticated, resume))
    });
    let outcome = tokio::select! {
      outcome = handshake => outcome,
      _ = self.shutdown_signal() => Err(Some(UpgradeRejection::Unavailable("server is shutting down"))),
    };
    let (leftover, endpoint, accept_key, authenticated, resume) = match outcome {
      Ok(accepted) => accepted,
      Err(Some(rejection)) => {
        write_and_close(&mut stream, &http::rejection_response(&rejection), deadline).await;
        return;
      }
      Err(None) => return,
    };

    let resumed = resume
      .as_ref()
      .and_then(|request| self.resume(request, endpoint, authenticated.as_ref()));
    let (id, outbox, transport, fresh) = match resumed {
      Some(resumed) => (resumed.session, resumed.outbox, resumed.transport, false),
      None => {
        let (key, meta_json) = authenticated.unwrap_or_else(default_meta);
        let (id, outbox) = self.open_session(endpoint, &key, &meta_json, resume.is_some());
        (id, outbox, 0, true)
      }
    };
    if self.is_shutting_down() {
      outbox.request_close(CloseCode::GoingAway.as_u16(), "server shutdown");
    }
    // The session is registered before the 101 leaves, so once a client sees its socket open,
    // the session is reachable (stats, toUser, rooms).
    let response = http::switching_protocols(&accept_key);
    let written = timeout_at(deadline, stream.write_all(&response)).await;
    drop(response);
    if !matches!(written, Ok(Ok(()))) {
      let ended = Ended {
        // A client that never saw its token cannot resume a fresh session.
        blip: !fresh,
        ..Ended::dropped()
      };
      self.finish(id, transport, ended);
      return;
    }
    let config = WebSocketConfig::default()
      .read_buffer_size(READ_BUFFER_BYTES)
      .write_buffer_size(WRITE_BUFFER_BYTES)
      .max_write_buffer_size(
        WRITE_BUFFER_BYTES
          + self
            .config
            .max_payload_bytes
            .max(self.config.max_backpressure_bytes),
      )
      .max_message_size(Some(self.config.max_payload_bytes))
      .max_frame_size(Some(self.config.max_payload_bytes));
    let socket = WebSocketStream::from_partially_read(stream, leftover, Role::Server, Some(config)).await;
    let link = SessionLink {
      id,
      outbox,
      transport,
      registry: &self.registry,
      dispatcher: &self.dispatcher,
      calls: &self.calls,
      close_timeout: self.config.close_timeout,
    };
    if let Outcome::Ended(ended) = session::run(socket, &link).await {
      self.finish(id, transport, ended);
    }
  }

  /// Registers a new session (and its actor, back in its rooms) and tells JS. With `resumable`,
  /// the client asked for resume: its first frame is the `session` frame with its token.
  fn open_session(&self, endpoint: usize, key: &str, meta_json: &str, resumable: bool) -> (u64, Arc<Outbox>) {
    let id = self.next_session.fetch_add(1, Ordering::Relaxed) + 1;
    let outbox = Arc::new(Outbox::new(
      self.config.max_backpressure_bytes,
      self.config.overflow_policy,
    ));
    let keeps = resumable && !self.config.resume_window.is_zero();
    let token: Option<Arc<str>> = keeps.then(|| Arc::from(uuid::Uuid::new_v4().to_string()));
    if keeps {
      outbox.keep_for_replay(self.config.resume_buffer_bytes);
    }
    if resumable {
      outbox.push(session_frame(token.as_deref(), false));
    }
    let new = NewSession {
      id,
      endpoint,
      key,
      outbox: outbox.clone(),
      meta: Arc::from(meta_json),
      token,
    };
    let (attached, mut rejoined) = self.registry.attach(new, &self.dispatcher);
    if attached.created {
      rejoined.extend(self.restore_room_list(attached.actor, endpoint, key));
    }
    // The user is back in its rooms before JS hears of the session (and runs onConnect).
    self.dispatcher.push_room_changes(&rejoined);
    self.dispatcher.push_open(&OpenEvent {
      session: id,
      actor: attached.actor,
      created: attached.created,
      endpoint,
      key,
      meta_json,
    });
    (id, outbox)
  }

  /// Continues the session a client names, when it can be (same endpoint, same user as
  /// `extractMeta` found, frames since its last number still kept). `None`: start a new one.
  fn resume(
    &self,
    request: &http::ResumeRequest,
    endpoint: usize,
    authenticated: Option<&(String, String)>,
  ) -> Option<Resumed> {
    let token = request.token.as_deref()?;
    if self.config.resume_window.is_zero() {
      return None;
    }
    let key = authenticated.map(|(key, _)| key.as_str());
    let first = session_frame(Some(token), true);
    self
      .registry
      .resume(token, endpoint, key, request.last_seq, first)
      .ok()
  }

  /// Socket `transport` of a session stopped: a blip leaves the session waiting for a resume
  /// (unless the server is stopping); anything else ends it.
  fn finish(&self, session: u64, transport: u64, ended: Ended) {
    if ended.blip && !self.is_shutting_down() {
      match self.registry.suspend(session, transport, ended.clone()) {
        Suspended::Waiting | Suspended::Superseded => return,
        Suspended::End => {}
      }
    }
    if let Some(left) = self.registry.end(session, transport, &self.dispatcher) {
      self.end_session(session, &ended, &left);
    }
  }

  /// Tells JS a session ended (after the registry forgot it).
  fn end_session(&self, session: u64, ended: &Ended, left: &[crate::rooms::RoomChange]) {
    self.calls.session_closed(session);
    self.dispatcher.push_close(session, ended.code, &ended.reason);
    self.dispatcher.push_room_changes(left);
  }

  /// Ends detached sessions whose window is over or that were closed meanwhile (every detached
  /// session when `all`: the server is stopping).
  fn end_detached(&self, all: bool) {
    let window = self.config.resume_window;
    for (session, ended, left) in self.registry.end_detached(window, all, &self.dispatcher) {
      self.end_session(session, &ended, &left);
    }
  }

  /// `DELETE /actors/<kind>/<key>`: 204 when the actor existed (in memory or in storage),
  /// 404 when not, 401 without the admin token.
  fn admin_destroy(&self, kind: &str, key: &str, authorized: bool) -> Vec<u8> {
    if !authorized {
      return http::rejection_response(&UpgradeRejection::Unauthorized);
    }
    match self
      .config
      .endpoints
      .iter()
      .position(|endpoint| endpoint.name == kind)
    {
      Some(endpoint) if self.destroy_actor_by_key(endpoint, key) => http::no_content_response(),
      _ => http::rejection_response(&UpgradeRejection::NotFound),
    }
  }

  async fn static_response(&self, head: &RequestHead) -> Vec<u8> {
    let Some(root) = self.config.static_dir.clone() else {
      return http::rejection_response(&UpgradeRejection::NotFound);
    };
    match static_files::load(root, head.path().to_string()).await {
      Some((content_type, body)) => http::file_response(content_type, &body, head.method == "HEAD"),
      None => http::rejection_response(&UpgradeRejection::NotFound),
    }
  }

  /// Sends the request to `extractMeta` and waits for its decision.
  async fn authenticate(
    &self,
    head: &RequestHead,
    endpoint: usize,
    peer: SocketAddr,
    deadline: Instant,
  ) -> Result<(String, String), UpgradeRejection> {
    let request = self.next_request.fetch_add(1, Ordering::Relaxed) + 1;
    let (sender, receiver) = oneshot::channel();
    self.pending_upgrades.lock().insert(request, sender);
    let remote = peer.ip().to_string();
    self
      .dispatcher
      .push_upgrade(request, endpoint, &head.target, &remote, &head.headers_json());
    let decision = timeout_at(deadline, receiver).await;
    self.pending_upgrades.lock().remove(&request);
    match decision {
      Ok(Ok(Decision::Accept { key, meta_json })) => Ok((key, meta_json)),
      Ok(Ok(Decision::Reject {
        status,
        message,
        code,
      })) => Err(UpgradeRejection::Refused {
        status,
        message,
        code,
      }),
      Ok(Err(_)) => Err(UpgradeRejection::Unavailable("server is shutting down")),
      Err(_) => Err(UpgradeRejection::Unavailable("authentication timed out")),
    }
  }

  /// Delivers the decision of `extractMeta`; false when the request is gone (timed out).
  pub fn decide_upgrade(&self, request: u64, decision: Decision) -> bool {
    match self.pending_upgrades.lock().remove(&request) {
      Some(sender) => sender.send(decision).is_ok(),
      None => false,
    }
  }

  /// Stops accepting, closes every socket with 1001, waits until all are released, then
  /// queues the `SHUTDOWN` event. Idempotent.
  pub fn begin_shutdown(self: &Arc<Self>, runtime: &Handle) {
    if self.shutdown.send_replace(true) {
      return;
    }
    self.pending_upgrades.lock().clear();
    self
      .registry
      .close_all(CloseCode::GoingAway.as_u16(), "server shutdown");
    let server = self.clone();
    runtime.spawn(async move {
      loop {
        let drained = server.drained.notified();
        tokio::pin!(drained);
        drained.as_mut().enable();
        if server.live.load(Ordering::SeqCst) == 0 {
          break;
        }
        drained.await;
      }
      // No socket is left to suspend a session now: the ones waiting for a resume end here.
      server.end_detached(true);
      server.dispatcher.push_shutdown();
    });
  }
}

/// Meta for endpoints without `extractMeta`: a fresh id as both user and client.
fn default_meta() -> (String, String) {
  let id = uuid::Uuid::new_v4().to_string();
  let meta = format!(r#"{{"userId":"{id}","clientId":"{id}","channels":["default"]}}"#);
  (id, meta)
}

async fn write_and_close(stream: &mut TcpStream, response: &[u8], deadline: Instant) {
  let write = async {
    stream.write_all(response).await?;
    stream.shutdown().await
  };
  let _ = timeout_at(deadline, write).await;
}
