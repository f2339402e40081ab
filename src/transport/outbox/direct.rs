//! Writing a frame straight into a socket's kernel buffer from the thread that pushes it (the JS
//! thread for an emit, the fan-out loop for a room), instead of waking the session's writer on
//! another thread: for a socket that keeps up, a frame costs one system call and no hand-off.
//!
//! Only plain TCP sockets, and only while their session's writer owns them: the writer
//! registers the descriptor ([`super::Outbox::write_through`]) and the [`WriteThrough`] guard it
//! gets removes it, under the outbox's lock, before the socket can be closed, so a descriptor
//! number is never written to once it may name another file. The write never blocks (the socket
//! is non-blocking); what the kernel refuses is queued for the writer.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io::{self, IoSlice, Write};
use std::mem::ManuallyDrop;
use std::sync::Arc;

use super::{wire_len, Outbox, Queued, WireFrame};
use crate::transport::frames::encode::Header;
use crate::transport::socket_io::gather_frames;

/// A socket's descriptor as the outbox may write to it.
#[cfg(unix)]
pub type SocketFd = std::os::fd::RawFd;
#[cfg(not(unix))]
pub type SocketFd = i32;

/// One non-blocking gathered write of `frame` (header, payload) to `fd`, skipping nothing;
/// returns the bytes the kernel took.
#[cfg(unix)]
pub(super) fn write_frame(fd: SocketFd, frame: &WireFrame) -> io::Result<usize> {
  use std::os::fd::FromRawFd;
  let (opcode, payload) = frame.wire();
  let header = Header::server(opcode, payload.len());
  // SAFETY: `fd` is registered only while the session's writer owns the open socket, and is
  // removed under the outbox's lock (held by the caller) before the socket can be dropped; the
  // stream is never dropped here (ManuallyDrop), so the descriptor stays its owner's.
  let stream = ManuallyDrop::new(unsafe { std::net::TcpStream::from_raw_fd(fd) });
  let slices = [IoSlice::new(header.as_bytes()), IoSlice::new(payload)];
  (&*stream).write_vectored(&slices)
}

#[cfg(not(unix))]
pub(super) fn write_frame(_fd: SocketFd, _frame: &WireFrame) -> io::Result<usize> {
  Err(io::ErrorKind::Unsupported.into())
}

/// One non-blocking gathered write of the queued `frames` to `fd` (at most
/// `MAX_WRITE_SLICES` slices), the front frame's first `skip` bytes left out; returns the
/// bytes the kernel took.
#[cfg(unix)]
pub(super) fn write_queued(fd: SocketFd, frames: &VecDeque<Queued>, skip: usize) -> io::Result<usize> {
  use std::os::fd::FromRawFd;
  // SAFETY: as in `write_frame`.
  let stream = ManuallyDrop::new(unsafe { std::net::TcpStream::from_raw_fd(fd) });
  gather_frames(frames, skip, |slices| (&*stream).write_vectored(slices))
}

#[cfg(not(unix))]
pub(super) fn write_queued(_fd: SocketFd, _frames: &VecDeque<Queued>, _skip: usize) -> io::Result<usize> {
  Err(io::ErrorKind::Unsupported.into())
}

thread_local! {
  /// The outboxes this thread queued frames in while corked, to write out when it uncorks.
  static CORKED: RefCell<Option<Vec<Arc<Outbox>>>> = const { RefCell::new(None) };
}

/// Runs `f` with this thread's pushes corked: a frame for a socket that could take it at once
/// is queued instead, and when the outermost `corked` returns, every such socket gets all its
/// frames in one gathered write from this thread (what the kernel refuses goes to its writer).
/// A tick's emits to one session, or a flush's releases, then cost one system call per
/// session rather than one per frame.
pub fn corked<T>(f: impl FnOnce() -> T) -> T {
  let outermost = CORKED.with(|cell| {
    let mut list = cell.borrow_mut();
    if list.is_some() {
      return false;
    }
    *list = Some(Vec::new());
    true
  });
  let _uncork = outermost.then_some(Uncork);
  f()
}

