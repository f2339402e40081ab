//! A session's socket I/O without buffers of its own: reads go into the reading thread's
//! buffer, writes go out from the frames' shared bytes.
//!
//! Reads: each runtime worker thread has one [`READ_CHUNK_BYTES`] buffer; a socket that is
//! readable is read into it and the chunk decoded at once, synchronously, so the buffer is
//! free again before the task yields. An idle socket therefore keeps no read buffer at all
//! (the decoder keeps only a frame or message cut by a chunk's end).
//!
//! Writes: the queued frames go to the socket as gathered slices, up to [`MAX_WRITE_SLICES`]
//! per system call. Short parts (headers, and payloads up to [`COALESCE_PART_BYTES`]) are copied
//! side by side into the writing thread's buffer, so a run of short frames is one slice; a
//! longer payload goes out from its bytes, shared with every other recipient. A partial write
//! leaves the front frame's position, and the next write resumes there; every byte the kernel
//! accepts is reported to the outbox, which counts backpressure as what the socket has not
//! taken.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::future::poll_fn;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll};

use parking_lot::Mutex;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::frames::encode::Header;
use super::outbox::{wire_len, Outbox, Queued};
pub use crate::config::{COALESCE_BUFFER_BYTES, COALESCE_PART_BYTES, MAX_WRITE_SLICES, READ_CHUNK_BYTES};

