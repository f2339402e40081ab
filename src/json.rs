//! The one JSON writer for text the core assembles by hand: event batches to JS, member and
//! schedule lists, server frames.
//!
//! Raw JSON that is already valid (a client frame's tokens, checked by the parser; JSON made by
//! `JSON.stringify` in JS) is copied in as it is, never parsed again: that is why these helpers
//! exist instead of a `serde` serializer, which would have to re-validate every raw value.

/// Appends `value` as a JSON string literal.
pub fn push_string(out: &mut String, value: &str) {
  out.push('"');
  let bytes = value.as_bytes();
  let mut start = 0;
  for (i, &byte) in bytes.iter().enumerate() {
    let escape: &str = match byte {
      b'"' => "\\\"",
      b'\\' => "\\\\",
      b'\n' => "\\n",
      b'\r' => "\\r",
      b'\t' => "\\t",
      0x08 => "\\b",
      0x0c => "\\f",
      0x00..=0x1f => "",
      _ => continue,
    };
    out.push_str(&value[start..i]);
    if escape.is_empty() {
      out.push_str("\\u00");
      out.push(char::from(HEX[usize::from(byte >> 4)]));
      out.push(char::from(HEX[usize::from(byte & 0xf)]));
    } else {
      out.push_str(escape);
    }
    start = i + 1;
  }
  out.push_str(&value[start..]);
  out.push('"');
}

const HEX: &[u8; 16] = b"0123456789abcdef";

const BASE64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Appends `bytes` in standard base64 (with `=` padding): how bytes travel inside JSON text.
pub fn push_base64(out: &mut String, bytes: &[u8]) {
  out.reserve(bytes.len().div_ceil(3) * 4);
  let digit = |index: u32| char::from(BASE64[(index & 0x3f) as usize]);
  for chunk in bytes.chunks(3) {
    let (a, b, c) = match *chunk {
      [a, b, c] => (a, Some(b), Some(c)),
      [a, b] => (a, Some(b), None),
      [a] => (a, None, None),
      _ => continue,
    };
    let group = u32::from(a) << 16 | u32::from(b.unwrap_or(0)) << 8 | u32::from(c.unwrap_or(0));
    out.push(digit(group >> 18));
    out.push(digit(group >> 12));
    out.push(if b.is_some() { digit(group >> 6) } else { '=' });
    out.push(if c.is_some() { digit(group) } else { '=' });
  }
}

/// Appends an integer in decimal without allocating.
pub fn push_int(out: &mut String, value: impl itoa::Integer) {
  out.push_str(itoa::Buffer::new().format(value));
}

/// `value` as a JSON string literal.
pub fn string(value: &str) -> String {
  let mut out = String::with_capacity(value.len() + 2);
  push_string(&mut out, value);
  out
}

/// Appends a JSON array of `items`, each written by `write`.
pub fn push_array<T>(
  out: &mut String,
  items: impl IntoIterator<Item = T>,
  mut write: impl FnMut(&mut String, T),
) {
  out.push('[');
  for (i, item) in items.into_iter().enumerate() {
    if i > 0 {
      out.push(',');
    }
    write(out, item);
  }
  out.push(']');
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn escapes_like_json_stringify() {
    for value in [
      "plain",
      "q\"uote",
      "back\\slash",
      "tab\tnl\ncr\r",
      "\u{1}ctl\u{1f}\u{8}\u{c}",
      "é✓😀",
      "",
    ] {
      let expected = serde_json::to_string(value).unwrap_or_default();
      assert_eq!(string(value), expected, "{value:?}");
    }
  }

  #[test]
  fn writes_integers_and_arrays() {
    let mut out = String::new();
    push_array(&mut out, [0u64, 7, u64::MAX], push_int);
    assert_eq!(out, "[0,7,18446744073709551615]");
  }
}
