//! The outbox's bounds, replay buffer and slow-consumer rules, without a socket.

use bytes::Bytes;
use tokio_tungstenite::tungstenite::Utf8Bytes;

use super::*;

#[test]
fn raw_sessions_take_raw_frames_only_and_others_protocol_frames_only() {
  let protocol = WireFrame::from(Utf8Bytes::from("{}"));
  let raw_text = WireFrame::RawText(Utf8Bytes::from("hi"));
  let binary = WireFrame::Binary(Bytes::from_static(&[0, 255]));
  let json = Outbox::new(1024, OverflowPolicy::Close);
  let raw = Outbox::new(1024, OverflowPolicy::Close);
  raw.serve_raw();
  assert!(json.takes(&protocol) && !json.takes(&raw_text) && !json.takes(&binary));
  assert!(!raw.takes(&protocol) && raw.takes(&raw_text) && raw.takes(&binary));
  assert_eq!(binary.len(), 2);
  assert_eq!(binary.as_text(), None);
  assert_eq!(binary.wire(), (0x2, &[0u8, 255][..]));
  assert_eq!(raw_text.wire(), (0x1, &b"hi"[..]));
}

#[tokio::test]
async fn a_burst_over_the_limit_waits_for_a_draining_socket() {
  // Limit 20 wire bytes: each 5-byte frame takes 7.
  let outbox = Outbox::new(20, OverflowPolicy::Close);
  for _ in 0..11 {
    assert_eq!(outbox.push(Utf8Bytes::from("12345")), Pushed::Queued);
  }
  assert_eq!(outbox.unsent(), 77);
  // The socket takes bytes: the watchdog finds no stall.
  outbox.accepted(0, 40);
  assert_eq!(outbox.unsent(), 37);
  let mut frames = VecDeque::new();
  assert_eq!(outbox.take(0, &mut frames).await, Ok(None));
  assert_eq!(frames.len(), 11);
}

#[tokio::test]
async fn a_slow_consumer_is_closed_with_1008_and_its_frames_discarded() {
  let outbox = Outbox::new(20, OverflowPolicy::Close);
  for _ in 0..4 {
    assert_eq!(outbox.push(Utf8Bytes::from("12345")), Pushed::Queued);
  }
  // Under the limit a stall is no verdict.
  let small = Outbox::new(20, OverflowPolicy::Close);
  small.push(Utf8Bytes::from("12345"));
  small.stalled(0);
  assert!(!small.is_closing());
  outbox.stalled(0);
  assert_eq!(outbox.push(Utf8Bytes::from("1")), Pushed::Closed);
  let mut frames = VecDeque::new();
  let close = outbox.take(0, &mut frames).await.ok().flatten();
  assert!(frames.is_empty());
  assert_eq!(close.map(|c| (c.code, c.urgent)), Some((1008, true)));
}

#[tokio::test]
async fn past_the_burst_cap_a_session_is_a_slow_consumer_at_once() {
  let outbox = Outbox::new(20, OverflowPolicy::Close);
  let mut pushed = Vec::new();
  for _ in 0..12 {
    pushed.push(outbox.push(Utf8Bytes::from("12345")));
  }
  // 11 frames are 77 bytes, under 4 × 20; the 12th passes it.
  assert_eq!(pushed[10], Pushed::Queued);
  assert_eq!(pushed[11], Pushed::Overflowed);
}

#[tokio::test]
async fn the_drop_policy_counts_what_it_drops_while_the_socket_stalls() {
  let outbox = Outbox::new(10, OverflowPolicy::Drop);
  assert_eq!(outbox.push(Utf8Bytes::from("1234567890")), Pushed::Queued);
  outbox.stalled(0);
  assert_eq!(outbox.push(Utf8Bytes::from("1")), Pushed::Dropped);
  assert_eq!(outbox.dropped(), 1);
  let mut frames = VecDeque::new();
  assert_eq!(outbox.take(0, &mut frames).await, Ok(None));
  assert_eq!(frames.len(), 1);
  // The socket moves again: frames are queued again.
  outbox.accepted(0, 12);
  assert_eq!(outbox.push(Utf8Bytes::from("1")), Pushed::Queued);
}

#[tokio::test]
async fn a_close_behind_frames_a_stalled_socket_never_takes_goes_first() {
  for policy in [OverflowPolicy::Drop, OverflowPolicy::Close] {
    let outbox = Outbox::new(1 << 20, policy);
    assert_eq!(outbox.push(Utf8Bytes::from("frame")), Pushed::Queued);
    assert!(outbox.request_close(1001, "server shutdown"));
    assert_eq!(outbox.close_request().map(|close| close.urgent), Some(false));
    outbox.stalled(0);
    assert_eq!(outbox.close_request().map(|close| close.urgent), Some(true));
    assert_eq!(outbox.unsent(), 0, "{policy:?}: the frames were given up");
  }
}

