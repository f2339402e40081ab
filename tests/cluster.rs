//! Cluster mode end to end: a real `redis-server` (AOF always, in a temp directory) and three
//! nodes, each a real core listening on its own port, with real WebSocket clients.

mod common;

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{receive, temp_dir, Client, Server, PATIENCE};
use warren::config::{ClusterConfig, Durability, ServerConfig};
use warren::core::{Core, Frame};
use warren::durability::records::StateOf;
use warren::ids::{ActorId, DefinitionId, HandlerId};
use warren::registry::Target;

/// A redis-server of its own, stopped (and its directory removed) when dropped.
struct Redis {
  child: Child,
  port: u16,
  dir: std::path::PathBuf,
}

impl Redis {
  fn start(name: &str) -> Self {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
      .and_then(|listener| listener.local_addr())
      .map(|address| address.port())
      .expect("a free port");
    let dir = temp_dir(&format!("redis-{name}"));
    std::fs::create_dir_all(&dir).expect("redis dir");
    let child = Self::spawn(port, &dir);
    Self { child, port, dir }
  }

  /// A redis-server on `port` with its AOF in `dir`, once it accepts connections.
  fn spawn(port: u16, dir: &std::path::Path) -> Child {
    let child = Command::new("redis-server")
      .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", ""])
      .args(["--appendonly", "yes", "--appendfsync", "always"])
      .arg("--dir")
      .arg(dir)
      .stdout(Stdio::null())
      .spawn()
      .expect("redis-server must be installed (apt-get install redis-server)");
    let deadline = std::time::Instant::now() + PATIENCE;
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
      assert!(std::time::Instant::now() < deadline, "redis-server did not start");
      std::thread::sleep(Duration::from_millis(10));
    }
    child
  }

  /// Kills redis-server (SIGKILL) and starts it again on the same port and AOF once `until`
  /// is done: what it had acknowledged is there again, nothing else.
  async fn restart_after(&mut self, until: impl std::future::Future<Output = ()>) {
    let _ = self.child.kill();
    let _ = self.child.wait();
    until.await;
    self.child = Self::spawn(self.port, &self.dir);
  }

  fn url(&self) -> String {
    format!("redis://127.0.0.1:{}", self.port)
  }
}

impl Drop for Redis {
  fn drop(&mut self) {
    let _ = self.child.kill();
    let _ = self.child.wait();
    let _ = std::fs::remove_dir_all(&self.dir);
  }
}

fn node_config(redis: &Redis, node: &str) -> ServerConfig {
  ServerConfig {
    cluster: Some(ClusterConfig {
      redis_url: redis.url(),
      node_id: node.into(),
      lease: warren::config::NODE_LEASE,
    }),
    durability: Durability::Strict,
    ..common::config(false)
  }
}

async fn node(redis: &Redis, id: &str) -> Server {
  let core = Core::start(node_config(redis, id), &tokio::runtime::Handle::current())
    .await
    .unwrap_or_else(|error| panic!("node {id}: {error}"));
  Server::with_core(core)
}

