//! One open WebSocket: a reader that decodes frames once and answers pings, and a writer that
//! drains the session's outbox, both in one task sharing the socket (each uses it only inside
//! a synchronous poll, so the two never hold it at once).
//!
//! A raw endpoint's session skips the protocol: its reader hands every text or binary message
//! to the host as it arrived, and its writer sends raw frames as they are.
//!
//! The reader waits for room in the queue to JS (which pushes back on the client through TCP)
//! before each read, then hands the host every message the chunk completed (see
//! [`super::socket_io`] and [`crate::config::READ_CHUNK_BYTES`]). The writer takes every
//! queued frame at once and writes them gathered, so a burst becomes one system call.
//!
//! Every byte the kernel accepts is reported to the outbox, which counts backpressure as what
//! the socket has not accepted. While a write is blocked, a watchdog checks every
//! [`SLOW_CONSUMER_STALL`] whether the socket took anything.
//!
//! Ending: whoever closes first decides the code JS sees. A peer's Close is answered (once the
//! writer finishes the write in progress: a frame is never cut) and the socket is let go; a
//! close requested here is sent after the frames queued before it, then the reader waits
//! (bounded) for the peer's reply.
//!
//! A socket that drops (no close handshake, or a close from the client other than 1000/1001)
//! ends as a blip the client may resume; a socket whose session was resumed on another one
//! ends as superseded, and nothing about it reaches JS.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::Notify;
use tokio::time::timeout;

use super::encoding::{inbound_json, Encoding};
use super::frames::decode::{Decoder, Inbound, Violation};
use super::frames::encode::close_frame;
use super::outbox::{CloseRequest, Outbox, Queued, SocketFd, WireFrame, SLOW_CONSUMER_STALL};
use super::socket_io::{poll_read_chunk, poll_write_frames, write_all, write_frames, WritePosition};
use super::Host;
use crate::error::{FrameError, SessionEnd};
use crate::ids::SessionId;
use crate::protocol::{parse_client_frame, pong_frame, system_error_frame, ClientFrame, RawData};

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
  /// A raw endpoint's session: messages go to JS as they are (text or binary), not parsed.
  pub raw: bool,
  /// `maxPayload`: the largest inbound message.
  pub max_payload: usize,
  /// `maxFragments`: the most frames one inbound message may take.
  pub max_fragments: usize,
  /// The descriptor of a plain TCP socket, which frames are written straight to while nothing
  /// is queued (see [`Outbox::write_through`]); `None` for TLS.
  pub direct_fd: Option<SocketFd>,
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
  /// The peer sent Close; the frame that answers it.
  PeerClosed(SessionEnd, Vec<u8>),
  /// The peer broke a rule; close with this code.
  Violation(Violation),
  /// The connection dropped without a close handshake.
  Gone,
}

