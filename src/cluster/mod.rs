//! Cluster mode: several warren processes (nodes) share rooms and users through one Redis 7.
//!
//! What a node does here:
//! - holds a **lease** on its node id (`warren:node:<id>`, [`NODE_LEASE`], renewed every
//!   [`NODE_LEASE_RENEWAL`] by a script that checks this process's nonce), so two processes can
//!   never run as the same node, and the other nodes can tell a dead one from a live one;
//! - **publishes** what leaves it for other nodes: every room message (one script per message
//!   gives it the room's next offset and epoch, then PUBLISHes it on the room's channel) and
//!   every message to a user (on one users channel). Publishes are queued without waiting
//!   (bounded: [`MAX_PENDING_PUBLISHES`]) and sent in pipelines of up to [`PUBLISH_BATCH`];
//! - **subscribes** to the channels of the rooms it has in memory (and to the users channel),
//!   and hands what other nodes published to its own sessions: each node fans out to its own
//!   sessions, so a message crosses Redis once per node, not once per recipient;
//! - **notices loss**: a room whose offsets jump, or whose epoch changed, or a pub/sub
//!   connection that dropped (it is probed while idle), means some sessions missed messages.
//!   Their resume state ends and they reconnect to re-sync ([`Peer::missed`]) instead of silently
//!   missing frames.
//!
//! The origin of a message delivers it to its own sessions at once (before it even reaches
//! Redis), so each node sees its own messages in the order it sent them, and every node sees
//! every other node's messages in the order that node sent them. Two nodes sending to one room at
//! the same moment may interleave differently on different nodes.

mod lease;
mod publisher;
pub mod scripts;
mod subscriber;
pub mod wire;

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::runtime::Handle;
use tokio::sync::{mpsc, Notify};

use crate::config::{ClusterConfig, Durability, MAX_PENDING_PUBLISHES, NODE_LEASE};
use crate::durability::gate::Then;
use crate::error::CoreError;
use crate::events::Level;
use crate::ids::DefinitionId;
use crate::json;
use crate::protocol::Unsealed;
use crate::registry::Target;

/// Time to open a connection to Redis; a node that cannot reach Redis fails to start.
const REDIS_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Time Redis may take to answer a command (a pipeline of publishes included).
const REDIS_RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);

/// Reconnection attempts before a command fails (the next command tries again).
const REDIS_CONNECT_RETRIES: usize = 2;

/// What the cluster asks of the node it runs in (the core).
pub trait Peer: Send + Sync + 'static {
  /// A frame another node published, for this node's sessions of `target`.
  fn deliver(&self, target: Target<'_>, frame: Unsealed);
  /// Sessions in `room` (every room when `None`) may have missed messages: end their resume
  /// state so their clients re-sync.
  fn missed(&self, room: Option<&str>);
  /// The rooms this node has in memory (their channels are subscribed).
  fn rooms(&self) -> Vec<Arc<str>>;
  /// Signalled when a room enters or leaves memory.
  fn rooms_changed(&self) -> &Notify;
  /// The connection definition called `name`.
  fn definition_named(&self, name: &str) -> Option<DefinitionId>;
  fn report(&self, level: Level, message: &str);
  /// Resolves when the node shuts down.
  fn stopped(&self) -> impl Future<Output = ()> + Send + '_;
}

/// Something to publish.
enum Publish {
  Room { room: String, frame: String },
  User { message: String },
}

/// This node's membership in the cluster.
pub struct Cluster {
  node: Arc<str>,
  /// The node id as a JSON string literal (the publish script splices it into headers).
  node_json: String,
  /// A random value that says this process holds the node's lease.
  nonce: String,
  client: redis::Client,
  commands: ConnectionManager,
  publishes: mpsc::Sender<Publish>,
  /// The other end of `publishes`, until [`Cluster::start`] hands it to the publisher.
  queued: Mutex<Option<mpsc::Receiver<Publish>>>,
  /// The first pub/sub connection (subscribed to the users channel before the node serves
  /// anyone), until [`Cluster::start`] hands it to the subscriber.
  first_subscription: Mutex<Option<subscriber::Connection>>,
  /// Publishes dropped because the queue was full, not yet reported.
  dropped: AtomicU64,
}

fn redis_error(what: &str, error: redis::RedisError) -> CoreError {
  CoreError::Cluster(format!("{what}: {error}"))
}

