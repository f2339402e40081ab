//! Sockets: accepting TCP connections, the HTTP request head, the upgrade, and one task per
//! WebSocket session. This layer knows bytes, frames and sockets, not actors or storage: what a
//! session *means* is asked of its [`Host`] (the core), which is the only thing it calls up into.
//!
//! - [`listener`]: the accept loop and the life of one connection (head → route → auth → 101);
//! - [`tls`]: the certificate of a `wss://` listener, replaceable while it runs;
//! - [`adopt`]: sockets accepted by another HTTP server and handed over to be served here;
//! - [`http`]: request heads, routing, plain responses;
//! - [`admin`]: `/metrics` and the inspector's page and JSON API;
//! - [`static_files`]: a directory served beside the sockets;
//! - [`fragments`]: the fragment count of inbound messages (`maxFragments`);
//! - [`encoding`]: a socket's spelling of the protocol (JSON text, or MessagePack), transcoded
//!   at its edge;
//! - [`session`]: one open WebSocket (reader, writer, pings, close handshake);
//! - [`outbox`]: the bounded queue of frames towards one socket, with its replay buffer.

pub mod admin;
pub mod adopt;
pub mod encoding;
pub mod fragments;
pub mod http;
pub mod listener;
pub mod outbox;
pub mod session;
pub mod static_files;
pub mod tls;
pub mod wire_frame;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use tokio::sync::{Notify, Semaphore};
use tokio::time::Instant;

use crate::config::ServerConfig;
use crate::error::{SessionEnd, UpgradeRejection};
use crate::ids::{DefinitionId, SessionId};
use crate::protocol::{ClientFrame, RawData};
use http::{RequestHead, ResumeRequest};
use outbox::Outbox;

/// Who a socket belongs to, as `extractMeta` decided: the user and the session's meta (JSON).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
  pub key: String,
  pub meta_json: String,
}

/// A session a socket serves: new, or resumed from an earlier socket.
pub struct Attached {
  pub session: SessionId,
  pub outbox: Arc<Outbox>,
  /// This socket's generation in the outbox (see [`Outbox::resume`]).
  pub generation: u64,
  /// False when the socket continues a session: a client that never saw its token cannot
  /// resume a fresh one, so only continued sessions wait for a resume if the 101 fails.
  pub resumed: bool,
}

/// What the transport asks of the core. Every method is quick and never waits on JS, except
/// [`Host::authenticate`] (bounded by the handshake deadline) and [`Host::wait_for_space`].
pub trait Host: Send + Sync + 'static {
  fn config(&self) -> &ServerConfig;

  /// Connections in any phase; shutdown waits until they are all gone.
  fn connections(&self) -> &Connections;

  fn is_shutting_down(&self) -> bool;

  /// Resolves when shutdown begins.
  fn shutdown_signal(&self) -> impl Future<Output = ()> + Send + '_;

  /// Whether a new session may open now (open and waiting sessions count against
  /// `maxSessions`, handshakes in progress do not); a client naming a waiting session may go
  /// on to `extractMeta`, which decides whether it is that session's client. A quick answer
  /// before `extractMeta` runs: [`Host::attach`] decides for good.
  fn admits(&self, resume: Option<&ResumeRequest>) -> bool;

  /// Runs `extractMeta` for an upgrade request and waits (until `deadline`) for its answer.
  fn authenticate(
    &self,
    head: &RequestHead,
    definition: DefinitionId,
    peer: SocketAddr,
    deadline: Instant,
  ) -> impl Future<Output = Result<Identity, UpgradeRejection>> + Send;

  /// `DELETE /actors/<kind>/<key>`: destroys an actor by its definition's name; false when it
  /// did not exist.
  fn destroy_actor_named(&self, kind: &str, key: &str) -> bool;

  /// Hibernates an actor by its definition's name (the inspector); false when it is not awake
  /// with a session.
  fn hibernate_actor_named(&self, kind: &str, key: &str) -> bool;

  /// The Prometheus text of the server's metrics (`GET /metrics`).
  fn metrics_text(&self) -> String;

  /// The inspector's list of actors, sessions and rooms, as JSON.
  fn inspect_overview(&self) -> String;

  /// The inspector's view of one actor (JSON), or `None` when the kind is unknown.
  fn inspect_actor(&self, kind: &str, key: &str) -> Option<String>;

  /// Registers the session this socket serves (resuming the one the client names when it can),
  /// before the 101 leaves. A new session is refused (503) when the server is at
  /// `maxSessions`, whatever token the client gave, or when it cannot be placed (cluster mode,
  /// Redis unreachable).
  fn attach(
    &self,
    definition: DefinitionId,
    identity: Option<Identity>,
    resume: Option<ResumeRequest>,
  ) -> impl Future<Output = Result<Attached, UpgradeRejection>> + Send;

  /// Socket `generation` of `session` stopped serving it.
  fn detach(&self, session: SessionId, generation: u64, end: SessionEnd);

  /// Waits while the queue towards JS has no room for `session` (its own share of the batch
  /// is used up, or the whole batch is full): socket readers, before reading on.
  fn wait_for_space(&self, session: SessionId) -> impl Future<Output = ()> + Send + '_;

  /// An event or call frame of a session, for JS. Pings never get here.
  fn receive(&self, session: SessionId, frame: ClientFrame<'_>);

  /// A message of a raw endpoint's session, as it arrived, for JS.
  fn receive_raw(&self, session: SessionId, data: RawData<'_>);
}

/// Counts live connections (handshaking or open), so shutdown can wait for the last one.
#[derive(Default)]
pub struct Connections {
  live: AtomicUsize,
  drained: Notify,
  /// The `maxPendingHandshakes` permits, shared by the listener and adopted sockets.
  handshakes: OnceLock<Arc<Semaphore>>,
}

/// Counts a connection as live for as long as it exists.
pub struct LiveGuard<'a>(&'a Connections);

impl Drop for LiveGuard<'_> {
  fn drop(&mut self) {
    if self.0.live.fetch_sub(1, Ordering::SeqCst) == 1 {
      self.0.drained.notify_waiters();
    }
  }
}

impl Connections {
  pub fn enter(&self) -> LiveGuard<'_> {
    self.live.fetch_add(1, Ordering::SeqCst);
    LiveGuard(self)
  }

  /// The permits of connections whose handshake has not finished (`limit` of them, set by
  /// the first caller: the limit comes from the configuration, which does not change).
  pub fn handshakes(&self, limit: usize) -> Arc<Semaphore> {
    self
      .handshakes
      .get_or_init(|| Arc::new(Semaphore::new(limit)))
      .clone()
  }

  pub fn count(&self) -> usize {
    self.live.load(Ordering::SeqCst)
  }

  /// Resolves once no connection is live.
  pub async fn drained(&self) {
    loop {
      let drained = self.drained.notified();
      tokio::pin!(drained);
      drained.as_mut().enable();
      if self.count() == 0 {
        return;
      }
      drained.await;
    }
  }
}
