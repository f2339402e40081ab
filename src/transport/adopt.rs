//! Sockets accepted by another HTTP server (the application's Node `http.Server`, under Express,
//! Fastify or Next.js) and handed over at their upgrade request. The other server parsed the
//! request head; it gives the core the socket's file descriptor, the head rebuilt as bytes and
//! whatever it read past the head, then closes its own descriptor. From then on the connection
//! is served exactly like one of warren's own listener: the same head parsing, route, limits,
//! `extractMeta` and refusals, and no byte of it passes through JS.
//!
//! The core keeps a duplicate of the descriptor, so the other server closing its own does not
//! end the connection. Only connected TCP sockets are taken; anything else (a Unix socket, a
//! descriptor that is not a socket) is refused and left to its owner.

use std::sync::Arc;

use tokio::runtime::Handle;

use super::http::definition_for;
use super::Host;
use crate::config::Definition;

/// Whether an upgrade request for `target` (path and query) is one warren answers.
pub fn serves(definitions: &[Definition], target: &str) -> bool {
  let path = target.split(['?', '#']).next().unwrap_or("");
  definition_for(definitions, path).is_some()
}

/// Takes the connected TCP socket `fd` (which stays its caller's: it is duplicated here) and
/// serves it on `runtime` as if accepted by warren's listener, `read` being the bytes the
/// caller read from it (the request head and any after it). At `maxPendingHandshakes` the
/// connection is answered 503 at once. Fails, without touching the connection, when `fd` is
/// not a connected TCP socket.
#[cfg(unix)]
pub fn adopt<H: Host>(host: &Arc<H>, runtime: &Handle, fd: i32, read: Vec<u8>) -> std::io::Result<()> {
  use std::net::SocketAddr;
  use std::os::fd::{BorrowedFd, OwnedFd};

  use super::listener;
  use crate::error::UpgradeRejection;

  if fd < 0 {
    return Err(std::io::Error::new(
      std::io::ErrorKind::InvalidInput,
      "the socket has no file descriptor",
    ));
  }
  // SAFETY: the caller holds `fd` open for the length of this call (the JS layer passes the
  // descriptor of a socket it still owns). A descriptor naming anything but a connected TCP
  // socket is refused below, before a byte is read or written.
  let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
  let owned: OwnedFd = borrowed.try_clone_to_owned()?;
  let stream = std::net::TcpStream::from(owned);
  // getpeername: fails for a file, a pipe, a Unix socket or an unconnected socket.
  let peer: SocketAddr = stream.peer_addr()?;
  stream.set_nonblocking(true)?;
  let permit = match host
    .connections()
    .handshakes(host.config().max_pending_handshakes)
    .try_acquire_owned()
  {
    Ok(permit) => permit,
    Err(_) => {
      refuse_now(
        &stream,
        &UpgradeRejection::Unavailable("too many pending handshakes"),
      );
      return Ok(());
    }
  };
  let stream = {
    let _entered = runtime.enter();
    tokio::net::TcpStream::from_std(stream)?
  };
  runtime.spawn(listener::serve_connection(
    host.clone(),
    stream,
    peer,
    permit,
    read,
  ));
  Ok(())
}

/// Where descriptors cannot be shared, no socket can be adopted.
#[cfg(not(unix))]
pub fn adopt<H: Host>(_host: &Arc<H>, _runtime: &Handle, _fd: i32, _read: Vec<u8>) -> std::io::Result<()> {
  Err(std::io::Error::new(
    std::io::ErrorKind::Unsupported,
    "sockets can be handed over on Unix only",
  ))
}

/// Answers a refused connection without a task (there is no permit for one): a fresh socket's
/// send buffer takes the short answer at once, and the connection closes when `stream` drops.
#[cfg(unix)]
fn refuse_now(mut stream: &std::net::TcpStream, rejection: &crate::error::UpgradeRejection) {
  use std::io::Write;
  let _ = stream.write_all(&super::http::rejection_response(rejection));
  let _ = stream.shutdown(std::net::Shutdown::Write);
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn serves_the_socket_paths_only() {
    let definitions = vec![
      Definition {
        name: "C".into(),
        path: "/ws".into(),
        authenticates: false,
        prefix: false,
        raw: false,
      },
      Definition {
        name: "Counter".into(),
        path: "/actors/counter/".into(),
        authenticates: true,
        prefix: true,
        raw: false,
      },
    ];
    assert!(serves(&definitions, "/ws"));
    assert!(serves(&definitions, "/ws?token=a#x"));
    assert!(serves(&definitions, "/actors/counter/k1?x=1"));
    assert!(!serves(&definitions, "/actors/counter/"));
    assert!(!serves(&definitions, "/actors/counter/a/b"));
    assert!(!serves(&definitions, "/ws/more"));
    assert!(!serves(&definitions, "/healthz"));
    assert!(!serves(&definitions, "/_next/webpack-hmr"));
  }
}