enum WriteEnd {
  /// A close requested here was sent (or given up on after the close timeout).
  Closed(CloseRequest),
  /// The answer to the peer's Close was sent.
  Answered,
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

/// The reader asking the writer to answer the peer's Close.
#[derive(Default)]
struct Answer {
  frame: Mutex<Option<Vec<u8>>>,
  wake: Notify,
}

/// Runs the session until its socket is gone, `leftover` (bytes read with the request head)
/// being decoded first; hands the socket back with how to let it go.
pub async fn run<S, H>(socket: S, leftover: Vec<u8>, link: &SessionLink<'_, H>) -> (Outcome, S, Release)
where
  S: AsyncRead + AsyncWrite + Unpin,
  H: Host,
{
  let socket = Mutex::new(socket);
  let (outcome, release) = serve(&socket, leftover, link).await;
  (outcome, socket.into_inner(), release)
}

async fn serve<S, H>(socket: &Mutex<S>, leftover: Vec<u8>, link: &SessionLink<'_, H>) -> (Outcome, Release)
where
  S: AsyncRead + AsyncWrite + Unpin,
  H: Host,
{
  let answer = Answer::default();
  // Unregistered when this returns, before the socket can be closed.
  let _write_through = link
    .direct_fd
    .and_then(|fd| link.outbox.write_through(link.generation, fd));
  let reader = read_loop(socket, leftover, link);
  let writer = write_loop(socket, link, &answer);
  tokio::pin!(reader, writer);
  let linger = Release::Linger(link.close_timeout);
  let (ended, release) = tokio::select! {
    end = &mut reader => match end {
      ReadEnd::PeerClosed(ended, reply) => {
        *answer.frame.lock() = Some(reply);
        answer.wake.notify_one();
        let _ = Box::pin(timeout(link.close_timeout, &mut writer)).await;
        (ended, linger)
      }
      ReadEnd::Violation(violation) => {
        link.outbox.request_close(violation.code, violation.reason);
        let _ = Box::pin(timeout(link.close_timeout, &mut writer)).await;
        (SessionEnd { code: violation.code, reason: violation.reason.into(), blip: false }, linger)
      }
      ReadEnd::Gone => (SessionEnd::dropped(), Release::Drop),
    },
    end = &mut writer => match end {
      WriteEnd::Closed(request) => {
        // A slow consumer is not reading: waiting for its close reply would only delay the end.
        let release = if request.urgent {
          Release::Linger(link.close_timeout.min(URGENT_CLOSE_GRACE))
        } else if Box::pin(timeout(link.close_timeout, &mut reader)).await.is_ok() {
          linger
        } else {
          // No reply within the close timeout: the peer is not reading, and lingering for its
          // input would only hold the socket as long again.
          Release::Drop
        };
        (SessionEnd { code: request.code, reason: request.reason, blip: false }, release)
      }
      // Only after the reader ended, which the branch above handles.
      WriteEnd::Answered | WriteEnd::Failed => (SessionEnd::dropped(), Release::Drop),
      WriteEnd::Superseded => return (Outcome::Superseded, Release::Drop),
    },
  };
  // The socket may have died because another one took over (its reader saw the drop first).
  if link.outbox.generation() != link.generation {
    return (Outcome::Superseded, Release::Drop);
  }
  (Outcome::Ended(ended), release)
}

async fn read_loop<S, H>(socket: &Mutex<S>, mut leftover: Vec<u8>, link: &SessionLink<'_, H>) -> ReadEnd
where
  S: AsyncRead + Unpin,
  H: Host,
{
  let mut decoder = Decoder::new(link.max_payload, link.max_fragments);
  if !leftover.is_empty() {
    if let Some(end) = decode(&mut decoder, &mut leftover, link) {
      return end;
    }
  }
  drop(leftover);
  loop {
    link.host.wait_for_space(link.id).await;
    let read = poll_fn(|cx| poll_read_chunk(socket, cx, |chunk| decode(&mut decoder, chunk, link))).await;
    match read {
      Ok(Some(None)) => {}
      Ok(Some(Some(end))) => return end,
      // The peer went away without a close frame: a dropped connection, not a violation.
      Ok(None) | Err(_) => return ReadEnd::Gone,
    }
  }
}

/// Decodes one chunk, handing what it completes to the host; how the socket ends, if it does.
fn decode<H: Host>(decoder: &mut Decoder, chunk: &mut [u8], link: &SessionLink<'_, H>) -> Option<ReadEnd> {
  let mut closed = None;
  let mut deliver = |inbound: Inbound<'_>| match inbound {
    Inbound::Text(text) if link.raw => link.host.receive_raw(link.id, RawData::Text(text)),
    Inbound::Binary(data) if link.raw => link.host.receive_raw(link.id, RawData::Binary(data)),
    Inbound::Text(text) => on_text(text, link),
    Inbound::Binary(data) if link.encoding.is_msgpack() => match inbound_json(data) {
      Ok(text) => on_text(&text, link),
      Err(error) => {
        link.outbox.push(system_error_frame(error));
      }
    },
    Inbound::Binary(_) => {
      link.outbox.push(system_error_frame(FrameError::Binary));
    }
    Inbound::Ping(payload) => {
      link.outbox.push(WireFrame::Pong(Bytes::copy_from_slice(payload)));
    }
    Inbound::Close(frame) => {
      closed = Some(match frame {
        Some(frame) => (
          SessionEnd {
            code: frame.code,
            reason: frame.reason.to_string(),
            // 1000 and 1001 mean the client is leaving; any other code (a heartbeat timeout,
            // say) means it will be back.
            blip: !matches!(frame.code, 1000 | 1001),
          },
          close_frame(frame.code, ""),
        ),
        None => (
          SessionEnd {
            code: 1005,
            reason: String::new(),
            blip: false,
          },
          super::frames::encode::frame(true, super::frames::OP_CLOSE, &[], None),
        ),
      });
    }
  };
  let decoded = decoder.feed(chunk, &mut deliver);
  if let Some((ended, reply)) = closed {
    return Some(ReadEnd::PeerClosed(ended, reply));
  }
  decoded.err().map(ReadEnd::Violation)
}

fn on_text<H: Host>(text: &str, link: &SessionLink<'_, H>) {
  match parse_client_frame(text) {
    Ok(ClientFrame::Ping { ack }) => {
      if let Some(seq) = ack {
        link.outbox.acknowledge(seq);
        // The host hears it too: a forwarded session's frames are kept where its actor lives.
        link.host.receive(link.id, ClientFrame::Ping { ack });
      }
      link.outbox.push(pong_frame());
    }
    Ok(frame) => link.host.receive(link.id, frame),
    Err(error) => {
      link.outbox.push(system_error_frame(error));
    }
  }
}

/// Writes `frames` while a watchdog checks, every [`SLOW_CONSUMER_STALL`], whether the socket
/// took any byte (a blocked write that took none tells the outbox, which judges whether the
/// session is a slow consumer); true when the socket failed. Returns early, the frames left as
/// they are, when the outbox interrupts the writer (urgent close, takeover).
async fn write_watched<S, H>(
  socket: &Mutex<S>,
  frames: &mut VecDeque<Queued>,
  position: &mut WritePosition,
  link: &SessionLink<'_, H>,
) -> bool
where
  S: AsyncWrite + Unpin,
  H: Host,
{
  let write = write_frames(socket, frames, position, &link.outbox, link.generation);
  tokio::pin!(write);
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
}

async fn write_loop<S, H>(socket: &Mutex<S>, link: &SessionLink<'_, H>, answer: &Answer) -> WriteEnd
where
  S: AsyncWrite + Unpin,
  H: Host,
{
  let mut frames: VecDeque<Queued> = VecDeque::new();
  let mut position = WritePosition::default();
  // A frame whose write was abandoned part-way (urgent close): finished before the close.
  let mut unfinished: Option<(Queued, WritePosition)> = None;
  loop {
    let taken = tokio::select! {
      biased;
      _ = answer.wake.notified() => None,
      taken = link.outbox.take_from(link.generation, &mut frames, &mut position.front_written) => Some(taken),
    };
    let close = match taken {
      None => {
        let Some(reply) = answer.frame.lock().take() else {
          continue;
        };
        let answered = async {
          if let Some((front, written)) = link.outbox.end_write_through(link.generation) {
            let mut rest = VecDeque::from([front]);
            let mut position = WritePosition {
              front_written: written,
            };
            write_frames(socket, &mut rest, &mut position, &link.outbox, link.generation).await?;
          }
          write_all(socket, &reply, &link.outbox, link.generation).await
        };
        let _ = Box::pin(answered).await;
        return WriteEnd::Answered;
      }
      Some(Err(_)) => return WriteEnd::Superseded,
      Some(Ok(close)) => close,
    };
    // A front frame already begun on the wire keeps its form and was counted then.
    let begun = usize::from(position.front_written > 0);
    if link.encoding.is_msgpack() {
      for queued in frames.iter_mut().skip(begun) {
        let frame = std::mem::replace(&mut queued.frame, WireFrame::Pong(Bytes::new()));
        queued.frame = link.encoding.transcode(frame, &link.outbox, link.generation);
      }
    }
    let payload = frames.iter().skip(begun).map(|queued| queued.frame.len() as u64);
    link.outbox.sent_bytes(payload.sum());
    if !frames.is_empty() {
      // Most writes complete at once; only a blocked one needs the watchdog, whose state is
      // boxed so that it is not part of every idle session's task.
      let now = poll_fn(|cx| {
        Poll::Ready(poll_write_frames(
          socket,
          cx,
          &mut frames,
          &mut position,
          &link.outbox,
          link.generation,
        ))
      })
      .await;
      let failed = match now {
        Poll::Ready(written) => written.is_err(),
        Poll::Pending => Box::pin(write_watched(socket, &mut frames, &mut position, link)).await,
      };
      if failed {
        return WriteEnd::Failed;
      }
      if position.front_written > 0 {
        unfinished = frames
          .pop_front()
          .map(|front| (front, std::mem::take(&mut position)));
      }
      frames.clear();
    }
    if let Some(request) = close {
      let grace = if request.urgent {
        link.close_timeout.min(URGENT_CLOSE_GRACE)
      } else {
        link.close_timeout
      };
      let send = async {
        if let Some((front, mut position)) = unfinished.take() {
          let mut rest = VecDeque::from([front]);
          write_frames(socket, &mut rest, &mut position, &link.outbox, link.generation).await?;
        }
        write_all(
          socket,
          &close_frame(request.code, &request.reason),
          &link.outbox,
          link.generation,
        )
        .await
      };
      // A socket that takes no byte of the close for a whole stall has a peer that reads
      // nothing: its reply would never come either, so the close ends as a slow consumer's.
      let watched = async {
        tokio::pin!(send);
        let mut seen = link.outbox.accepted_total();
        loop {
          tokio::select! {
            biased;
            _ = &mut send => return true,
            _ = tokio::time::sleep(SLOW_CONSUMER_STALL) => {
              let accepted = link.outbox.accepted_total();
              if accepted == seen {
                return false;
              }
              seen = accepted;
            }
          }
        }
      };
      let sent = matches!(Box::pin(timeout(grace, watched)).await, Ok(true));
      let mut request = request;
      request.urgent |= !sent;
      return WriteEnd::Closed(request);
    }
    if unfinished.is_some() {
      // Abandoned without a close: only a takeover does that, and the next take says so.
      unfinished = None;
    }
  }
}
