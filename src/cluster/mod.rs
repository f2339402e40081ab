//! Cluster mode: several warren processes (nodes) share rooms and users through one Redis 7.
//!
//! What a node does here:
//! - holds a **lease** on its node id (`warren:node:<id>`, [`crate::config::NODE_LEASE`] by
//!   default, renewed three times per lease by a script that checks this process's nonce), so
//!   two processes can never run as the same node, and the other nodes can tell a dead one from
//!   a live one. A node that cannot renew in time **fences itself**: it closes its sessions and
//!   refuses to commit until it holds the lease again;
//! - **publishes** what leaves it for other nodes: every room message (one script per message
//!   gives it the room's next offset and epoch, then PUBLISHes it on the room's channel) and
//!   every message to a user (on one users channel). Publishes are queued without waiting
//!   (bounded: [`MAX_PENDING_PUBLISHES`] messages, [`MAX_PENDING_PUBLISH_BYTES`]) and sent in pipelines of up to [`PUBLISH_BATCH`];
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

pub mod alarms;
mod lease;
pub mod nodes;
mod publisher;
pub mod rooms;
pub mod scripts;
mod subscriber;
pub mod wire;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::runtime::Handle;
use tokio::sync::{mpsc, Notify};

use crate::config::{ClusterConfig, Durability, MAX_PENDING_PUBLISHES, MAX_PENDING_PUBLISH_BYTES};
use crate::durability::gate::Then;
use crate::durability::store::Key;
use crate::durability::{Fence, Replica, ReplicaError, ReplicaWrite};
use crate::error::CoreError;
use crate::events::Level;
use crate::ids::DefinitionId;
use crate::json;
use crate::protocol::{RawData, Unsealed};
use crate::registry::Target;
use crate::transport::outbox::WireFrame;

/// Time to open a connection to Redis; a node that cannot reach Redis fails to start.
const REDIS_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Time Redis may take to answer a command (a pipeline of publishes included).
const REDIS_RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);

/// Reconnection attempts before a command fails (the next command tries again).
const REDIS_CONNECT_RETRIES: usize = 2;

/// The error code [`scripts::WRITE_FENCED`] answers with when another node owns the actor.
const FENCED_CODE: &str = "FENCED";