#[tokio::test]
async fn frames_held_for_a_flush_count_against_the_budget_until_released() {
  let outbox = Outbox::new(20, OverflowPolicy::Close);
  for _ in 0..11 {
    assert_eq!(outbox.hold(5), Pushed::Queued);
  }
  // 77 bytes reserved: one more passes 4 × 20.
  assert_eq!(outbox.push(Utf8Bytes::from("12345")), Pushed::Overflowed);
  let fresh = Arc::new(Outbox::new(20, OverflowPolicy::Close));
  assert_eq!(fresh.hold(5), Pushed::Queued);
  fresh.release_held(7, Utf8Bytes::from("12345").into());
  assert_eq!(fresh.unsent(), 7);
  let mut frames = VecDeque::new();
  assert_eq!(fresh.take(0, &mut frames).await, Ok(None));
  assert_eq!(frames.front().map(|queued| queued.seq), Some(7));
}

fn texts(frames: &VecDeque<Queued>) -> Vec<String> {
  frames
    .iter()
    .map(|queued| queued.frame.as_text().unwrap_or_default().to_string())
    .collect()
}

#[tokio::test]
async fn a_resumed_socket_gets_what_the_client_missed_in_order() {
  let outbox = Outbox::new(1 << 20, OverflowPolicy::Close);
  outbox.keep_for_replay(1 << 20);
  for seq in 1..=3 {
    outbox.push_numbered(seq, Utf8Bytes::from(format!("f{seq}")));
  }
  outbox.push(Utf8Bytes::from("pong"));
  let mut frames = VecDeque::new();
  assert_eq!(outbox.take(0, &mut frames).await, Ok(None));
  outbox.acknowledge(1);
  outbox.push_numbered(4, Utf8Bytes::from("f4"));
  // The client saw frame 2 before its socket died; 3 was lost on the way, 4 never sent.
  let generation = outbox.resume(2, Utf8Bytes::from("session"));
  assert_eq!(generation, Ok(1));
  assert_eq!(outbox.take(0, &mut frames).await, Err(Superseded));
  assert_eq!(outbox.take(1, &mut frames).await, Ok(None));
  assert_eq!(texts(&frames), ["session", "f3", "f4"]);
}

#[tokio::test]
async fn a_resume_past_the_buffer_limit_is_refused() {
  let outbox = Outbox::new(1 << 20, OverflowPolicy::Close);
  outbox.keep_for_replay(4);
  outbox.push_numbered(1, Utf8Bytes::from("aaa"));
  outbox.push_numbered(2, Utf8Bytes::from("bbb"));
  let mut frames = VecDeque::new();
  assert_eq!(outbox.take(0, &mut frames).await, Ok(None));
  assert_eq!(
    outbox.resume(0, Utf8Bytes::from("s")),
    Err(ResumeRefused::Overflowed)
  );
  assert_eq!(outbox.resume(1, Utf8Bytes::from("s")), Ok(1));
  let plain = Outbox::new(1 << 20, OverflowPolicy::Close);
  assert_eq!(
    plain.resume(0, Utf8Bytes::from("s")),
    Err(ResumeRefused::NotResumable)
  );
}

/// A connected pair of TCP sockets on loopback: (the server's, non-blocking; the client's).
#[cfg(unix)]
fn socket_pair() -> (std::net::TcpStream, std::net::TcpStream) {
  let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
  let client = std::net::TcpStream::connect(listener.local_addr().expect("address")).expect("connect");
  let (server, _) = listener.accept().expect("accept");
  server.set_nonblocking(true).expect("non-blocking");
  (server, client)
}

/// Reads server frames (unmasked) from `client` until `count` have arrived: their payloads.
#[cfg(unix)]
fn read_frames(client: &mut std::net::TcpStream, count: usize) -> Vec<Vec<u8>> {
  use std::io::Read;
  let mut bytes = Vec::new();
  let mut frames = Vec::new();
  let mut buffer = vec![0u8; 1 << 16];
  while frames.len() < count {
    let n = client.read(&mut buffer).expect("read");
    assert!(n > 0, "the socket ended early");
    bytes.extend_from_slice(&buffer[..n]);
    loop {
      if bytes.len() < 2 {
        break;
      }
      let (len, at) = match bytes[1] & 0x7f {
        126 if bytes.len() >= 4 => (usize::from(u16::from_be_bytes([bytes[2], bytes[3]])), 4),
        127 if bytes.len() >= 10 => (
          u64::from_be_bytes(bytes[2..10].try_into().expect("eight bytes")) as usize,
          10,
        ),
        126 | 127 => break,
        short => (usize::from(short), 2),
      };
      if bytes.len() < at + len {
        break;
      }
      frames.push(bytes[at..at + len].to_vec());
      bytes.drain(..at + len);
    }
  }
  frames
}

