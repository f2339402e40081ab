//! Sends queued publishes to Redis in pipelines: one round trip for up to [`PUBLISH_BATCH`]
//! messages, in the order they were queued (one connection, one pipeline at a time).

use std::sync::Arc;

use redis::Script;
use tokio::sync::mpsc;

use super::{scripts, wire, Cluster, Peer, Publish};
use crate::config::PUBLISH_BATCH;
use crate::events::Level;

pub(super) async fn run<P: Peer>(cluster: Arc<Cluster>, peer: Arc<P>, mut queued: mpsc::Receiver<Publish>) {
  let publish_room = Script::new(scripts::PUBLISH_ROOM);
  let release_actor = Script::new(scripts::RELEASE_ACTOR);
  let mut batch = Vec::with_capacity(PUBLISH_BATCH);
  loop {
    tokio::select! {
      _ = peer.stopped() => return,
      received = queued.recv_many(&mut batch, PUBLISH_BATCH) => {
        if received == 0 {
          return;
        }
      }
    }
    let mut pipe = redis::pipe();
    for publish in batch.drain(..) {
      cluster.dequeued(&publish);
      match publish {
        Publish::Room { room, frame } => {
          let epoch = uuid::Uuid::new_v4().simple().to_string();
          pipe
            .cmd("EVALSHA")
            .arg(publish_room.get_hash())
            .arg(1)
            .arg(wire::room_log_key(&room))
            .arg(wire::room_channel(&room))
            .arg(&cluster.node_json)
            .arg(frame)
            .arg(epoch)
            .ignore();
        }
        Publish::Message { channel, message } => {
          pipe.cmd("PUBLISH").arg(channel).arg(message).ignore();
        }
        Publish::Release { actor } => {
          pipe
            .cmd("EVALSHA")
            .arg(release_actor.get_hash())
            .arg(1)
            .arg(actor)
            .arg(&*cluster.node)
            .ignore();
        }
      }
    }
    let mut commands = cluster.commands();
    let mut sent: redis::RedisResult<()> = pipe.query_async(&mut commands).await;
    if sent
      .as_ref()
      .is_err_and(|error| error.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript))
    {
      // Redis restarted and forgot the scripts: load them and send the batch again.
      let loaded = async {
        publish_room.prepare_invoke().load_async(&mut commands).await?;
        release_actor.prepare_invoke().load_async(&mut commands).await
      };
      sent = match loaded.await {
        Ok(_) => pipe.query_async(&mut commands).await,
        Err(error) => Err(error),
      };
    }
    if let Err(error) = sent {
      if error.is_timeout() {
        cluster.unanswered();
      }
      peer.report(
        Level::Error,
        &format!("cluster: messages to other nodes were lost: {error}"),
      );
    }
    let dropped = cluster.dropped.swap(0, std::sync::atomic::Ordering::Relaxed);
    if dropped > 0 {
      peer.report(
        Level::Error,
        &format!("cluster: {dropped} messages to other nodes were dropped: the publish queue was full"),
      );
    }
  }
}
