//! One open WebSocket: a reader that parses frames once and answers pings, and a writer that
//! drains the session's outbox, both in one task.
//!
//! The reader hands events and calls to its host (waiting while the queue to JS is full, which
//! pushes back on the client through TCP). The writer takes every queued frame at once and
//! feeds them to tungstenite before one flush, so a burst becomes one write.
//!
//! Ending: whoever closes first decides the code JS sees. A peer's Close is answered by
//! tungstenite while the reader keeps polling until the socket ends; a close requested here is
//! sent after the frames queued before it, then the reader waits (bounded) for the peer's reply.
//!
//! A socket that drops (no close handshake, or a close from the client other than 1000/1001)
//! ends as a blip the client may resume; a socket whose session was resumed on another one
//! ends as superseded, and nothing about it reaches JS.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::error::{Error as WsError, ProtocolError};
use tokio_tungstenite::tungstenite::protocol::frame::CloseFrame;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};
use tokio_tungstenite::WebSocketStream;

use super::outbox::{CloseRequest, Outbox, Queued};
use super::Host;
use crate::error::{CloseCode, FrameError, SessionEnd};
use crate::ids::SessionId;
use crate::protocol::{parse_client_frame, pong_frame, system_error_frame, ClientFrame};

/// Time a slow consumer's socket gets to take its close frame (it has stopped reading, so the
/// full close timeout would mostly be spent waiting on a socket that will not drain).
const URGENT_CLOSE_GRACE: Duration = Duration::from_secs(1);

/// What a session needs besides its socket.
pub struct SessionLink<'a, H> {
  pub id: SessionId,
  pub outbox: Arc<Outbox>,
  /// This socket's generation in the outbox (see [`Outbox::resume`]).
  pub generation: u64,
  pub host: &'a H,
  pub close_timeout: Duration,
}

/// How a socket stopped serving its session.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
  Ended(SessionEnd),
  /// Another socket resumed the session; this one just goes away.
  Superseded,
}

enum ReadEnd {
  /// The peer sent Close (code 1005 when it gave none) and the socket then ended.
  PeerClosed(SessionEnd),
  /// The peer broke a rule; close with this code.
  Violation(CloseCode, &'static str),
  /// The connection dropped without a close handshake.
  Gone,
}

enum WriteEnd {
  /// A close requested here was sent (or given up on after the close timeout).
  Closed(CloseRequest),
  /// The socket failed.
  Failed,
  /// Another socket resumed the session.
  Superseded,
}

/// Runs the session until its socket is gone.
pub async fn run<S, H>(socket: WebSocketStream<S>, link: &SessionLink<'_, H>) -> Outcome
where
  S: AsyncRead + AsyncWrite + Unpin,
  H: Host,
{
  let (mut sink, mut stream) = socket.split();
  let reader = read_loop(&mut stream, link);
  let writer = write_loop(&mut sink, link);
  tokio::pin!(reader, writer);
  let ended = tokio::select! {
    end = &mut reader => match end {
      ReadEnd::PeerClosed(ended) => ended,
      ReadEnd::Violation(code, reason) => {
        link.outbox.request_close(code.as_u16(), reason);
        let _ = timeout(link.close_timeout, &mut writer).await;
        SessionEnd { code: code.as_u16(), reason: reason.into(), blip: false }
      }
      ReadEnd::Gone => SessionEnd::dropped(),
    },
    end = &mut writer => match end {
      WriteEnd::Closed(request) => {
        // A slow consumer is not reading: waiting for its close reply would only delay the end.
        if !request.urgent {
          let _ = timeout(link.close_timeout, &mut reader).await;
        }
        SessionEnd { code: request.code, reason: request.reason, blip: false }
      }
      WriteEnd::Failed => SessionEnd::dropped(),
      WriteEnd::Superseded => return Outcome::Superseded,
    },
  };
  // The socket may have died because another one took over (its reader saw the drop first).
  if link.outbox.generation() != link.generation {
    return Outcome::Superseded;
  }
  Outcome::Ended(ended)
}

async fn read_loop<S, H>(stream: &mut SplitStream<WebSocketStream<S>>, link: &SessionLink<'_, H>) -> ReadEnd
where
  S: AsyncRead + AsyncWrite + Unpin,
  H: Host,
{
  let mut peer_close: Option<SessionEnd> = None;
  while let Some(item) = stream.next().await {
    match item {
      Ok(Message::Text(text)) => on_text(&text, link).await,
      Ok(Message::Binary(_)) => {
        link.outbox.push(system_error_frame(FrameError::Binary));
      }
      Ok(Message::Close(frame)) => {
        // Keep polling: tungstenite sends the close reply on the next read, then ends.
        peer_close = Some(match frame {
          Some(frame) => {
            let code = u16::from(frame.code);
            SessionEnd {
              code,
              reason: frame.reason.to_string(),
              // 1000 and 1001 mean the client is leaving; any other code (a heartbeat timeout,
              // say) means it will be back.
              blip: !matches!(code, 1000 | 1001),
            }
          }
          None => SessionEnd {
            code: 1005,
            reason: String::new(),
            blip: false,
          },
        });
      }
      Ok(_) => {}
      Err(WsError::Capacity(_)) => return ReadEnd::Violation(CloseCode::TooBig, "message too big"),
      Err(WsError::Utf8(_)) => return ReadEnd::Violation(CloseCode::InvalidPayload, "invalid UTF-8"),
      // The peer went away without a close frame: a dropped connection, not a violation.
      Err(WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake)) => break,
      Err(WsError::Protocol(_)) => return ReadEnd::Violation(CloseCode::Other(1002), "protocol error"),
      Err(_) => break,
    }
  }
  match peer_close {
    Some(ended) => ReadEnd::PeerClosed(ended),
    None => ReadEnd::Gone,
  }
}

async fn on_text<H: Host>(text: &Utf8Bytes, link: &SessionLink<'_, H>) {
  match parse_client_frame(text.as_str()) {
    Ok(ClientFrame::Ping { ack }) => {
      if let Some(seq) = ack {
        link.outbox.acknowledge(seq);
      }
      link.outbox.push(pong_frame());
    }
    Ok(frame) => {
      link.host.wait_for_space().await;
      link.host.receive(link.id, frame);
    }
    Err(error) => {
      link.outbox.push(system_error_frame(error));
    }
  }
}

async fn write_loop<S, H>(
  sink: &mut SplitSink<WebSocketStream<S>, Message>,
  link: &SessionLink<'_, H>,
) -> WriteEnd
where
  S: AsyncRead + AsyncWrite + Unpin,
  H: Host,
{
  let mut frames: VecDeque<Queued> = VecDeque::new();
  loop {
    let Ok(close) = link.outbox.take(link.generation, &mut frames).await else {
      return WriteEnd::Superseded;
    };
    if !frames.is_empty() {
      let write = async {
        while let Some(queued) = frames.pop_front() {
          sink.feed(Message::Text(queued.frame)).await?;
        }
        sink.flush().await
      };
      tokio::select! {
        written = write => {
          if written.is_err() {
            return WriteEnd::Failed;
          }
        }
        _ = link.outbox.interrupted(link.generation) => {}
      }
      frames.clear();
    }
    if let Some(request) = close {
      let frame = CloseFrame {
        code: request.code.into(),
        reason: request.reason.clone().into(),
      };
      let grace = if request.urgent {
        link.close_timeout.min(URGENT_CLOSE_GRACE)
      } else {
        link.close_timeout
      };
      let _ = timeout(grace, sink.send(Message::Close(Some(frame)))).await;
      return WriteEnd::Closed(request);
    }
  }
}
