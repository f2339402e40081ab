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
