//! MessagePack for `--proto warren-msgpack`: warren's protocol with `encoding=msgpack`, where every
//! frame is binary and carries the JSON protocol's value.
//!
//! Requests are built as JSON text by [`crate::proto`] like the JSON protocol's and turned into
//! MessagePack by [`from_json`], a one-pass encoder for the generator's own frames only (objects,
//! arrays, strings without escapes, non-negative integers, `true`/`false`/`null`). Replies are
//! recognised by scanning for a few fixed byte sequences (`"echo"`, `"seq"`, `"t"` as MessagePack
//! strings) instead of decoding them, as the JSON protocol's are: the generator must not be what
//! the benchmark measures.

use crate::proto::Incoming;

/// The MessagePack of one of the generator's JSON frames.
pub fn from_json(json: &str) -> Vec<u8> {
  let mut out = Vec::with_capacity(json.len());
  let mut at = 0;
  value(json.as_bytes(), &mut at, &mut out);
  out
}

fn value(json: &[u8], at: &mut usize, out: &mut Vec<u8>) {
  match json.get(*at) {
    Some(b'{') => container(json, at, out, b'}', 0x80, 0xde, true),
    Some(b'[') => container(json, at, out, b']', 0x90, 0xdc, false),
    Some(b'"') => {
      let start = *at + 1;
      let len = json[start..].iter().position(|&b| b == b'"').expect("a closed string");
      push_str(out, &json[start..start + len]);
      *at = start + len + 1;
    }
    Some(b't') => literal(at, out, 4, 0xc3),
    Some(b'f') => literal(at, out, 5, 0xc2),
    Some(b'n') => literal(at, out, 4, 0xc0),
    _ => {
      let digits = json[*at..].iter().take_while(|b| b.is_ascii_digit()).count();
      let n: u64 = std::str::from_utf8(&json[*at..*at + digits])
        .ok()
        .and_then(|d| d.parse().ok())
        .expect("a non-negative integer");
      push_uint(out, n);
      *at += digits;
    }
  }
}

fn literal(at: &mut usize, out: &mut Vec<u8>, len: usize, marker: u8) {
  out.push(marker);
  *at += len;
}

/// An object (`keyed`) or array up to `close`, with its header patched once its length is known.
fn container(json: &[u8], at: &mut usize, out: &mut Vec<u8>, close: u8, fix: u8, wide: u8, keyed: bool) {
  *at += 1;
  let header = out.len();
  out.push(fix);
  let mut count = 0usize;
  while json.get(*at) != Some(&close) {
    if json.get(*at) == Some(&b',') {
      *at += 1;
    }
    if keyed {
      value(json, at, out);
      *at += 1; // ':'
    }
    value(json, at, out);
    count += 1;
  }
  *at += 1;
  if count < 16 {
    out[header] = fix | count as u8;
  } else {
    let [hi, lo] = (count as u16).to_be_bytes();
    out.splice(header..header + 1, [wide, hi, lo]);
  }
}

fn push_str(out: &mut Vec<u8>, bytes: &[u8]) {
  let len = bytes.len();
  if len < 32 {
    out.push(0xa0 | len as u8);
  } else if len < 256 {
    out.extend_from_slice(&[0xd9, len as u8]);
  } else if len < 65536 {
    out.push(0xda);
    out.extend_from_slice(&(len as u16).to_be_bytes());
  } else {
    out.push(0xdb);
    out.extend_from_slice(&(len as u32).to_be_bytes());
  }
  out.extend_from_slice(bytes);
}

fn push_uint(out: &mut Vec<u8>, n: u64) {
  if n < 0x80 {
    out.push(n as u8);
  } else if n < 0x100 {
    out.extend_from_slice(&[0xcc, n as u8]);
  } else if n < 0x10000 {
    out.push(0xcd);
    out.extend_from_slice(&(n as u16).to_be_bytes());
  } else if n < 0x1_0000_0000 {
    out.push(0xce);
    out.extend_from_slice(&(n as u32).to_be_bytes());
  } else {
    out.push(0xcf);
    out.extend_from_slice(&n.to_be_bytes());
  }
}

const ECHO: &[u8] = b"\xa4echo";
const TICK: &[u8] = b"\xa4tick";
const SEQ: &[u8] = b"\xa3seq";
const T: &[u8] = b"\xa1t";
const SYSTEM_ERROR: &[u8] = b"\xacsystem:error";

/// Classifies one binary frame of warren's protocol in MessagePack.
pub fn classify(bytes: &[u8]) -> Incoming {
  if let Some(rest) = after(bytes, ECHO) {
    return match after(rest, SEQ).and_then(uint) {
      Some(seq) => Incoming::Echo { seq },
      None => Incoming::Other,
    };
  }
  if let Some(rest) = after(bytes, TICK) {
    return match (after(rest, SEQ).and_then(uint), after(rest, T).and_then(uint)) {
      (Some(seq), Some(t_ns)) => Incoming::Tick { seq, t_ns },
      _ => Incoming::Other,
    };
  }
  if after(bytes, SYSTEM_ERROR).is_some() {
    return Incoming::Error;
  }
  Incoming::Other
}

fn after<'a>(bytes: &'a [u8], needle: &[u8]) -> Option<&'a [u8]> {
  let at = bytes.windows(needle.len()).position(|w| w == needle)?;
  Some(&bytes[at + needle.len()..])
}

fn uint(bytes: &[u8]) -> Option<u64> {
  let (&marker, rest) = bytes.split_first()?;
  let be = |n: usize| -> Option<u64> { Some(rest.get(..n)?.iter().fold(0u64, |acc, &b| acc << 8 | u64::from(b))) };
  match marker {
    0x00..=0x7f => Some(u64::from(marker)),
    0xcc => be(1),
    0xcd => be(2),
    0xce => be(4),
    0xcf => be(8),
    _ => None,
  }
}

#[cfg(test)]
mod tests {
  use super::*;
  use crate::proto::Proto;

  #[test]
  fn requests_encode_as_standard_msgpack() {
    let frame = from_json(&Proto::Warren.echo(300, 5, "xx"));
    let mut expected = vec![0x82, 0xa4];
    expected.extend_from_slice(b"type");
    expected.push(0xa4);
    expected.extend_from_slice(b"echo");
    expected.push(0xa4);
    expected.extend_from_slice(b"data");
    expected.push(0x83);
    expected.extend_from_slice(b"\xa3seq\xcd\x01\x2c\xa1t\x05\xa3pad\xa2xx");
    assert_eq!(frame, expected);
    let publish = from_json(&Proto::Warren.publish(1, 2, ""));
    assert_eq!(publish.first(), Some(&0x82));
  }

  #[test]
  fn replies_are_recognised() {
    let echo =
      from_json(r#"{"type":"event","channel":"default","data":{"type":"echo","seq":7,"t":99,"pad":"xx"},"seq":12}"#);
    assert_eq!(classify(&echo), Incoming::Echo { seq: 7 });
    let tick = from_json(r#"{"type":"event","channel":"default","data":{"type":"tick","seq":3,"t":100000000000}}"#);
    assert_eq!(
      classify(&tick),
      Incoming::Tick {
        seq: 3,
        t_ns: 100_000_000_000
      }
    );
    let error = from_json(r#"{"type":"event","channel":"default","data":{"type":"system:error","code":"bad_frame"}}"#);
    assert_eq!(classify(&error), Incoming::Error);
    assert_eq!(classify(&from_json(r#"{"type":"pong"}"#)), Incoming::Other);
  }
}
