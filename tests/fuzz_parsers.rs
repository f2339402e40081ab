//! Property tests of every parser that reads what a client (or JS) sends: the HTTP request head
//! and its routing, client frames, the outgoing frame batch, percent-decoding, the fragment
//! counter's frame headers, and the base64 that carries binary messages to JS.
//!
//! Each property runs `PROPTEST_CASES` cases (proptest's default, 256, in `cargo test`); a long
//! run sets it high, e.g. `PROPTEST_CASES=2000000 cargo test --release --test fuzz_parsers`.
//! The properties: nothing panics on any input, and what is accepted means what was sent.

use proptest::prelude::*;
use warren::config::Definition;
use warren::json::{push_base64, push_string};
use warren::msgpack::{json_to_msgpack, msgpack_to_json, MsgpackError};
use warren::protocol::{encoded_event_frame, parse_client_frame, parse_outgoing, ClientFrame, Outgoing};
use warren::transport::frames::decode::{Decoder, Inbound, Violation};
use warren::transport::frames::encode::frame;
use warren::transport::http::{percent_decode, read_head, route, Route};

fn definitions() -> Vec<Definition> {
  vec![
    Definition {
      name: "C".into(),
      path: "/ws".into(),
      authenticates: false,
      prefix: false,
      raw: false,
    },
    Definition {
      name: "A".into(),
      path: "/actors/a/".into(),
      authenticates: false,
      prefix: true,
      raw: true,
    },
  ]
}

/// Reads a head from `bytes` delivered in reads of the given sizes.
fn parse_head(bytes: &[u8]) -> Option<warren::transport::http::RequestHead> {
  let runtime = tokio::runtime::Builder::new_current_thread().build().ok()?;
  let mut input = bytes;
  runtime.block_on(read_head(&mut input)).ok()
}

/// Bytes shaped like a request head, often enough valid to reach routing.
fn head_bytes() -> impl Strategy<Value = Vec<u8>> {
  let method = prop_oneof![
    Just("GET".to_string()),
    Just("DELETE".to_string()),
    Just("HEAD".to_string()),
    "[A-Z]{0,6}"
  ];
  let path = prop_oneof![
    Just("/ws".to_string()),
    Just("/healthz".to_string()),
    "/actors/a/[a-z%0-9]{0,6}",
    "/actors/[a-z%/]{0,8}",
    "/[ -~]{0,20}",
  ];
  let query = prop_oneof![
    Just(String::new()),
    "\\?[a-z_=&%0-9A-Z]{0,30}",
    Just("?_resume=t&_lastSeq=9".to_string()),
    Just("?encoding=msgpack".to_string()),
    "\\?encoding=[a-z%0-9]{0,8}",
  ];
  let header = prop_oneof![
    Just("Upgrade: websocket".to_string()),
    Just("Connection: Upgrade".to_string()),
    Just("Sec-WebSocket-Version: 13".to_string()),
    Just("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==".to_string()),
    Just("Authorization: Bearer secret".to_string()),
    "[A-Za-z-]{1,12}: [ -~]{0,24}",
  ];
  (
    method,
    path,
    query,
    proptest::collection::vec(header, 0..8),
    any::<bool>(),
    proptest::collection::vec(any::<u8>(), 0..16),
  )
    .prop_map(|(method, path, query, headers, terminated, tail)| {
      let mut out = format!("{method} {path}{query} HTTP/1.1\r\n").into_bytes();
      for header in headers {
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(b"\r\n");
      }
      if terminated {
        out.extend_from_slice(b"\r\n");
      }
      out.extend(tail);
      out
    })
}

