//! A socket's encoding of the event protocol: JSON text frames (the default), or the same
//! values as MessagePack in binary frames, which a client asks for with `encoding=msgpack` in
//! the socket URL's query.
//!
//! The rest of the server only ever makes and reads JSON text: the session transcodes at the
//! socket's edge. Outbound, the writer turns each protocol frame into a binary frame just
//! before the socket ([`Encoding::message`]); the outbox, the replay buffer and the output gate
//! keep the JSON, so a resumed session's frames go out in the encoding of the socket that
//! resumed it. Inbound, a binary frame becomes JSON text ([`inbound_json`]) and goes through the
//! protocol's one parser. A text frame on a MessagePack socket is read as JSON (answers still go
//! out in MessagePack).
//!
//! A room broadcast hands every member the same shared bytes; the MessagePack form of such a
//! frame is made by the first writer that sends it and kept in a small process-wide cache keyed
//! by the identity of those bytes (the cache holds them, so the identity cannot be reused while
//! the entry lives), so the other members' writers send the same encoded bytes. The cache keeps
//! at most [`MSGPACK_CACHE_FRAMES`] frames and [`MSGPACK_CACHE_BYTES`] bytes, oldest out first.

use std::collections::VecDeque;

use bytes::Bytes;
use parking_lot::Mutex;
use tokio_tungstenite::tungstenite::Utf8Bytes;

use super::outbox::Outbox;
use super::wire_frame::WireFrame;
use crate::config::{MSGPACK_CACHE_BYTES, MSGPACK_CACHE_FRAMES};
use crate::error::{FrameError, UpgradeRejection};
use crate::msgpack::{json_to_msgpack, msgpack_to_json};

/// How one socket spells the protocol's frames.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Encoding {
  /// JSON text frames.
  #[default]
  Json,
  /// MessagePack binary frames carrying the same values.
  MessagePack,
}

impl Encoding {
  /// The encoding an upgrade asks for with `encoding=` (`value`): `json` (the default when
  /// absent) or `msgpack`. Raw endpoints send messages as they are: they take no `msgpack`.
  pub fn requested(value: Option<&str>, raw: bool) -> Result<Self, UpgradeRejection> {
    match value {
      None | Some("json") => Ok(Encoding::Json),
      Some("msgpack") if !raw => Ok(Encoding::MessagePack),
      Some("msgpack") => Err(UpgradeRejection::UnsupportedEncoding(
        "raw endpoints take no encoding: their messages go as they are",
      )),
      Some(_) => Err(UpgradeRejection::UnsupportedEncoding(
        "encoding must be json or msgpack",
      )),
    }
  }

  pub fn is_msgpack(self) -> bool {
    self == Encoding::MessagePack
  }

  /// The frame that carries `frame` on a socket of this encoding. A protocol frame
  /// on a MessagePack socket becomes a binary frame; the outbox of writer `generation` is told
  /// its new size, as its budget counts the JSON it queued. A frame nested too deep for the
  /// transcoder (more than 128 levels) goes out as JSON text, which clients also read.
  pub fn transcode(self, frame: WireFrame, outbox: &Outbox, generation: u64) -> WireFrame {
    let queued = frame.len();
    let sent = match (self, frame) {
      (Encoding::MessagePack, WireFrame::Text(text)) => match outbound_msgpack(&text) {
        Some(encoded) => WireFrame::Binary(encoded),
        None => WireFrame::Text(text),
      },
      (_, frame) => frame,
    };
    outbox.encoded(generation, queued, sent.len());
    sent
  }
}

/// The JSON text of a binary frame a client sent on a MessagePack socket, for the protocol's
/// parser; `bad_msgpack` when it is not one MessagePack value JSON can represent.
pub fn inbound_json(bytes: &[u8]) -> Result<String, FrameError> {
  let mut json = String::with_capacity(bytes.len().saturating_mul(2));
  msgpack_to_json(bytes, &mut json).map_err(|_| FrameError::BadMsgpack)?;
  Ok(json)
}

