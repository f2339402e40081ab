//! A frame in the form the socket sends it, and what it costs on the wire. Frames are shared
//! bytes: a broadcast hands every recipient the same frame.

use bytes::Bytes;
use tokio_tungstenite::tungstenite::Utf8Bytes;

use super::frames::{OP_BINARY, OP_PONG, OP_TEXT};

/// Bytes a text frame of `len` payload bytes takes on the wire from the server (unmasked):
/// what the socket has to accept for it.
pub fn wire_len(len: usize) -> usize {
  len
    + match len {
      0..=125 => 2,
      126..=65535 => 4,
      _ => 10,
    }
}

/// A frame as the socket sends it: protocol text (every JSON endpoint's frame), or what a raw
/// endpoint sends as it is (text or binary). Shared, not copied, between recipients.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WireFrame {
  /// A protocol frame (JSON).
  Text(Utf8Bytes),
  /// A raw endpoint's text message.
  RawText(Utf8Bytes),
  /// A raw endpoint's binary message.
  Binary(Bytes),
  /// The answer to a client's ping, with its payload.
  Pong(Bytes),
}

impl WireFrame {
  /// Payload bytes.
  pub fn len(&self) -> usize {
    match self {
      WireFrame::Text(text) | WireFrame::RawText(text) => text.len(),
      WireFrame::Binary(bytes) | WireFrame::Pong(bytes) => bytes.len(),
    }
  }

  /// The text of a text frame (protocol text, or a raw endpoint's text message).
  pub fn as_text(&self) -> Option<&str> {
    match self {
      WireFrame::Text(text) | WireFrame::RawText(text) => Some(text.as_str()),
      WireFrame::Binary(_) | WireFrame::Pong(_) => None,
    }
  }

  /// Whether only raw sessions take it (and they take nothing else).
  pub fn is_raw(&self) -> bool {
    !matches!(self, WireFrame::Text(_))
  }

  pub fn is_empty(&self) -> bool {
    self.len() == 0
  }

  /// The frame's opcode and payload, as the socket sends them.
  pub fn wire(&self) -> (u8, &[u8]) {
    match self {
      WireFrame::Text(text) | WireFrame::RawText(text) => (OP_TEXT, text.as_bytes()),
      WireFrame::Binary(bytes) => (OP_BINARY, bytes),
      WireFrame::Pong(bytes) => (OP_PONG, bytes),
    }
  }
}

impl From<Utf8Bytes> for WireFrame {
  fn from(text: Utf8Bytes) -> Self {
    WireFrame::Text(text)
  }
}