thread_local! {
  /// The buffer every socket read on this thread goes into (allocated on the thread's first
  /// read).
  static READ_BUFFER: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
  /// The buffer short frame parts are copied into for one write on this thread.
  static COALESCE_BUFFER: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Polls one read of `socket` (shared by the session's reader and writer in one task: each
/// locks it only inside a synchronous poll, so the lock is never contended) into the thread's buffer and hands the bytes read (never empty)
/// to `consume`, synchronously. `Ok(None)` when the socket ended.
pub fn poll_read_chunk<S, T>(
  socket: &Mutex<S>,
  cx: &mut Context<'_>,
  consume: impl FnOnce(&mut [u8]) -> T,
) -> Poll<io::Result<Option<T>>>
where
  S: AsyncRead + Unpin,
{
  READ_BUFFER.with(|cell| {
    // Never borrowed across a wait: a nested use would be a bug, and gets a buffer of its own.
    let mut own;
    let mut shared = cell.try_borrow_mut().ok();
    let buffer: &mut Vec<u8> = match shared.as_deref_mut() {
      Some(buffer) => buffer,
      None => {
        own = Vec::new();
        &mut own
      }
    };
    if buffer.len() < READ_CHUNK_BYTES {
      buffer.resize(READ_CHUNK_BYTES, 0);
    }
    let read = {
      let Ok(mut socket) = socket.try_lock().ok_or(()) else {
        return Poll::Ready(Err(io::Error::other("socket in use")));
      };
      let mut into = ReadBuf::new(buffer.as_mut_slice());
      match Pin::new(&mut *socket).poll_read(cx, &mut into) {
        Poll::Pending => return Poll::Pending,
        Poll::Ready(Err(error)) => return Poll::Ready(Err(error)),
        Poll::Ready(Ok(())) => into.filled().len(),
      }
    };
    if read == 0 {
      return Poll::Ready(Ok(None));
    }
    let chunk = buffer.get_mut(..read).unwrap_or_default();
    Poll::Ready(Ok(Some(consume(chunk))))
  })
}

/// Where the writer is in its queue: the front frame's bytes already written.
#[derive(Default)]
pub struct WritePosition {
  pub front_written: usize,
}

/// Writes `frames` to `socket` (gathered, [`MAX_WRITE_SLICES`] slices at a time) and flushes,
/// popping each frame once the kernel took all of it and reporting accepted bytes to `outbox`.
/// On a failure or when dropped mid-way, `frames` holds what is unsent and `position` where
/// the front frame stopped.
pub async fn write_frames<S: AsyncWrite + Unpin>(
  socket: &Mutex<S>,
  frames: &mut VecDeque<Queued>,
  position: &mut WritePosition,
  outbox: &Outbox,
  generation: u64,
) -> io::Result<()> {
  poll_fn(|cx| poll_write_frames(socket, cx, frames, position, outbox, generation)).await
}

/// [`write_frames`] as a poll: as much as the socket takes now.
pub fn poll_write_frames<S: AsyncWrite + Unpin>(
  socket: &Mutex<S>,
  cx: &mut Context<'_>,
  frames: &mut VecDeque<Queued>,
  position: &mut WritePosition,
  outbox: &Outbox,
  generation: u64,
) -> Poll<io::Result<()>> {
  let Some(mut socket) = socket.try_lock() else {
    return Poll::Ready(Err(io::Error::other("socket in use")));
  };
  let mut socket = Pin::new(&mut *socket);
  while !frames.is_empty() {
    let written = match poll_write_some(socket.as_mut(), cx, frames, position.front_written) {
      Poll::Pending => return Poll::Pending,
      Poll::Ready(Err(error)) => return Poll::Ready(Err(error)),
      Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
      Poll::Ready(Ok(written)) => written,
    };
    outbox.accepted(generation, written);
    advance(frames, position, written);
  }
  socket.as_mut().poll_flush(cx)
}

/// One vectored write of the frames at the front of the queue.
fn poll_write_some<S: AsyncWrite>(
  socket: Pin<&mut S>,
  cx: &mut Context<'_>,
  frames: &VecDeque<Queued>,
  front_written: usize,
) -> Poll<io::Result<usize>> {
  gather_frames(frames, front_written, |slices| match slices {
    // One slice (a run of short frames, coalesced) goes out with `send`, which skips the file
    // position lock and the iovec import a vectored write pays for.
    [only] => socket.poll_write(cx, only),
    _ => socket.poll_write_vectored(cx, slices),
  })
}

/// Hands `write` the wire bytes of the frames at the front of the queue as slices (at most
/// [`MAX_WRITE_SLICES`]), the front frame's first `skip` bytes left out (already written). Short
/// parts are copied into the thread's coalescing buffer, consecutive ones into one slice.
pub(crate) fn gather_frames<R>(
  frames: &VecDeque<Queued>,
  skip: usize,
  write: impl FnOnce(&[IoSlice<'_>]) -> R,
) -> R {
  COALESCE_BUFFER.with(|cell| {
    // Never borrowed across a call to `write` that could gather again; a nested use would be a
    // bug, and gets a buffer of its own.
    let mut own = Vec::new();
    let mut shared = cell.try_borrow_mut().ok();
    let copied: &mut Vec<u8> = shared.as_deref_mut().unwrap_or(&mut own);
    copied.clear();
    copied.reserve(COALESCE_BUFFER_BYTES);
    let mut pieces = [Piece::Copied(0, 0); MAX_WRITE_SLICES];
    let used = plan_pieces(frames, skip, copied, &mut pieces);
    let mut slices = [IoSlice::new(&[]); MAX_WRITE_SLICES];
    for (slot, piece) in slices.iter_mut().zip(pieces.iter().take(used)) {
      *slot = IoSlice::new(match *piece {
        Piece::Copied(start, end) => copied.get(start..end).unwrap_or_default(),
        Piece::Shared(bytes) => bytes,
      });
    }
    write(slices.get(..used).unwrap_or_default())
  })
}

/// One slice of a gathered write: a range of the coalescing buffer, or a payload's own bytes.
#[derive(Clone, Copy)]
enum Piece<'f> {
  Copied(usize, usize),
  Shared(&'f [u8]),
}

/// Lays the frames' wire bytes out as pieces (copying headers and short payloads into
/// `copied`, which never grows past [`COALESCE_BUFFER_BYTES`]); returns how many pieces were
/// used. Stops at the first part that cannot be placed, so the pieces are always a prefix of
/// the wire bytes.
fn plan_pieces<'f>(
  frames: &'f VecDeque<Queued>,
  mut skip: usize,
  copied: &mut Vec<u8>,
  pieces: &mut [Piece<'f>; MAX_WRITE_SLICES],
) -> usize {
  let mut used = 0;
  for queued in frames {
    let (opcode, payload) = queued.frame.wire();
    let header = Header::server(opcode, payload.len());
    for (is_header, part) in [(true, header.as_bytes()), (false, payload)] {
      if skip >= part.len() {
        skip -= part.len();
        continue;
      }
      let rest = part.get(skip..).unwrap_or_default();
      skip = 0;
      let fits = copied.len() + rest.len() <= COALESCE_BUFFER_BYTES;
      let placed = if fits && (is_header || rest.len() <= COALESCE_PART_BYTES) {
        copy_piece(rest, copied, pieces, &mut used)
      } else if is_header {
        // A header lives on this stack frame: it can only go out copied.
        false
      } else {
        share_piece(
          payload.get(payload.len() - rest.len()..).unwrap_or_default(),
          pieces,
          &mut used,
        )
      };
      if !placed {
        return used;
      }
    }
  }
  used
}

/// Appends `part` to `copied`, extending the last piece when it ends where `part` starts.
fn copy_piece(part: &[u8], copied: &mut Vec<u8>, pieces: &mut [Piece<'_>], used: &mut usize) -> bool {
  let start = copied.len();
  let end = start + part.len();
  if let Some(Piece::Copied(_, last_end)) = used.checked_sub(1).and_then(|last| pieces.get_mut(last)) {
    if *last_end == start {
      *last_end = end;
      copied.extend_from_slice(part);
      return true;
    }
  }
  let Some(slot) = pieces.get_mut(*used) else {
    return false;
  };
  *slot = Piece::Copied(start, end);
  copied.extend_from_slice(part);
  *used += 1;
  true
}

/// Gives `part` (a payload's own bytes) a piece of its own.
fn share_piece<'f>(part: &'f [u8], pieces: &mut [Piece<'f>], used: &mut usize) -> bool {
  let Some(slot) = pieces.get_mut(*used) else {
    return false;
  };
  *slot = Piece::Shared(part);
  *used += 1;
  true
}

/// Pops the frames `written` bytes completed; the rest is the front frame's progress.
fn advance(frames: &mut VecDeque<Queued>, position: &mut WritePosition, mut written: usize) {
  while let Some(front) = frames.front() {
    let left = wire_len(front.frame.len()) - position.front_written;
    if written < left {
      position.front_written += written;
      return;
    }
    written -= left;
    position.front_written = 0;
    frames.pop_front();
  }
}

/// Writes `bytes` whole and flushes (a close frame), reporting them to `outbox`.
pub async fn write_all<S: AsyncWrite + Unpin>(
  socket: &Mutex<S>,
  mut bytes: &[u8],
  outbox: &Outbox,
  generation: u64,
) -> io::Result<()> {
  poll_fn(|cx| {
    let Ok(mut socket) = socket.try_lock().ok_or(()) else {
      return Poll::Ready(Err(io::Error::other("socket in use")));
    };
    let mut socket = Pin::new(&mut *socket);
    while !bytes.is_empty() {
      match socket.as_mut().poll_write(cx, bytes) {
        Poll::Pending => return Poll::Pending,
        Poll::Ready(Err(error)) => return Poll::Ready(Err(error)),
        Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
        Poll::Ready(Ok(written)) => {
          outbox.accepted(generation, written);
          bytes = bytes.get(written..).unwrap_or_default();
        }
      }
    }
    socket.as_mut().poll_flush(cx)
  })
  .await
}

#[cfg(test)]
mod tests;
