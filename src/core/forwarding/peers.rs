//! Forwarded sessions tied to a node that died: checked every third of a lease, a gateway whose
//! owner is gone closes the owner's sessions (1012: the client reconnects and its actor is placed
//! again), and an owner whose gateway is gone suspends the sessions it held.

use std::collections::HashSet;
use std::sync::Arc;

use super::OWNER_GONE;
use crate::cluster::Cluster;
use crate::core::Core;
use crate::error::SessionEnd;
use crate::transport::outbox::Outbox;

impl Core {
  /// Checks the leases of the nodes this one forwards to or from; sessions tied to a dead node
  /// end. Runs every third of a lease until shutdown.
  pub(in crate::core) async fn watch_peers(self: Arc<Self>, cluster: Arc<Cluster>) {
    let mut ticks = self.ticker(cluster.lease() / 3);
    while ticks.tick().await {
      let peers: Vec<Arc<str>> = {
        let forwarding = self.forwarding.lock();
        let owners = forwarding.forwarded.values().map(|f| f.owner.clone());
        let gateways = forwarding.remotes.keys().map(|(gateway, _)| gateway.clone());
        owners
          .chain(gateways)
          .collect::<HashSet<_>>()
          .into_iter()
          .collect()
      };
      if peers.is_empty() {
        continue;
      }
      let Ok(dead) = cluster.dead_among(peers).await else {
        continue;
      };
      if !dead.is_empty() {
        self.forget_dead(&dead);
      }
    }
  }

  fn forget_dead(&self, dead: &HashSet<Arc<str>>) {
    let (orphans, remotes) = {
      let mut forwarding = self.forwarding.lock();
      let orphans: Vec<Arc<Outbox>> = forwarding
        .forwarded
        .values()
        .filter(|f| dead.contains(&f.owner))
        .map(|f| f.outbox.clone())
        .collect();
      let mut remotes = Vec::new();
      forwarding.remotes.retain(|(gateway, _), remote| {
        let gone = dead.contains(gateway);
        if gone {
          remotes.push(remote.clone());
        }
        !gone
      });
      (orphans, remotes)
    };
    for outbox in orphans {
      outbox.request_close(
        OWNER_GONE.as_u16(),
        "the node holding this actor is gone: reconnect",
      );
    }
    for remote in remotes {
      self.end_remote(remote, SessionEnd::dropped());
    }
  }
}
