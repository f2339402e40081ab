//! Forwarded sessions (cluster mode): one live actor per user across nodes. A socket whose actor
//! another node owns stays where it landed (this node is its *gateway*: the socket, its pings
//! and its backpressure stay here); its frames go to the *owner* and back over Redis. The owner
//! runs the hooks and keeps the session in its registry like any other, with an outbox whose
//! writer publishes to the gateway instead of writing to a socket, so frame numbering, the
//! output gate and fan-out are the owner's.
//!
//! Resume works through any node: the owner keeps a forwarded session's token and replay buffer
//! like any session's, a gateway that lost its socket (or died) leaves the session waiting
//! there, and a client that comes back with its token through any gateway is forwarded to the
//! owner, which continues the session from the client's last frame number.
//!
//! A raw endpoint's session is forwarded the same way: its messages go to the owner as they
//! arrived (text or binary, the bytes as they are: see [`nodes`]), what the owner sends it comes
//! back as text and binary frames, and closes go both ways. It does not resume (as on one
//! node): a gateway that lost its socket, or died, ends it on the owner.
//!
//! Nothing is left hanging: a gateway that stops hearing its owner's lease closes the owner's
//! sessions (1012: the client reconnects and its actor is placed again), and an owner whose
//! gateway died suspends the sessions that gateway held (they wait for a resume, then end with
//! 1006), checked every third of a lease.

use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;
use tokio_tungstenite::tungstenite::Utf8Bytes;

use super::Core;
use crate::cluster::nodes::{self, NodeMessage};
use crate::cluster::Cluster;
use crate::error::{CloseCode, SessionEnd};
use crate::events::Event;
use crate::ids::{DefinitionId, IdMap, SessionId};
use crate::metrics::{Direction, Metrics};
use crate::protocol::{session_frame, ClientFrame, RawData};
use crate::registry::{NewSession, Suspended};
use crate::transport::http::ResumeRequest;
use crate::transport::outbox::{wire_len, Outbox, WireFrame};
use crate::transport::{Attached, Host, Identity};

mod peers;

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
  forwarded: IdMap<SessionId, Forwarded>,
  /// Owner side: (gateway node, its session id) → this node's session it serves.
  remotes: HashMap<(Arc<str>, u64), Remote>,
}

/// Owner side: a session of this node whose socket a gateway holds.
#[derive(Clone)]
pub(super) struct Remote {
  session: SessionId,
  outbox: Arc<Outbox>,
  /// The writer generation that publishes to the gateway (a resume elsewhere supersedes it).
  generation: u64,
}

impl Core {
  fn new_session_id(&self) -> SessionId {
    SessionId(self.next_session.fetch_add(1, Ordering::Relaxed) + 1)
  }

  fn new_outbox(&self) -> Arc<Outbox> {
    Arc::new(
      Outbox::new(self.config.max_backpressure_bytes, self.config.overflow_policy)
        .metered(self.metrics.clone()),
    )
  }

