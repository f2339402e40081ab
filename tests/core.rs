//! End-to-end tests of the native core: a real server on 127.0.0.1:0, real WebSocket clients,
//! and the test standing in for the JS thread (it takes the event batches and answers through
//! the same `Core` methods the bindings call).

mod common;

use common::{as_u64, config, receive, send, Server};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use warren::core::{Decision, Frame};
use warren::durability::records::StateOf;
use warren::ids::{ActorId, DefinitionId, HandlerId, RequestId, SessionId};
use warren::registry::Target;

/// Tags of the event batch (see `src/events.rs`).
mod tag {
  pub const UPGRADE: u64 = 0;
  pub const MESSAGE: u64 = 2;
  pub const CALL: u64 = 3;
  pub const HIBERNATE: u64 = 11;
}

fn frame<'a>(event: &'a str, payload_json: &'a str) -> Frame<'a> {
  Frame {
    event,
    payload_json: Some(payload_json),
  }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgrade_waits_for_extract_meta_and_a_refusal_is_plain_http() {
  let mut server = Server::start(config(true));
  let port = server.port;
  let refused = tokio::spawn(async move {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await.expect("connect");
    let request = "GET /ws?token=bad HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.expect("read");
    answer
  });
  let upgrade = server.event_tagged(tag::UPGRADE).await;
  assert_eq!(upgrade[3], "/ws?token=bad");
  assert_eq!(upgrade[5]["host"], "x");
  let decision = Decision::Reject {
    status: 401,
    message: "bad token".into(),
    code: Some("bad_token".into()),
  };
  assert!(server
    .core
    .decide_upgrade(RequestId(as_u64(&upgrade[1])), decision));
  let answer = refused.await.expect("client");
  assert!(answer.starts_with("HTTP/1.1 401 Unauthorized"), "{answer}");
  assert!(
    answer.ends_with(r#"{"code":"bad_token","error":"bad token"}"#),
    "{answer}"
  );
  assert_eq!(server.core.stats().sessions, 0);

  let (_client, _, _) = server.open_as("/ws?token=ann", "ann").await;
  assert_eq!(server.core.stats().sessions, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_events_reach_the_batch_as_they_were_sent_and_calls_get_one_reply() {
  let mut server = Server::start(config(false));
  let (mut client, session, _) = server.open("/ws").await;
  send(
    &mut client,
    r#"{"type":"chat.message","data":{"text":"hi","n":[1,2]}}"#,
  )
  .await;
  let message = server.event_tagged(tag::MESSAGE).await;
  assert_eq!(
    message,
    json!([2, session, "chat.message", { "text": "hi", "n": [1, 2] }])
  );

  send(
    &mut client,
    r#"{"type":"call","id":7,"event":"count.get","data":{}}"#,
  )
  .await;
  let call = server.event_tagged(tag::CALL).await;
  assert_eq!(call, json!([3, session, 7, "count.get", {}]));
  assert!(server.core.reply(SessionId(session), 7, Some("42")));
  assert!(
    !server.core.reply(SessionId(session), 7, Some("43")),
    "a second answer is refused"
  );
  let reply = receive(&mut client).await;
  assert_eq!(reply["type"], "reply");
  assert_eq!(reply["id"], 7);
  assert_eq!(reply["data"], 42);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_message_reaches_every_session_of_every_member_once() {
  let mut server = Server::start(config(false));
  let mut clients = Vec::new();
  for _ in 0..50 {
    let (client, _, actor) = server.open("/ws").await;
    assert_eq!(
      server.core.join_room(ActorId(actor), "lobby", HandlerId(0), "{}"),
      Ok(true)
    );
    clients.push(client);
  }
  let reached = server
    .core
    .emit(
      Target::Room {
        name: "lobby",
        except: None,
      },
      frame("news", r#"{"n":1}"#),
    )
    .expect("emit");
  assert_eq!(reached, 50);
  for client in &mut clients {
    let news = receive(client).await;
    assert_eq!(news["data"], json!({ "type": "news", "n": 1 }));
  }
  let members: serde_json::Value =
    serde_json::from_str(&server.core.room_members_json("lobby")).expect("json");
  assert_eq!(members.as_array().map(Vec::len), Some(50));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_output_gate_holds_a_frame_until_the_state_before_it_is_on_disk() {
  let mut server = Server::strict_on_disk("gate");
  let (mut client, session, _) = server.open("/ws").await;
  server.core.state_changed();
  let sent = server
    .core
    .emit(
      Target::Session(SessionId(session)),
      frame("saved", r#"{"count":1}"#),
    )
    .expect("emit");
  assert_eq!(sent, 1);
  assert_eq!(
    server.core.stats().held_frames,
    1,
    "held until the commit is flushed"
  );
  let of = commit_state_of_u(&server, b"count=1");
  let saved = receive(&mut client).await;
  assert_eq!(saved["data"]["count"], 1);
  assert_eq!(server.core.stats().held_frames, 0);
  assert_eq!(server.core.load_state(of), Ok(Some(b"count=1".to_vec())));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tick_of_frames_goes_out_in_order_and_waits_as_one_behind_an_unflushed_change() {
  let mut server = Server::strict_on_disk("batch");
  let (mut a, one, _) = server.open("/ws").await;
  let (mut b, two, _) = server.open("/ws").await;
  let line = |session: u64, n: u64| format!("e\t{session}\t\"n\"\t{{\"n\":{n}}}");
  let tick = [line(one, 1), line(two, 2), line(one, 3), line(99, 0)].join("\n");
  assert_eq!(
    server.core.send_batch(&tick).expect("batch"),
    3,
    "the unknown session gets none"
  );
  assert_eq!(receive(&mut a).await["data"]["n"], 1);
  assert_eq!(receive(&mut a).await["data"]["n"], 3);
  assert_eq!(receive(&mut b).await["data"]["n"], 2);

  server.core.state_changed();
  let tick = [line(one, 4), line(two, 5), line(one, 6)].join("\n");
  assert_eq!(server.core.send_batch(&tick).expect("batch"), 3);
  assert_eq!(
    server.core.stats().held_frames,
    3,
    "held until the commit is flushed"
  );
  commit_state_of_u(&server, b"n=6");
  assert_eq!(receive(&mut a).await["data"]["n"], 4);
  assert_eq!(receive(&mut a).await["data"]["n"], 6);
  assert_eq!(receive(&mut b).await["data"]["n"], 5);
  assert_eq!(server.core.stats().held_frames, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_client_resumes_and_gets_what_it_missed_in_order() {
  let mut server = Server::start(config(false));
  let (mut client, session, _) = server.open("/ws?_resume=").await;
  let first = receive(&mut client).await;
  assert_eq!(first["type"], "session");
  assert_eq!(first["resumed"], false);
  let token = first["token"].as_str().expect("token").to_string();
  let to_session = || Target::Session(SessionId(session));
  for n in 1..=2 {
    server
      .core
      .emit(to_session(), frame("n", &format!(r#"{{"n":{n}}}"#)))
      .expect("emit");
  }
  let one = receive(&mut client).await;
  assert_eq!(one["data"]["n"], 1);
  let seen = as_u64(&one["seq"]);
  // The network goes away: no close frame.
  drop(client);
  while server.core.stats().detached == 0 {
    tokio::task::yield_now().await;
  }
  server
    .core
    .emit(to_session(), frame("n", r#"{"n":3}"#))
    .expect("emit");
  let path = format!("/ws?_resume={token}&_lastSeq={seen}");
  let mut again = server.connect(&path).await;
  let resumed = receive(&mut again).await;
  assert_eq!(resumed["type"], "session");
  assert_eq!(resumed["resumed"], true);
  for n in 2..=3 {
    let frame = receive(&mut again).await;
    assert_eq!(frame["data"]["n"], n);
    assert_eq!(as_u64(&frame["seq"]), seen + n - 1);
  }
  assert_eq!(server.core.stats().sessions, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pings_are_answered_while_the_js_thread_takes_nothing() {
  let mut server = Server::start(config(false));
  let (mut client, _, _) = server.open("/ws").await;
  // JS is busy: nobody takes the batch these events land in.
  for n in 0..10 {
    send(&mut client, &format!(r#"{{"type":"work","data":{{"n":{n}}}}}"#)).await;
  }
  send(&mut client, r#"{"type":"ping"}"#).await;
  assert_eq!(receive(&mut client).await, json!({ "type": "pong" }));
  let work = server.event_tagged(tag::MESSAGE).await;
  assert_eq!(work[3]["n"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hibernated_actor_keeps_its_socket_and_wakes_before_its_next_event() {
  let mut server = Server::start(config(true));
  let (mut client, session, actor) = server.open_as("/ws", "ann").await;
  server
    .core
    .join_room(ActorId(actor), "lobby", HandlerId(0), "{}")
    .expect("join");

  assert!(server.core.hibernate(DefinitionId(0), "ann"));
  assert_eq!(server.event_tagged(tag::HIBERNATE).await, json!([11, actor]));
  assert_eq!(server.core.stats().hibernated, 1);
  // Room messages still reach it, and pings are answered, without waking it.
  let room = Target::Room {
    name: "lobby",
    except: None,
  };
  assert_eq!(server.core.emit(room, frame("news", "{}")).expect("emit"), 1);
  assert_eq!(receive(&mut client).await["data"]["type"], "news");
  send(&mut client, r#"{"type":"ping"}"#).await;
  assert_eq!(receive(&mut client).await, json!({ "type": "pong" }));
  assert_eq!(server.core.stats().hibernated, 1);

  send(&mut client, r#"{"type":"hello"}"#).await;
  let wake = server.next_event().await;
  assert_eq!(
    wake,
    json!([10, actor, 0, "ann", [[session, { "userId": "ann" }]]])
  );
  assert_eq!(server.next_event().await, json!([2, session, "hello", null]));
  assert_eq!(server.core.stats().hibernated, 0);
}

/// Commits `state` as the state of user "u"'s connection actor; returns which state it is.
fn commit_state_of_u(server: &Server, state: &[u8]) -> StateOf<'static> {
  let of = StateOf::Actor {
    definition: "UserConnection",
    user: "u",
  };
  server
    .core
    .commit_state(vec![(of, Some(state.to_vec()))])
    .expect("commit");
  of
}
