//! Receives what other nodes publish: the users channel always, and the channel of every room
//! this node has in memory (kept in step with the registry when rooms come and go).
//!
//! Loss is never silent: per room, the offset of the last message seen and the epoch it came
//! with are kept; a jump or a new epoch means messages went missing, and so does a pub/sub
//! connection that dropped or stopped answering its probe ([`PROBE_EVERY`]). The sessions that
//! may have missed something are told to re-sync ([`Peer::missed`]).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use redis::aio::{PubSubSink, PubSubStream};
use tokio_tungstenite::tungstenite::Utf8Bytes;

use super::wire::RoomFrame;
use super::{nodes, wire, Cluster, Peer};
use crate::events::Level;
use crate::protocol::{RawData, Unsealed};
use crate::registry::Target;
use crate::transport::outbox::WireFrame;

/// An idle pub/sub connection is probed this often; a probe unanswered for as long means the
/// link is dead (a dead link that looks alive would lose messages silently).
const PROBE_EVERY: Duration = Duration::from_secs(5);

/// Wait before reconnecting after the pub/sub connection failed (doubles up to 2 s).
const RECONNECT_FIRST_WAIT: Duration = Duration::from_millis(50);

/// The last message seen on a room's channel.
struct Position {
  epoch: String,
  offset: u64,
}

struct Subscription<P> {
  cluster: Arc<Cluster>,
  peer: Arc<P>,
  sink: PubSubSink,
  rooms: HashSet<Arc<str>>,
  positions: HashMap<String, Position>,
  /// This node's channel (messages other nodes address to it).
  own_channel: String,
}

/// A pub/sub connection, subscribed to the users channel and this node's channel.
pub(super) type Connection = (PubSubSink, PubSubStream);

pub(super) async fn run<P: Peer>(cluster: Arc<Cluster>, peer: Arc<P>, mut ready: Option<Connection>) {
  let mut wait = RECONNECT_FIRST_WAIT;
  let mut first = true;
  loop {
    let connected = match ready.take() {
      Some(connection) => Ok(connection),
      None => tokio::select! {
        _ = peer.stopped() => return,
        connected = connect(&cluster.client, &cluster.node) => connected,
      },
    };
    match connected {
      Ok((sink, stream)) => {
        wait = RECONNECT_FIRST_WAIT;
        if !first {
          // Whatever was published while no connection listened is gone.
          peer.report(
            Level::Warn,
            "cluster: the pub/sub link to Redis is back; room sessions re-sync",
          );
          peer.missed(None);
        }
        first = false;
        let subscription = Subscription {
          cluster: cluster.clone(),
          peer: peer.clone(),
          sink,
          rooms: HashSet::new(),
          positions: HashMap::new(),
          own_channel: nodes::node_channel(&cluster.node),
        };
        if subscription.serve(stream).await {
          return;
        }
      }
      Err(error) => {
        if first {
          peer.report(
            Level::Error,
            &format!("cluster: cannot subscribe in Redis: {error}"),
          );
        }
      }
    }
    tokio::select! {
      _ = peer.stopped() => return,
      _ = tokio::time::sleep(wait) => {}
    }
    wait = (wait * 2).min(Duration::from_secs(2));
  }
}

/// A pub/sub connection subscribed to the users channel and to this node's own channel. Gives
/// up after [`PROBE_EVERY`]: a link that accepts and never answers (a network black hole) must
/// not keep the node from trying again once the network heals.
pub(super) async fn connect(client: &redis::Client, node: &str) -> redis::RedisResult<Connection> {
  let connecting = async {
    let (mut sink, stream) = client.get_async_pubsub().await?.split();
    sink
      .subscribe(&[wire::USERS_CHANNEL.to_string(), nodes::node_channel(node)])
      .await?;
    Ok((sink, stream))
  };
  tokio::time::timeout(PROBE_EVERY, connecting)
    .await
    .unwrap_or_else(|_| Err(unanswered()))
}

/// The error for a pub/sub command Redis did not answer within [`PROBE_EVERY`].
fn unanswered() -> redis::RedisError {
  std::io::Error::new(
    std::io::ErrorKind::TimedOut,
    "Redis did not answer on the pub/sub link",
  )
  .into()
}

