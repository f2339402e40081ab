//! One open WebSocket: a reader that parses frames once and answers pings, and a writer that
//! drains the session's outbox, both in one task.
//!
//! A raw endpoint's session skips the protocol: its reader hands every text or binary message
//! to the host as it arrived, and its writer sends raw frames as they are.
//!
//! The reader hands events and calls to its host (waiting while the queue to JS is full, which
//! pushes back on the client through TCP). The writer takes every queued frame at once and
//! feeds them to tungstenite before one flush, so a burst becomes one write.
//!
//! The socket under the WebSocket is [`Metered`]: every byte the kernel accepts is reported to
//! the outbox, which counts backpressure as what the socket has not accepted. While a write is
//! blocked, a watchdog checks every [`SLOW_CONSUMER_STALL`] whether the socket took anything.
//!
//! Ending: whoever closes first decides the code JS sees. A peer's Close is answered by
//! tungstenite while the reader keeps polling until the socket ends; a close requested here is
//! sent after the frames queued before it, then the reader waits (bounded) for the peer's reply.
//!
//! A socket that drops (no close handshake, or a close from the client other than 1000/1001)
//! ends as a blip the client may resume; a socket whose session was resumed on another one
//! ends as superseded, and nothing about it reaches JS.

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::error::{Error as WsError, ProtocolError};
use tokio_tungstenite::tungstenite::protocol::frame::CloseFrame;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use super::encoding::{inbound_json, Encoding};
use super::fragments::{FragmentCounter, TooManyFragments};
use super::outbox::{CloseRequest, Outbox, Queued, SLOW_CONSUMER_STALL};
use super::Host;
use crate::error::{CloseCode, FrameError, SessionEnd};
use crate::ids::SessionId;
use crate::protocol::{parse_client_frame, pong_frame, system_error_frame, ClientFrame, RawData};

/// Time a slow consumer's socket gets to take its close frame (it has stopped reading, so the
/// full close timeout would mostly be spent waiting on a socket that will not drain).
const URGENT_CLOSE_GRACE: Duration = Duration::from_secs(1);

/// A session's socket that reports every byte the kernel accepts to the session's outbox, and
/// counts the fragments of every message it reads (see [`FragmentCounter`]).
pub struct Metered<S> {
  inner: S,
  outbox: Arc<Outbox>,
  generation: u64,
  /// Bytes read with the request head, served before the socket's.
  leftover: Vec<u8>,
  fragments: FragmentCounter,
}

impl<S> Metered<S> {
  pub fn new(inner: S, outbox: Arc<Outbox>, generation: u64) -> Self {
    Self {
      inner,
      outbox,
      generation,
      leftover: Vec::new(),
      fragments: FragmentCounter::new(usize::MAX),
    }
  }

  /// Reads `leftover` (the bytes that came with the request head) first, and fails the read
  /// that completes a message of more than `max_fragments` frames.
  pub fn counting_fragments(mut self, leftover: Vec<u8>, max_fragments: usize) -> Self {
    self.leftover = leftover;
    self.fragments = FragmentCounter::new(max_fragments);
    self
  }

  pub fn get_mut(&mut self) -> &mut S {
    &mut self.inner
  }
}

impl<S: AsyncRead + Unpin> AsyncRead for Metered<S> {
  fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
    let this = self.get_mut();
    let before = buf.filled().len();
    if !this.leftover.is_empty() {
      let n = this.leftover.len().min(buf.remaining());
      buf.put_slice(this.leftover.get(..n).unwrap_or_default());
      this.leftover.drain(..n);
    } else {
      let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
      if !matches!(polled, Poll::Ready(Ok(()))) {
        return polled;
      }
    }
    let read = buf.filled().get(before..).unwrap_or_default();
    match this.fragments.read(read) {
      Ok(()) => Poll::Ready(Ok(())),
      Err(too_many) => Poll::Ready(Err(io::Error::new(io::ErrorKind::InvalidData, too_many))),
    }
  }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Metered<S> {
  fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
    let this = self.get_mut();
    let polled = Pin::new(&mut this.inner).poll_write(cx, buf);
    if let Poll::Ready(Ok(written)) = polled {
      this.outbox.accepted(this.generation, written);
    }
    polled
  }

  fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
    Pin::new(&mut self.get_mut().inner).poll_flush(cx)
  }

  fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
    Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
  }
}

/// What a session needs besides its socket.
pub struct SessionLink<'a, H> {
  pub id: SessionId,
  pub outbox: Arc<Outbox>,
  /// This socket's generation in the outbox (see [`Outbox::resume`]).
  pub generation: u64,
  pub host: &'a H,
  pub close_timeout: Duration,
  /// A raw endpoint's session: messages go to JS as they are (text or binary), not parsed.
  pub raw: bool,
  /// How this socket spells protocol frames (JSON text, or MessagePack binary frames).
  pub encoding: Encoding,
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

/// How the socket should be let go once the session no longer uses it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Release {
  /// The connection is already gone (or broken): drop it.
  Drop,
  /// A close frame was exchanged or sent: half-close and read what the peer still sends for
  /// at most this long, so unread input does not turn the close into a reset (which can make
  /// the peer lose the close frame and report 1006).
  Linger(Duration),
}