/// A frame's MessagePack form: reused when another writer made it from the same shared bytes,
/// else made (and kept when the bytes are shared). `None` for text the transcoder refuses.
pub fn outbound_msgpack(text: &Utf8Bytes) -> Option<Bytes> {
  let source: &Bytes = text.as_ref();
  if let Some(encoded) = RECENT.lock().find(source) {
    return Some(encoded);
  }
  let mut out = Vec::with_capacity(text.len());
  json_to_msgpack(text.as_str(), &mut out).ok()?;
  let encoded = Bytes::from(out);
  // Bytes nobody else holds cannot be sent by another writer: not worth a place.
  if !source.is_unique() {
    RECENT.lock().keep(source.clone(), encoded.clone());
  }
  Some(encoded)
}

/// Recently transcoded shared frames (see the module doc).
struct Recent {
  entries: VecDeque<(Bytes, Bytes)>,
  bytes: usize,
}

static RECENT: Mutex<Recent> = Mutex::new(Recent {
  entries: VecDeque::new(),
  bytes: 0,
});

impl Recent {
  fn find(&self, source: &Bytes) -> Option<Bytes> {
    self
      .entries
      .iter()
      .rev()
      .find(|(kept, _)| kept.as_ptr() == source.as_ptr() && kept.len() == source.len())
      .map(|(_, encoded)| encoded.clone())
  }

  fn keep(&mut self, source: Bytes, encoded: Bytes) {
    let size = source.len() + encoded.len();
    if size > MSGPACK_CACHE_BYTES / 4 {
      return;
    }
    self.bytes += size;
    self.entries.push_back((source, encoded));
    while self.entries.len() > MSGPACK_CACHE_FRAMES || self.bytes > MSGPACK_CACHE_BYTES {
      let Some((source, encoded)) = self.entries.pop_front() else {
        break;
      };
      self.bytes -= source.len() + encoded.len();
    }
  }
}

#[cfg(test)]
mod tests {
  use super::*;
  use crate::config::OverflowPolicy;
  use crate::transport::wire_frame::wire_len;

  #[test]
  fn the_query_picks_the_encoding() {
    assert_eq!(Encoding::requested(None, false), Ok(Encoding::Json));
    assert_eq!(Encoding::requested(Some("json"), true), Ok(Encoding::Json));
    assert_eq!(
      Encoding::requested(Some("msgpack"), false),
      Ok(Encoding::MessagePack)
    );
    for (value, raw) in [
      ("msgpack", true),
      ("cbor", false),
      ("", false),
      ("MSGPACK", false),
    ] {
      let refused = Encoding::requested(Some(value), raw).expect_err(value);
      assert_eq!(refused.status(), 400);
      assert_eq!(refused.code(), Some("unsupported_encoding"));
    }
  }

  #[test]
  fn a_shared_frame_is_transcoded_once() {
    let frame = Utf8Bytes::from(
      r#"{"type":"event","channel":"default","data":{"type":"tick","n":1},"seq":3}"#.to_string(),
    );
    let members: Vec<Utf8Bytes> = (0..3).map(|_| frame.clone()).collect();
    let first = outbound_msgpack(&frame).expect("transcodes");
    for member in &members {
      let encoded = outbound_msgpack(member).expect("transcodes");
      assert_eq!(encoded.as_ptr(), first.as_ptr(), "the same encoded bytes");
    }
    // Equal text in other bytes is its own frame.
    let other = Utf8Bytes::from(frame.as_str().to_string());
    let _keep = other.clone();
    let encoded = outbound_msgpack(&other).expect("transcodes");
    assert_ne!(encoded.as_ptr(), first.as_ptr());
    assert_eq!(encoded, first);
  }

  #[test]
  fn the_cache_is_bounded() {
    let mut recent = Recent {
      entries: VecDeque::new(),
      bytes: 0,
    };
    for n in 0..MSGPACK_CACHE_FRAMES * 2 {
      recent.keep(Bytes::from(format!("{n}")), Bytes::from_static(b"x"));
    }
    assert_eq!(recent.entries.len(), MSGPACK_CACHE_FRAMES);
    recent.keep(Bytes::from(vec![0u8; MSGPACK_CACHE_BYTES]), Bytes::new());
    assert_eq!(recent.entries.len(), MSGPACK_CACHE_FRAMES);
    for _ in 0..8 {
      recent.keep(Bytes::from(vec![0u8; MSGPACK_CACHE_BYTES / 5]), Bytes::new());
    }
    assert!(recent.bytes <= MSGPACK_CACHE_BYTES);
  }

