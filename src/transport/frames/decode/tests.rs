//! The decoder against hand-built client frames: messages, cuts, and every rule a client can
//! break.

use super::super::encode::frame;
use super::*;

const MASK: Option<[u8; 4]> = Some([0x37, 0xfa, 0x21, 0x3d]);

/// What was delivered, owned.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Got {
  Text(String),
  Binary(Vec<u8>),
  Ping(Vec<u8>),
  Close(Option<(u16, String)>),
}

fn record(got: &mut Vec<Got>) -> impl FnMut(Inbound<'_>) + '_ {
  |inbound| {
    got.push(match inbound {
      Inbound::Text(text) => Got::Text(text.into()),
      Inbound::Binary(data) => Got::Binary(data.into()),
      Inbound::Ping(data) => Got::Ping(data.into()),
      Inbound::Close(close) => Got::Close(close.map(|c| (c.code, c.reason.into()))),
    })
  }
}

/// Feeds `stream` in pieces of `piece` bytes.
fn decode(stream: &[u8], piece: usize) -> (Vec<Got>, Result<(), Violation>) {
  let mut decoder = Decoder::new(1 << 20, 8);
  let mut got = Vec::new();
  let mut result = Ok(());
  let mut deliver = record(&mut got);
  for chunk in stream.chunks(piece.max(1)) {
    let mut chunk = chunk.to_vec();
    result = decoder.feed(&mut chunk, &mut deliver);
    if result.is_err() {
      break;
    }
  }
  drop(deliver);
  (got, result)
}

fn client(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
  frame(fin, opcode, payload, MASK)
}

#[test]
fn messages_come_out_the_same_however_the_stream_is_cut() {
  let mut stream = client(true, OP_TEXT, "héllo".as_bytes());
  stream.extend(client(true, OP_BINARY, &[0, 1, 2, 255]));
  stream.extend(client(
    false,
    OP_TEXT,
    "é".as_bytes().get(..1).unwrap_or_default(),
  ));
  stream.extend(client(true, OP_PING, b"are you there"));
  stream.extend(client(
    false,
    OP_CONTINUATION,
    "é".as_bytes().get(1..).unwrap_or_default(),
  ));
  stream.extend(client(true, OP_CONTINUATION, &vec![b'x'; 70_000]));
  stream.extend(client(true, OP_PONG, b"ignored"));
  stream.extend(client(true, OP_TEXT, b""));
  stream.extend(client(true, OP_CLOSE, &[0x03, 0xe8, b'o', b'k']));
  stream.extend(client(true, OP_TEXT, b"after the close"));
  let expected = vec![
    Got::Text("héllo".into()),
    Got::Binary(vec![0, 1, 2, 255]),
    Got::Ping(b"are you there".to_vec()),
    Got::Text(format!("é{}", "x".repeat(70_000))),
    Got::Text(String::new()),
    Got::Close(Some((1000, "ok".into()))),
  ];
  for piece in [1, 2, 3, 5, 7, 13, 64, 1000, stream.len()] {
    assert_eq!(
      decode(&stream, piece),
      (expected.clone(), Ok(())),
      "pieces of {piece}"
    );
  }
}

#[test]
fn a_decoder_between_messages_holds_nothing() {
  let mut decoder = Decoder::new(1 << 20, 8);
  let mut stream = client(false, OP_TEXT, b"ab");
  stream.extend(client(true, OP_CONTINUATION, b"cd"));
  let (first, second) = stream.split_at_mut(5);
  let mut ignore = |_: Inbound<'_>| {};
  assert_eq!(decoder.feed(first, &mut ignore), Ok(()));
  assert!(!decoder.is_idle());
  assert_eq!(decoder.feed(second, &mut ignore), Ok(()));
  assert!(decoder.is_idle());
}

fn violation(stream: &[u8]) -> Option<Violation> {
  decode(stream, stream.len()).1.err()
}

#[test]
fn framing_errors_close_with_1002() {
  let unmasked = frame(true, OP_TEXT, b"hi", None);
  let mut rsv = client(true, OP_TEXT, b"hi");
  rsv[0] |= 0x40;
  let reserved_data = client(true, 0x3, b"");
  let reserved_control = client(true, 0xB, b"");
  let long_ping = client(true, OP_PING, &[0; 126]);
  let fragmented_ping = client(false, OP_PING, b"x");
  let lone_continuation = client(true, OP_CONTINUATION, b"x");
  let mut nested = client(false, OP_TEXT, b"a");
  nested.extend(client(true, OP_TEXT, b"b"));
  let short_close = client(true, OP_CLOSE, &[3]);
  for stream in [
    unmasked,
    rsv,
    reserved_data,
    reserved_control,
    long_ping,
    fragmented_ping,
    lone_continuation,
    nested,
    short_close,
  ] {
    assert_eq!(violation(&stream), Some(PROTOCOL_ERROR), "{stream:02x?}");
  }
}

#[test]
fn close_codes_follow_rfc_6455() {
  for code in [0u16, 999, 1004, 1005, 1006, 1015, 1016, 2000, 2999, 5000, 65535] {
    let stream = client(true, OP_CLOSE, &code.to_be_bytes());
    assert_eq!(violation(&stream), Some(PROTOCOL_ERROR), "code {code}");
  }
  for code in [
    1000u16, 1001, 1002, 1003, 1007, 1011, 1014, 3000, 3999, 4000, 4999,
  ] {
    let stream = client(true, OP_CLOSE, &code.to_be_bytes());
    assert_eq!(decode(&stream, 1).0, [Got::Close(Some((code, String::new())))]);
  }
  let bad_reason = client(true, OP_CLOSE, &[0x03, 0xe8, 0xff]);
  assert_eq!(violation(&bad_reason), Some(INVALID_UTF8));
  assert_eq!(decode(&client(true, OP_CLOSE, b""), 1).0, [Got::Close(None)]);
}

#[test]
fn text_that_is_not_utf8_closes_with_1007_as_soon_as_it_shows() {
  assert_eq!(
    violation(&client(true, OP_TEXT, &[0xc3, 0x28])),
    Some(INVALID_UTF8)
  );
  // The first fragment already cannot be UTF-8: refused before the rest arrives.
  let first = client(false, OP_TEXT, &[b'a', 0xff]);
  assert_eq!(violation(&first), Some(INVALID_UTF8));
  // A character cut between fragments is fine; one never completed is not.
  let mut cut = client(false, OP_TEXT, &[0xe2, 0x82]);
  assert_eq!(violation(&cut), None);
  cut.extend(client(true, OP_CONTINUATION, b""));
  assert_eq!(violation(&cut), Some(INVALID_UTF8));
  // Binary messages are never checked.
  assert_eq!(violation(&client(true, OP_BINARY, &[0xff])), None);
}

#[test]
fn a_message_over_max_payload_is_refused_from_its_header() {
  let mut decoder = Decoder::new(100, 8);
  let mut ignore = |_: Inbound<'_>| {};
  // Only the header of a frame declaring 2^62 bytes: nothing is buffered.
  let mut header = vec![0x82, 0xff, 0x40, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4];
  assert_eq!(decoder.feed(&mut header, &mut ignore), Err(TOO_BIG));
  // Fragments adding up past the limit.
  let mut decoder = Decoder::new(100, 8);
  let mut stream = client(false, OP_BINARY, &[0; 60]);
  stream.extend(client(true, OP_CONTINUATION, &[0; 41]));
  assert_eq!(decoder.feed(&mut stream, &mut ignore), Err(TOO_BIG));
  let mut decoder = Decoder::new(100, 8);
  let mut exact = client(true, OP_BINARY, &[0; 100]);
  assert_eq!(decoder.feed(&mut exact, &mut ignore), Ok(()));
}

#[test]
fn a_message_over_max_fragments_is_refused_and_pings_between_do_not_count() {
  let message = |parts: usize| {
    let mut stream = Vec::new();
    for i in 0..parts {
      let opcode = if i == 0 { OP_TEXT } else { OP_CONTINUATION };
      stream.extend(client(i + 1 == parts, opcode, b"a"));
      stream.extend(client(true, OP_PING, b""));
    }
    stream
  };
  let (got, result) = decode(&message(8), 3);
  assert_eq!(result, Ok(()));
  assert!(got.contains(&Got::Text("a".repeat(8))));
  assert_eq!(got.len(), 9);
  assert_eq!(decode(&message(9), 3).1, Err(TOO_MANY_FRAGMENTS));
  // Each message counts apart.
  let mut two = message(8);
  two.extend(message(8));
  assert_eq!(decode(&two, 1000).1, Ok(()));
}
