//! The core as a node of a cluster: frames other nodes published (protocol or raw) reach this
//! node's sessions through the output gate like any frame, and sessions that may have missed messages are told
//! to re-sync.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Weak};

use tokio::sync::Notify;

use super::Core;
use crate::cluster::{Cluster, Peer};
use crate::durability::{Replica, ReplicaError, ReplicaWrite};
use crate::error::{CloseCode, UpgradeRejection};
use crate::events::Level;
use crate::ids::DefinitionId;
use crate::protocol::Unsealed;
use crate::registry::Target;
use crate::transport::outbox::WireFrame;

/// Close code for sessions that missed messages another node published (1012, "service
/// restart": reconnect). Their resume state ends with them, so the client's next session starts
/// with `resumed: false` and the application re-syncs.
const MISSED: CloseCode = CloseCode::Other(1012);

/// Close code for the sessions of a node that lost its lease (1012: reconnect, to another node).
const LEASE_LOST: CloseCode = CloseCode::Other(1012);

/// The fencing token of a claim this node lost (tokens in Redis start at 1).
pub(super) const STALE_CLAIM: u64 = 0;

/// What the storage writes actors' records through to: the cluster, except that a claim given
/// up late (once writes Redis had not taken are in) is kept when this node has claimed the
/// actor again meanwhile.
pub(super) struct Replicas {
  pub cluster: Arc<Cluster>,
  pub core: Weak<Core>,
}

impl Replica for Replicas {
  fn commit<'a>(
    &'a self,
    writes: &'a [ReplicaWrite],
  ) -> Pin<Box<dyn Future<Output = Result<(), ReplicaError>> + Send + 'a>> {
    self.cluster.commit(writes)
  }

  fn release(&self, actor: &str) {
    let claimed_again = self
      .core
      .upgrade()
      .is_some_and(|core| core.claims.lock().contains_key(actor));
    if !claimed_again {
      Replica::release(&*self.cluster, actor);
    }
  }
}

impl Core {
  /// A new session for an actor whose claim this node lost: the actor leaves memory (JS
  /// forgets its state, which another node may have moved on from) so the session places it
  /// afresh. Refused while the actor's old sessions are still closing.
  pub(super) fn drop_stale_actor(&self, definition: DefinitionId, key: &str) -> Result<(), UpgradeRejection> {
    if let Some(actor) = self.registry.actor_of(definition, key) {
      if !self.registry.evict(actor) {
        return Err(UpgradeRejection::Unavailable(
          "this user's actor is leaving this node; connect again",
        ));
      }
    }
    let name = self.definition_name(definition);
    self
      .claims
      .lock()
      .remove(&crate::cluster::wire::actor_key(name, key));
    Ok(())
  }
}

impl Peer for Core {
  fn deliver(&self, target: Target<'_>, frame: Unsealed) {
    self.storage.gate().send(&self.registry, target, frame);
  }

  fn deliver_raw(&self, target: Target<'_>, frame: WireFrame) {
    self.storage.gate().send_raw(&self.registry, target, frame, None);
  }

  fn missed(&self, room: Option<&str>) {
    let rooms = match room {
      Some(room) => vec![Arc::from(room)],
      None => {
        // The link itself dropped: forwarded sessions may have lost frames both ways too.
        self.end_forwarding(MISSED.as_u16(), "missed messages from other nodes: reconnect");
        self.registry.room_names()
      }
    };
    let mut ended = 0;
    for room in rooms {
      let target = Target::Room {
        name: &room,
        except: None,
      };
      ended += self.registry.visit(target, |outbox| {
        outbox.request_close(MISSED.as_u16(), "missed messages from other nodes: reconnect")
      });
    }
    if ended > 0 {
      let message = format!("cluster: {ended} sessions missed room messages and were asked to reconnect");
      self.report(Level::Warn, &message);
    }
  }

  fn rooms(&self) -> Vec<Arc<str>> {
    self.registry.room_names()
  }

  fn rooms_changed(&self) -> &Notify {
    self.registry.rooms_changed()
  }

  fn definition_named(&self, name: &str) -> Option<DefinitionId> {
    self
      .config
      .definitions
      .iter()
      .position(|definition| definition.name == name)
      .map(DefinitionId)
  }

  fn report(&self, level: Level, message: &str) {
    Core::report(self, level, message);
  }

  fn on_node_message(&self, message: crate::cluster::nodes::NodeMessage<'_>) {
    if let Some(cluster) = &self.cluster {
      Core::on_node_message(self, cluster, message);
    }
  }

  fn fence(&self, fenced: bool) {
    self.fenced.store(fenced, std::sync::atomic::Ordering::Release);
    self.storage.fence(fenced);
    if fenced {
      // Another node may own these actors now: nothing here may answer for them. Their claims
      // become [`STALE_CLAIM`] until they leave memory: Redis refuses every write under it, and
      // no new session attaches to them.
      for token in self.claims.lock().values_mut() {
        *token = STALE_CLAIM;
      }
      self.rooms_placed.forget_all();
      let reason = "this node lost its place in the cluster: reconnect";
      self.registry.close_all(LEASE_LOST.as_u16(), reason);
      self.end_forwarding(LEASE_LOST.as_u16(), reason);
    }
  }

  fn stopped(&self) -> impl Future<Output = ()> + Send + '_ {
    let mut receiver = self.shutdown.subscribe();
    async move {
      let _ = receiver.wait_for(|stopping| *stopping).await;
    }
  }
}