/// JSON-ish text, often valid, to reach every branch of the client-frame parser.
fn frame_text() -> impl Strategy<Value = String> {
  let value = prop_oneof![
    Just("null".to_string()),
    Just("{}".to_string()),
    "-?[0-9]{1,20}(\\.[0-9])?",
    "\"[ -~]{0,10}\"",
    "\\{\"[a-z]{1,4}\":[0-9]{1,3}\\}",
    "[\\[\\]{}\",:0-9a-z\\\\ ]{0,12}",
  ];
  let key = prop_oneof![
    Just("type".to_string()),
    Just("data".to_string()),
    Just("id".to_string()),
    Just("event".to_string()),
    Just("ack".to_string()),
    "[a-z]{1,5}"
  ];
  prop_oneof![
    proptest::collection::vec((key, value), 0..6).prop_map(|members| {
      let body: Vec<String> = members.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
      format!("{{{}}}", body.join(","))
    }),
    ".{0,40}",
  ]
}

proptest! {
  #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]

  #[test]
  fn request_heads_never_panic_and_route_consistently(bytes in head_bytes(), admin in any::<bool>()) {
    if let Some(head) = parse_head(&bytes) {
      let _ = head.path();
      let _ = head.query("_resume");
      let _ = head.resume_request();
      let _ = head.merged_headers();
      let token = admin.then_some("secret");
      let first = route(&head, &definitions(), true, token);
      // The decision depends on the head alone.
      let again = route(&head, &definitions(), true, token);
      prop_assert_eq!(format!("{first:?}"), format!("{again:?}"));
      if let Route::Upgrade { definition, .. } = first {
        prop_assert!(definition.get() < 2);
        prop_assert_eq!(head.method.as_str(), "GET");
      }
    }
  }

  #[test]
  fn arbitrary_bytes_as_a_head_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
    if let Some(head) = parse_head(&bytes) {
      let _ = route(&head, &definitions(), false, Some("t"));
      let _ = head.resume_request();
    }
  }

  #[test]
  fn percent_decoding_undoes_encoding(text in "\\PC{0,24}", junk in "[%0-9a-zA-Z]{0,12}") {
    let encoded: String = percent_encoding::utf8_percent_encode(&text, percent_encoding::NON_ALPHANUMERIC).to_string();
    prop_assert_eq!(percent_decode(&encoded), Some(text));
    let _ = percent_decode(&junk);
  }

  #[test]
  fn client_frames_parse_to_what_was_sent(text in frame_text()) {
    match parse_client_frame(&text) {
      Ok(ClientFrame::Event { kind, data }) => {
        // The raw tokens are slices of valid JSON: the type a string, the data any value.
        prop_assert!(serde_json::from_str::<String>(kind).is_ok());
        if let Some(data) = data {
          prop_assert!(serde_json::from_str::<serde_json::Value>(data).is_ok());
        }
      }
      Ok(ClientFrame::Call { id, event, .. }) => {
        prop_assert!(id <= warren::protocol::MAX_CALL_ID);
        prop_assert!(serde_json::from_str::<String>(event).is_ok());
      }
      Ok(ClientFrame::Ping { .. }) | Err(_) => {}
    }
  }

  #[test]
  fn an_event_frame_round_trips_through_the_parser(kind in "\\PC{0,12}", n in any::<i32>()) {
    let mut kind_json = String::new();
    push_string(&mut kind_json, &kind);
    let text = format!(r#"{{"type":{kind_json},"data":{{"n":{n}}}}}"#);
    let parsed = parse_client_frame(&text);
    if kind == "ping" || kind == "call" {
      let is_event = matches!(parsed, Ok(ClientFrame::Event { .. }));
      prop_assert!(!is_event);
    } else {
      let data = format!(r#"{{"n":{n}}}"#);
      prop_assert_eq!(parsed, Ok(ClientFrame::Event { kind: &kind_json, data: Some(&data) }));
    }
  }

  #[test]
  fn outgoing_batches_never_panic_and_keep_their_fields(
    lines in proptest::collection::vec(("[er]", 0u64..1000, "[ -~]{0,10}", "[ -~\t]{0,16}"), 0..8),
    junk in "[ -~\t\n]{0,60}",
  ) {
    let batch: String = lines.iter().map(|(k, s, third, json)| format!("{k}\t{s}\t{third}\t{json}\n")).collect();
    for line in parse_outgoing(&batch).chain(parse_outgoing(&junk)) {
      match line {
        Ok(Outgoing::Event { event_json, payload_json, .. }) => {
          // Encoding refuses what is not a string token and an object payload, never panics.
          let _ = encoded_event_frame(event_json, payload_json);
        }
        Ok(Outgoing::Reply { .. }) | Err(_) => {}
      }
    }
  }

  #[test]
  fn websocket_frames_in_any_bytes_never_panic(
    reads in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 0..24),
    max_payload in 0usize..300,
    limit in 1usize..8,
  ) {
    let mut decoder = Decoder::new(max_payload, limit);
    let mut ignore = |_: Inbound<'_>| {};
    for bytes in &reads {
      let mut bytes = bytes.clone();
      if decoder.feed(&mut bytes, &mut ignore).is_err() {
        break;
      }
    }
  }

  #[test]
  fn frame_like_bytes_never_panic(stream in frame_like_stream(), cut in 1usize..40) {
    let _ = decode_stream(&stream, cut, 1 << 16, 4);
  }

  /// Messages encoded as client frames (fragmented, pings between, masks of any value) come out
  /// as they were sent, whatever the cuts between reads.
  #[test]
  fn a_valid_stream_cut_anywhere_decodes_to_the_messages_sent(
    messages in proptest::collection::vec(message(), 0..8),
    cuts in proptest::collection::vec(1usize..200, 1..16),
    close in proptest::option::of(1000u16..1004),
  ) {
    let (stream, expected) = encode_messages(&messages, close);
    let whole = decode_stream(&stream, usize::MAX, 1 << 20, 64);
    prop_assert_eq!(&whole, &(expected.clone(), Ok(())));
    let mut decoder = Decoder::new(1 << 20, 64);
    let mut got = Vec::new();
    let mut rest = stream.as_slice();
    let mut cut = cuts.iter().cycle();
    let mut result = Ok(());
    while !rest.is_empty() && result.is_ok() {
      let n = (*cut.next().unwrap_or(&1)).min(rest.len());
      let (now, later) = rest.split_at(n);
      let mut now = now.to_vec();
      result = decoder.feed(&mut now, &mut |inbound: Inbound<'_>| got.push(Got::from(inbound)));
      rest = later;
    }
    prop_assert_eq!((got, result), (expected, Ok(())));
  }

  /// A message within `maxFragments` frames always passes, one over it always fails.
  #[test]
  fn messages_over_max_fragments_are_refused_however_cut(
    parts in 1usize..12,
    limit in 1usize..12,
    cut in 1usize..30,
  ) {
    let message = Message { text: false, body: vec![7; parts * 3], parts, pings: true };
    let (stream, _) = encode_messages(&[message], None);
    let (_, result) = decode_stream(&stream, cut, 1 << 20, limit);
    prop_assert_eq!(result.is_ok(), parts <= limit);
  }

  #[test]
  fn arbitrary_bytes_as_msgpack_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
    let mut json = String::new();
    if msgpack_to_json(&bytes, &mut json).is_ok() {
      prop_assert!(serde_json::from_str::<serde_json::Value>(&json).is_ok(), "{json}");
    }
  }

  #[test]
  fn damaged_msgpack_never_panics_and_gives_json_or_an_error(bytes in msgpack_bytes()) {
    let mut json = String::new();
    match msgpack_to_json(&bytes, &mut json) {
      Ok(()) => prop_assert!(serde_json::from_str::<serde_json::Value>(&json).is_ok(), "{json}"),
      Err(error) => prop_assert!(!error.to_string().is_empty()),
    }
  }

  #[test]
  fn json_round_trips_through_msgpack(value in json_value()) {
    let text = value.to_string();
    let mut bytes = Vec::new();
    prop_assert!(json_to_msgpack(&text, &mut bytes).is_ok());
    let mut back = String::new();
    prop_assert_eq!(msgpack_to_json(&bytes, &mut back), Ok(()));
    let parsed: serde_json::Value = serde_json::from_str(&back).map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(parsed, value);
  }

  #[test]
  fn deep_msgpack_is_refused_not_recursed(depth in 129usize..5000, map in any::<bool>()) {
    let opener: &[u8] = if map { &[0x81, 0xa1, b'k'] } else { &[0x91] };
    let mut bytes: Vec<u8> = opener.iter().copied().cycle().take(opener.len() * depth).collect();
    bytes.push(0xc0);
    prop_assert_eq!(msgpack_to_json(&bytes, &mut String::new()), Err(MsgpackError::TooDeep));
  }

  #[test]
  fn base64_of_binary_messages_decodes_to_the_same_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
    let mut text = String::new();
    push_base64(&mut text, &bytes);
    prop_assert_eq!(text.len(), bytes.len().div_ceil(3) * 4);
    prop_assert_eq!(decode_base64(&text), Some(bytes));
  }
}