/// What the cluster asks of the node it runs in (the core).
pub trait Peer: Send + Sync + 'static {
  /// A frame another node published, for this node's sessions of `target`.
  fn deliver(&self, target: Target<'_>, frame: Unsealed);
  /// A raw endpoint's frame another node published, for this node's raw sessions of `target`.
  fn deliver_raw(&self, target: Target<'_>, frame: WireFrame);
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
  /// A message another node addressed to this one (a forwarded session's traffic).
  fn on_node_message(&self, message: nodes::NodeMessage<'_>);
  /// The node lost its lease (`true`: others may take its actors over, so it must stop serving
  /// and committing) or holds it again (`false`).
  fn fence(&self, fenced: bool);
}

/// Where an actor lives, as the directory says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Placement {
  /// Another live node holds it.
  Elsewhere { owner: Arc<str> },
  /// This node holds it, under `fence`; `records` are its stored records as Redis has them
  /// (key in the store, value or `None`): what this node's copy must become.
  Here {
    fence: Fence,
    records: Vec<(Vec<u8>, Option<Vec<u8>>)>,
  },
}

/// The key in Redis of a record stored under `key` in the local store.
fn data_key(key: &[u8]) -> Vec<u8> {
  let mut out = b"warren:data:".to_vec();
  out.extend_from_slice(key);
  out
}

/// Something to send to Redis without waiting for it.
enum Publish {
  /// `frame` as a room message carries it (see [`wire::RoomFrame`]).
  Room { room: String, frame: Vec<u8> },
  /// A message on a channel (the users channel, a node's channel).
  Message { channel: String, message: Vec<u8> },
  /// Give an actor's claim up.
  Release { actor: String },
}

impl Publish {
  /// What it holds in memory while queued, for [`MAX_PENDING_PUBLISH_BYTES`].
  fn bytes(&self) -> usize {
    match self {
      Publish::Room { room, frame } => room.len() + frame.len(),
      Publish::Message { channel, message } => channel.len() + message.len(),
      Publish::Release { actor } => actor.len(),
    }
  }
}

/// This node's membership in the cluster.
pub struct Cluster {
  node: Arc<str>,
  /// The node id as a JSON string literal (the publish script splices it into headers).
  node_json: String,
  /// A random value that says this process holds the node's lease.
  nonce: String,
  client: redis::Client,
  /// The connection commands go through; replaced by a new one when Redis stops answering on
  /// it ([`Cluster::unanswered`]).
  commands: Mutex<ConnectionManager>,
  publishes: mpsc::Sender<Publish>,
  /// The other end of `publishes`, until [`Cluster::start`] hands it to the publisher.
  queued: Mutex<Option<mpsc::Receiver<Publish>>>,
  /// The first pub/sub connection (subscribed to the users channel before the node serves
  /// anyone), until [`Cluster::start`] hands it to the subscriber.
  first_subscription: Mutex<Option<subscriber::Connection>>,
  /// Publishes dropped because the queue was full, not yet reported.
  dropped: AtomicU64,
  /// Bytes of the publishes queued (see [`MAX_PENDING_PUBLISH_BYTES`]).
  queued_bytes: AtomicUsize,
  /// How long the lease lasts without renewal.
  lease: Duration,
  /// Signalled when Redis stopped answering on the command connection: the pub/sub one is
  /// likely dead too, so the subscriber replaces it.
  relink: Notify,
  /// The rooms whose channels the subscriber has subscribed to (Redis confirmed), and a signal
  /// when they change: a member's join is sent to the room's owner only once this node hears
  /// the room, or the owner's answer to it (`onJoin`'s broadcast) could pass it by.
  subscribed: Mutex<std::collections::HashSet<Arc<str>>>,
  subscribed_changed: Notify,
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
    let mut commands = ConnectionManager::new_with_config(client.clone(), connection_settings())
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
      .arg(config.lease.as_millis() as u64)
      .query_async(&mut commands)
      .await
      .map_err(|e| redis_error("cannot take the node lease", e))?;
    if taken.is_none() {
      return Err(CoreError::Cluster(format!(
        "node id {:?} is held by another live process (its lease lasts up to {} s after it stops)",
        config.node_id,
        config.lease.as_secs()
      )));
    }
    redis::Script::new(scripts::PUBLISH_ROOM)
      .prepare_invoke()
      .load_async(&mut commands)
      .await
      .map_err(|e| redis_error("cannot load the publish script", e))?;
    for script in [
      scripts::CLAIM_ACTOR,
      scripts::RELEASE_ACTOR,
      scripts::WRITE_FENCED,
      scripts::WRITE_SCHEDULE_FENCED,
      scripts::TAKE_SCHEDULE,
    ] {
      redis::Script::new(script)
        .prepare_invoke()
        .load_async(&mut commands)
        .await
        .map_err(|e| redis_error("cannot load the directory scripts", e))?;
    }
    let first_subscription = subscriber::connect(&client, &config.node_id)
      .await
      .map_err(|e| redis_error("cannot subscribe in Redis", e))?;
    let (publishes, queued) = mpsc::channel(MAX_PENDING_PUBLISHES);
    Ok(Self {
      node: Arc::from(config.node_id.as_str()),
      node_json: json::string(&config.node_id),
      nonce,
      client,
      commands: Mutex::new(commands),
      publishes,
      queued: Mutex::new(Some(queued)),
      first_subscription: Mutex::new(Some(first_subscription)),
      dropped: AtomicU64::new(0),
      queued_bytes: AtomicUsize::new(0),
      lease: config.lease,
      relink: Notify::new(),
      subscribed: Mutex::new(std::collections::HashSet::new()),
      subscribed_changed: Notify::new(),
    })
  }

  pub fn node(&self) -> &str {
    &self.node
  }

  /// The connection to send commands on.
  fn commands(&self) -> ConnectionManager {
    self.commands.lock().clone()
  }

  /// Redis did not answer in time. A connection whose peer vanished without a word (a network
  /// black hole) may wait forever, so the next command goes through a new one, and the pub/sub
  /// link is replaced too.
  fn unanswered(&self) {
    if let Ok(fresh) = ConnectionManager::new_lazy_with_config(self.client.clone(), connection_settings()) {
      *self.commands.lock() = fresh;
    }
    self.relink.notify_one();
  }

  /// How long this node's lease lasts without renewal.
  pub fn lease(&self) -> Duration {
    self.lease
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
      frame: frame.text().as_bytes().to_vec(),
    };
    self.queue(publish)
  }

  /// What publishes a raw endpoint's frame to a room's raw sessions on the other nodes once it
  /// leaves. `None` for a frame no raw session takes.
  pub fn room_publish_raw(self: &Arc<Self>, room: &str, frame: &WireFrame) -> Option<Then> {
    let data = match frame {
      WireFrame::RawText(text) => RawData::Text(text.as_str()),
      WireFrame::Binary(bytes) => RawData::Binary(bytes),
      WireFrame::Text(_) | WireFrame::Pong(_) => return None,
    };
    let publish = Publish::Room {
      room: room.to_string(),
      frame: wire::raw_room_frame(data),
    };
    Some(self.queue(publish))
  }

  /// What publishes a message to a user's sessions on the other nodes once it leaves.
  pub fn user_publish(self: &Arc<Self>, definition: &str, user: &str, frame: &Unsealed) -> Then {
    let message = wire::user_message(&self.node, definition, user, frame.text()).into_bytes();
    let channel = wire::USERS_CHANNEL.to_string();
    self.queue(Publish::Message { channel, message })
  }

  /// Sends a message to another node (in order with everything else this node publishes).
  pub fn send_to(self: &Arc<Self>, node: &str, message: impl Into<Vec<u8>>) {
    let channel = nodes::node_channel(node);
    let message = message.into();
    (self.queue(Publish::Message { channel, message }))();
  }

  /// Where the actor of `(definition, key)` lives: claimed for this node unless a live node
  /// holds it.
  pub async fn claim(&self, definition: &str, key: &str) -> Result<Placement, CoreError> {
    let mut commands = self.commands();
    let records = [
      Key::ActorState {
        definition,
        user: key,
      }
      .encode(),
      Key::RoomList {
        definition,
        user: key,
      }
      .encode(),
    ];
    let actor = wire::actor_key(definition, key);
    let (owner, token, state, list): (String, u64, Option<Vec<u8>>, Option<Vec<u8>>) =
      redis::Script::new(scripts::CLAIM_ACTOR)
        .key(&actor)
        .key(data_key(&records[0]))
        .key(data_key(&records[1]))
        .arg(&*self.node)
        .arg(wire::NODE_KEY_PREFIX)
        .invoke_async(&mut commands)
        .await
        .map_err(|e| redis_error("cannot place the actor", e))?;
    if owner != *self.node {
      return Ok(Placement::Elsewhere {
        owner: Arc::from(owner),
      });
    }
    let [state_key, list_key] = records;
    Ok(Placement::Here {
      fence: Fence { actor, token },
      records: vec![(state_key, state), (list_key, list)],
    })
  }

  /// The nodes among `nodes` that no longer hold their lease (are dead), read in one round trip.
  pub async fn dead_among(
    &self,
    nodes: Vec<Arc<str>>,
  ) -> Result<std::collections::HashSet<Arc<str>>, CoreError> {
    let mut pipe = redis::pipe();
    for node in &nodes {
      pipe.cmd("EXISTS").arg(wire::node_key(node));
    }
    let mut commands = self.commands();
    let alive: Vec<bool> = pipe
      .query_async(&mut commands)
      .await
      .map_err(|e| redis_error("cannot read node leases", e))?;
    Ok(
      nodes
        .into_iter()
        .zip(alive)
        .filter_map(|(node, alive)| (!alive).then_some(node))
        .collect(),
    )
  }

  /// Resolves once this node is subscribed to `room`'s channel (the caller bounds the wait).
  pub async fn until_subscribed(&self, room: &str) {
    loop {
      let changed = self.subscribed_changed.notified();
      tokio::pin!(changed);
      changed.as_mut().enable();
      if self.subscribed.lock().contains(room) {
        return;
      }
      changed.await;
    }
  }

  /// The subscriber's rooms after a change it made (see [`Cluster::until_subscribed`]).
  fn now_subscribed(&self, rooms: &std::collections::HashSet<Arc<str>>) {
    self.subscribed.lock().clone_from(rooms);
    self.subscribed_changed.notify_waiters();
  }

  /// Gives up this node's claim on an actor that left memory (queued).
  pub fn release(self: &Arc<Self>, definition: &str, key: &str) {
    let actor = wire::actor_key(definition, key);
    (self.queue(Publish::Release { actor }))();
  }

  /// Queues without waiting; a full queue drops the message and counts it (reported by the
  /// publisher).
  fn queue(self: &Arc<Self>, publish: Publish) -> Then {
    let cluster = self.clone();
    Box::new(move || cluster.enqueue(publish))
  }

  /// Queues `publish` now, or drops and counts it when the queue is full (in messages or bytes).
  fn enqueue(&self, publish: Publish) {
    let bytes = publish.bytes();
    let before = self.queued_bytes.fetch_add(bytes, Ordering::Relaxed);
    let fits = before + bytes <= MAX_PENDING_PUBLISH_BYTES;
    if !fits || self.publishes.try_send(publish).is_err() {
      self.queued_bytes.fetch_sub(bytes, Ordering::Relaxed);
      self.dropped.fetch_add(1, Ordering::Relaxed);
    }
  }

  /// The publisher took `publish` off the queue.
  fn dequeued(&self, publish: &Publish) {
    self.queued_bytes.fetch_sub(publish.bytes(), Ordering::Relaxed);
  }

  /// Gives the node's lease back (clean shutdown), so the id may be reused at once.
  pub async fn leave(&self) {
    let mut commands = self.commands();
    let _: redis::RedisResult<i64> = redis::Script::new(scripts::RELEASE_LEASE)
      .key(wire::node_key(&self.node))
      .arg(&self.nonce)
      .invoke_async(&mut commands)
      .await;
  }
}

