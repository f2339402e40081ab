//! Writing a frame straight into a socket's kernel buffer from the thread that pushes it (the JS
//! thread for an emit, the fan-out loop for a room), instead of waking the session's writer on
//! another thread: for a socket that keeps up, a frame costs one system call and no hand-off.
//!
//! Only plain TCP sockets, and only while their session's writer owns them: the writer
//! registers the descriptor ([`super::Outbox::write_through`]) and the [`WriteThrough`] guard it
//! gets removes it, under the outbox's lock, before the socket can be closed, so a descriptor
//! number is never written to once it may name another file. The write never blocks (the socket
//! is non-blocking); what the kernel refuses is queued for the writer.

use std::io::{self, IoSlice, Write};
use std::mem::ManuallyDrop;

use super::WireFrame;
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