/// A plain base64 decoder, to check the encoder against.
/// Any JSON value, nested a few levels.
fn json_value() -> impl Strategy<Value = serde_json::Value> {
  let leaf = prop_oneof![
    Just(serde_json::Value::Null),
    any::<bool>().prop_map(serde_json::Value::from),
    any::<i64>().prop_map(serde_json::Value::from),
    any::<u64>().prop_map(serde_json::Value::from),
    any::<f64>()
      .prop_filter("JSON numbers are finite", |f| f.is_finite())
      .prop_map(serde_json::Value::from),
    "\\PC{0,40}".prop_map(serde_json::Value::from),
  ];
  leaf.prop_recursive(6, 64, 20, |inner| {
    prop_oneof![
      proptest::collection::vec(inner.clone(), 0..20).prop_map(serde_json::Value::from),
      proptest::collection::btree_map("\\PC{0,8}", inner, 0..20)
        .prop_map(|map| serde_json::Value::Object(map.into_iter().collect())),
    ]
  })
}

/// Bytes shaped like MessagePack: valid values with corruption, cuts and odd markers.
fn msgpack_bytes() -> impl Strategy<Value = Vec<u8>> {
  (
    json_value(),
    proptest::collection::vec((any::<u16>(), any::<u8>()), 0..4),
    any::<u16>(),
  )
    .prop_map(|(value, flips, cut)| {
      let mut bytes = Vec::new();
      if json_to_msgpack(&value.to_string(), &mut bytes).is_err() {
        return bytes;
      }
      for (at, byte) in flips {
        let len = bytes.len().max(1);
        if let Some(slot) = bytes.get_mut(usize::from(at) % len) {
          *slot = byte;
        }
      }
      let keep = usize::from(cut) % (bytes.len() + 1);
      if cut % 3 == 0 {
        bytes.truncate(keep);
      }
      bytes
    })
}

