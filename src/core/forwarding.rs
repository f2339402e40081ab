//! Forwarded sessions (cluster mode): one live actor per user across nodes. A socket whose actor
//! another node owns stays where it landed (this node is its *gateway*: the socket, its pings
//! and its backpressure stay here); its frames go to the *owner* and back over Redis. The owner
//! runs the hooks and keeps the session in its registry like any other, with an outbox whose
//! writer publishes to the gateway instead of writing to a socket, so frame numbering, the
//! output gate and fan-out are the owner's.
//!
//! Nothing is left hanging: a gateway that stops hearing its owner's lease closes the owner's
//! sessions (1012: the client reconnects and its actor is placed again), and an owner whose
//! gateway died ends the sessions that gateway held (1006), checked every
//! [`NODE_LEASE_RENEWAL`].

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio_tungstenite::tungstenite::Utf8Bytes;

use super::Core;
use crate::cluster::nodes::{self, NodeMessage};
use crate::cluster::Cluster;
use crate::config::NODE_LEASE_RENEWAL;
use crate::error::{CloseCode, SessionEnd};
use crate::events::Event;
use crate::ids::{DefinitionId, SessionId};
use crate::protocol::{session_frame, ClientFrame};
use crate::registry::NewSession;
use crate::transport::outbox::{wire_len, Outbox};
use crate::transport::{Attached, Identity};

/// Close code for a forwarded session whose owner is gone: reconnect (and be placed again).
const OWNER_GONE: CloseCode = CloseCode::Other(1012);

/// A session whose socket is here and whose actor another node owns.
pub(super) struct Forwarded {
  owner: Arc<str>,
  outbox: Arc<Outbox>,
}

/// The two sides' maps.
#[derive(Default)]
pub(super) struct Forwarding {
  /// Gateway side: this node's session id → where its actor lives.
  forwarded: HashMap<SessionId, Forwarded>,
  /// Owner side: (gateway node, its session id) → this node's session and its outbox.
  remotes: HashMap<(Arc<str>, u64), (SessionId, Arc<Outbox>)>,
}

impl Core {
  fn new_session_id(&self) -> SessionId {
    SessionId(self.next_session.fetch_add(1, Ordering::Relaxed) + 1)
  }

  fn new_outbox(&self) -> Arc<Outbox> {
    Arc::new(Outbox::new(
      self.config.max_backpressure_bytes,
      self.config.overflow_policy,
    ))
  }

  /// Gateway side: serves a socket whose actor `owner` holds.
  pub(super) fn forward(
    &self,
    cluster: &Arc<Cluster>,
    definition: DefinitionId,
    identity: &Identity,
    owner: Arc<str>,
    resumable: bool,
  ) -> Attached {
    let session = self.new_session_id();
    let outbox = self.new_outbox();
    if resumable {
      // A forwarded session cannot be resumed yet: the client is told so at once.
      outbox.push(session_frame(None, false));
    }
    let name = self.definition_name(definition);
    let open = nodes::open(
      cluster.node(),
      session.get(),
      name,
      &identity.key,
      &identity.meta_json,
    );
    cluster.send_to(&owner, open);
    let forwarded = Forwarded {
      owner,
      outbox: outbox.clone(),
    };
    self.forwarding.lock().forwarded.insert(session, forwarded);
    Attached {
      session,
      outbox,
      generation: 0,
      resumed: false,
    }
  }

  /// Gateway side: a client frame of a forwarded session goes to its owner. False when the
  /// session is not forwarded.
  pub(super) fn forward_frame(
    &self,
    cluster: &Arc<Cluster>,
    session: SessionId,
    frame: &ClientFrame<'_>,
  ) -> bool {
    let Some(owner) = self
      .forwarding
      .lock()
      .forwarded
      .get(&session)
      .map(|f| f.owner.clone())
    else {
      return false;
    };
    let node = cluster.node();
    let message = match *frame {
      ClientFrame::Event { kind, data } => nodes::event(node, session.get(), kind, data),
      ClientFrame::Call { id, event, data } => nodes::call(node, session.get(), id, event, data),
      ClientFrame::Ping { .. } => return true,
    };
    cluster.send_to(&owner, message);
    true
  }

