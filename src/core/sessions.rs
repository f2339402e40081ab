//! The core as the transport's [`Host`]: upgrades wait for `extractMeta`, sessions open (their
//! actor created or woken, back in its rooms) or resume, frames reach JS, sockets end.
//!
//! A client that resumes sessions (`?_resume=`) gets a token in a `session` frame; when its
//! socket drops, the session waits (see the registry's resume module) and a later upgrade with
//! `?_resume=<token>&_lastSeq=N` continues it after `extractMeta` accepted the same user.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::sync::oneshot;
use tokio::time::{timeout_at, Instant};

use super::{Core, Decision};
use crate::cluster::Placement;
use crate::config::ServerConfig;
use crate::error::{SessionEnd, UpgradeRejection};
use crate::events::{Event, Level};
use crate::ids::{DefinitionId, RequestId, SessionId};
use crate::protocol::{session_frame, ClientFrame, RawData};
use crate::registry::{NewSession, Suspended};
use crate::transport::http::{RequestHead, ResumeRequest};
use crate::transport::outbox::Outbox;
use crate::transport::{Attached, Connections, Host, Identity};

impl Host for Core {
  fn config(&self) -> &ServerConfig {
    &self.config
  }

  fn connections(&self) -> &Connections {
    &self.connections
  }

  fn is_shutting_down(&self) -> bool {
    *self.shutdown.borrow()
  }

