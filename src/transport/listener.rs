//! The accept loop and the life of one connection: the TLS handshake when the listener serves
//! `wss://`, the request head, its route (health check, admin API, static file, or an upgrade),
//! `extractMeta` through the host, the 101, then the session until its socket is gone.
//!
//! A connection is served the same way whatever carries it ([`TcpStream`], a TLS stream over
//! one, or a socket handed over by another HTTP server through [`super::adopt`]): the code is
//! generic over the stream, so the plain path compiles to what it was without TLS.
//!
//! Every connection holds a [`super::LiveGuard`] for as long as it exists, so shutdown can wait
//! until the last socket is released: nothing is left running when `close()` resolves. Until
//! its 101 is written (or its refusal answered), a connection also holds one of the
//! `maxPendingHandshakes` permits; the accept loop waits for a free one before accepting, so
//! sockets that never finish their head cannot grow past it, and sessions are counted only
//! once open (`maxSessions`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Handle;
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::{timeout_at, Instant};
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::WebSocketStream;

use super::encoding::Encoding;
use super::http::{self, HeadError, RequestHead, Route};
use super::session::{self, Metered, Outcome, Release, SessionLink};
use super::tls::TlsSlot;
use super::{admin, static_files, Host};
use crate::config::{MAX_BURST_FACTOR, MAX_LINGER_BYTES, READ_BUFFER_BYTES, WRITE_BUFFER_BYTES};
use crate::error::{CloseCode, SessionEnd, UpgradeRejection};

/// Binds synchronously (so a busy port is an immediate error) and starts accepting on `runtime`;
/// with `tls`, every connection first completes a TLS handshake with its current certificate.
pub fn listen<H: Host>(
  host: &Arc<H>,
  runtime: &Handle,
  address: &str,
  port: u16,
  tls: Option<Arc<TlsSlot>>,
) -> std::io::Result<SocketAddr> {
  let std_listener = std::net::TcpListener::bind((address, port))?;
  std_listener.set_nonblocking(true)?;
  let bound = std_listener.local_addr()?;
  let listener = {
    let _entered = runtime.enter();
    TcpListener::from_std(std_listener)?
  };
  runtime.spawn(accept_loop(host.clone(), listener, tls));
  Ok(bound)
}

async fn accept_loop<H: Host>(host: Arc<H>, listener: TcpListener, tls: Option<Arc<TlsSlot>>) {
  let mut backoff = Duration::from_millis(5);
  let handshakes = host
    .connections()
    .handshakes(host.config().max_pending_handshakes);
  loop {
    // At the bound, accepting pauses: new connections wait in the kernel's backlog.
    let permit = tokio::select! {
      _ = host.shutdown_signal() => return,
      permit = handshakes.clone().acquire_owned() => match permit {
        Ok(permit) => permit,
        Err(_) => return,
      },
    };
    tokio::select! {
      _ = host.shutdown_signal() => return,
      accepted = listener.accept() => match accepted {
        Ok((stream, peer)) => {
          backoff = Duration::from_millis(5);
          match &tls {
            None => {
              tokio::spawn(serve_connection(host.clone(), stream, peer, permit, Vec::new()));
            }
            Some(tls) => {
              tokio::spawn(serve_tls(host.clone(), tls.clone(), stream, peer, permit));
            }
          }
        }
        Err(_) => {
          // Out of file descriptors or a transient error: wait, then retry.
          tokio::time::sleep(backoff).await;
          backoff = (backoff * 2).min(Duration::from_secs(1));
        }
      }
    }
  }
}

/// What the handshake settled: the bytes read past the head, and the session to serve.
struct Upgrade {
  leftover: Vec<u8>,
  accept_key: String,
  definition: crate::ids::DefinitionId,
  identity: Option<super::Identity>,
  resume: Option<http::ResumeRequest>,
  encoding: Encoding,
}