  /// Gateway side: serves a socket whose actor `owner` holds.
  pub(super) fn forward(
    &self,
    cluster: &Arc<Cluster>,
    definition: DefinitionId,
    identity: &Identity,
    owner: Arc<str>,
    resume: Option<&ResumeRequest>,
  ) -> Attached {
    let session = self.new_session_id();
    let outbox = self.new_outbox();
    if self.is_raw(definition) {
      outbox.serve_raw();
    }
    let name = self.definition_name(definition);
    // The owner answers with the `session` frame first (resumed or new).
    let resume = nodes::Resume {
      resumable: resume.is_some(),
      token: resume.and_then(|r| r.token.as_deref()).map(Cow::Borrowed),
      last_seq: resume.map_or(0, |r| r.last_seq),
    };
    let open = nodes::open(
      cluster.node(),
      session.get(),
      name,
      &identity.key,
      &identity.meta_json,
      &resume,
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
    let Some(owner) = self.owner_of_forwarded(session) else {
      return false;
    };
    let node = cluster.node();
    let message = match *frame {
      ClientFrame::Event { kind, data } => nodes::event(node, session.get(), kind, data),
      ClientFrame::Call { id, event, data } => nodes::call(node, session.get(), id, event, data),
      // The owner keeps the replay buffer: it hears what the client has.
      ClientFrame::Ping { ack: Some(seq) } => nodes::ack(node, session.get(), seq),
      ClientFrame::Ping { ack: None } => return true,
    };
    cluster.send_to(&owner, message);
    self.metrics.forwarded(&owner, Direction::ToOwner, 1);
    true
  }

  /// Gateway side: a message of a forwarded raw session goes to its owner. False when the
  /// session is not forwarded.
  pub(super) fn forward_raw(&self, cluster: &Arc<Cluster>, session: SessionId, data: RawData<'_>) -> bool {
    let Some(owner) = self.owner_of_forwarded(session) else {
      return false;
    };
    cluster.send_to(&owner, nodes::raw_in(cluster.node(), session.get(), data));
    self.metrics.forwarded(&owner, Direction::ToOwner, 1);
    true
  }

  /// Gateway side: the node that owns the actor of `session`, when the session is forwarded.
  fn owner_of_forwarded(&self, session: SessionId) -> Option<Arc<str>> {
    let forwarding = self.forwarding.lock();
    forwarding.forwarded.get(&session).map(|f| f.owner.clone())
  }

  /// Gateway side: the socket of a forwarded session is gone. False when it was not forwarded.
  pub(super) fn forward_end(&self, cluster: &Arc<Cluster>, session: SessionId, end: &SessionEnd) -> bool {
    let Some(forwarded) = self.forwarding.lock().forwarded.remove(&session) else {
      return false;
    };
    let message = nodes::ended(cluster.node(), session.get(), end.code, &end.reason, end.blip);
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
        resume,
      } => self.open_remote(cluster, &from, session, &definition, &key, meta.get(), &resume),
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
        blip,
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
            blip,
          };
          self.end_remote(local, end);
        }
      }
      NodeMessage::Ack { from, session, seq } => {
        let outbox = self
          .forwarding
          .lock()
          .remotes
          .get(&(Arc::from(&*from), session))
          .map(|remote| remote.outbox.clone());
        if let Some(outbox) = outbox {
          outbox.acknowledge(seq);
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
      NodeMessage::RawIn {
        from,
        session,
        frames,
      } => {
        let local = self.remote_session(&from, session);
        if let Some(local) = local {
          for data in frames {
            let event = match data {
              RawData::Text(text) => Event::RawText { session: local, text },
              RawData::Binary(bytes) => Event::RawBinary {
                session: local,
                bytes,
              },
            };
            self.registry.deliver(local, event);
          }
        }
      }
      NodeMessage::RawOut { session, frames } => {
        if let Some(outbox) = self.forwarded_outbox(session) {
          for data in frames {
            outbox.push(match data {
              RawData::Text(text) => WireFrame::RawText(Utf8Bytes::from(text.to_string())),
              RawData::Binary(bytes) => WireFrame::Binary(Bytes::copy_from_slice(bytes)),
            });
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

  /// Owner side: this node's session that `gateway`'s session `session` is.
  fn remote_session(&self, gateway: &str, session: u64) -> Option<SessionId> {
    self
      .forwarding
      .lock()
      .remotes
      .get(&(Arc::from(gateway), session))
      .map(|remote| remote.session)
  }

  /// Owner side: a frame of a remote session, for JS (as if its socket were here).
  fn receive_remote(&self, gateway: &str, session: u64, frame: ClientFrame<'_>) {
    if let Some(local) = self.remote_session(gateway, session) {
      self.receive_here(local, frame);
    }
  }

  /// Owner side: a session of one of this node's actors opened at a gateway: the session its
  /// client resumes, when this node still keeps it, or a new one.
  #[allow(clippy::too_many_arguments)]
  fn open_remote(
    &self,
    cluster: &Arc<Cluster>,
    gateway: &str,
    gateway_session: u64,
    definition: &str,
    key: &str,
    meta_json: &str,
    resume: &nodes::Resume<'_>,
  ) {
    let Some(index) = self.config.definitions.iter().position(|d| d.name == definition) else {
      cluster.send_to(
        gateway,
        nodes::close(gateway_session, 1011, "unknown connection definition"),
      );
      return;
    };
    let definition = DefinitionId(index);
    let gateway: Arc<str> = Arc::from(gateway);
    // Raw sessions do not resume: their frames carry no numbers to replay from.
    let raw = self.is_raw(definition);
    let no_resume = nodes::Resume::default();
    let resume = if raw { &no_resume } else { resume };
    if let Some(remote) = self.resume_remote(definition, key, resume) {
      let mut forwarding = self.forwarding.lock();
      // Whichever gateway (or socket) served it before is superseded.
      forwarding.remotes.retain(|_, old| old.session != remote.session);
      forwarding
        .remotes
        .insert((gateway.clone(), gateway_session), remote.clone());
      drop(forwarding);
      self.runtime.spawn(write_to_gateway(
        cluster.clone(),
        remote,
        gateway,
        gateway_session,
        self.metrics.clone(),
      ));
      return;
    }
    let session = self.new_session_id();
    let outbox = self.new_outbox();
    if raw {
      outbox.serve_raw();
    }
    let keeps = resume.resumable && !self.config.resume_window.is_zero();
    let token: Option<Arc<str>> = keeps.then(|| Arc::from(uuid::Uuid::new_v4().to_string()));
    if keeps {
      outbox.keep_for_replay(self.config.resume_buffer_bytes);
    }
    if resume.resumable {
      outbox.push(session_frame(token.as_deref(), false));
    }
    let added = self.registry.add_session(
      NewSession {
        id: session,
        definition,
        key,
        outbox: outbox.clone(),
        meta: Arc::from(meta_json),
        token,
      },
      self.config.max_sessions,
    );
    let Some(added) = added else {
      cluster.send_to(
        &gateway,
        nodes::close(gateway_session, 1013, "server is at its session limit"),
      );
      return;
    };
    let remote = Remote {
      session,
      outbox,
      generation: 0,
    };
    self
      .forwarding
      .lock()
      .remotes
      .insert((gateway.clone(), gateway_session), remote.clone());
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
    self.runtime.spawn(write_to_gateway(
      cluster.clone(),
      remote,
      gateway,
      gateway_session,
      self.metrics.clone(),
    ));
  }

  /// Owner side: the session a gateway's client resumes, continued from its last frame number
  /// (its `session` frame and the frames it missed go first). `None`: start a new one.
  fn resume_remote(&self, definition: DefinitionId, key: &str, resume: &nodes::Resume<'_>) -> Option<Remote> {
    let token = resume.token.as_deref()?;
    if self.config.resume_window.is_zero() {
      return None;
    }
    let first = session_frame(Some(token), true);
    let resumed = self
      .registry
      .resume(token, definition, Some(key), resume.last_seq, first)
      .ok()?;
    Some(Remote {
      session: resumed.session,
      outbox: resumed.outbox,
      generation: resumed.generation,
    })
  }

  /// Owner side: a remote session's socket is gone (its gateway said so, or died). One that
  /// dropped waits for its client to resume it, through any node; otherwise JS hears it end.
  fn end_remote(&self, remote: Remote, end: SessionEnd) {
    if end.blip && !self.is_shutting_down() {
      match self
        .registry
        .suspend(remote.session, remote.generation, end.clone())
      {
        Suspended::Waiting | Suspended::Superseded => return,
        Suspended::End => {}
      }
    }
    if self.registry.end(remote.session, remote.generation, &end) {
      self.calls.session_closed(remote.session);
    }
    remote.outbox.request_close(end.code, &end.reason);
  }

  /// Closes every forwarded session (gateway side) and ends every remote one (owner side):
  /// shutdown, or a pub/sub link that dropped and may have lost their traffic.
  pub(super) fn end_forwarding(&self, code: u16, reason: &str) {
    let (forwarded, remotes) = {
      let mut forwarding = self.forwarding.lock();
      let forwarded: Vec<Arc<Outbox>> = forwarding.forwarded.values().map(|f| f.outbox.clone()).collect();
      let remotes: Vec<Remote> = forwarding.remotes.drain().map(|(_, remote)| remote).collect();
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
    for remote in remotes {
      self.end_remote(remote, end.clone());
    }
  }
}

/// A frame for a raw session as the node wire carries it (text or bytes; a pong is the
/// gateway's own business).
fn raw_frame_data(frame: &WireFrame) -> Option<RawData<'_>> {
  match frame {
    WireFrame::Text(text) | WireFrame::RawText(text) => Some(RawData::Text(text.as_str())),
    WireFrame::Binary(bytes) => Some(RawData::Binary(bytes)),
    WireFrame::Pong(_) => None,
  }
}

/// A frame's `data` as the parser gives it: absent when missing or null.
fn raw_data(data: Option<&serde_json::value::RawValue>) -> Option<&str> {
  data.map(|data| data.get()).filter(|data| *data != "null")
}

/// Owner side: the writer of a remote session, publishing what it is sent to its gateway, until
/// the session closes or another writer (a resume) takes it over.
async fn write_to_gateway(
  cluster: Arc<Cluster>,
  remote: Remote,
  gateway: Arc<str>,
  session: u64,
  metrics: Arc<Metrics>,
) {
  let Remote {
    outbox, generation, ..
  } = remote;
  let mut queued = VecDeque::new();
  loop {
    let Ok(close) = outbox.take(generation, &mut queued).await else {
      return;
    };
    if !queued.is_empty() {
      // A raw session's frames go as bytes (binary among them); anyone else's are protocol text.
      let message = if queued.iter().any(|q| q.frame.is_raw()) {
        nodes::raw_out(session, queued.iter().filter_map(|q| raw_frame_data(&q.frame)))
      } else {
        nodes::frames(session, queued.iter().filter_map(|q| q.frame.as_text())).into_bytes()
      };
      let bytes = queued.iter().map(|q| wire_len(q.frame.len())).sum();
      cluster.send_to(&gateway, message);
      metrics.forwarded(&gateway, Direction::ToGateway, queued.len() as u64);
      // Handed on: the gateway's own outbox bounds what its socket has not taken.
      outbox.accepted(generation, bytes);
      queued.clear();
    }
    if let Some(close) = close {
      cluster.send_to(&gateway, nodes::close(session, close.code, &close.reason));
      return;
    }
  }
}
