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
use warren::transport::fragments::FragmentCounter;
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
  fn frame_headers_in_any_bytes_never_panic(
    reads in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 0..24),
    limit in 1usize..8,
  ) {
    let mut counter = FragmentCounter::new(limit);
    for bytes in &reads {
      let _ = counter.read(bytes);
    }
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