/// Reads the head and answers it: `Ok` for an upgrade to perform, `Err(Some(..))` for a
/// refusal to send, `Err(None)` when the connection is done (answered, or gone).
async fn handshake<H: Host, S: AsyncRead + AsyncWrite + Unpin>(
  host: &H,
  stream: &mut S,
  peer: SocketAddr,
  deadline: Instant,
  read: Vec<u8>,
) -> Result<Upgrade, Option<UpgradeRejection>> {
  let head = match timeout_at(deadline, http::read_head_after(stream, read)).await {
    Ok(Ok(head)) => head,
    Ok(Err(HeadError::Reject(rejection))) => return Err(Some(rejection)),
    Ok(Err(HeadError::Gone)) | Err(_) => return Err(None),
  };
  let config = host.config();
  if let Some(request) = admin::route(&head, config) {
    write_and_close(
      stream,
      &admin::respond(host, &request),
      deadline,
      config.close_timeout,
    )
    .await;
    return Err(None);
  }
  let serves_static = config.static_dir.is_some();
  let (definition, accept_key, encoding) = match http::route(
    &head,
    &config.definitions,
    serves_static,
    config.admin_token.as_deref(),
  ) {
    Route::DestroyActor {
      kind,
      key,
      authorized,
    } => {
      let response = if !authorized {
        http::rejection_response(&UpgradeRejection::Unauthorized)
      } else if host.destroy_actor_named(&kind, &key) {
        http::no_content_response()
      } else {
        http::rejection_response(&UpgradeRejection::NotFound)
      };
      write_and_close(stream, &response, deadline, config.close_timeout).await;
      return Err(None);
    }
    Route::Health => {
      write_and_close(stream, &http::health_response(), deadline, config.close_timeout).await;
      return Err(None);
    }
    Route::Static => {
      let response = static_response(host, &head).await;
      write_and_close(stream, &response, deadline, config.close_timeout).await;
      return Err(None);
    }
    Route::Reject(rejection) => return Err(Some(rejection)),
    Route::Upgrade {
      definition,
      accept_key,
      encoding,
    } => (definition, accept_key, encoding),
  };
  let resume = head.resume_request();
  if !host.admits(resume.as_ref()) {
    return Err(Some(UpgradeRejection::Unavailable(
      "server is at its session limit",
    )));
  }
  let authenticates = config
    .definitions
    .get(definition.get())
    .is_some_and(|d| d.authenticates);
  let identity = if authenticates {
    Some(
      host
        .authenticate(&head, definition, peer, deadline)
        .await
        .map_err(Some)?,
    )
  } else {
    None
  };
  // Only the bytes read past the head are needed from here on.
  Ok(Upgrade {
    leftover: head.leftover,
    accept_key,
    definition,
    identity,
    resume,
    encoding,
  })
}

/// Serves one TCP connection; `read` holds what was read from it already (a socket handed
/// over by another HTTP server), else nothing.
pub(super) async fn serve_connection<H: Host>(
  host: Arc<H>,
  stream: TcpStream,
  peer: SocketAddr,
  handshaking: OwnedSemaphorePermit,
  read: Vec<u8>,
) {
  let _live = host.connections().enter();
  let _ = stream.set_nodelay(true);
  let deadline = Instant::now() + host.config().handshake_timeout;
  serve_stream(&host, stream, peer, handshaking, deadline, read).await;
}

/// Serves one connection of a `wss://` listener: the TLS handshake (within the handshake
/// deadline, under the same permit), then the connection as over plain TCP.
async fn serve_tls<H: Host>(
  host: Arc<H>,
  tls: Arc<TlsSlot>,
  stream: TcpStream,
  peer: SocketAddr,
  handshaking: OwnedSemaphorePermit,
) {
  let _live = host.connections().enter();
  let _ = stream.set_nodelay(true);
  let deadline = Instant::now() + host.config().handshake_timeout;
  // Boxed: the TLS handshake's state is large and only needed until it completes.
  let accept = Box::pin(timeout_at(deadline, tls.acceptor().accept(stream)));
  let accepted = tokio::select! {
    accepted = accept => accepted,
    _ = host.shutdown_signal() => return,
  };
  // A failed or timed-out TLS handshake has no HTTP to answer: the connection just closes.
  if let Ok(Ok(stream)) = accepted {
    serve_stream(&host, stream, peer, handshaking, deadline, Vec::new()).await;
  }
}

