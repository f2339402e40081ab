//! Cluster mode end to end: a real `redis-server` (AOF always, in a temp directory) and three
//! nodes, each a real core listening on its own port, with real WebSocket clients.

mod common;

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{receive, temp_dir, Client, Server, PATIENCE};
use warren::config::{ClusterConfig, Durability, ServerConfig};
use warren::core::{Core, Frame};
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
    let child = Command::new("redis-server")
      .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", ""])
      .args(["--appendonly", "yes", "--appendfsync", "always"])
      .arg("--dir")
      .arg(&dir)
      .stdout(Stdio::null())
      .spawn()
      .expect("redis-server must be installed (apt-get install redis-server)");
    let redis = Self { child, port, dir };
    let deadline = std::time::Instant::now() + PATIENCE;
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
      assert!(std::time::Instant::now() < deadline, "redis-server did not start");
      std::thread::sleep(Duration::from_millis(10));
    }
    redis
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
  let mut connection = client.get_multiplexed_async_connection().await.expect("connect");
  let channel = format!("warren:room:{room}");
  let deadline = tokio::time::Instant::now() + PATIENCE;
  loop {
    let counts: Vec<(String, usize)> = redis::cmd("PUBSUB")
      .arg("NUMSUB")
      .arg(&channel)
      .query_async(&mut connection)
      .await
      .expect("numsub");
    if counts.first().is_some_and(|(_, count)| *count >= nodes) {
      return;
    }
    assert!(
      tokio::time::Instant::now() < deadline,
      "nodes did not subscribe to {room}"
    );
    tokio::time::sleep(Duration::from_millis(5)).await;
  }
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
