//! One client WebSocket: TCP connect from a spread source address, the handshake, and for socket.io the
//! engine.io open packet and the namespace connect. Scenarios see only [`Conn::send`] and [`Conn::recv`].
//!
//! Source addresses rotate over 127.0.0.1–127.0.0.254 by connection id, so 10,000+ sockets (and
//! repeated accept runs that leave TIME_WAIT behind) never exhaust one address's ephemeral ports.
//! `IP_BIND_ADDRESS_NO_PORT` lets the kernel pick the port at `connect` against the full 4-tuple instead
//! of reserving one at `bind`.

use std::net::{Ipv4Addr, SocketAddr};
use std::os::fd::AsRawFd;
use std::time::Duration;

use futures_util::{FutureExt, SinkExt, StreamExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::{timeout_at, Instant};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use crate::msgpack;
use crate::proto::{Incoming, Proto};

/// Client read buffer. tungstenite's 128 KiB default would cost the generator 1.3 GB at 10,000 idle
/// sockets; every frame the scenarios receive is far below 4 KiB.
const READ_BUFFER_BYTES: usize = 4096;

/// Where and how to connect; shared by every connection of a run.
#[derive(Clone, Debug)]
pub struct Target {
    pub ip: Ipv4Addr,
    pub port: u16,
    pub proto: Proto,
    /// `--path`: replaces the protocol's default path for every connection.
    pub path: Option<String>,
}

impl Target {
    pub fn url(&self, id: usize) -> String {
        let path = match &self.path {
            Some(p) => p.clone(),
            None => self.proto.default_path(id),
        };
        format!("ws://{}:{}{}", self.ip, self.port, path)
    }
}

pub struct Conn {
    ws: WebSocketStream<TcpStream>,
    proto: Proto,
}

fn source_addr(id: usize) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 0, 1 + (id % 254) as u8)
}

fn bind_address_no_port(socket: &TcpSocket) -> std::io::Result<()> {
    let on: libc::c_int = 1;
    // SAFETY: a valid fd owned by `socket`, and a c_int option value of the size passed.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_BIND_ADDRESS_NO_PORT,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Connects connection `id` and completes every handshake its protocol has; fails at `deadline`.
pub async fn open(target: &Target, id: usize, deadline: Instant) -> Result<Conn, String> {
    let work = async {
        let socket = TcpSocket::new_v4().map_err(|e| format!("socket: {e}"))?;
        bind_address_no_port(&socket).map_err(|e| format!("IP_BIND_ADDRESS_NO_PORT: {e}"))?;
        socket
            .bind(SocketAddr::new(source_addr(id).into(), 0))
            .map_err(|e| format!("bind {}: {e}", source_addr(id)))?;
        let stream = socket
            .connect(SocketAddr::new(target.ip.into(), target.port))
            .await
            .map_err(|e| format!("connect: {e}"))?;
        stream.set_nodelay(true).map_err(|e| format!("nodelay: {e}"))?;
        let config = WebSocketConfig::default().read_buffer_size(READ_BUFFER_BYTES);
        let (ws, _response) = tokio_tungstenite::client_async_with_config(target.url(id), stream, Some(config))
            .await
            .map_err(|e| format!("handshake: {e}"))?;
        let mut conn = Conn { ws, proto: target.proto };
        if target.proto == Proto::SocketIo {
            conn.socketio_connect().await?;
        }
        Ok(conn)
    };
    match timeout_at(deadline, work).await {
        Ok(result) => result,
        Err(_) => Err("timed out connecting".to_string()),
    }
}

impl Conn {
    /// engine.io open packet `0{...}`, then `40` (namespace `/`) answered by `40{"sid":...}`.
    async fn socketio_connect(&mut self) -> Result<(), String> {
        let open = self.next_text().await?;
        if !open.starts_with('0') {
            return Err(format!("expected engine.io open packet, got {open:?}"));
        }
        self.ws.send(Message::text("40")).await.map_err(|e| format!("send 40: {e}"))?;
        loop {
            let reply = self.next_text().await?;
            if reply.starts_with("40") {
                return Ok(());
            }
            if reply == "2" {
                self.ws.send(Message::text("3")).await.map_err(|e| format!("pong: {e}"))?;
                continue;
            }
            return Err(format!("expected 40 connect reply, got {reply:?}"));
        }
    }

    async fn next_text(&mut self) -> Result<String, String> {
        loop {
            match self.ws.next().await {
                None => return Err("closed during handshake".to_string()),
                Some(Err(e)) => return Err(format!("read: {e}")),
                Some(Ok(Message::Text(t))) => return Ok(t.as_str().to_string()),
                Some(Ok(_)) => continue,
            }
        }
    }

    pub async fn send(&mut self, text: String) -> Result<(), String> {
        let message = self.message(text);
        self.ws.send(message).await.map_err(|e| format!("send: {e}"))
    }

    /// A request as this protocol sends it: text, or for `warren-msgpack` its MessagePack.
    fn message(&self, text: String) -> Message {
        if self.proto == Proto::WarrenMsgpack {
            Message::binary(msgpack::from_json(&text))
        } else {
            Message::text(text)
        }
    }

    /// Queues a frame without writing it; [`Conn::flush`] writes everything queued in one go.
    pub async fn feed(&mut self, text: String) -> Result<(), String> {
        let message = self.message(text);
        self.ws.feed(message).await.map_err(|e| format!("send: {e}"))
    }

    pub async fn flush(&mut self) -> Result<(), String> {
        self.ws.flush().await.map_err(|e| format!("flush: {e}"))
    }

    /// A frame already received and buffered, if any, without waiting for the socket.
    pub fn recv_ready(&mut self) -> Option<Result<Option<Incoming>, String>> {
        self.recv().now_or_never()
    }

    /// The next frame a scenario cares about; `Ok(None)` once the server closed. Answers engine.io pings;
    /// WebSocket pings are answered by tungstenite itself while reading.
    pub async fn recv(&mut self) -> Result<Option<Incoming>, String> {
        loop {
            match self.ws.next().await {
                None | Some(Ok(Message::Close(_))) => return Ok(None),
                Some(Err(e)) => return Err(format!("read: {e}")),
                Some(Ok(Message::Text(text))) => {
                    if self.proto == Proto::SocketIo && text.as_str() == "2" {
                        self.send("3".to_string()).await?;
                        continue;
                    }
                    return Ok(Some(self.proto.classify(text.as_str())));
                }
                Some(Ok(Message::Binary(bytes))) if self.proto == Proto::WarrenMsgpack => {
                    return Ok(Some(msgpack::classify(&bytes)));
                }
                Some(Ok(_)) => continue,
            }
        }
    }

    /// Close handshake, bounded by `wait`: the server's close frame and TCP FIN, or give up and drop.
    pub async fn close(mut self, wait: Duration) {
        let _ = tokio::time::timeout(wait, async {
            if self.ws.close(None).await.is_ok() {
                while let Some(Ok(_)) = self.ws.next().await {}
            }
        })
        .await;
    }
}