/// Writes out what the thread corked (also when `f` panicked).
struct Uncork;

impl Drop for Uncork {
  fn drop(&mut self) {
    let list = CORKED.with(|cell| cell.borrow_mut().take()).unwrap_or_default();
    for outbox in list {
      outbox.flush_corked();
    }
  }
}

/// Adds `outbox` to this thread's corked list; false when the thread is not corked.
pub(super) fn cork(outbox: &Arc<Outbox>) -> bool {
  CORKED.with(|cell| match cell.try_borrow_mut() {
    Ok(mut list) => match list.as_mut() {
      Some(list) => {
        list.push(outbox.clone());
        true
      }
      None => false,
    },
    Err(_) => false,
  })
}

/// Keeps a socket registered for write-through; dropping it unregisters the socket.
pub struct WriteThrough<'a> {
  pub(super) outbox: &'a super::Outbox,
  pub(super) generation: u64,
}

impl Drop for WriteThrough<'_> {
  fn drop(&mut self) {
    self.outbox.stop_write_through(self.generation);
  }
}

impl Outbox {
  /// Lets pushes write straight to `fd` (a plain TCP socket that writer `generation` owns)
  /// until the returned guard is dropped, which must happen before the socket is closed.
  pub fn write_through(&self, generation: u64, fd: SocketFd) -> Option<WriteThrough<'_>> {
    let mut state = self.state.lock();
    if state.generation != generation {
      return None;
    }
    state.direct = Some((fd, generation));
    Some(WriteThrough {
      outbox: self,
      generation,
    })
  }

  /// Stops writes straight to the socket of writer `generation` and hands over the frame they
  /// left partly written, if any, with the bytes of it already written: the writer must finish
  /// it before writing anything else of its own (the answer to a peer's Close).
  pub fn end_write_through(&self, generation: u64) -> Option<(Queued, usize)> {
    let mut state = self.state.lock();
    if state.generation != generation {
      return None;
    }
    state.direct = None;
    if state.front_written == 0 {
      return None;
    }
    let written = std::mem::take(&mut state.front_written);
    state.frames.pop_front().map(|front| (front, written))
  }

  /// Stops writes straight to the socket of writer `generation`: from now on only its writer
  /// writes to it.
  pub fn stop_write_through(&self, generation: u64) {
    let mut state = self.state.lock();
    if state
      .direct
      .is_some_and(|(_, registered)| registered == generation)
    {
      state.direct = None;
    }
  }

  /// A corked thread uncorks: the queue goes straight to the socket, in gathered writes, as
  /// far as the kernel takes it; the writer gets the rest.
  fn flush_corked(&self) {
    let mut state = self.state.lock();
    if !std::mem::take(&mut state.cork_pending) {
      return;
    }
    if let (Some((fd, _)), false) = (state.direct, state.writing) {
      while !state.frames.is_empty() {
        let skip = state.front_written;
        let Ok(written) = write_queued(fd, &state.frames, skip) else {
          break;
        };
        if written == 0 {
          break;
        }
        state.accepted += written as u64;
        state.unsent = state.unsent.saturating_sub(written);
        state.stalled = false;
        // Frames whose first byte left now are counted now (a front frame begun earlier was).
        let mut left = written + skip;
        let mut started = 0;
        let mut done = 0;
        for queued in state.frames.iter() {
          if left == 0 {
            break;
          }
          let size = wire_len(queued.frame.len());
          started += 1;
          if left >= size {
            done += 1;
            left -= size;
          } else {
            break;
          }
        }
        let state = &mut *state;
        let fresh = state.frames.iter().take(started).skip(usize::from(skip > 0));
        let fresh = fresh.map(|queued| (queued.seq, &queued.frame));
        self.count_sent(state.replay.as_mut(), fresh, true);
        state.frames.drain(..done);
        state.front_written = if started > done { left } else { 0 };
        if started > done {
          break;
        }
      }
    }
    if !state.frames.is_empty() {
      drop(state);
      self.ready.notify_one();
    }
  }
}