fn decode_base64(text: &str) -> Option<Vec<u8>> {
  const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  let mut out = Vec::new();
  let mut bits = 0u32;
  let mut count = 0;
  for byte in text.bytes().filter(|b| *b != b'=') {
    let value = ALPHABET.iter().position(|c| *c == byte)? as u32;
    bits = bits << 6 | value;
    count += 6;
    if count >= 8 {
      count -= 8;
      out.push((bits >> count) as u8);
    }
  }
  Some(out)
}

/// A message to send as client frames.
#[derive(Clone, Debug)]
struct Message {
  text: bool,
  body: Vec<u8>,
  /// Frames it is split into.
  parts: usize,
  /// A ping after each of its frames but the last.
  pings: bool,
}

fn message() -> impl Strategy<Value = Message> {
  let text = "\\PC{0,40}".prop_map(|text: String| (true, text.into_bytes()));
  let binary = proptest::collection::vec(any::<u8>(), 0..300).prop_map(|body| (false, body));
  let big = (any::<u8>(), 126usize..70_000).prop_map(|(byte, n)| (false, vec![byte; n]));
  (
    prop_oneof![4 => text, 4 => binary, 1 => big],
    1usize..5,
    any::<bool>(),
  )
    .prop_map(|((text, body), parts, pings)| Message {
      text,
      body,
      parts,
      pings,
    })
}