/// Waits until every node has subscribed to the room's channel (each has it in memory).
async fn subscribed(redis: &Redis, room: &str, nodes: usize) {
  let client = redis::Client::open(redis.url()).expect("client");
  let connection = client.get_multiplexed_async_connection().await.expect("connect");
  let channel = format!("warren:room:{room}");
  eventually(&format!("{nodes} nodes on {room}"), || {
    let (mut connection, channel) = (connection.clone(), channel.clone());
    async move {
      let counts: Vec<(String, usize)> = redis::cmd("PUBSUB")
        .arg("NUMSUB")
        .arg(&channel)
        .query_async(&mut connection)
        .await
        .expect("numsub");
      counts.first().is_some_and(|(_, count)| *count >= nodes)
    }
  })
  .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_spanning_three_nodes_delivers_every_message_once_in_each_senders_order() {
  let redis = Redis::start("rooms");
  let mut nodes = Vec::new();
  for id in ["n1", "n2", "n3"] {
    nodes.push(node(&redis, id).await);
  }
  // Two sessions per node, all in one room.
  let mut clients: Vec<Client> = Vec::new();
  for server in &mut nodes {
    for _ in 0..2 {
      let (client, _, actor) = server.open("/ws").await;
      server
        .core
        .join_room(ActorId(actor), "lobby", HandlerId(0), "{}")
        .expect("join");
      clients.push(client);
    }
  }
  subscribed(&redis, "lobby", 3).await;
  const EACH: usize = 20;
  for n in 0..EACH {
    for (i, server) in nodes.iter().enumerate() {
      let payload = format!(r#"{{"from":{i},"n":{n}}}"#);
      let frame = Frame {
        event: "msg",
        payload_json: Some(&payload),
      };
      let reached = server
        .core
        .emit(
          Target::Room {
            name: "lobby",
            except: None,
          },
          frame,
        )
        .expect("emit");
      assert_eq!(reached, 2, "the count is this node's sessions");
    }
  }
  for client in &mut clients {
    let mut next_of: HashMap<u64, u64> = HashMap::new();
    for _ in 0..EACH * 3 {
      let frame = receive(client).await;
      let data = &frame["data"];
      let from = data["from"].as_u64().expect("from");
      let expected = next_of.entry(from).or_insert(0);
      assert_eq!(data["n"].as_u64(), Some(*expected), "in order from node {from}");
      *expected += 1;
      assert!(frame["seq"].as_u64().is_some(), "numbered by the receiving node");
    }
    assert_eq!(
      next_of.values().copied().collect::<Vec<_>>(),
      vec![EACH as u64; 3]
    );
  }
  // Nothing more arrives: each message came exactly once.
  for client in &mut clients {
    let more = tokio::time::timeout(Duration::from_millis(200), futures_util::StreamExt::next(client)).await;
    assert!(more.is_err(), "an extra frame arrived: {more:?}");
  }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn to_user_reaches_sessions_on_other_nodes() {
  let redis = Redis::start("users");
  let mut first = node(&redis, "a").await;
  let mut second = node(&redis, "b").await;
  let (mut here, _, _, _) = first.open_keyed("/ws").await;
  let (mut there, _, _, user) = second.open_keyed("/ws").await;
  let frame = Frame {
    event: "dm",
    payload_json: Some(r#"{"text":"hi"}"#),
  };
  let target = Target::User {
    definition: DefinitionId(0),
    key: &user,
    except: None,
  };
  let reached = first.core.emit(target, frame).expect("emit");
  assert_eq!(reached, 0, "the count is this node's sessions");
  assert_eq!(receive(&mut there).await["data"]["text"], "hi");
  // Sessions of other users got nothing.
  let nothing = tokio::time::timeout(
    Duration::from_millis(200),
    futures_util::StreamExt::next(&mut here),
  )
  .await;
  assert!(nothing.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_id_is_held_by_one_process_and_strict_needs_a_redis_that_keeps_writes() {
  let redis = Redis::start("lease");
  let _first = node(&redis, "same").await;
  let second = Core::start(node_config(&redis, "same"), &tokio::runtime::Handle::current()).await;
  let error = second.err().expect("refused");
  assert_eq!(error.code(), "cluster_unavailable");
  assert!(
    error.to_string().contains("held by another live process"),
    "{error}"
  );

  let client = redis::Client::open(redis.url()).expect("client");
  let mut connection = client.get_multiplexed_async_connection().await.expect("connect");
  let _: () = redis::cmd("CONFIG")
    .arg("SET")
    .arg("appendfsync")
    .arg("everysec")
    .query_async(&mut connection)
    .await
    .expect("config set");
  let refused = Core::start(node_config(&redis, "other"), &tokio::runtime::Handle::current()).await;
  let error = refused.err().expect("refused");
  assert!(error.to_string().contains("appendfsync always"), "{error}");
  let relaxed = ServerConfig {
    durability: Durability::Relaxed,
    ..node_config(&redis, "other")
  };
  assert!(Core::start(relaxed, &tokio::runtime::Handle::current())
    .await
    .is_ok());
}

/// Two nodes with a session each in the room `lobby`, both subscribed to it.
struct Lobby {
  sender: Server,
  receiver: Server,
  /// The receiving node's session.
  member: Client,
  /// Keeps the sending node's member live.
  _sender_client: Client,
}

async fn lobby_on_two_nodes(redis: &Redis) -> Lobby {
  let mut sender = node(redis, "s").await;
  let mut receiver = node(redis, "r").await;
  let (_sender_client, _, sender_actor) = sender.open("/ws").await;
  let (member, _, member_actor) = receiver.open("/ws").await;
  for (server, actor) in [(&sender, sender_actor), (&receiver, member_actor)] {
    server
      .core
      .join_room(ActorId(actor), "lobby", HandlerId(0), "{}")
      .expect("join");
  }
  subscribed(redis, "lobby", 2).await;
  Lobby {
    sender,
    receiver,
    member,
    _sender_client,
  }
}

/// The value of `key` in the redis-server at `url`.
async fn redis_get(url: &str, key: &str) -> Option<Vec<u8>> {
  let client = redis::Client::open(url).expect("client");
  let mut connection = client.get_multiplexed_async_connection().await.expect("connect");
  redis::cmd("GET")
    .arg(key.as_bytes())
    .query_async(&mut connection)
    .await
    .expect("get")
}

/// A user's state as Redis holds it.
async fn stored(redis: &Redis, user: &str) -> Option<Vec<u8>> {
  redis_get(&redis.url(), &format!("warren:data:a\0UserConnection\0{user}")).await
}

/// The lobby's state as Redis holds it.
async fn stored_lobby(url: &str) -> Option<Vec<u8>> {
  redis_get(url, "warren:data:r\0ChatRoom\0lobby").await
}

/// The node that holds a user's connection actor, as Redis says.
async fn actor_owner(redis: &Redis, user: &str) -> Option<String> {
  let client = redis::Client::open(redis.url()).expect("client");
  let mut connection = client.get_multiplexed_async_connection().await.expect("connect");
  redis::cmd("HGET")
    .arg(format!("warren:actor:14:UserConnection:{user}"))
    .arg("owner")
    .query_async(&mut connection)
    .await
    .expect("hget")
}

/// Waits (within [`PATIENCE`]) until `condition` holds.
async fn eventually<F, C>(what: &str, condition: C)
where
  C: Fn() -> F,
  F: std::future::Future<Output = bool>,
{
  let deadline = tokio::time::Instant::now() + PATIENCE;
  while !condition().await {
    assert!(
      tokio::time::Instant::now() < deadline,
      "waited in vain for {what}"
    );
    tokio::time::sleep(Duration::from_millis(10)).await;
  }
}

/// Reads frames until the socket closes; returns its close code.
async fn close_code(client: &mut Client) -> u16 {
  use futures_util::StreamExt;
  use tokio_tungstenite::tungstenite::Message;
  loop {
    match tokio::time::timeout(PATIENCE, client.next()).await {
      Ok(Some(Ok(Message::Close(frame)))) => return frame.map_or(1005, |f| u16::from(f.code)),
      Ok(Some(Ok(_))) => continue,
      other => panic!("no close frame: {other:?}"),
    }
  }
}

async fn redis_command(redis: &Redis, command: &mut redis::Cmd) {
  let client = redis::Client::open(redis.url()).expect("client");
  let mut connection = client.get_multiplexed_async_connection().await.expect("connect");
  let _: redis::Value = command.query_async(&mut connection).await.expect("command");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gap_in_a_rooms_offsets_makes_its_sessions_resync_instead_of_missing_messages() {
  let redis = Redis::start("gap");
  let Lobby {
    sender,
    receiver: _receiver,
    mut member,
    _sender_client,
  } = lobby_on_two_nodes(&redis).await;
  let emit = |n: u32| {
    let payload = format!(r#"{{"n":{n}}}"#);
    let frame = Frame {
      event: "msg",
      payload_json: Some(&payload),
    };
    sender
      .core
      .emit(
        Target::Room {
          name: "lobby",
          except: None,
        },
        frame,
      )
      .expect("emit");
  };
  emit(1);
  assert_eq!(receive(&mut member).await["data"]["n"], 1);
  // Messages published while the offsets advanced without reaching this node.
  redis_command(
    &redis,
    redis::cmd("HINCRBY")
      .arg("warren:roomlog:lobby")
      .arg("offset")
      .arg(3),
  )
  .await;
  emit(2);
  assert_eq!(close_code(&mut member).await, 1012);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_pub_sub_link_reconnects_and_room_sessions_resync() {
  let redis = Redis::start("relink");
  let Lobby {
    sender,
    mut receiver,
    mut member,
    _sender_client,
  } = lobby_on_two_nodes(&redis).await;
  redis_command(&redis, redis::cmd("CLIENT").arg("KILL").arg("TYPE").arg("pubsub")).await;
  assert_eq!(close_code(&mut member).await, 1012);
  // The link is back: new members hear the room again.
  let (mut again, _, again_actor) = receiver.open("/ws").await;
  receiver
    .core
    .join_room(ActorId(again_actor), "lobby", HandlerId(0), "{}")
    .expect("join");
  subscribed(&redis, "lobby", 2).await;
  let frame = Frame {
    event: "msg",
    payload_json: Some(r#"{"n":9}"#),
  };
  sender
    .core
    .emit(
      Target::Room {
        name: "lobby",
        except: None,
      },
      frame,
    )
    .expect("emit");
  assert_eq!(receive(&mut again).await["data"]["n"], 9);
}

fn authenticating(redis: &Redis, node: &str) -> ServerConfig {
  ServerConfig {
    definitions: common::config(true).definitions,
    ..node_config(redis, node)
  }
}

/// A node whose idle actors leave memory (and give their claim up) after 50 ms.
async fn quick_node(redis: &Redis, id: &str) -> Server {
  let config = ServerConfig {
    hibernate_after: Duration::from_millis(50),
    ..authenticating(redis, id)
  };
  let core = Core::start(config, &tokio::runtime::Handle::current())
    .await
    .unwrap_or_else(|error| panic!("node {id}: {error}"));
  Server::with_core(core)
}

async fn authenticating_node(redis: &Redis, id: &str) -> Server {
  let core = Core::start(authenticating(redis, id), &tokio::runtime::Handle::current())
    .await
    .unwrap_or_else(|error| panic!("node {id}: {error}"));
  Server::with_core(core)
}

/// Connects a client to `path` on `node` and accepts its upgrade as `key` with `meta_json` (the
/// stand-in for `extractMeta`); resolves to the client once the upgrade is answered.
async fn connect_accepted(
  node: &mut Server,
  path: &str,
  key: &str,
  meta_json: &str,
) -> tokio::task::JoinHandle<Client> {
  let (port, path) = (node.port, path.to_string());
  let connecting = tokio::spawn(async move {
    let stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
      .await
      .expect("connect");
    let url = format!("ws://127.0.0.1:{port}{path}");
    let (client, _) = tokio_tungstenite::client_async(url, stream)
      .await
      .expect("upgrade");
    client
  });
  let upgrade = node.event_tagged(0).await;
  let identity = warren::transport::Identity {
    key: key.into(),
    meta_json: meta_json.into(),
  };
  let request = warren::ids::RequestId(upgrade[1].as_u64().expect("request id"));
  assert!(node
    .core
    .decide_upgrade(request, warren::core::Decision::Accept(identity)));
  connecting
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_user_through_two_nodes_is_one_actor_on_the_node_that_placed_it() {
  let redis = Redis::start("placement");
  let mut owner = authenticating_node(&redis, "owner").await;
  let mut gateway = authenticating_node(&redis, "gateway").await;
  let (mut first, first_session, actor) = owner.open_as("/ws", "ann").await;

  // The second tab lands on the other node: its upgrade is authenticated there, but its
  // session opens on the owner, in the same actor.
  let connecting = connect_accepted(&mut gateway, "/ws", "ann", r#"{"userId":"ann","tab":2}"#).await;
  let mut second = tokio::time::timeout(PATIENCE, connecting)
    .await
    .expect("the gateway answers the upgrade")
    .expect("task");
  let open = owner.event_tagged(1).await;
  assert_eq!(open[2].as_u64(), Some(actor), "the same actor");
  assert_eq!(open[3], 0, "not created again: one onInit");
  assert_eq!(open[6]["tab"], 2, "with the second tab's meta");
  let second_session = open[1].as_u64().expect("session");
  assert_eq!(gateway.core.stats().actors, 0, "no actor on the gateway");

  // Its frames reach the owner's JS; the owner's replies and events reach it.
  common::send(
    &mut second,
    r#"{"type":"call","id":1,"event":"count.get","data":{}}"#,
  )
  .await;
  let call = owner.event_tagged(3).await;
  assert_eq!(call[1].as_u64(), Some(second_session));
  assert!(owner
    .core
    .reply(warren::ids::SessionId(second_session), 1, Some("7")));
  let reply = receive(&mut second).await;
  assert_eq!((reply["id"].as_u64(), reply["data"].as_u64()), (Some(1), Some(7)));
  assert!(reply["seq"].as_u64().is_some(), "numbered by the owner");

  let to_ann = Target::User {
    definition: DefinitionId(0),
    key: "ann",
    except: None,
  };
  let frame = Frame {
    event: "hello",
    payload_json: None,
  };
  assert_eq!(
    owner.core.emit(to_ann, frame).expect("emit"),
    2,
    "both tabs are the owner's sessions"
  );
  assert_eq!(receive(&mut first).await["data"]["type"], "hello");
  assert_eq!(receive(&mut second).await["data"]["type"], "hello");

  // The second tab closes: the owner hears it once, the first tab stays.
  drop(second);
  let close = owner.event_tagged(4).await;
  assert_eq!(close[1].as_u64(), Some(second_session));
  assert_eq!(owner.core.stats().sessions, 1);
  assert_eq!(first_session, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_written_through_one_node_is_read_through_another_once_the_actor_moved() {
  let redis = Redis::start("state");
  let mut first = quick_node(&redis, "a").await;
  let mut second = quick_node(&redis, "b").await;
  let of = StateOf::Actor {
    definition: "UserConnection",
    user: "ann",
  };

  let (mut client, session, _) = first.open_as("/ws", "ann").await;
  first.core.state_changed();
  let frame = Frame {
    event: "saved",
    payload_json: None,
  };
  first
    .core
    .emit(Target::Session(warren::ids::SessionId(session)), frame)
    .expect("emit");
  first
    .core
    .commit_state(vec![(of, Some(b"count=3".to_vec()))])
    .expect("commit");
  // The frame leaves once Redis (AOF always) has the state.
  assert_eq!(receive(&mut client).await["data"]["type"], "saved");
  assert_eq!(actor_owner(&redis, "ann").await.as_deref(), Some("a"));
  drop(client);
  // The actor leaves node a's memory and gives its claim up (queued to Redis after JS hears it).
  first.event_tagged(5).await;
  eventually("node a to give its claim up", || async {
    actor_owner(&redis, "ann").await.is_none()
  })
  .await;

  let (_client, _, _) = second.open_as("/ws", "ann").await;
  assert_eq!(second.core.load_state(of), Ok(Some(b"count=3".to_vec())));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_whose_actor_was_taken_over_cannot_commit_and_its_held_frames_never_leave() {
  let redis = Redis::start("fenced");
  let mut node = authenticating_node(&redis, "old").await;
  let (mut client, session, _) = node.open_as("/ws", "ann").await;
  let of = StateOf::Actor {
    definition: "UserConnection",
    user: "ann",
  };
  // Another node takes the actor over (its claim: token + 1).
  redis_command(
    &redis,
    redis::cmd("HSET")
      .arg("warren:actor:14:UserConnection:ann")
      .arg("owner")
      .arg("new"),
  )
  .await;
  redis_command(
    &redis,
    redis::cmd("HINCRBY")
      .arg("warren:actor:14:UserConnection:ann")
      .arg("token")
      .arg(1),
  )
  .await;
  node.core.state_changed();
  let frame = Frame {
    event: "told",
    payload_json: None,
  };
  node
    .core
    .emit(Target::Session(warren::ids::SessionId(session)), frame)
    .expect("emit");
  node
    .core
    .commit_state(vec![(of, Some(b"stale".to_vec()))])
    .expect("commit");
  // The frame behind the refused write never arrives: the session closes instead.
  assert_eq!(close_code(&mut client).await, 1012);
  assert_eq!(
    stored(&redis, "ann").await,
    None,
    "the refused write is not in Redis"
  );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_cannot_renew_its_lease_fences_itself_until_it_holds_it_again() {
  let redis = Redis::start("lease-lost");
  let short = ServerConfig {
    cluster: Some(ClusterConfig {
      redis_url: redis.url(),
      node_id: "brief".into(),
      lease: Duration::from_millis(300),
    }),
    ..authenticating(&redis, "brief")
  };
  let runtime = tokio::runtime::Handle::current();
  let mut node = Server::with_core(Core::start(short, &runtime).await.expect("node"));
  let (mut client, _, _) = node.open_as("/ws", "ann").await;
  // Redis answers nobody for 1.5 s: the lease cannot be renewed in time.
  redis_command(&redis, redis::cmd("CLIENT").arg("PAUSE").arg(1500).arg("ALL")).await;
  assert_eq!(
    close_code(&mut client).await,
    1012,
    "the fenced node closes its sessions"
  );
  // Once Redis answers again the node holds its lease and serves again.
  let deadline = tokio::time::Instant::now() + PATIENCE;
  loop {
    let port = node.port;
    let attempt = tokio::spawn(async move {
      let stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
      tokio_tungstenite::client_async(format!("ws://127.0.0.1:{port}/ws"), stream)
        .await
        .is_ok()
    });
    // Authentication runs first (the fenced node refuses at placement): answer it.
    if let Ok(upgrade) = tokio::time::timeout(Duration::from_millis(500), node.event_tagged(0)).await {
      let identity = warren::transport::Identity {
        key: "ann".into(),
        meta_json: r#"{"userId":"ann"}"#.into(),
      };
      let request = warren::ids::RequestId(upgrade[1].as_u64().expect("request id"));
      node
        .core
        .decide_upgrade(request, warren::core::Decision::Accept(identity));
    }
    if attempt.await.expect("task") {
      break;
    }
    assert!(
      tokio::time::Instant::now() < deadline,
      "the node never served again"
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
  }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn destroying_an_actor_from_any_node_destroys_it_where_it_lives_or_in_redis() {
  let redis = Redis::start("destroy");
  let mut owner = quick_node(&redis, "owner").await;
  let other = quick_node(&redis, "other").await;
  let of = StateOf::Actor {
    definition: "UserConnection",
    user: "ann",
  };

  // Held by another node: the owner destroys it (its socket closes with 1000).
  let (mut client, _, _) = owner.open_as("/ws", "ann").await;
  owner.core.state_changed();
  owner
    .core
    .commit_state(vec![(of, Some(b"kept".to_vec()))])
    .expect("commit");
  eventually("the state to reach Redis", || async {
    stored(&redis, "ann").await.is_some()
  })
  .await;
  other.core.destroy_actor_by_key(DefinitionId(0), "ann");
  assert_eq!(close_code(&mut client).await, 1000);
  eventually("the owner to wipe it in Redis", || async {
    stored(&redis, "ann").await.is_none()
  })
  .await;

  // Held by no node: the one asked claims it and wipes it in Redis.
  let (client, _, _) = owner.open_as("/ws", "bob").await;
  let bob = StateOf::Actor {
    definition: "UserConnection",
    user: "bob",
  };
  owner.core.state_changed();
  owner
    .core
    .commit_state(vec![(bob, Some(b"bob".to_vec()))])
    .expect("commit");
  drop(client);
  owner.event_tagged(5).await;
  assert_eq!(stored(&redis, "bob").await.as_deref(), Some(b"bob".as_slice()));
  eventually("the owner to give bob's actor up", || async {
    actor_owner(&redis, "bob").await.is_none()
  })
  .await;
  other.core.destroy_actor_by_key(DefinitionId(0), "bob");
  eventually("bob's state to leave Redis", || async {
    stored(&redis, "bob").await.is_none()
  })
  .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_to_a_user_elsewhere_sent_behind_a_state_change_leaves_once_it_is_stored() {
  let redis = Redis::start("held-publish");
  let mut first = authenticating_node(&redis, "a").await;
  let mut second = authenticating_node(&redis, "b").await;
  let (_ann, _, _) = first.open_as("/ws", "ann").await;
  let (mut bob, _, _) = second.open_as("/ws", "bob").await;
  // A change is pending on node a: what it sends now waits for it, including what other nodes
  // are to get.
  first.core.state_changed();
  let target = Target::User {
    definition: DefinitionId(0),
    key: "bob",
    except: None,
  };
  let frame = Frame {
    event: "dm",
    payload_json: Some(r#"{"text":"after the change"}"#),
  };
  assert_eq!(first.core.emit(target, frame).expect("emit"), 0);
  let ann = StateOf::Actor {
    definition: "UserConnection",
    user: "ann",
  };
  first
    .core
    .commit_state(vec![(ann, Some(b"x".to_vec()))])
    .expect("commit");
  assert_eq!(receive(&mut bob).await["data"]["text"], "after the change");
}

/// Epoch milliseconds `ms` from now, as `ctx.schedule.at` gives them.
fn in_ms(ms: u64) -> f64 {
  (warren::registry::rooms::now_ms() + ms) as f64
}

/// How many actors have a pending alarm in Redis.
async fn alarms(redis: &Redis) -> usize {
  let client = redis::Client::open(redis.url()).expect("client");
  let mut connection = client.get_multiplexed_async_connection().await.expect("connect");
  redis::cmd("ZCARD")
    .arg("warren:alarms")
    .query_async(&mut connection)
    .await
    .expect("zcard")
}

/// The `Scheduled` events JS was handed so far on `server` (without waiting).
fn scheduled_now(server: &Server) -> Vec<serde_json::Value> {
  let mut fired = Vec::new();
  while let Some(batch) = server.core.take_events() {
    let events: serde_json::Value = serde_json::from_str(&batch).expect("batch");
    fired.extend(
      events
        .as_array()
        .into_iter()
        .flatten()
        .filter(|event| event[0] == 15)
        .cloned(),
    );
  }
  fired
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schedule_made_through_one_node_is_kept_in_redis_and_fires_once_on_the_owner() {
  let redis = Redis::start("schedule-owner");
  let mut owner = authenticating_node(&redis, "owner").await;
  let other = authenticating_node(&redis, "other").await;
  let (_client, _, actor) = owner.open_as("/ws", "ann").await;
  let id = owner
    .core
    .add_schedule(
      DefinitionId(0),
      "ann",
      in_ms(300),
      "tick".into(),
      r#"{"n":1}"#.into(),
    )
    .expect("schedule");
  eventually("the schedule to reach Redis", || async {
    alarms(&redis).await == 1
  })
  .await;
  let fired = owner.event_tagged(15).await;
  assert_eq!(fired[1].as_u64(), Some(actor), "on the owner, in its actor");
  assert_eq!(
    (fired[4].as_str(), fired[6]["n"].as_u64()),
    (Some(id.as_str()), Some(1))
  );
  assert_eq!(alarms(&redis).await, 0, "taken out of Redis as it fired");
  assert!(scheduled_now(&other).is_empty(), "the other node never had it");
  assert_eq!(owner.core.schedules_json(DefinitionId(0), "ann"), "[]");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schedules_of_actors_no_node_holds_fire_once_each_on_some_node() {
  let redis = Redis::start("schedule-alarm");
  let mut maker = quick_node(&redis, "maker").await;
  let others = [quick_node(&redis, "b").await, quick_node(&redis, "c").await];
  let users = ["ann", "bob", "cid", "dee"];
  let mut ids = std::collections::HashSet::new();
  for user in users {
    let (client, _, _) = maker.open_as("/ws", user).await;
    for n in 0..5 {
      let id = maker
        .core
        .add_schedule(
          DefinitionId(0),
          user,
          in_ms(1_200 + n * 10),
          "tick".into(),
          "{}".into(),
        )
        .expect("schedule");
      ids.insert(id);
    }
    drop(client);
  }
  // Every actor leaves memory and gives its claim up before its schedules are due.
  eventually("the actors to leave the maker", || async {
    maker.core.stats().actors == 0
  })
  .await;
  assert_eq!(alarms(&redis).await, users.len());

  let mut fired: Vec<String> = Vec::new();
  let deadline = tokio::time::Instant::now() + PATIENCE;
  while fired.len() < ids.len() {
    assert!(
      tokio::time::Instant::now() < deadline,
      "only {} fired",
      fired.len()
    );
    for server in std::iter::once(&maker).chain(others.iter()) {
      for event in scheduled_now(server) {
        fired.push(event[4].as_str().expect("id").to_string());
      }
    }
    tokio::time::sleep(Duration::from_millis(10)).await;
  }
  assert_eq!(alarms(&redis).await, 0);
  for server in std::iter::once(&maker).chain(others.iter()) {
    fired.extend(
      scheduled_now(server)
        .iter()
        .filter_map(|e| e[4].as_str().map(String::from)),
    );
  }
  let distinct: std::collections::HashSet<String> = fired.iter().cloned().collect();
  assert_eq!(distinct, ids, "every schedule fired");
  assert_eq!(fired.len(), ids.len(), "and each once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schedule_of_a_node_that_stopped_cleanly_fires_on_another() {
  let redis = Redis::start("schedule-stop");
  let mut maker = authenticating_node(&redis, "maker").await;
  let mut heir = authenticating_node(&redis, "heir").await;
  let (client, _, _) = maker.open_as("/ws", "ann").await;
  let id = maker
    .core
    .add_schedule(DefinitionId(0), "ann", in_ms(800), "tick".into(), "{}".into())
    .expect("schedule");
  eventually("the schedule to reach Redis", || async {
    alarms(&redis).await == 1
  })
  .await;
  drop(client);
  // A clean stop gives the node's lease back: its actors are free to be placed elsewhere.
  drop(maker);
  let fired = heir.event_tagged(15).await;
  assert_eq!(
    (fired[3].as_str(), fired[4].as_str()),
    (Some("ann"), Some(id.as_str()))
  );
  assert_eq!(heir.core.stats().actors, 1, "woken on the heir");
  assert_eq!(alarms(&redis).await, 0);
}

/// The users `fetch_room_members` lists for `room` through `server`, in join order.
async fn members_through(server: &Server, room: &str) -> Vec<String> {
  let json = server
    .core
    .fetch_room_members(room, HandlerId(0))
    .await
    .expect("members");
  let members: serde_json::Value = serde_json::from_str(&json).expect("members JSON");
  members
    .as_array()
    .into_iter()
    .flatten()
    .filter_map(|member| member["userId"].as_str().map(String::from))
    .collect()
}

/// The node Redis names as the owner of `room`.
/// Opens a session as `user` on `server` and joins its actor to `room`; its client.
async fn member_as(server: &mut Server, user: &str, room: &str) -> Client {
  let (client, _, actor) = server.open_as("/ws", user).await;
  server
    .core
    .join_room(ActorId(actor), room, HandlerId(0), "{}")
    .expect("join");
  client
}

/// The lobby's room state record.
const LOBBY_STATE: StateOf<'static> = StateOf::Room {
  handler: "ChatRoom",
  room: "lobby",
};

/// Commits `state` as the lobby's room state on `owner` (the room's owner node).
fn commit_lobby_state(owner: &Server, state: &[u8]) {
  owner.core.state_changed();
  owner
    .core
    .commit_state(vec![(LOBBY_STATE, Some(state.to_vec()))])
    .expect("commit");
}

/// Waits until `room` is placed on the node `owner`.
async fn placed_on(redis: &Redis, room: &str, owner: &str) {
  eventually("the room to be placed", || async {
    room_owner(redis, room).await.as_deref() == Some(owner)
  })
  .await;
}

async fn room_owner(redis: &Redis, room: &str) -> Option<String> {
  let client = redis::Client::open(redis.url()).expect("client");
  let mut connection = client.get_multiplexed_async_connection().await.expect("connect");
  redis::cmd("HGET")
    .arg(format!("warren:roomowner:{room}"))
    .arg("owner")
    .query_async(&mut connection)
    .await
    .expect("hget")
}

/// The room events (joins 6, leaves 7) JS was handed so far on `server`, as `(tag, user)`.
fn room_events_now(server: &Server) -> Vec<(u64, String)> {
  let mut seen = Vec::new();
  while let Some(batch) = server.core.take_events() {
    let events: serde_json::Value = serde_json::from_str(&batch).expect("batch");
    for event in events.as_array().into_iter().flatten() {
      match event[0].as_u64() {
        Some(6) => seen.push((6, event[5].as_str().unwrap_or_default().to_string())),
        Some(7) => seen.push((7, event[2].as_str().unwrap_or_default().to_string())),
        _ => {}
      }
    }
  }
  seen
}

/// Three nodes with one user each, all members of `lobby`; the first joins first (so its node
/// owns the room).
async fn lobby_on_three_nodes(redis: &Redis) -> ([Server; 3], Vec<Client>) {
  let mut nodes = [
    authenticating_node(redis, "first").await,
    authenticating_node(redis, "second").await,
    authenticating_node(redis, "third").await,
  ];
  let mut clients = Vec::new();
  for (server, user) in nodes.iter_mut().zip(["ann", "bob", "cid"]) {
    let (client, _, actor) = server.open_as("/ws", user).await;
    server
      .core
      .join_room(ActorId(actor), "lobby", HandlerId(0), r#"{"seat":1}"#)
      .expect("join");
    clients.push(client);
    eventually("the room to be placed", || async {
      room_owner(redis, "lobby").await.as_deref() == Some("first")
    })
    .await;
  }
  (nodes, clients)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_lives_on_one_node_which_runs_its_hooks_and_answers_members_for_every_node() {
  let redis = Redis::start("room-owner");
  let (mut nodes, mut clients) = lobby_on_three_nodes(&redis).await;
  for server in &nodes {
    eventually("every member to reach the owner", || async {
      members_through(server, "lobby").await == ["ann", "bob", "cid"]
    })
    .await;
  }
  let [owner, second, third] = &mut nodes;
  let mut joins = room_events_now(owner);
  joins.sort();
  let expected: Vec<(u64, String)> = ["ann", "bob", "cid"].iter().map(|u| (6, u.to_string())).collect();
  assert_eq!(joins, expected, "onJoin once per join, on the owner");
  assert!(room_events_now(second).is_empty(), "no room hook elsewhere");
  assert!(room_events_now(third).is_empty(), "no room hook elsewhere");

  // Room messages still fan out from every node to its own members' sessions.
  subscribed(&redis, "lobby", 3).await;
  let target = Target::Room {
    name: "lobby",
    except: None,
  };
  let frame = Frame {
    event: "hi",
    payload_json: None,
  };
  assert_eq!(
    third.core.emit(target, frame).expect("emit"),
    1,
    "cid, on this node"
  );
  for client in &mut clients {
    assert_eq!(receive(client).await["data"]["type"], "hi");
  }

  // bob's last session ends: the owner hears the leave (onLeave there), every node sees it.
  drop(clients.remove(1));
  eventually("bob to leave", || async {
    members_through(third, "lobby").await == ["ann", "cid"]
  })
  .await;
  assert_eq!(room_events_now(owner), vec![(7, "bob".to_string())]);
  assert!(room_events_now(second).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_a_rooms_owner_stops_its_members_elsewhere_join_it_again_on_a_new_owner() {
  let redis = Redis::start("room-moves");
  let ([owner, mut second, mut third], clients) = lobby_on_three_nodes(&redis).await;
  eventually("every member to reach the owner", || async {
    members_through(&second, "lobby").await.len() == 3
  })
  .await;
  commit_lobby_state(&owner, b"joins=3");
  eventually("the room's state to reach Redis", || async {
    stored_lobby(&redis.url()).await.is_some()
  })
  .await;
  room_events_now(&second);
  room_events_now(&third);
  drop(owner);

  // The others notice (within a lease renewal period) and send their members' joins again:
  // the room is placed on one of them, which runs onJoin for each.
  eventually("the room to be placed again", || async {
    matches!(
      room_owner(&redis, "lobby").await.as_deref(),
      Some("second" | "third")
    )
  })
  .await;
  eventually("the members left to be listed", || async {
    members_through(&second, "lobby").await == ["bob", "cid"]
      || members_through(&second, "lobby").await == ["cid", "bob"]
  })
  .await;
  let new_owner = match room_owner(&redis, "lobby").await.as_deref() {
    Some("second") => &mut second,
    _ => &mut third,
  };
  let mut joins = room_events_now(new_owner);
  joins.sort();
  assert_eq!(joins, vec![(6, "bob".to_string()), (6, "cid".to_string())]);
  assert_eq!(
    new_owner.core.load_state(LOBBY_STATE),
    Ok(Some(b"joins=3".to_vec())),
    "the room's state as Redis held it"
  );
  drop(clients);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_actors_schedules_move_with_it_and_are_cancelled_where_it_lives_next() {
  let redis = Redis::start("schedule-moves");
  let mut first = quick_node(&redis, "a").await;
  let mut second = quick_node(&redis, "b").await;
  let (client, _, _) = first.open_as("/ws", "ann").await;
  let ids: Vec<String> = [60_000, 61_000]
    .into_iter()
    .map(|ms| {
      first
        .core
        .add_schedule(DefinitionId(0), "ann", in_ms(ms), "later".into(), "{}".into())
        .expect("schedule")
    })
    .collect();
  drop(client);
  eventually("ann to leave node a", || async { first.core.stats().actors == 0 }).await;
  assert_eq!(
    first.core.schedules_json(DefinitionId(0), "ann"),
    "[]",
    "not a's any more"
  );

  // Placed on b next: its schedules come with it, and are cancelled there (in Redis too).
  let (_client, _, _) = second.open_as("/ws", "ann").await;
  let listed: serde_json::Value =
    serde_json::from_str(&second.core.schedules_json(DefinitionId(0), "ann")).expect("list");
  let listed: Vec<&str> = listed
    .as_array()
    .into_iter()
    .flatten()
    .filter_map(|schedule| schedule["id"].as_str())
    .collect();
  assert_eq!(listed, ids);
  let pending = || async {
    let client = redis::Client::open(redis.url()).expect("client");
    let mut connection = client.get_multiplexed_async_connection().await.expect("connect");
    let count: usize = redis::cmd("ZCARD")
      .arg("warren:schedules:14:UserConnection:ann")
      .query_async(&mut connection)
      .await
      .expect("zcard");
    count
  };
  assert_eq!(pending().await, 2);
  assert!(second.core.cancel_schedule(&ids[0]));
  eventually("the cancel to reach Redis", || async { pending().await == 1 }).await;
  assert_eq!(alarms(&redis).await, 1);
  assert!(second.core.cancel_schedule(&ids[1]));
  eventually("the alarm to go", || async { alarms(&redis).await == 0 }).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rooms_owner_runs_on_leave_for_the_members_of_a_node_that_stopped() {
  let redis = Redis::start("room-member-node");
  let mut owner = authenticating_node(&redis, "owner").await;
  let mut other = authenticating_node(&redis, "other").await;
  let _ann = member_as(&mut owner, "ann", "lobby").await;
  placed_on(&redis, "lobby", "owner").await;
  let _bob = member_as(&mut other, "bob", "lobby").await;
  eventually("bob to reach the owner", || async {
    members_through(&owner, "lobby").await == ["ann", "bob"]
  })
  .await;
  drop(other);
  let left = owner.event_tagged(7).await;
  assert_eq!(left[2], "bob");
  assert_eq!(members_through(&owner, "lobby").await, ["ann"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn destroying_a_room_from_any_node_destroys_it_on_its_owner_and_everywhere_it_has_members() {
  let redis = Redis::start("room-destroy");
  let ([mut owner, second, third], _clients) = lobby_on_three_nodes(&redis).await;
  eventually("every member to reach the owner", || async {
    members_through(&owner, "lobby").await.len() == 3
  })
  .await;
  commit_lobby_state(&owner, b"joins=3");
  let state_in_redis = || async { stored_lobby(&redis.url()).await.is_some() };
  eventually("the room's state to reach Redis", state_in_redis).await;
  room_events_now(&owner);

  // Asked on a node that does not own it: the owner destroys it (onLeave for every member
  // there, then onDestroy) and every node drops it from its members' lists.
  third.core.destroy_room("ChatRoom", "lobby");
  let mut left = Vec::new();
  loop {
    let event = tokio::time::timeout(PATIENCE, owner.next_event())
      .await
      .expect("the owner destroys the room");
    match event[0].as_u64() {
      Some(7) => left.push(event[2].as_str().unwrap_or_default().to_string()),
      Some(14) => break,
      _ => {}
    }
  }
  left.sort();
  assert_eq!(
    left,
    ["ann", "bob", "cid"],
    "onLeave for every member, on the owner"
  );
  for server in [&owner, &second, &third] {
    eventually("the room to leave every node", || async {
      server.core.stats().rooms == 0
    })
    .await;
  }
  eventually("the room's state to leave Redis", || async {
    !state_in_redis().await
  })
  .await;
  assert_eq!(room_owner(&redis, "lobby").await, None, "its claim given up");
  assert_eq!(members_through(&second, "lobby").await, Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_the_rooms_owner_a_returning_member_is_back_in_the_room_before_its_session_opens() {
  let redis = Redis::start("room-order");
  let mut owner = authenticating_node(&redis, "owner").await;
  let _ann = member_as(&mut owner, "ann", "lobby").await;
  placed_on(&redis, "lobby", "owner").await;
  let bob_client = member_as(&mut owner, "bob", "lobby").await;
  drop(bob_client);
  owner.event_tagged(7).await;

  // bob comes back: he re-joins the room before JS hears of his session (onConnect), as on
  // one node.
  let connecting = connect_accepted(&mut owner, "/ws", "bob", r#"{"userId":"bob"}"#).await;
  let mut seen = Vec::new();
  loop {
    let event = owner.next_event().await;
    match event[0].as_u64() {
      Some(6) => seen.push(format!("join {}", event[5].as_str().unwrap_or_default())),
      Some(1) => {
        seen.push("open".to_string());
        break;
      }
      _ => {}
    }
  }
  assert_eq!(seen, ["join bob", "open"]);
  drop(connecting.await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_redis_did_not_take_is_written_once_it_answers_and_before_the_actor_moves() {
  let mut redis = Redis::start("unreplicated");
  let mut first = quick_node(&redis, "a").await;
  let of = StateOf::Actor {
    definition: "UserConnection",
    user: "ann",
  };
  let (client, _, _) = first.open_as("/ws", "ann").await;
  first.core.state_changed();
  first
    .core
    .commit_state(vec![(of, Some(b"count=1".to_vec()))])
    .expect("commit");
  eventually("count=1 in Redis", || async {
    stored(&redis, "ann").await.as_deref() == Some(&b"count=1"[..])
  })
  .await;

  let failures = first.core.stats().storage_failures;
  redis
    .restart_after(async {
      // While Redis is down: a change it cannot take (its frames never leave), then the actor
      // leaves node a's memory (its socket closed) and asks to give its claim up.
      first.core.state_changed();
      first
        .core
        .commit_state(vec![(of, Some(b"count=2".to_vec()))])
        .expect("commit");
      eventually("the write-through to fail", || async {
        first.core.stats().storage_failures > failures
      })
      .await;
      drop(client);
      first.event_tagged(5).await;
    })
    .await;

  // Nothing else is committed on node a: the change goes in by itself, then the claim goes.
  eventually("count=2 in Redis and node a's claim given up", || async {
    stored(&redis, "ann").await.as_deref() == Some(&b"count=2"[..])
      && actor_owner(&redis, "ann").await.is_none()
  })
  .await;
  let mut second = quick_node(&redis, "b").await;
  let (_client, _, _) = second.open_as("/ws", "ann").await;
  assert_eq!(second.core.load_state(of), Ok(Some(b"count=2".to_vec())));
}

/// Nodes serving one raw endpoint, `/raw`, whose upgrades the test accepts as a user.
async fn raw_node(redis: &Redis, id: &str) -> Server {
  let config = ServerConfig {
    definitions: vec![warren::config::Definition {
      name: "Raw".into(),
      path: "/raw".into(),
      authenticates: true,
      prefix: false,
      raw: true,
    }],
    ..node_config(redis, id)
  };
  let core = Core::start(config, &tokio::runtime::Handle::current())
    .await
    .unwrap_or_else(|error| panic!("node {id}: {error}"));
  Server::with_core(core)
}

/// The next data message a raw client receives: text or binary, as it came.
async fn next_raw(client: &mut Client) -> tokio_tungstenite::tungstenite::Message {
  use futures_util::StreamExt;
  use tokio_tungstenite::tungstenite::Message;
  loop {
    let message = tokio::time::timeout(PATIENCE, client.next())
      .await
      .unwrap_or_else(|_| panic!("nothing received"));
    match message {
      Some(Ok(message @ (Message::Text(_) | Message::Binary(_) | Message::Close(_)))) => return message,
      Some(Ok(_)) => continue,
      other => panic!("socket ended: {other:?}"),
    }
  }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_raw_session_through_another_node_carries_text_and_bytes_both_ways_and_room_raw_frames_reach_every_node(
) {
  use futures_util::SinkExt;
  use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
  use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};
  use warren::transport::outbox::WireFrame;

  let redis = Redis::start("raw");
  let mut owner = raw_node(&redis, "owner").await;
  let mut gateway = raw_node(&redis, "gateway").await;
  let (mut first, _, actor) = owner.open_as("/raw", "ann").await;
  let (mut bob, _, bob_actor) = gateway.open_as("/raw", "bob").await;

  // ann's second socket lands on the gateway; its session opens on the owner.
  let connecting = connect_accepted(&mut gateway, "/raw", "ann", r#"{"userId":"ann"}"#).await;
  let mut second = tokio::time::timeout(PATIENCE, connecting)
    .await
    .expect("the gateway answers the upgrade")
    .expect("task");
  let open = owner.event_tagged(1).await;
  assert_eq!(open[2].as_u64(), Some(actor), "the same actor");
  let second_session = warren::ids::SessionId(open[1].as_u64().expect("session"));

  // Its messages reach the owner's JS as they are: text as text, binary as bytes (base64 in
  // the event batch).
  second
    .send(Message::Text(Utf8Bytes::from("h\u{e9}llo")))
    .await
    .expect("send");
  let text = owner.event_tagged(17).await;
  assert_eq!(
    (text[1].as_u64(), text[2].as_str()),
    (Some(second_session.get()), Some("h\u{e9}llo"))
  );
  second
    .send(Message::Binary(vec![0, 255, b'\n', b'{'].into()))
    .await
    .expect("send");
  let binary = owner.event_tagged(18).await;
  assert_eq!(
    (binary[1].as_u64(), binary[2].as_str()),
    (Some(second_session.get()), Some("AP8Kew=="))
  );

  // What the owner sends it reaches the client in order, as text or binary.
  let every_byte: Vec<u8> = (0..=255).collect();
  let to_second = warren::registry::Target::Session(second_session);
  let sent = owner
    .core
    .send_raw(to_second, WireFrame::Binary(every_byte.clone().into()));
  assert_eq!(sent, 1);
  owner
    .core
    .send_raw(to_second, WireFrame::RawText(Utf8Bytes::from("after")));
  assert_eq!(next_raw(&mut second).await, Message::Binary(every_byte.into()));
  assert_eq!(
    next_raw(&mut second).await,
    Message::Text(Utf8Bytes::from("after"))
  );

  // A room with ann (owner) and bob (gateway): a raw frame reaches each raw session once, on
  // both nodes; a JSON room event reaches none of them.
  owner
    .core
    .join_room(ActorId(actor), "doc", HandlerId(0), "{}")
    .expect("join");
  gateway
    .core
    .join_room(ActorId(bob_actor), "doc", HandlerId(0), "{}")
    .expect("join");
  subscribed(&redis, "doc", 2).await;
  let doc = Target::Room {
    name: "doc",
    except: None,
  };
  let json = Frame {
    event: "notice",
    payload_json: None,
  };
  assert_eq!(
    owner.core.emit(doc, json).expect("emit"),
    0,
    "no JSON session in the room"
  );
  let update = vec![0xff, 0, b'\n', 7];
  assert_eq!(
    owner.core.send_raw(doc, WireFrame::Binary(update.clone().into())),
    2
  );
  for client in [&mut first, &mut second, &mut bob] {
    assert_eq!(next_raw(client).await, Message::Binary(update.clone().into()));
  }
  let from_gateway = WireFrame::RawText(Utf8Bytes::from("from the gateway"));
  assert_eq!(gateway.core.send_raw(doc, from_gateway), 1);
  for client in [&mut first, &mut second, &mut bob] {
    assert_eq!(
      next_raw(client).await,
      Message::Text(Utf8Bytes::from("from the gateway"))
    );
  }

  // The owner closes the forwarded session: its client gets the code.
  assert_eq!(
    owner.core.close_session(second_session, 4001, "bye", false),
    Ok(true)
  );
  match next_raw(&mut second).await {
    Message::Close(Some(frame)) => {
      assert_eq!(frame.code, CloseCode::from(4001));
      assert_eq!(frame.reason.as_str(), "bye");
    }
    other => panic!("expected a close frame, got {other:?}"),
  }
  // The client answers the close (the handshake ends; the gateway's socket is gone).
  let _ = second.flush().await;
  let close = owner.event_tagged(4).await;
  assert_eq!(
    (close[1].as_u64(), close[2].as_u64()),
    (Some(second_session.get()), Some(4001))
  );
  assert_eq!(
    owner.core.stats().sessions,
    1,
    "nothing left of the forwarded session"
  );
}

/// The lobby memberships `user`'s node stored in Redis for the actor's next joins.
async fn stored_room_list(redis: &Redis, user: &str) -> String {
  let value = redis_get(&redis.url(), &format!("warren:data:l\0UserConnection\0{user}")).await;
  String::from_utf8_lossy(&value.unwrap_or_default()).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_the_rooms_owner_gives_a_member_elsewhere_is_what_it_joins_a_next_owner_with() {
  let redis = Redis::start("room-metadata");
  let ([owner, mut second, mut third], clients) = lobby_on_three_nodes(&redis).await;
  eventually("every member to reach the owner", || async {
    members_through(&second, "lobby").await.len() == 3
  })
  .await;
  // bob's actor lives on node second; the owner changes his metadata.
  assert!(owner.core.set_member_metadata("lobby", "bob", r#"{"seat":2}"#));
  eventually("bob's node to keep it for his joins", || async {
    stored_room_list(&redis, "bob").await.contains(r#""seat":2"#)
  })
  .await;
  room_events_now(&second);
  room_events_now(&third);
  drop(owner);

  eventually("the room to be placed again", || async {
    matches!(
      room_owner(&redis, "lobby").await.as_deref(),
      Some("second" | "third")
    )
  })
  .await;
  let new_owner = match room_owner(&redis, "lobby").await.as_deref() {
    Some("second") => &mut second,
    _ => &mut third,
  };
  eventually(
    "bob to be listed with the metadata the owner gave him",
    || async {
      let json = new_owner.core.room_members_json("lobby");
      let members: serde_json::Value = serde_json::from_str(&json).expect("members JSON");
      members
        .as_array()
        .into_iter()
        .flatten()
        .any(|member| member["userId"] == "bob" && member["metadata"]["seat"] == 2)
    },
  )
  .await;
  drop(clients);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rooms_state_redis_did_not_take_is_written_once_it_answers_and_before_the_room_moves() {
  let mut redis = Redis::start("unreplicated-room");
  let mut node = quick_node(&redis, "a").await;
  let client = member_as(&mut node, "ann", "lobby").await;
  placed_on(&redis, "lobby", "a").await;
  commit_lobby_state(&node, b"joins=1");
  let url = redis.url();
  eventually("joins=1 in Redis", || async {
    stored_lobby(&url).await.as_deref() == Some(&b"joins=1"[..])
  })
  .await;

  let failures = node.core.stats().storage_failures;
  redis
    .restart_after(async {
      // While Redis is down: a change of the room's state it cannot take, then the room leaves
      // node a's memory (its last member gone) and asks to give its claim up.
      commit_lobby_state(&node, b"joins=2");
      eventually("the write-through to fail", || async {
        node.core.stats().storage_failures > failures
      })
      .await;
      drop(client);
      node.event_tagged(8).await;
    })
    .await;

  eventually(
    "joins=2 in Redis and node a's claim on the room given up",
    || async {
      stored_lobby(&url).await.as_deref() == Some(&b"joins=2"[..])
        && room_owner(&redis, "lobby").await.is_none()
    },
  )
  .await;
}