  fn shutdown_signal(&self) -> impl Future<Output = ()> + Send + '_ {
    let mut receiver = self.shutdown.subscribe();
    async move {
      let _ = receiver.wait_for(|stopping| *stopping).await;
    }
  }

  fn admits(&self, resume: Option<&ResumeRequest>) -> bool {
    // Sessions waiting for a resume hold memory like open ones: they count too, and the
    // client of one may always come back to it.
    let returning = resume
      .and_then(|request| request.token.as_deref())
      .is_some_and(|token| self.registry.is_waiting(token));
    self.registry.session_count() < self.config.max_sessions || returning
  }

  async fn authenticate(
    &self,
    head: &RequestHead,
    definition: DefinitionId,
    peer: SocketAddr,
    deadline: Instant,
  ) -> Result<Identity, UpgradeRejection> {
    let request = RequestId(self.next_request.fetch_add(1, Ordering::Relaxed) + 1);
    let (sender, receiver) = oneshot::channel();
    self.pending_upgrades.lock().insert(request, sender);
    let remote = peer.ip().to_string();
    let headers = head.merged_headers();
    self.events.push(Event::Upgrade {
      request,
      definition,
      url: &head.target,
      remote: &remote,
      headers: &headers,
    });
    let decision = timeout_at(deadline, receiver).await;
    self.pending_upgrades.lock().remove(&request);
    match decision {
      Ok(Ok(Decision::Accept(identity))) => Ok(identity),
      Ok(Ok(Decision::Reject {
        status,
        message,
        code,
      })) => Err(UpgradeRejection::Refused {
        status,
        message,
        code,
      }),
      Ok(Err(_)) => Err(UpgradeRejection::Unavailable("server is shutting down")),
      Err(_) => Err(UpgradeRejection::Unavailable("authentication timed out")),
    }
  }

  fn hibernate_actor_named(&self, kind: &str, key: &str) -> bool {
    self
      .definition_of_kind(kind)
      .is_some_and(|definition| self.hibernate(definition, key))
  }

  fn metrics_text(&self) -> String {
    Core::metrics_text(self)
  }

  fn inspect_overview(&self) -> String {
    self.overview_json()
  }

  fn inspect_actor(&self, kind: &str, key: &str) -> Option<String> {
    self.actor_json(kind, key)
  }

  fn destroy_actor_named(&self, kind: &str, key: &str) -> bool {
    self
      .config
      .definitions
      .iter()
      .position(|definition| definition.name == kind)
      .is_some_and(|index| self.destroy_actor_by_key(DefinitionId(index), key))
  }

  async fn attach(
    &self,
    definition: DefinitionId,
    identity: Option<Identity>,
    resume: Option<ResumeRequest>,
  ) -> Result<Attached, UpgradeRejection> {
    // Raw sessions do not resume: their messages carry no numbers to replay from.
    let raw = self.is_raw(definition);
    let resume = resume.filter(|_| !raw);
    if let Some(resumed) = resume
      .as_ref()
      .and_then(|request| self.resume(request, definition, identity.as_ref()))
    {
      return Ok(resumed);
    }
    // The resume failed (or was not asked for): this is a new session, within the limit like
    // any other, even when the token it named let it past `admits`.
    let identity = identity.unwrap_or_else(default_identity);
    if self.fenced.load(Ordering::Acquire) {
      return Err(UpgradeRejection::Unavailable(
        "this node lost its place in the cluster; connect to another",
      ));
    }
    if let Some(cluster) = &self.cluster {
      // An actor in memory here is this node's, unless its claim was lost (the node lost its
      // lease): that one leaves memory first, once its sessions are gone. Otherwise the
      // directory says where the actor lives.
      let name = self.definition_name(definition);
      if self.fence_of(name, &identity.key).map(|fence| fence.token) == Some(super::cluster::STALE_CLAIM) {
        self.drop_stale_actor(definition, &identity.key)?;
      }
      if self.registry.actor_of(definition, &identity.key).is_none() {
        match cluster.claim(name, &identity.key).await {
          Ok(Placement::Elsewhere { owner }) => {
            return Ok(self.forward(cluster, definition, &identity, owner, resume.as_ref()));
          }
          Ok(Placement::Here { fence, records }) => {
            // This node's copy becomes what Redis holds, before any hook reads it.
            if let Err(error) = self.storage.cache(records) {
              self.report(Level::Error, &error.to_string());
              return Err(UpgradeRejection::Unavailable(
                "the actor's state cannot be loaded now",
              ));
            }
            self.claims.lock().insert(fence.actor, fence.token);
            if let Err(error) = self.adopt_schedules(cluster, definition, &identity.key).await {
              self.report(Level::Error, &error.to_string());
              self.release_claim(definition, &identity.key);
              return Err(UpgradeRejection::Unavailable(
                "the actor's schedules cannot be loaded now",
              ));
            }
          }
          Err(error) => {
            self.report(Level::Error, &error.to_string());
            return Err(UpgradeRejection::Unavailable(
              "the cluster cannot place this session now",
            ));
          }
        }
      }
    }
    let (session, outbox) = self
      .open_session(definition, &identity, resume.is_some())
      .ok_or(UpgradeRejection::Unavailable("server is at its session limit"))?;
    Ok(Attached {
      session,
      outbox,
      generation: 0,
      resumed: false,
    })
  }

  fn detach(&self, session: SessionId, generation: u64, end: SessionEnd) {
    if let Some(cluster) = &self.cluster {
      if self.forward_end(cluster, session, &end) {
        return;
      }
    }
    if end.blip && !self.is_shutting_down() {
      match self.registry.suspend(session, generation, end.clone()) {
        Suspended::Waiting | Suspended::Superseded => return,
        Suspended::End => {}
      }
    }
    if self.registry.end(session, generation, &end) {
      self.calls.session_closed(session);
    }
  }

  fn wait_for_space(&self, session: SessionId) -> impl Future<Output = ()> + Send + '_ {
    self.events.wait_for_space(session)
  }

  fn receive_raw(&self, session: SessionId, data: RawData<'_>) {
    if let Some(cluster) = &self.cluster {
      if self.forward_raw(cluster, session, data) {
        return;
      }
    }
    let event = match data {
      RawData::Text(text) => Event::RawText { session, text },
      RawData::Binary(bytes) => Event::RawBinary { session, bytes },
    };
    self.registry.deliver(session, event);
  }

  fn receive(&self, session: SessionId, frame: ClientFrame<'_>) {
    self.metrics.frames_received.inc();
    if let Some(cluster) = &self.cluster {
      if self.forward_frame(cluster, session, &frame) {
        return;
      }
    }
    self.receive_here(session, frame);
  }
}