impl Cluster {
  /// Connects to Redis, checks it keeps acknowledged writes (under strict durability), and takes
  /// the lease on this node's id.
  pub async fn connect(config: &ClusterConfig, durability: Durability) -> Result<Self, CoreError> {
    let client =
      redis::Client::open(config.redis_url.as_str()).map_err(|e| redis_error("bad cluster.redis URL", e))?;
    let settings = ConnectionManagerConfig::new()
      .set_connection_timeout(Some(REDIS_CONNECT_TIMEOUT))
      .set_response_timeout(Some(REDIS_RESPONSE_TIMEOUT))
      .set_number_of_retries(REDIS_CONNECT_RETRIES);
    let mut commands = ConnectionManager::new_with_config(client.clone(), settings)
      .await
      .map_err(|e| redis_error(&format!("cannot connect to Redis at {}", config.redis_url), e))?;
    if durability == Durability::Strict {
      check_persistence(&mut commands).await?;
    }
    let nonce = uuid::Uuid::new_v4().to_string();
    let taken: Option<String> = redis::cmd("SET")
      .arg(wire::node_key(&config.node_id))
      .arg(&nonce)
      .arg("NX")
      .arg("PX")
      .arg(NODE_LEASE.as_millis() as u64)
      .query_async(&mut commands)
      .await
      .map_err(|e| redis_error("cannot take the node lease", e))?;
    if taken.is_none() {
      return Err(CoreError::Cluster(format!(
        "node id {:?} is held by another live process (its lease lasts up to {} s after it stops)",
        config.node_id,
        NODE_LEASE.as_secs()
      )));
    }
    redis::Script::new(scripts::PUBLISH_ROOM)
      .prepare_invoke()
      .load_async(&mut commands)
      .await
      .map_err(|e| redis_error("cannot load the publish script", e))?;
    let first_subscription = subscriber::connect(&client)
      .await
      .map_err(|e| redis_error("cannot subscribe in Redis", e))?;
    let (publishes, queued) = mpsc::channel(MAX_PENDING_PUBLISHES);
    Ok(Self {
      node: Arc::from(config.node_id.as_str()),
      node_json: json::string(&config.node_id),
      nonce,
      client,
      commands,
      publishes,
      queued: Mutex::new(Some(queued)),
      first_subscription: Mutex::new(Some(first_subscription)),
      dropped: AtomicU64::new(0),
    })
  }

  pub fn node(&self) -> &str {
    &self.node
  }

  /// Starts the lease, publisher and subscriber tasks on `runtime`; they stop with `peer`.
  pub fn start<P: Peer>(self: &Arc<Self>, peer: &Arc<P>, runtime: &Handle) {
    runtime.spawn(lease::keep(self.clone(), peer.clone()));
    if let Some(queued) = self.queued.lock().take() {
      runtime.spawn(publisher::run(self.clone(), peer.clone(), queued));
    }
    let first = self.first_subscription.lock().take();
    runtime.spawn(subscriber::run(self.clone(), peer.clone(), first));
  }

  /// What publishes a room message for the other nodes once it leaves (see the output gate).
  pub fn room_publish(self: &Arc<Self>, room: &str, frame: &Unsealed) -> Then {
    let publish = Publish::Room {
      room: room.to_string(),
      frame: frame.text().to_string(),
    };
    self.queue(publish)
  }

  /// What publishes a message to a user's sessions on the other nodes once it leaves.
  pub fn user_publish(self: &Arc<Self>, definition: &str, user: &str, frame: &Unsealed) -> Then {
    let message = wire::user_message(&self.node, definition, user, frame.text());
    self.queue(Publish::User { message })
  }

  /// Queues without waiting; a full queue drops the message and counts it (reported by the
  /// publisher).
  fn queue(self: &Arc<Self>, publish: Publish) -> Then {
    let cluster = self.clone();
    Box::new(move || {
      if cluster.publishes.try_send(publish).is_err() {
        cluster.dropped.fetch_add(1, Ordering::Relaxed);
      }
    })
  }

  /// Gives the node's lease back (clean shutdown), so the id may be reused at once.
  pub async fn leave(&self) {
    let mut commands = self.commands.clone();
    let _: redis::RedisResult<i64> = redis::Script::new(scripts::RELEASE_LEASE)
      .key(wire::node_key(&self.node))
      .arg(&self.nonce)
      .invoke_async(&mut commands)
      .await;
  }
}

/// Refuses a Redis that may lose acknowledged writes: strict durability needs `appendonly yes`
/// and `appendfsync always`.
async fn check_persistence(commands: &mut ConnectionManager) -> Result<(), CoreError> {
  let setting = |name: &'static str| {
    let mut commands = commands.clone();
    async move {
      let pair: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg(name)
        .query_async(&mut commands)
        .await
        .map_err(|e| redis_error("cannot read Redis's persistence settings (CONFIG GET)", e))?;
      Ok::<String, CoreError>(pair.get(1).cloned().unwrap_or_default())
    }
  };
  let appendonly = setting("appendonly").await?;
  let appendfsync = setting("appendfsync").await?;
  if appendonly != "yes" || appendfsync != "always" {
    return Err(CoreError::Cluster(format!(
      "durability \"strict\" needs Redis to run with appendonly yes and appendfsync always \
       (it runs with appendonly {appendonly}, appendfsync {appendfsync}): set them, or use durability \"relaxed\""
    )));
  }
  Ok(())
}