  /// Gateway side: the socket of a forwarded session is gone. False when it was not forwarded.
  pub(super) fn forward_end(&self, cluster: &Arc<Cluster>, session: SessionId, end: &SessionEnd) -> bool {
    let Some(forwarded) = self.forwarding.lock().forwarded.remove(&session) else {
      return false;
    };
    let message = nodes::ended(cluster.node(), session.get(), end.code, &end.reason);
    cluster.send_to(&forwarded.owner, message);
    true
  }

  /// A message another node addressed to this one.
  pub(super) fn on_node_message(&self, cluster: &Arc<Cluster>, message: NodeMessage<'_>) {
    match message {
      NodeMessage::Open {
        from,
        session,
        definition,
        key,
        meta,
      } => self.open_remote(cluster, &from, session, &definition, &key, meta.get()),
      NodeMessage::Event {
        from,
        session,
        kind,
        data,
      } => {
        let frame = ClientFrame::Event {
          kind: kind.get(),
          data: raw_data(data),
        };
        self.receive_remote(&from, session, frame);
      }
      NodeMessage::Call {
        from,
        session,
        id,
        event,
        data,
      } => {
        let frame = ClientFrame::Call {
          id,
          event: event.get(),
          data: raw_data(data),
        };
        self.receive_remote(&from, session, frame);
      }
      NodeMessage::Ended {
        from,
        session,
        code,
        reason,
      } => {
        let local = self
          .forwarding
          .lock()
          .remotes
          .remove(&(Arc::from(&*from), session));
        if let Some(local) = local {
          let end = SessionEnd {
            code,
            reason: reason.into_owned(),
            blip: false,
          };
          self.end_remote(local, &end);
        }
      }
      NodeMessage::Frames { session, frames } => {
        let outbox = self.forwarded_outbox(session);
        if let Some(outbox) = outbox {
          for frame in frames {
            outbox.push(Utf8Bytes::from(frame.into_owned()));
          }
        }
      }
      NodeMessage::Destroy { definition, key } => {
        if let Some(index) = self.config.definitions.iter().position(|d| d.name == *definition) {
          self.destroy_actor_by_key(DefinitionId(index), &key);
        }
      }
      NodeMessage::Close {
        session,
        code,
        reason,
      } => {
        if let Some(outbox) = self.forwarded_outbox(session) {
          outbox.request_close(code, &reason);
        }
      }
      room => self.on_room_message(cluster, room),
    }
  }

  fn forwarded_outbox(&self, session: u64) -> Option<Arc<Outbox>> {
    let forwarding = self.forwarding.lock();
    forwarding
      .forwarded
      .get(&SessionId(session))
      .map(|forwarded| forwarded.outbox.clone())
  }

  /// Owner side: a frame of a remote session, for JS (as if its socket were here).
  fn receive_remote(&self, gateway: &str, session: u64, frame: ClientFrame<'_>) {
    let local = self
      .forwarding
      .lock()
      .remotes
      .get(&(Arc::from(gateway), session))
      .map(|(local, _)| *local);
    if let Some(local) = local {
      self.receive_here(local, frame);
    }
  }

  /// Owner side: a session of one of this node's actors opened at a gateway.
  fn open_remote(
    &self,
    cluster: &Arc<Cluster>,
    gateway: &str,
    gateway_session: u64,
    definition: &str,
    key: &str,
    meta_json: &str,
  ) {
    let Some(index) = self.config.definitions.iter().position(|d| d.name == definition) else {
      cluster.send_to(
        gateway,
        nodes::close(gateway_session, 1011, "unknown connection definition"),
      );
      return;
    };
    let definition = DefinitionId(index);
    let session = self.new_session_id();
    let outbox = self.new_outbox();
    let added = self.registry.add_session(
      NewSession {
        id: session,
        definition,
        key,
        outbox: outbox.clone(),
        meta: Arc::from(meta_json),
        token: None,
      },
      self.config.max_sessions,
    );
    let Some(added) = added else {
      cluster.send_to(
        gateway,
        nodes::close(gateway_session, 1013, "server is at its session limit"),
      );
      return;
    };
    let gateway: Arc<str> = Arc::from(gateway);
    self
      .forwarding
      .lock()
      .remotes
      .insert((gateway.clone(), gateway_session), (session, outbox.clone()));
    if added.created {
      self.restore_room_list(added.actor, definition, key);
    }
    self.events.push(Event::Open {
      session,
      actor: added.actor,
      created: added.created,
      definition,
      key,
      meta_json,
    });
    tokio::spawn(write_to_gateway(
      cluster.clone(),
      outbox,
      gateway,
      gateway_session,
    ));
  }

