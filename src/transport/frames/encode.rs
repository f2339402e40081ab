//! Frame headers (RFC 6455 §5.2) for what the server sends, and whole frames for the few that
//! are built here (Close). A server's frames are never masked; a client's are, and the same
//! code writes them, for the decoder's tests.

use super::{MAX_CONTROL_PAYLOAD, OP_CLOSE};

/// Bytes of the longest header: 2, 8 of extended length, 4 of mask.
pub const MAX_HEADER_BYTES: usize = 14;

/// One frame's header, on the stack.
#[derive(Clone, Copy, Debug)]
pub struct Header {
  bytes: [u8; MAX_HEADER_BYTES],
  len: u8,
}

impl Header {
  /// The header of a frame of `payload_len` bytes; `mask` for a client's frame.
  pub fn new(fin: bool, opcode: u8, payload_len: usize, mask: Option<[u8; 4]>) -> Self {
    let mut bytes = [0u8; MAX_HEADER_BYTES];
    bytes[0] = if fin { 0x80 } else { 0 } | (opcode & 0x0f);
    let masked = if mask.is_some() { 0x80 } else { 0 };
    let mut len = 2;
    if payload_len < 126 {
      bytes[1] = masked | payload_len as u8;
    } else if let Ok(short) = u16::try_from(payload_len) {
      bytes[1] = masked | 126;
      bytes[2..4].copy_from_slice(&short.to_be_bytes());
      len = 4;
    } else {
      bytes[1] = masked | 127;
      bytes[2..10].copy_from_slice(&(payload_len as u64).to_be_bytes());
      len = 10;
    }
    if let Some(key) = mask {
      bytes[len..len + 4].copy_from_slice(&key);
      len += 4;
    }
    Self {
      bytes,
      len: len as u8,
    }
  }

  /// The header of an unmasked, final frame: what the server sends.
  pub fn server(opcode: u8, payload_len: usize) -> Self {
    Self::new(true, opcode, payload_len, None)
  }

  pub fn as_bytes(&self) -> &[u8] {
    self.bytes.get(..usize::from(self.len)).unwrap_or_default()
  }
}

/// XORs `bytes` with `mask`, `offset` being the position of `bytes[0]` in the frame's payload
/// (masking and unmasking are the same operation).
pub fn apply_mask(bytes: &mut [u8], mask: [u8; 4], offset: usize) {
  let key = [
    mask[offset & 3],
    mask[(offset + 1) & 3],
    mask[(offset + 2) & 3],
    mask[(offset + 3) & 3],
  ];
  let word = u32::from_ne_bytes(key);
  let wide = u64::from(word) | (u64::from(word) << 32);
  let mut words = bytes.chunks_exact_mut(8);
  for chunk in &mut words {
    if let Ok(eight) = <[u8; 8]>::try_from(&*chunk) {
      chunk.copy_from_slice(&(u64::from_ne_bytes(eight) ^ wide).to_ne_bytes());
    }
  }
  // The tail starts at a multiple of 8, so the key lines up with it again.
  for (i, byte) in words.into_remainder().iter_mut().enumerate() {
    *byte ^= key[i & 3];
  }
}

/// A whole frame: header, then `payload` (masked with `mask` when given).
pub fn frame(fin: bool, opcode: u8, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
  let header = Header::new(fin, opcode, payload.len(), mask);
  let mut out = Vec::with_capacity(header.as_bytes().len() + payload.len());
  out.extend_from_slice(header.as_bytes());
  let start = out.len();
  out.extend_from_slice(payload);
  if let (Some(key), Some(body)) = (mask, out.get_mut(start..)) {
    apply_mask(body, key, 0);
  }
  out
}

/// The Close frame the server sends: `code`, then `reason` cut (at a character boundary) to
/// fit a control frame's 125 bytes.
pub fn close_frame(code: u16, reason: &str) -> Vec<u8> {
  let mut cut = reason.len().min(MAX_CONTROL_PAYLOAD - 2);
  while !reason.is_char_boundary(cut) {
    cut -= 1;
  }
  let mut payload = Vec::with_capacity(2 + cut);
  payload.extend_from_slice(&code.to_be_bytes());
  payload.extend_from_slice(reason.as_bytes().get(..cut).unwrap_or_default());
  frame(true, OP_CLOSE, &payload, None)
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn headers_take_the_shortest_length_form() {
    assert_eq!(Header::server(0x1, 5).as_bytes(), [0x81, 5]);
    assert_eq!(Header::server(0x2, 126).as_bytes(), [0x82, 126, 0, 126]);
    assert_eq!(Header::server(0x1, 65535).as_bytes(), [0x81, 126, 0xff, 0xff]);
    assert_eq!(
      Header::server(0x1, 65536).as_bytes(),
      [0x81, 127, 0, 0, 0, 0, 0, 1, 0, 0]
    );
    assert_eq!(
      Header::new(false, 0x0, 3, Some([1, 2, 3, 4])).as_bytes(),
      [0x00, 0x83, 1, 2, 3, 4]
    );
  }

  #[test]
  fn masking_at_any_offset_matches_byte_by_byte() {
    let mask = [0x12, 0x34, 0x56, 0x78];
    let data: Vec<u8> = (0..=255).collect();
    for offset in 0..9 {
      for len in [0, 1, 7, 8, 9, 31, 200] {
        let mut fast = data[..len].to_vec();
        apply_mask(&mut fast, mask, offset);
        let slow: Vec<u8> = data[..len]
          .iter()
          .enumerate()
          .map(|(i, b)| b ^ mask[(offset + i) % 4])
          .collect();
        assert_eq!(fast, slow, "offset {offset}, len {len}");
      }
    }
  }

  #[test]
  fn a_close_reason_is_cut_to_fit_at_a_character_boundary() {
    let long = "é".repeat(100);
    let frame = close_frame(1001, &long);
    assert_eq!(frame[..4], [0x88, 124, 0x03, 0xe9]);
    assert!(std::str::from_utf8(&frame[4..]).is_ok());
    assert_eq!(close_frame(1000, "bye"), [0x88, 5, 0x03, 0xe8, b'b', b'y', b'e']);
  }
}
