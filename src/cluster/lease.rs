//! Keeping the node's lease, renewed three times per lease. When renewals have failed for as
//! long as the lease lasts, other nodes may take this one's actors over: it fences itself
//! ([`Peer::fence`]) until it holds the lease again (renewed, or taken anew once it expired).

use std::sync::Arc;
use std::time::Instant;

use super::{scripts, wire, Cluster, Peer};
use crate::events::Level;

pub(super) async fn keep<P: Peer>(cluster: Arc<Cluster>, peer: Arc<P>) {
  let renew = redis::Script::new(scripts::RENEW_LEASE);
  let key = wire::node_key(&cluster.node);
  let lease_ms = cluster.lease.as_millis() as u64;
  let period = cluster.lease / 3;
  let mut commands = cluster.commands.clone();
  let mut renewed_at = Instant::now();
  let mut fenced = false;
  let mut ticks = tokio::time::interval(period);
  ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
  loop {
    tokio::select! {
      _ = peer.stopped() => {
        cluster.leave().await;
        return;
      }
      _ = ticks.tick() => {}
    }
    let attempt = async {
      let renewed: i64 = renew
        .key(&key)
        .arg(&cluster.nonce)
        .arg(lease_ms)
        .invoke_async(&mut commands)
        .await?;
      if renewed == 1 {
        return Ok(true);
      }
      // Expired (or never ours again): take it anew, unless another process holds it.
      let taken: Option<String> = redis::cmd("SET")
        .arg(&key)
        .arg(&cluster.nonce)
        .arg("NX")
        .arg("PX")
        .arg(lease_ms)
        .query_async(&mut commands)
        .await?;
      Ok::<bool, redis::RedisError>(taken.is_some())
    };
    let held = matches!(tokio::time::timeout(period, attempt).await, Ok(Ok(true)));
    if held {
      renewed_at = Instant::now();
      if std::mem::take(&mut fenced) {
        peer.report(
          Level::Warn,
          &format!("cluster: node {} holds its lease again", cluster.node),
        );
        peer.fence(false);
      }
    } else if !fenced && renewed_at.elapsed() >= cluster.lease {
      fenced = true;
      peer.report(
        Level::Error,
        &format!(
          "cluster: node {} could not renew its lease in time; it stops serving until it holds it again",
          cluster.node
        ),
      );
      peer.fence(true);
    }
  }
}