  #[test]
  fn the_outbox_budget_counts_what_the_socket_sends() {
    let outbox = Outbox::new(1 << 20, OverflowPolicy::Close);
    let text =
      Utf8Bytes::from(r#"{"type":"reply","id":7,"data":{"message":"hello there"},"seq":1}"#.to_string());
    outbox.push(text.clone());
    assert_eq!(outbox.unsent(), wire_len(text.len()));
    let message = Encoding::MessagePack.transcode(WireFrame::Text(text), &outbox, 0);
    let WireFrame::Binary(encoded) = message else {
      panic!("a binary frame");
    };
    assert_eq!(outbox.unsent(), wire_len(encoded.len()));
    let mut back = String::new();
    msgpack_to_json(&encoded, &mut back).expect("decodes");
    assert!(back.contains("hello there"));
  }

  #[test]
  fn a_frame_too_deep_to_transcode_goes_as_json_text() {
    let outbox = Outbox::new(1 << 20, OverflowPolicy::Close);
    let deep = format!(
      r#"{{"type":"event","data":{{"type":"x","v":{}{}}}}}"#,
      "[".repeat(200),
      "]".repeat(200)
    );
    let text = Utf8Bytes::from(deep);
    outbox.push(text.clone());
    let message = Encoding::MessagePack.transcode(WireFrame::Text(text.clone()), &outbox, 0);
    assert_eq!(message, WireFrame::Text(text.clone()));
    assert_eq!(outbox.unsent(), wire_len(text.len()));
  }

  #[test]
  fn raw_and_json_frames_go_as_they_are() {
    let outbox = Outbox::new(1 << 20, OverflowPolicy::Close);
    let raw = WireFrame::RawText(Utf8Bytes::from_static("hi"));
    assert_eq!(
      Encoding::MessagePack.transcode(raw, &outbox, 0),
      WireFrame::RawText(Utf8Bytes::from_static("hi"))
    );
    let text = WireFrame::Text(Utf8Bytes::from_static(r#"{"type":"pong"}"#));
    assert!(matches!(
      Encoding::Json.transcode(text, &outbox, 0),
      WireFrame::Text(_)
    ));
  }

  /// What a broadcast costs per member with and without the cache:
  /// `cargo test --release --lib measure_transcoding -- --ignored --nocapture`.
  #[test]
  #[ignore]
  fn measure_transcoding() {
    let tick =
      r#"{"type":"event","channel":"default","data":{"type":"tick","seq":123456,"t":4512345678},"seq":99}"#;
    let chat = format!(
      r#"{{"type":"event","channel":"default","data":{{"type":"chat","from":"u42","text":"{}","at":1733000000000,"tags":["a","b"]}},"seq":7}}"#,
      "hello world ".repeat(80)
    );
    for (name, text) in [("tick, 96 B", tick.to_string()), ("chat, 1 KiB", chat)] {
      let frame = Utf8Bytes::from(text);
      let members = 200_000u32;
      let started = std::time::Instant::now();
      for _ in 0..members {
        let mut out = Vec::with_capacity(frame.len());
        json_to_msgpack(frame.as_str(), &mut out).expect("transcodes");
        std::hint::black_box(out);
      }
      let each = started.elapsed() / members;
      let shared = frame.clone();
      let started = std::time::Instant::now();
      for _ in 0..members {
        std::hint::black_box(outbound_msgpack(&shared));
      }
      let cached = started.elapsed() / members;
      let unique_frames: Vec<Utf8Bytes> = (0..members)
        .map(|_| Utf8Bytes::from(frame.as_str().to_string()))
        .collect();
      let started = std::time::Instant::now();
      for unique in unique_frames {
        std::hint::black_box(outbound_msgpack(&unique));
      }
      let unicast = started.elapsed() / members;
      println!("{name}: transcode {each:?}/frame; broadcast member via cache {cached:?}; unicast (lookup miss + transcode) {unicast:?}");
    }
  }

  #[test]
  fn hostile_binary_frames_get_bad_msgpack() {
    assert_eq!(inbound_json(&[0xc1]), Err(FrameError::BadMsgpack));
    assert_eq!(inbound_json(&vec![0x91; 100_000]), Err(FrameError::BadMsgpack));
    assert_eq!(
      inbound_json(&[0x81, 0xa4, b't', b'y', b'p', b'e', 0xa4, b'p', b'i', b'n', b'g']).as_deref(),
      Ok(r#"{"type":"ping"}"#)
    );
  }
}