#[cfg(unix)]
#[tokio::test]
async fn pushes_go_straight_to_a_registered_socket_and_are_counted_for_replay() {
  use std::os::fd::AsRawFd;
  let (server, mut client) = socket_pair();
  let outbox = Outbox::new(1 << 20, OverflowPolicy::Close);
  outbox.keep_for_replay(1 << 20);
  let guard = outbox.write_through(0, server.as_raw_fd());
  assert!(guard.is_some());
  assert_eq!(outbox.push_numbered(1, Utf8Bytes::from("one")), Pushed::Queued);
  assert_eq!(outbox.push(Utf8Bytes::from("two")), Pushed::Queued);
  // Nothing queued: both are in the kernel already.
  assert_eq!(outbox.unsent(), 0);
  assert_eq!(outbox.accepted_total(), 10);
  assert_eq!(read_frames(&mut client, 2), [b"one".to_vec(), b"two".to_vec()]);
  // Kept for a resume like any frame a writer took.
  let generation = outbox.resume(0, Utf8Bytes::from("session"));
  assert_eq!(generation, Ok(1));
  let mut frames = VecDeque::new();
  assert_eq!(outbox.take(1, &mut frames).await, Ok(None));
  assert_eq!(texts(&frames), ["session", "one"]);
  // The resume unregistered the old socket: pushes queue for the new writer.
  assert_eq!(outbox.push(Utf8Bytes::from("three")), Pushed::Queued);
  assert_eq!(outbox.state.lock().frames.len(), 1);
  drop(guard);
}

#[cfg(unix)]
#[tokio::test]
async fn what_the_kernel_refuses_is_queued_after_the_part_it_took() {
  use std::io::Write;
  use std::os::fd::AsRawFd;
  let (mut server, mut client) = socket_pair();
  let outbox = Outbox::new(64 << 20, OverflowPolicy::Close);
  let guard = outbox.write_through(0, server.as_raw_fd());
  let payload = "x".repeat(100_000);
  let mut pushed = 0;
  // The client reads nothing: the kernel's buffers fill, and the rest queues.
  while outbox.unsent() == 0 {
    assert_eq!(outbox.push(Utf8Bytes::from(payload.clone())), Pushed::Queued);
    pushed += 1;
    assert!(pushed < 10_000, "the socket never filled");
  }
  for _ in 0..3 {
    outbox.push(Utf8Bytes::from(payload.clone()));
    pushed += 1;
  }
  let mut frames = VecDeque::new();
  let mut front_written = 0;
  assert_eq!(
    outbox.take_from(0, &mut frames, &mut front_written).await,
    Ok(None)
  );
  assert_eq!(frames.len(), 4);
  // While the writer holds frames, a push queues behind them instead of cutting in.
  outbox.push(Utf8Bytes::from("last"));
  assert_eq!(outbox.state.lock().frames.len(), 1);
  drop(guard);
  // The writer's part, done by hand: the rest of the front frame, then the others.
  let reader = std::thread::spawn(move || read_frames(&mut client, pushed + 1));
  server.set_nonblocking(false).expect("blocking");
  let mut skip = front_written;
  for queued in frames.iter() {
    let (opcode, body) = queued.frame.wire();
    let header = crate::transport::frames::encode::Header::server(opcode, body.len());
    let whole = [header.as_bytes(), body].concat();
    server.write_all(&whole[skip..]).expect("write");
    skip = 0;
  }
  server.write_all(&[0x81, 4]).expect("write");
  server.write_all(b"last").expect("write");
  let received = reader.join().expect("reader");
  assert_eq!(received.len(), pushed + 1);
  assert!(received[..pushed].iter().all(|frame| frame.len() == 100_000));
  assert_eq!(received[pushed], b"last");
}

#[cfg(unix)]
#[tokio::test]
async fn a_corked_thread_writes_each_socket_its_frames_in_one_go_when_it_uncorks() {
  use std::os::fd::AsRawFd;
  let (server, mut client) = socket_pair();
  let outbox = Arc::new(Outbox::new(1 << 20, OverflowPolicy::Close));
  outbox.keep_for_replay(1 << 20);
  let _guard = outbox.write_through(0, server.as_raw_fd());
  corked(|| {
    for seq in 1..=3 {
      assert_eq!(
        outbox.push_shared(seq, Utf8Bytes::from(format!("f{seq}")).into()),
        Pushed::Queued
      );
    }
    // Nothing left yet: the frames wait for the end of the cork.
    assert_eq!(outbox.state.lock().frames.len(), 3);
    assert_eq!(outbox.accepted_total(), 0);
  });
  assert_eq!(outbox.unsent(), 0);
  assert_eq!(outbox.accepted_total(), 12);
  assert_eq!(
    read_frames(&mut client, 3),
    [b"f1".to_vec(), b"f2".to_vec(), b"f3".to_vec()]
  );
  // Counted for replay as they left.
  assert_eq!(outbox.resume(1, Utf8Bytes::from("s")), Ok(1));
  let mut frames = VecDeque::new();
  assert_eq!(outbox.take(1, &mut frames).await, Ok(None));
  assert_eq!(texts(&frames), ["s", "f2", "f3"]);
}
