//! Backpressure end to end: a burst to a client that reads is delivered whatever the
//! limit, a client that stopped reading is still closed with 1008, and a sweep of timeouts for
//! thousands of calls reaches the caller.

mod common;

use std::time::Duration;

use common::{config, send, Client, Server, PATIENCE};
use futures_util::StreamExt;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use warren::config::ServerConfig;
use warren::core::Frame;
use warren::ids::SessionId;
use warren::registry::Target;

const CLOSE: u64 = 4;

/// Reads text frames until `count` arrived (true) or the socket ended or stalled (false).
async fn read_frames(client: &mut Client, count: usize, mut each: impl FnMut(Value)) -> bool {
  for _ in 0..count {
    loop {
      match tokio::time::timeout(PATIENCE, client.next()).await {
        Ok(Some(Ok(Message::Text(text)))) => {
          each(serde_json::from_str(text.as_str()).unwrap_or(Value::Null));
          break;
        }
        Ok(Some(Ok(_))) => continue,
        _ => return false,
      }
    }
  }
  true
}

// One thread: the session's writer cannot run while the burst is emitted, as when a JS tick
// hands its frames over in one call.
#[tokio::test(flavor = "current_thread")]
async fn a_burst_of_2_mib_in_one_tick_reaches_a_client_that_reads() {
  let mut server = Server::start(config(false));
  let pad = "x".repeat(4000);
  let payload = format!(r#"{{"pad":"{pad}"}}"#);
  // 2 MiB of frames per round, emitted without yielding: one JS tick's worth.
  let frames = (2 << 20) / payload.len();
  let mut delivered = 0;
  for _ in 0..10 {
    let (mut client, session, _) = server.open("/ws").await;
    for _ in 0..frames {
      let frame = Frame {
        event: "tick",
        payload_json: Some(&payload),
      };
      server
        .core
        .emit(Target::Session(SessionId(session)), frame)
        .expect("emit");
    }
    if read_frames(&mut client, frames, |_| {}).await {
      delivered += 1;
    }
  }
  assert_eq!(
    delivered, 10,
    "2 MiB bursts delivered to a reading client: {delivered}/10"
  );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stopped_reading_is_closed_with_1008() {
  let mut server = Server::start(config(false));
  let mut stalled = TcpStream::connect(("127.0.0.1", server.port))
    .await
    .expect("connect");
  let request = "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";
  stalled.write_all(request.as_bytes()).await.expect("write");
  let mut head = [0u8; 12];
  stalled.read_exact(&mut head).await.expect("101");
  assert_eq!(&head, b"HTTP/1.1 101");
  let open = server.event_tagged(1).await;
  let session = SessionId(open[1].as_u64().expect("session"));
  let payload = format!(r#"{{"pad":"{}"}}"#, "x".repeat(4000));
  let core = server.core.clone();
  // Keep sending to it (256 KiB every 50 ms) until it is cut; it never reads.
  let sender = tokio::spawn(async move {
    loop {
      for _ in 0..64 {
        let frame = Frame {
          event: "tick",
          payload_json: Some(&payload),
        };
        if core.emit(Target::Session(session), frame).expect("emit") == 0 {
          return;
        }
      }
      tokio::time::sleep(Duration::from_millis(50)).await;
    }
  });
  let close = server.event_tagged(CLOSE).await;
  assert_eq!(close[2], 1008);
  assert_eq!(close[3], "slow consumer");
  sender.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_calls_that_time_out_together_each_get_one_timeout_reply() {
  let config = ServerConfig {
    call_timeout: Duration::from_millis(300),
    ..config(false)
  };
  let mut server = Server::start(config);
  let (mut client, _, _) = server.open("/ws").await;
  let js = server.discard_events();
  const CALLS: usize = 10_000;
  for id in 0..CALLS {
    send(
      &mut client,
      &format!(r#"{{"type":"call","id":{id},"event":"slow","data":{{}}}}"#),
    )
    .await;
  }
  // Nobody answers: every call times out, most of them in one sweep.
  let mut replies = vec![0u32; CALLS];
  let mut timeouts = 0;
  let complete = read_frames(&mut client, CALLS, |reply| {
    if let Some(slot) = reply["id"].as_u64().and_then(|id| replies.get_mut(id as usize)) {
      *slot += 1;
    }
    if reply["error"]["code"] == "timeout" {
      timeouts += 1;
    }
  })
  .await;
  let answered = replies.iter().filter(|count| **count == 1).count();
  assert!(complete, "the socket ended after {answered} of {CALLS} replies");
  assert_eq!(answered, CALLS, "calls with exactly one reply");
  assert_eq!(timeouts, CALLS);
  js.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_held_behind_the_output_gate_count_against_the_sessions_budget() {
  let mut server = Server::strict_on_disk("held-budget");
  let (_client, session, _) = server.open("/ws").await;
  // A change that is never committed: every frame from now on waits for a flush.
  server.core.state_changed();
  let payload = format!(r#"{{"pad":"{}"}}"#, "x".repeat(4000));
  let frames = (10 << 20) / payload.len();
  let mut taken = 0;
  for _ in 0..frames {
    let frame = Frame {
      event: "tick",
      payload_json: Some(&payload),
    };
    taken += server
      .core
      .emit(Target::Session(SessionId(session)), frame)
      .expect("emit");
  }
  let held = server.core.stats().held_frames;
  // 4 × maxBackpressure (1 MiB) is about 1,040 frames of 4 KiB.
  assert!(
    held <= 1100,
    "frames held for one session: {held} of {frames} ({taken} taken)"
  );
  let close = server.event_tagged(CLOSE).await;
  assert_eq!(close[2], 1008);
  assert_eq!(close[3], "slow consumer");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_frame_larger_than_max_backpressure_reaches_a_client_that_reads() {
  let mut server = Server::start(config(false));
  let (mut client, session, _) = server.open("/ws").await;
  let payload = format!(r#"{{"pad":"{}"}}"#, "x".repeat(3 << 19));
  let frame = Frame {
    event: "big",
    payload_json: Some(&payload),
  };
  let reached = server
    .core
    .emit(Target::Session(SessionId(session)), frame)
    .expect("emit");
  assert_eq!(reached, 1);
  let mut size = 0;
  assert!(
    read_frames(&mut client, 1, |frame| size =
      frame["data"]["pad"].as_str().map_or(0, str::len))
    .await
  );
  assert_eq!(size, 3 << 19);
}