impl Core {
  /// Whether `definition` is a raw endpoint (its messages go as they are, not as JSON frames).
  pub(super) fn is_raw(&self, definition: DefinitionId) -> bool {
    self
      .config
      .definitions
      .get(definition.get())
      .is_some_and(|d| d.raw)
  }

  /// A frame of a session this node holds: JS hears it (its actor woken first if needed).
  pub(super) fn receive_here(&self, session: SessionId, frame: ClientFrame<'_>) {
    self.record_frame(session, &frame);
    match frame {
      ClientFrame::Event { kind, data } => {
        self.registry.deliver(
          session,
          Event::Message {
            session,
            kind_json: kind,
            data_json: data,
          },
        );
      }
      ClientFrame::Call { id, event, data } => {
        let call = Event::Call {
          session,
          call: id,
          event_json: event,
          data_json: data,
        };
        // Registered first: JS may answer as soon as the event is queued.
        self.calls.started(session, id);
        if !self.registry.deliver(session, call) {
          let _ = self.calls.answered(session, id);
        }
      }
      ClientFrame::Ping { .. } => {}
    }
  }

  /// Registers a new session (and its actor, back in its rooms) and tells JS. With `resumable`,
  /// the client asked for resume: its first frame is the `session` frame with its token.
  /// `None` when the server is at `maxSessions`.
  fn open_session(
    &self,
    definition: DefinitionId,
    identity: &Identity,
    resumable: bool,
  ) -> Option<(SessionId, Arc<Outbox>)> {
    let id = SessionId(self.next_session.fetch_add(1, Ordering::Relaxed) + 1);
    let outbox = Arc::new(
      Outbox::new(self.config.max_backpressure_bytes, self.config.overflow_policy)
        .metered(self.metrics.clone()),
    );
    if self.is_raw(definition) {
      outbox.serve_raw();
    }
    let keeps = resumable && !self.config.resume_window.is_zero();
    let token: Option<Arc<str>> = keeps.then(|| Arc::from(uuid::Uuid::new_v4().to_string()));
    if keeps {
      outbox.keep_for_replay(self.config.resume_buffer_bytes);
    }
    if resumable {
      outbox.push(session_frame(token.as_deref(), false));
    }
    let new = NewSession {
      id,
      definition,
      key: &identity.key,
      outbox: outbox.clone(),
      meta: Arc::from(identity.meta_json.as_str()),
      token,
    };
    let added = self.registry.add_session(new, self.config.max_sessions)?;
    if added.created {
      self.restore_room_list(added.actor, definition, &identity.key);
    }
    // The user is back in its rooms before JS hears of the session (and runs onConnect).
    self.events.push(Event::Open {
      session: id,
      actor: added.actor,
      created: added.created,
      definition,
      key: &identity.key,
      meta_json: &identity.meta_json,
    });
    Some((id, outbox))
  }

  /// Continues the session a client names, when it can be (same definition, same user as
  /// `extractMeta` found, frames since its last number still kept). `None`: start a new one.
  fn resume(
    &self,
    request: &ResumeRequest,
    definition: DefinitionId,
    identity: Option<&Identity>,
  ) -> Option<Attached> {
    let token = request.token.as_deref()?;
    if self.config.resume_window.is_zero() {
      return None;
    }
    let key = identity.map(|identity| identity.key.as_str());
    let first = session_frame(Some(token), true);
    let resumed = self
      .registry
      .resume(token, definition, key, request.last_seq, first)
      .ok()?;
    Some(Attached {
      session: resumed.session,
      outbox: resumed.outbox,
      generation: resumed.generation,
      resumed: true,
    })
  }

  /// Ends waiting sessions whose window is over or that were closed meanwhile (every waiting
  /// session when `all`: the server is stopping).
  pub(super) fn end_waiting(&self, all: bool) {
    for session in self.registry.end_waiting(self.config.resume_window, all) {
      self.calls.session_closed(session);
    }
  }
}

/// The identity of a socket on a definition without `extractMeta`: a fresh id as both user and
/// client.
fn default_identity() -> Identity {
  let id = uuid::Uuid::new_v4().to_string();
  let meta_json = format!(r#"{{"userId":"{id}","clientId":"{id}","channels":["default"]}}"#);
  Identity { key: id, meta_json }
}