  /// Owner side: a remote session ended (its gateway said so, or died): JS hears it, and its
  /// writer stops.
  fn end_remote(&self, (session, outbox): (SessionId, Arc<Outbox>), end: &SessionEnd) {
    if self.registry.end(session, 0, end) {
      self.calls.session_closed(session);
    }
    outbox.request_close(end.code, &end.reason);
  }

  /// Closes every forwarded session (gateway side) and ends every remote one (owner side):
  /// shutdown, or a pub/sub link that dropped and may have lost their traffic.
  pub(super) fn end_forwarding(&self, code: u16, reason: &str) {
    let (forwarded, remotes) = {
      let mut forwarding = self.forwarding.lock();
      let forwarded: Vec<Arc<Outbox>> = forwarding.forwarded.values().map(|f| f.outbox.clone()).collect();
      let remotes: Vec<(SessionId, Arc<Outbox>)> =
        forwarding.remotes.drain().map(|(_, remote)| remote).collect();
      (forwarded, remotes)
    };
    for outbox in forwarded {
      outbox.request_close(code, reason);
    }
    let end = SessionEnd {
      code,
      reason: reason.to_string(),
      blip: false,
    };
    for session in remotes {
      self.end_remote(session, &end);
    }
  }

  /// Checks the leases of the nodes this one forwards to or from; sessions tied to a dead node
  /// end. Runs every [`NODE_LEASE_RENEWAL`] until shutdown.
  pub(super) async fn watch_peers(self: Arc<Self>, cluster: Arc<Cluster>) {
    let mut ticks = tokio::time::interval(NODE_LEASE_RENEWAL);
    let mut shutdown = self.shutdown.subscribe();
    loop {
      tokio::select! {
        _ = shutdown.wait_for(|stopping| *stopping) => return,
        _ = ticks.tick() => {}
      }
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
      let Ok(alive) = cluster.alive(&peers).await else {
        continue;
      };
      let dead: HashSet<Arc<str>> = peers
        .into_iter()
        .zip(alive)
        .filter_map(|(node, alive)| (!alive).then_some(node))
        .collect();
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
    for session in remotes {
      self.end_remote(session, &SessionEnd::dropped());
    }
  }
}

/// A frame's `data` as the parser gives it: absent when missing or null.
fn raw_data(data: Option<&serde_json::value::RawValue>) -> Option<&str> {
  data.map(|data| data.get()).filter(|data| *data != "null")
}

/// Owner side: the writer of a remote session, publishing what it is sent to its gateway.
async fn write_to_gateway(cluster: Arc<Cluster>, outbox: Arc<Outbox>, gateway: Arc<str>, session: u64) {
  let mut queued = VecDeque::new();
  loop {
    let Ok(close) = outbox.take(0, &mut queued).await else {
      return;
    };
    if !queued.is_empty() {
      let message = nodes::frames(session, queued.iter().map(|q| q.frame.as_str()));
      let bytes = queued.iter().map(|q| wire_len(q.frame.len())).sum();
      cluster.send_to(&gateway, message);
      // Handed on: the gateway's own outbox bounds what its socket has not taken.
      outbox.accepted(0, bytes);
      queued.clear();
    }
    if let Some(close) = close {
      cluster.send_to(&gateway, nodes::close(session, close.code, &close.reason));
      return;
    }
  }
}
