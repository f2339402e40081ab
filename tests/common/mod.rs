//! What the end-to-end tests share: a real core listening on 127.0.0.1:0, a stand-in for the
//! JS thread that takes the event batches it is woken for, and real WebSocket clients.

#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};
use tokio_tungstenite::{client_async, WebSocketStream};
use warren::config::{Definition, Durability, Location, ServerConfig};
use warren::core::{Core, Decision};
use warren::ids::RequestId;
use warren::transport::Identity;

/// Longest wait for anything a test expects; a test that hits it has failed.
pub const PATIENCE: Duration = Duration::from_secs(10);

pub type Client = WebSocketStream<TcpStream>;

/// A core serving one definition at `/ws`.
pub struct Server {
  pub core: Arc<Core>,
  pub port: u16,
  woken: Arc<Notify>,
  /// Events taken but not yet looked at, oldest first.
  backlog: std::collections::VecDeque<Value>,
  pub dir: Option<std::path::PathBuf>,
}

pub fn config(authenticates: bool) -> ServerConfig {
  ServerConfig {
    definitions: vec![Definition {
      name: "UserConnection".into(),
      path: "/ws".into(),
      authenticates,
      prefix: false,
      raw: false,
    }],
    room_handlers: vec!["ChatRoom".into()],
    ..ServerConfig::default()
  }
}

/// A fresh directory for a real sled store.
pub fn temp_dir(name: &str) -> std::path::PathBuf {
  let dir = std::env::temp_dir().join(format!("warren-e2e-{name}-{}", std::process::id()));
  let _ = std::fs::remove_dir_all(&dir);
  dir
}

impl Server {
  pub fn start(config: ServerConfig) -> Self {
    let runtime = tokio::runtime::Handle::current();
    let core = Core::new(config, &runtime).unwrap_or_else(|error| panic!("core: {error}"));
    Self::with_core(core)
  }

  /// Serves `core` on 127.0.0.1:0, with this test standing in for its JS thread.
  pub fn with_core(core: Arc<Core>) -> Self {
    let runtime = tokio::runtime::Handle::current();
    let dir = match &core.config().storage {
      Location::Directory(dir) => Some(dir.clone()),
      Location::Memory => None,
    };
    let woken = Arc::new(Notify::new());
    let waker = woken.clone();
    core.set_waker(Some(Arc::new(move || waker.notify_one())));
    let address = core
      .listen(&runtime, "127.0.0.1", 0)
      .unwrap_or_else(|error| panic!("listen: {error}"));
    Self {
      core,
      port: address.port(),
      woken,
      backlog: Default::default(),
      dir,
    }
  }

  pub fn strict_on_disk(name: &str) -> Self {
    let config = ServerConfig {
      storage: Location::Directory(temp_dir(name)),
      durability: Durability::Strict,
      ..config(false)
    };
    Self::start(config)
  }

  /// The next event JS would hear, waiting for a wake-up when none is queued.
  pub async fn next_event(&mut self) -> Value {
    loop {
      if let Some(event) = self.backlog.pop_front() {
        return event;
      }
      if let Some(batch) = self.core.take_events() {
        let parsed: Value =
          serde_json::from_str(&batch).unwrap_or_else(|error| panic!("batch {batch}: {error}"));
        self
          .backlog
          .extend(parsed.as_array().cloned().unwrap_or_default());
        continue;
      }
      tokio::time::timeout(PATIENCE, self.woken.notified())
        .await
        .unwrap_or_else(|_| panic!("no event came"));
    }
  }

  /// Takes every batch as soon as it is woken for, from now on, without looking at it: a JS
  /// thread that keeps up but answers nothing.
  pub fn discard_events(&self) -> tokio::task::JoinHandle<()> {
    let core = self.core.clone();
    let woken = self.woken.clone();
    tokio::spawn(async move {
      loop {
        while core.take_events().is_some() {}
        woken.notified().await;
      }
    })
  }