async fn serve_stream<H: Host, S: AsyncRead + AsyncWrite + Unpin>(
  host: &Arc<H>,
  mut stream: S,
  peer: SocketAddr,
  handshaking: OwnedSemaphorePermit,
  deadline: Instant,
  read: Vec<u8>,
) {
  // Boxed, so that its state is freed once the socket opens instead of staying in this task
  // (a future's slots live as long as the whole function) for the socket's lifetime.
  let handshake = Box::pin(handshake(&**host, &mut stream, peer, deadline, read));
  let outcome = tokio::select! {
    outcome = handshake => outcome,
    _ = host.shutdown_signal() => Err(Some(UpgradeRejection::Unavailable("server is shutting down"))),
  };
  let upgrade = match outcome {
    Ok(upgrade) => upgrade,
    Err(Some(rejection)) => {
      let response = http::rejection_response(&rejection);
      write_and_close(&mut stream, &response, deadline, host.config().close_timeout).await;
      return;
    }
    Err(None) => return,
  };
  let Upgrade {
    leftover,
    accept_key,
    definition,
    identity,
    resume,
    encoding,
  } = upgrade;
  let attached = match host.attach(definition, identity, resume).await {
    Ok(attached) => attached,
    Err(rejection) => {
      let response = http::rejection_response(&rejection);
      write_and_close(&mut stream, &response, deadline, host.config().close_timeout).await;
      return;
    }
  };
  if host.is_shutting_down() {
    attached
      .outbox
      .request_close(CloseCode::GoingAway.as_u16(), "server shutdown");
  }
  // The session is registered before the 101 leaves, so once a client sees its socket open,
  // the session is reachable (stats, toUser, rooms).
  let response = http::switching_protocols(&accept_key);
  let written = timeout_at(deadline, stream.write_all(&response)).await;
  drop(response);
  drop(handshaking);
  if !matches!(written, Ok(Ok(()))) {
    let end = SessionEnd {
      blip: attached.resumed,
      ..SessionEnd::dropped()
    };
    host.detach(attached.session, attached.generation, end);
    return;
  }
  let config = host.config();
  let burst_limit = config.max_backpressure_bytes.saturating_mul(MAX_BURST_FACTOR);
  let ws_config = WebSocketConfig::default()
    .read_buffer_size(READ_BUFFER_BYTES)
    .write_buffer_size(WRITE_BUFFER_BYTES)
    // The outbox admits no frame past maxBackpressure × MAX_BURST_FACTOR: one always fits.
    .max_write_buffer_size(WRITE_BUFFER_BYTES + config.max_payload_bytes.max(burst_limit))
    .max_message_size(Some(config.max_payload_bytes))
    .max_frame_size(Some(config.max_payload_bytes));
  let metered = Metered::new(stream, attached.outbox.clone(), attached.generation)
    .counting_fragments(leftover, config.max_fragments);
  let socket = WebSocketStream::from_partially_read(metered, Vec::new(), Role::Server, Some(ws_config)).await;
  let link = SessionLink {
    id: attached.session,
    outbox: attached.outbox,
    generation: attached.generation,
    host: &**host,
    close_timeout: config.close_timeout,
    raw: config.definitions.get(definition.get()).is_some_and(|d| d.raw),
    encoding,
  };
  let (outcome, socket, release) = session::run(socket, &link).await;
  if let Outcome::Ended(end) = outcome {
    host.detach(link.id, link.generation, end);
  }
  if let (Some(mut socket), Release::Linger(time)) = (socket, release) {
    linger(socket.get_mut().get_mut(), time).await;
  }
}

async fn static_response<H: Host>(host: &H, head: &RequestHead) -> Vec<u8> {
  let Some(root) = host.config().static_dir.clone() else {
    return http::rejection_response(&UpgradeRejection::NotFound);
  };
  match static_files::load(root, head.path().to_string()).await {
    Some((content_type, body)) => http::file_response(&content_type, &body, head.method == "HEAD"),
    None => http::rejection_response(&UpgradeRejection::NotFound),
  }
}

/// Answers a plain HTTP request and closes the connection without losing the answer.
async fn write_and_close<S: AsyncRead + AsyncWrite + Unpin>(
  stream: &mut S,
  response: &[u8],
  deadline: Instant,
  close_timeout: Duration,
) {
  if let Ok(Ok(())) = timeout_at(deadline, stream.write_all(response)).await {
    linger(stream, close_timeout).await;
  }
}

/// Closes a connection the way RFC 6455 §7.1.1 and RFC 9112 §9.6 ask: half-close (FIN after
/// what was written), then read and discard what the peer still sends until it closes too,
/// for at most `time` and [`MAX_LINGER_BYTES`]. Closing with unread input would send a reset
/// instead, and a reset makes the peer's kernel drop what it had not read yet: the close frame
/// (the client then reports 1006 instead of 1009) or the HTTP answer.
/// Bytes read at a time while lingering.
const LINGER_READ_BYTES: usize = 4096;

async fn linger<S: AsyncRead + AsyncWrite + Unpin>(stream: &mut S, time: Duration) {
  let drain = async {
    stream.shutdown().await?;
    // On the heap: a buffer here would be part of every connection's task for its whole life.
    let mut discard = vec![0u8; LINGER_READ_BYTES];
    let mut read = 0;
    while read < MAX_LINGER_BYTES {
      match stream.read(&mut discard).await? {
        0 => break,
        n => read += n,
      }
    }
    std::io::Result::Ok(())
  };
  let _ = tokio::time::timeout(time, drain).await;
}