impl Replica for Cluster {
  /// One pipeline: each write checks its actor's claim (fencing) in the same script that makes
  /// it. With `appendfsync always`, Redis answers once the writes are on its disk.
  fn commit<'a>(
    &'a self,
    writes: &'a [ReplicaWrite],
  ) -> Pin<Box<dyn Future<Output = Result<(), ReplicaError>> + Send + 'a>> {
    Box::pin(async move {
      let script = redis::Script::new(scripts::WRITE_FENCED);
      let schedule_script = redis::Script::new(scripts::WRITE_SCHEDULE_FENCED);
      let mut pipe = redis::pipe();
      for write in writes {
        if let Some(id) = alarms::schedule_id(&write.key) {
          alarms::push_schedule_write(&mut pipe, &schedule_script, &self.node, id, write);
          continue;
        }
        let (op, value) = match &write.value {
          Some(value) => ("set", value.as_slice()),
          None => ("del", &[][..]),
        };
        pipe
          .cmd("EVALSHA")
          .arg(script.get_hash())
          .arg(2)
          .arg(data_key(&write.key))
          .arg(&write.fence.actor)
          .arg(&*self.node)
          .arg(write.fence.token)
          .arg(op)
          .arg(value)
          .arg(if write.release { "1" } else { "0" })
          .ignore();
      }
      let mut commands = self.commands();
      let mut done: redis::RedisResult<()> = pipe.query_async(&mut commands).await;
      if done
        .as_ref()
        .is_err_and(|error| error.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript))
      {
        done = match (
          script.prepare_invoke().load_async(&mut commands).await,
          schedule_script.prepare_invoke().load_async(&mut commands).await,
        ) {
          (Ok(_), Ok(_)) => pipe.query_async(&mut commands).await,
          (Err(error), _) | (_, Err(error)) => Err(error),
        };
      }
      done.map_err(|error| replica_error(self, error))
    })
  }

  fn release(&self, actor: &str) {
    self.enqueue(Publish::Release {
      actor: actor.to_owned(),
    });
  }
}

/// How the command connection connects, waits and reconnects.
fn connection_settings() -> ConnectionManagerConfig {
  ConnectionManagerConfig::new()
    .set_connection_timeout(Some(REDIS_CONNECT_TIMEOUT))
    .set_response_timeout(Some(REDIS_RESPONSE_TIMEOUT))
    .set_number_of_retries(REDIS_CONNECT_RETRIES)
}

/// What a batch of fenced writes that Redis did not take means: refused under a lost claim, or
/// not known to be stored (unreachable, timed out, loading after a restart, out of memory).
fn replica_error(cluster: &Cluster, error: redis::RedisError) -> ReplicaError {
  if error.is_timeout() {
    cluster.unanswered();
  }
  let text = error.to_string();
  let fenced = error
    .into_server_errors()
    .is_some_and(|errors| errors.iter().any(|(_, error)| error.code() == FENCED_CODE));
  if fenced {
    ReplicaError::Fenced(text)
  } else {
    ReplicaError::Unreachable(text)
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
