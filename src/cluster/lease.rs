//! Keeping the node's lease: renewed every [`NODE_LEASE_RENEWAL`]; when renewals have failed for
//! as long as the lease lasts, the other nodes may consider this one dead, and it says so.

use std::sync::Arc;
use std::time::Instant;

use super::{scripts, wire, Cluster, Peer};
use crate::config::{NODE_LEASE, NODE_LEASE_RENEWAL};
use crate::events::Level;

pub(super) async fn keep<P: Peer>(cluster: Arc<Cluster>, peer: Arc<P>) {
  let renew = redis::Script::new(scripts::RENEW_LEASE);
  let key = wire::node_key(&cluster.node);
  let mut commands = cluster.commands.clone();
  let mut renewed_at = Instant::now();
  let mut lost = false;
  let mut ticks = tokio::time::interval(NODE_LEASE_RENEWAL);
  ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
  loop {
    tokio::select! {
      _ = peer.stopped() => {
        cluster.leave().await;
        return;
      }
      _ = ticks.tick() => {}
    }
    let renewal: redis::RedisResult<i64> = tokio::time::timeout(
      NODE_LEASE_RENEWAL,
      renew
        .key(&key)
        .arg(&cluster.nonce)
        .arg(NODE_LEASE.as_millis() as u64)
        .invoke_async(&mut commands),
    )
    .await
    .unwrap_or_else(|_| Err((redis::ErrorKind::Io, "lease renewal timed out").into()));
    match renewal {
      Ok(1) => {
        renewed_at = Instant::now();
        if std::mem::take(&mut lost) {
          peer.report(
            Level::Warn,
            &format!("cluster: node {} holds its lease again", cluster.node),
          );
        }
      }
      outcome if !lost && renewed_at.elapsed() >= NODE_LEASE => {
        lost = true;
        let why = match outcome {
          Ok(_) => "another process holds it".to_string(),
          Err(error) => error.to_string(),
        };
        peer.report(
          Level::Error,
          &format!(
            "cluster: node {} lost its lease ({why}); other nodes may take its place",
            cluster.node
          ),
        );
      }
      _ => {}
    }
  }
}