  /// Skips events until one with `tag`, and returns it (within [`PATIENCE`] in all).
  pub async fn event_tagged(&mut self, tag: u64) -> Value {
    let search = async {
      loop {
        let event = self.next_event().await;
        if event[0] == tag {
          return event;
        }
      }
    };
    tokio::time::timeout(PATIENCE, search)
      .await
      .unwrap_or_else(|_| panic!("no event tagged {tag} came"))
  }

  /// Connects a client to `path` (with its query) and completes the upgrade.
  pub async fn connect(&self, path: &str) -> Client {
    let stream = TcpStream::connect(("127.0.0.1", self.port))
      .await
      .unwrap_or_else(|error| panic!("connect: {error}"));
    let url = format!("ws://127.0.0.1:{}{path}", self.port);
    let (client, _) = client_async(url, stream)
      .await
      .unwrap_or_else(|error| panic!("upgrade: {error}"));
    client
  }

  /// Connects and waits for the session's `Open` event: returns the client, its session id and
  /// its actor id.
  pub async fn open(&mut self, path: &str) -> (Client, u64, u64) {
    let (client, session, actor, _) = self.open_keyed(path).await;
    (client, session, actor)
  }

  /// Connects to an authenticating definition, accepts the upgrade as `key` (meta
  /// `{"userId": key}`) the way `extractMeta` would, and waits for the session's `Open`: returns
  /// the client, its session id and its actor id.
  pub async fn open_as(&mut self, path: &str, key: &str) -> (Client, u64, u64) {
    let port = self.port;
    let url = format!("ws://127.0.0.1:{port}{path}");
    let connecting = tokio::spawn(async move {
      let stream = TcpStream::connect(("127.0.0.1", port)).await?;
      client_async(url, stream)
        .await
        .map(|(client, _)| client)
        .map_err(std::io::Error::other)
    });
    let upgrade = self.event_tagged(0).await;
    let identity = Identity {
      key: key.into(),
      meta_json: serde_json::json!({ "userId": key }).to_string(),
    };
    assert!(self
      .core
      .decide_upgrade(RequestId(as_u64(&upgrade[1])), Decision::Accept(identity)));
    let client = connecting
      .await
      .unwrap_or_else(|error| panic!("client task: {error}"))
      .unwrap_or_else(|error| panic!("upgrade: {error}"));
    let open = self.event_tagged(1).await;
    assert_eq!(open[5], key, "the session's user");
    assert_eq!(open[6]["userId"], key, "the session's meta");
    (client, as_u64(&open[1]), as_u64(&open[2]))
  }

  /// [`Server::open`], with the session's user.
  pub async fn open_keyed(&mut self, path: &str) -> (Client, u64, u64, String) {
    let client = self.connect(path).await;
    let open = self.event_tagged(1).await;
    let key = open[5].as_str().unwrap_or_default().to_string();
    (client, as_u64(&open[1]), as_u64(&open[2]), key)
  }
}

impl Drop for Server {
  fn drop(&mut self) {
    let runtime = tokio::runtime::Handle::current();
    self.core.begin_shutdown(&runtime);
    let _ = self.core.release();
    if let Some(dir) = &self.dir {
      let _ = std::fs::remove_dir_all(dir);
    }
  }
}

pub fn as_u64(value: &Value) -> u64 {
  value.as_u64().unwrap_or_else(|| panic!("not a number: {value}"))
}

/// Sends a text frame.
pub async fn send(client: &mut Client, text: &str) {
  client
    .send(Message::Text(Utf8Bytes::from(text)))
    .await
    .unwrap_or_else(|error| panic!("send: {error}"));
}

/// The next text frame the client receives, parsed.
pub async fn receive(client: &mut Client) -> Value {
  loop {
    let message = tokio::time::timeout(PATIENCE, client.next())
      .await
      .unwrap_or_else(|_| panic!("nothing received"));
    match message {
      Some(Ok(Message::Text(text))) => {
        return serde_json::from_str(text.as_str()).unwrap_or_else(|error| panic!("frame {text}: {error}"))
      }
      Some(Ok(_)) => continue,
      other => panic!("socket ended: {other:?}"),
    }
  }
}