/// Runs the session until its socket is gone; hands the socket back with how to let it go.
pub async fn run<S, H>(
  socket: WebSocketStream<S>,
  link: &SessionLink<'_, H>,
) -> (Outcome, Option<WebSocketStream<S>>, Release)
where
  S: AsyncRead + AsyncWrite + Unpin,
  H: Host,
{
  let (mut sink, mut stream) = socket.split();
  let (outcome, release) = serve(&mut sink, &mut stream, link).await;
  (outcome, sink.reunite(stream).ok(), release)
}

async fn serve<S, H>(
  sink: &mut SplitSink<WebSocketStream<S>, Message>,
  stream: &mut SplitStream<WebSocketStream<S>>,
  link: &SessionLink<'_, H>,
) -> (Outcome, Release)
where
  S: AsyncRead + AsyncWrite + Unpin,
  H: Host,
{
  let reader = read_loop(stream, link);
  let writer = write_loop(sink, link);
  tokio::pin!(reader, writer);
  let linger = Release::Linger(link.close_timeout);
  let (ended, release) = tokio::select! {
    end = &mut reader => match end {
      ReadEnd::PeerClosed(ended) => (ended, linger),
      ReadEnd::Violation(code, reason) => {
        link.outbox.request_close(code.as_u16(), reason);
        let _ = timeout(link.close_timeout, &mut writer).await;
        (SessionEnd { code: code.as_u16(), reason: reason.into(), blip: false }, linger)
      }
      ReadEnd::Gone => (SessionEnd::dropped(), Release::Drop),
    },
    end = &mut writer => match end {
      WriteEnd::Closed(request) => {
        // A slow consumer is not reading: waiting for its close reply would only delay the end.
        let release = if request.urgent {
          Release::Linger(link.close_timeout.min(URGENT_CLOSE_GRACE))
        } else {
          let _ = timeout(link.close_timeout, &mut reader).await;
          linger
        };
        (SessionEnd { code: request.code, reason: request.reason, blip: false }, release)
      }
      WriteEnd::Failed => (SessionEnd::dropped(), Release::Drop),
      WriteEnd::Superseded => return (Outcome::Superseded, Release::Drop),
    },
  };
  // The socket may have died because another one took over (its reader saw the drop first).
  if link.outbox.generation() != link.generation {
    return (Outcome::Superseded, Release::Drop);
  }
  (Outcome::Ended(ended), release)
}

async fn read_loop<S, H>(stream: &mut SplitStream<WebSocketStream<S>>, link: &SessionLink<'_, H>) -> ReadEnd
where
  S: AsyncRead + AsyncWrite + Unpin,
  H: Host,
{
  let mut peer_close: Option<SessionEnd> = None;
  while let Some(item) = stream.next().await {
    match item {
      Ok(Message::Text(text)) if link.raw => on_raw(RawData::Text(text.as_str()), link).await,
      Ok(Message::Binary(data)) if link.raw => on_raw(RawData::Binary(&data), link).await,
      Ok(Message::Text(text)) => on_text(&text, link).await,
      Ok(Message::Binary(data)) if link.encoding.is_msgpack() => match inbound_json(&data) {
        Ok(text) => on_text(&text, link).await,
        Err(error) => {
          link.outbox.push(system_error_frame(error));
        }
      },
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
      Err(WsError::Io(error))
        if error
          .get_ref()
          .is_some_and(|inner| inner.is::<TooManyFragments>()) =>
      {
        return ReadEnd::Violation(CloseCode::TooBig, "too many fragments")
      }
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

async fn on_text<H: Host>(text: &str, link: &SessionLink<'_, H>) {
  match parse_client_frame(text) {
    Ok(ClientFrame::Ping { ack }) => {
      if let Some(seq) = ack {
        link.outbox.acknowledge(seq);
        // The host hears it too: a forwarded session's frames are kept where its actor lives.
        link.host.receive(link.id, ClientFrame::Ping { ack });
      }
      link.outbox.push(pong_frame());
    }
    Ok(frame) => {
      link.host.wait_for_space(link.id).await;
      link.host.receive(link.id, frame);
    }
    Err(error) => {
      link.outbox.push(system_error_frame(error));
    }
  }
}

async fn on_raw<H: Host>(data: RawData<'_>, link: &SessionLink<'_, H>) {
  link.host.wait_for_space(link.id).await;
  link.host.receive_raw(link.id, data);
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
      let failed = {
        let write = async {
          while let Some(queued) = frames.pop_front() {
            sink
              .feed(link.encoding.message(queued.frame, &link.outbox, link.generation))
              .await?;
          }
          sink.flush().await
        };
        tokio::pin!(write);
        // The watchdog: a write still blocked after a stall with no byte accepted meanwhile
        // tells the outbox, which judges whether the session is a slow consumer. The write is
        // polled first, so one that completes at once never arms the timer.
        let mut seen = link.outbox.accepted_total();
        loop {
          tokio::select! {
            biased;
            written = &mut write => break written.is_err(),
            _ = link.outbox.interrupted(link.generation) => break false,
            _ = tokio::time::sleep(SLOW_CONSUMER_STALL) => {
              let accepted = link.outbox.accepted_total();
              if accepted == seen {
                link.outbox.stalled(link.generation);
              }
              seen = accepted;
            }
          }
        }
      };
      if failed {
        return WriteEnd::Failed;
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