impl<P: Peer> Subscription<P> {
  /// Serves one connection until it fails (false) or the node stops (true).
  async fn serve(mut self, mut stream: PubSubStream) -> bool {
    if self.sync_rooms().await.is_err() {
      return false;
    }
    let mut probe = tokio::time::interval(PROBE_EVERY);
    probe.reset();
    loop {
      tokio::select! {
        _ = self.peer.stopped() => return true,
        _ = self.cluster.relink.notified() => return false,
        _ = self.peer.rooms_changed().notified() => {
          if self.sync_rooms().await.is_err() {
            return false;
          }
        }
        message = stream.next() => match message {
          Some(message) => self.receive(message.get_channel_name(), message.get_payload_bytes()),
          None => return false,
        },
        _ = probe.tick() => {
          let answered = tokio::time::timeout(PROBE_EVERY, self.sink.ping::<redis::Value>()).await;
          if !matches!(answered, Ok(Ok(_))) {
            return false;
          }
        }
      }
    }
  }

  /// Subscribes to the rooms that came into memory and leaves those that went (an error when
  /// Redis does not answer within [`PROBE_EVERY`]).
  async fn sync_rooms(&mut self) -> redis::RedisResult<()> {
    tokio::time::timeout(PROBE_EVERY, self.sync_rooms_now())
      .await
      .unwrap_or_else(|_| Err(unanswered()))
  }

  async fn sync_rooms_now(&mut self) -> redis::RedisResult<()> {
    let wanted: HashSet<Arc<str>> = self.peer.rooms().into_iter().collect();
    let joined: Vec<String> = wanted
      .difference(&self.rooms)
      .map(|room| wire::room_channel(room))
      .collect();
    let left: Vec<Arc<str>> = self.rooms.difference(&wanted).cloned().collect();
    if !joined.is_empty() {
      self.sink.subscribe(&joined).await?;
    }
    if !left.is_empty() {
      let channels: Vec<String> = left.iter().map(|room| wire::room_channel(room)).collect();
      self.sink.unsubscribe(&channels).await?;
      for room in &left {
        self.positions.remove(&**room);
      }
    }
    self.rooms = wanted;
    self.cluster.now_subscribed(&self.rooms);
    Ok(())
  }

  fn receive(&mut self, channel: &str, payload: &[u8]) {
    if channel == self.own_channel {
      if let Some(message) = nodes::parse(payload) {
        self.peer.on_node_message(message);
      }
      return;
    }
    if channel == wire::USERS_CHANNEL {
      let Some(message) = wire::parse_user(payload) else {
        return;
      };
      if message.origin == self.cluster.node() {
        return;
      }
      if let Some(definition) = self.peer.definition_named(&message.definition) {
        let target = Target::User {
          definition,
          key: &message.user,
          except: None,
        };
        self.peer.deliver(target, Unsealed::from_peer(message.frame));
      }
      return;
    }
    let (Some(room), Some(message)) = (wire::room_of_channel(channel), wire::parse_room(payload)) else {
      return;
    };
    let continues = match self.positions.get(room) {
      Some(last) => last.epoch == message.epoch && message.offset == last.offset + 1,
      // The first message since subscribing: nothing to compare with.
      None => true,
    };
    self.positions.insert(
      room.to_string(),
      Position {
        epoch: message.epoch.into_owned(),
        offset: message.offset,
      },
    );
    if !continues {
      self.peer.missed(Some(room));
    }
    if message.origin != self.cluster.node() {
      let target = Target::Room {
        name: room,
        except: None,
      };
      match message.frame {
        RoomFrame::Protocol(frame) => self.peer.deliver(target, Unsealed::from_peer(frame)),
        RoomFrame::Raw(RawData::Text(text)) => {
          let frame = WireFrame::RawText(Utf8Bytes::from(text.to_string()));
          self.peer.deliver_raw(target, frame);
        }
        RoomFrame::Raw(RawData::Binary(bytes)) => {
          let frame = WireFrame::Binary(Bytes::copy_from_slice(bytes));
          self.peer.deliver_raw(target, frame);
        }
      }
    }
  }
}