/// What the decoder delivered, owned.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Got {
  Text(String),
  Binary(Vec<u8>),
  Ping(Vec<u8>),
  Close(Option<(u16, String)>),
}

impl From<Inbound<'_>> for Got {
  fn from(inbound: Inbound<'_>) -> Self {
    match inbound {
      Inbound::Text(text) => Got::Text(text.into()),
      Inbound::Binary(data) => Got::Binary(data.into()),
      Inbound::Ping(data) => Got::Ping(data.into()),
      Inbound::Close(close) => Got::Close(close.map(|close| (close.code, close.reason.into()))),
    }
  }
}

/// Client frames for `messages` (masks varying), and what decoding them must give.
fn encode_messages(messages: &[Message], close: Option<u16>) -> (Vec<u8>, Vec<Got>) {
  let mut stream = Vec::new();
  let mut expected = Vec::new();
  for (n, message) in messages.iter().enumerate() {
    let size = message.body.len().div_ceil(message.parts).max(1);
    let mut pieces: Vec<&[u8]> = message.body.chunks(size).collect();
    while pieces.len() < message.parts {
      pieces.push(&[]);
    }
    for (i, piece) in pieces.iter().enumerate() {
      let opcode = match (i, message.text) {
        (0, true) => 0x1,
        (0, false) => 0x2,
        _ => 0x0,
      };
      let mask = [n as u8, i as u8, 0xa5, piece.len() as u8];
      stream.extend(frame(i + 1 == pieces.len(), opcode, piece, Some(mask)));
      if message.pings && i + 1 < pieces.len() {
        stream.extend(frame(true, 0x9, &[i as u8; 3], Some([9, 8, 7, 6])));
        expected.push(Got::Ping(vec![i as u8; 3]));
      }
    }
    expected.push(if message.text {
      Got::Text(String::from_utf8_lossy(&message.body).into_owned())
    } else {
      Got::Binary(message.body.clone())
    });
  }
  if let Some(code) = close {
    let mut payload = code.to_be_bytes().to_vec();
    payload.extend_from_slice(b"bye");
    stream.extend(frame(true, 0x8, &payload, Some([1, 2, 3, 4])));
    expected.push(Got::Close(Some((code, "bye".into()))));
  }
  (stream, expected)
}

/// Decodes `stream` in reads of `cut` bytes.
fn decode_stream(
  stream: &[u8],
  cut: usize,
  max_payload: usize,
  limit: usize,
) -> (Vec<Got>, Result<(), Violation>) {
  let mut decoder = Decoder::new(max_payload, limit);
  let mut got = Vec::new();
  for chunk in stream.chunks(cut.max(1)) {
    let mut chunk = chunk.to_vec();
    if let Err(violation) = decoder.feed(&mut chunk, &mut |inbound: Inbound<'_>| {
      got.push(Got::from(inbound))
    }) {
      return (got, Err(violation));
    }
  }
  (got, Ok(()))
}

/// Streams of frames with headers often valid and often not: random flag bits, opcodes and
/// lengths around the length forms' edges, masked or not.
fn frame_like_stream() -> impl Strategy<Value = Vec<u8>> {
  let one = (
    any::<u8>(),
    any::<bool>(),
    prop_oneof![0usize..130, Just(65_535usize), Just(65_536usize)],
    any::<[u8; 4]>(),
    any::<u8>(),
  )
    .prop_map(|(first, masked, len, mask, fill)| {
      let body = vec![fill; len.min(2000)];
      let mut bytes = frame(first & 0x80 != 0, first & 0x0f, &body, masked.then_some(mask));
      if let Some(head) = bytes.first_mut() {
        // Sometimes RSV bits too.
        *head |= first & 0x70 & if fill % 5 == 0 { 0x70 } else { 0 };
      }
      bytes
    });
  proptest::collection::vec(one, 0..10).prop_map(|frames| frames.concat())
}
