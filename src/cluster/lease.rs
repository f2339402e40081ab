//! Keeping the node's lease, renewed three times per lease. When renewals have failed for as
//! long as the lease lasts, other nodes may take this one's actors over: it fences itself
//! ([`Peer::fence`]) until it holds the lease again (renewed, or taken anew once it expired).
//! A lapse it did not see as it happened (the process was paused past its lease, then took the
//! lease anew) fences it too, for a moment: it lets its actors go before serving on. A renewal
//! Redis does not answer in time replaces the connection (a black hole never answers).

use std::sync::Arc;
use std::time::Instant;

use super::{scripts, wire, Cluster, Peer};
use crate::events::Level;

pub(super) async fn keep<P: Peer>(cluster: Arc<Cluster>, peer: Arc<P>) {
  let renew = redis::Script::new(scripts::RENEW_LEASE);
  let key = wire::node_key(&cluster.node);
  let lease_ms = cluster.lease.as_millis() as u64;
  let period = cluster.lease / 3;
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
    let mut commands = cluster.commands();
    let attempt = async {
      let renewed: i64 = renew
        .key(&key)
        .arg(&cluster.nonce)
        .arg(lease_ms)
        .invoke_async(&mut commands)
        .await?;
      if renewed == 1 {
        return Ok(Held::Renewed);
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
      Ok::<Held, redis::RedisError>(if taken.is_some() { Held::Anew } else { Held::Not })
    };
    let held = match tokio::time::timeout(period, attempt).await {
      Ok(Ok(held)) => held,
      Ok(Err(error)) => {
        if error.is_timeout() {
          cluster.unanswered();
        }
        Held::Not
      }
      Err(_) => {
        cluster.unanswered();
        Held::Not
      }
    };
    if held != Held::Not {
      // Held again after a lapse this node did not see as it happened (the process was paused,
      // or the lease expired in Redis): others may have taken its actors over meanwhile, so
      // it lets them go before serving on.
      let lapsed = held == Held::Anew || renewed_at.elapsed() >= cluster.lease;
      renewed_at = Instant::now();
      if lapsed && !fenced {
        peer.report(
          Level::Error,
          &format!(
            "cluster: node {} held no lease for a while (paused, or cut off from Redis); it let its actors go",
            cluster.node
          ),
        );
        peer.fence(true);
        fenced = true;
      }
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

/// What a renewal attempt found.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Held {
  /// The lease was this process's and is extended.
  Renewed,
  /// The lease had expired and was taken anew.
  Anew,
  /// Not held: Redis did not answer in time, or another process holds the id.
  Not,
}
