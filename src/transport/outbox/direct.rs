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

use super::{Outbox, Queued, WireFrame};
use crate::config::MAX_WRITE_SLICES;
use crate::transport::frames::encode::Header;

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
/// [`MAX_WRITE_SLICES`] slices), the front frame's first `skip` bytes left out; returns the
/// bytes the kernel took.
#[cfg(unix)]
pub(super) fn write_queued(fd: SocketFd, frames: &VecDeque<Queued>, skip: usize) -> io::Result<usize> {
  use std::os::fd::FromRawFd;
  const FRAMES: usize = MAX_WRITE_SLICES / 2;
  let mut headers = [Header::server(0, 0); FRAMES];
  for (header, queued) in headers.iter_mut().zip(frames.iter()) {
    let (opcode, payload) = queued.frame.wire();
    *header = Header::server(opcode, payload.len());
  }
  let mut slices = [IoSlice::new(&[]); MAX_WRITE_SLICES];
  let mut used = 0;
  let mut skip = skip;
  for (header, queued) in headers.iter().zip(frames.iter()) {
    let (_, payload) = queued.frame.wire();
    for part in [header.as_bytes(), payload] {
      if skip >= part.len() {
        skip -= part.len();
        continue;
      }
      let rest = part.get(skip..).unwrap_or_default();
      skip = 0;
      if let Some(slot) = slices.get_mut(used) {
        *slot = IoSlice::new(rest);
        used += 1;
      }
    }
  }
  // SAFETY: as in `write_frame`.
  let stream = ManuallyDrop::new(unsafe { std::net::TcpStream::from_raw_fd(fd) });
  (&*stream).write_vectored(slices.get(..used).unwrap_or_default())
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
