//! MessagePack as a second spelling of the JSON protocol: the same values (objects, arrays,
//! strings, numbers, booleans, null), encoded in binary. The rest of the core only ever sees
//! JSON text; a socket that speaks MessagePack transcodes at its edge, in both directions, with
//! the two streaming functions here (no intermediate value tree is built).
//!
//! JSON → MessagePack ([`json_to_msgpack`]) drives serde_json's parser with a visitor that
//! writes MessagePack as tokens arrive; it nests as deep as serde_json allows (128 levels).
//! Integers use their smallest MessagePack form, fractions a float32 when that is exact, else a
//! float64.
//!
//! MessagePack → JSON ([`msgpack_to_json`]) reads one value of what a client sent and writes its
//! JSON text; anything JSON cannot say is refused rather than guessed: `bin` and `ext` values,
//! map keys that are not strings, strings that are not UTF-8. Containers nest at most
//! [`MAX_DEPTH`] levels (checked before recursing, so hostile input cannot exhaust the stack),
//! and a declared length is never trusted for an allocation: every element must be present in
//! the input. NaN and infinities become `null`, as `JSON.stringify` writes them.

use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

use crate::json::{push_int, push_string};

/// Deepest nesting of arrays and maps accepted from a client (serde_json's own limit, which
/// the JSON protocol's parser applies to text frames).
pub const MAX_DEPTH: usize = 128;

/// Why a client's MessagePack could not become JSON.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MsgpackError {
  /// The input ends inside a value.
  Truncated,
  /// Bytes after the one value a frame holds.
  Trailing,
  /// A reserved marker byte (0xc1) or a string that is not UTF-8.
  Invalid,
  /// A `bin` value: JSON has no bytes.
  Binary,
  /// An `ext` value (a timestamp, say): JSON has no such type.
  Extension,
  /// A map key that is not a string.
  KeyNotString,
  /// Arrays and maps nested deeper than [`MAX_DEPTH`].
  TooDeep,
}

impl fmt::Display for MsgpackError {
  fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    f.write_str(match self {
      MsgpackError::Truncated => "MessagePack value cut short",
      MsgpackError::Trailing => "bytes after the MessagePack value",
      MsgpackError::Invalid => "invalid MessagePack (reserved byte or string not UTF-8)",
      MsgpackError::Binary => "MessagePack bin values have no JSON form",
      MsgpackError::Extension => "MessagePack ext values have no JSON form",
      MsgpackError::KeyNotString => "MessagePack map keys must be strings",
      MsgpackError::TooDeep => "MessagePack value nested too deep",
    })
  }
}

/// Appends the MessagePack encoding of the JSON text `json`. Fails only on text that is not
/// one JSON value or nests deeper than serde_json's limit (128).
pub fn json_to_msgpack(json: &str, out: &mut Vec<u8>) -> Result<(), serde_json::Error> {
  let start = out.len();
  let mut parser = serde_json::Deserializer::from_str(json);
  let written = Emit(out).deserialize(&mut parser).and_then(|()| parser.end());
  if written.is_err() {
    out.truncate(start);
  }
  written
}

/// Appends the JSON text of the one MessagePack value `bytes` holds.
pub fn msgpack_to_json(bytes: &[u8], out: &mut String) -> Result<(), MsgpackError> {
  let mut reader = Reader { bytes, at: 0 };
  reader.value(out, 0)?;
  if reader.at != bytes.len() {
    return Err(MsgpackError::Trailing);
  }
  Ok(())
}

/// Writes every JSON token it is shown as MessagePack.
struct Emit<'o>(&'o mut Vec<u8>);

impl<'de> DeserializeSeed<'de> for Emit<'_> {
  type Value = ();

  fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
    deserializer.deserialize_any(self)
  }
}

impl<'de> Visitor<'de> for Emit<'_> {
  type Value = ();

  fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    f.write_str("a JSON value")
  }

  fn visit_unit<E>(self) -> Result<(), E> {
    self.0.push(0xc0);
    Ok(())
  }

  fn visit_bool<E>(self, value: bool) -> Result<(), E> {
    self.0.push(if value { 0xc3 } else { 0xc2 });
    Ok(())
  }

  fn visit_u64<E>(self, value: u64) -> Result<(), E> {
    put_uint(self.0, value);
    Ok(())
  }

  fn visit_i64<E>(self, value: i64) -> Result<(), E> {
    put_int(self.0, value);
    Ok(())
  }

  fn visit_f64<E>(self, value: f64) -> Result<(), E> {
    put_float(self.0, value);
    Ok(())
  }

  fn visit_str<E>(self, value: &str) -> Result<(), E> {
    put_str(self.0, value);
    Ok(())
  }

  fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
    let header = self.0.len();
    self.0.push(0x90);
    let mut count: usize = 0;
    while seq.next_element_seed(Emit(self.0))?.is_some() {
      count += 1;
    }
    patch_header(self.0, header, count, [0x90, 0xdc, 0xdd]);
    Ok(())
  }

  fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
    let header = self.0.len();
    self.0.push(0x80);
    let mut count: usize = 0;
    while map.next_key_seed(Emit(self.0))?.is_some() {
      map.next_value_seed(Emit(self.0))?;
      count += 1;
    }
    patch_header(self.0, header, count, [0x80, 0xde, 0xdf]);
    Ok(())
  }
}

/// Rewrites the one-byte container header at `at` for `count` entries: the fix form when it
/// fits, else the 16- or 32-bit form (`markers`: fix base, 16-bit, 32-bit), shifting the content.
fn patch_header(out: &mut Vec<u8>, at: usize, count: usize, [fix, wide16, wide32]: [u8; 3]) {
  if count < 16 {
    if let Some(byte) = out.get_mut(at) {
      *byte = fix | count as u8;
    }
  } else if let Ok(count) = u16::try_from(count) {
    let [hi, lo] = count.to_be_bytes();
    out.splice(at..at + 1, [wide16, hi, lo]);
  } else {
    // A JSON text cannot hold 2^32 elements within any payload limit this server accepts.
    let [a, b, c, d] = u32::try_from(count).unwrap_or(u32::MAX).to_be_bytes();
    out.splice(at..at + 1, [wide32, a, b, c, d]);
  }
}

fn put_uint(out: &mut Vec<u8>, value: u64) {
  if value < 0x80 {
    out.push(value as u8);
  } else if let Ok(value) = u8::try_from(value) {
    put_tagged(out, 0xcc, &[value]);
  } else if let Ok(value) = u16::try_from(value) {
    put_tagged(out, 0xcd, &value.to_be_bytes());
  } else if let Ok(value) = u32::try_from(value) {
    put_tagged(out, 0xce, &value.to_be_bytes());
  } else {
    put_tagged(out, 0xcf, &value.to_be_bytes());
  }
}

fn put_int(out: &mut Vec<u8>, value: i64) {
  if let Ok(value) = u64::try_from(value) {
    put_uint(out, value);
  } else if value >= -32 {
    out.push(value as u8);
  } else if let Ok(value) = i8::try_from(value) {
    put_tagged(out, 0xd0, &value.to_be_bytes());
  } else if let Ok(value) = i16::try_from(value) {
    put_tagged(out, 0xd1, &value.to_be_bytes());
  } else if let Ok(value) = i32::try_from(value) {
    put_tagged(out, 0xd2, &value.to_be_bytes());
  } else {
    put_tagged(out, 0xd3, &value.to_be_bytes());
  }
}

/// A value's type byte, then its big-endian bytes.
fn put_tagged(out: &mut Vec<u8>, tag: u8, bytes: &[u8]) {
  out.push(tag);
  out.extend_from_slice(bytes);
}

fn put_float(out: &mut Vec<u8>, value: f64) {
  let narrow = value as f32;
  if f64::from(narrow) == value {
    put_tagged(out, 0xca, &narrow.to_be_bytes());
  } else {
    put_tagged(out, 0xcb, &value.to_be_bytes());
  }
}

fn put_str(out: &mut Vec<u8>, value: &str) {
  let len = value.len();
  if len < 32 {
    out.push(0xa0 | len as u8);
  } else if let Ok(len) = u8::try_from(len) {
    put_tagged(out, 0xd9, &[len]);
  } else if let Ok(len) = u16::try_from(len) {
    put_tagged(out, 0xda, &len.to_be_bytes());
  } else {
    put_tagged(out, 0xdb, &u32::try_from(len).unwrap_or(u32::MAX).to_be_bytes());
  }
  out.extend_from_slice(value.as_bytes());
}

/// A cursor over a client's MessagePack.
struct Reader<'a> {
  bytes: &'a [u8],
  at: usize,
}

impl<'a> Reader<'a> {
  fn take(&mut self, len: usize) -> Result<&'a [u8], MsgpackError> {
    let end = self.at.checked_add(len).ok_or(MsgpackError::Truncated)?;
    let taken = self.bytes.get(self.at..end).ok_or(MsgpackError::Truncated)?;
    self.at = end;
    Ok(taken)
  }

  fn array<const N: usize>(&mut self) -> Result<[u8; N], MsgpackError> {
    let mut array = [0u8; N];
    array.copy_from_slice(self.take(N)?);
    Ok(array)
  }

  fn byte(&mut self) -> Result<u8, MsgpackError> {
    Ok(u8::from_be_bytes(self.array()?))
  }

  fn u16(&mut self) -> Result<usize, MsgpackError> {
    Ok(usize::from(u16::from_be_bytes(self.array()?)))
  }

  fn u32(&mut self) -> Result<usize, MsgpackError> {
    usize::try_from(u32::from_be_bytes(self.array()?)).map_err(|_| MsgpackError::Truncated)
  }

  fn str(&mut self, len: usize) -> Result<&'a str, MsgpackError> {
    std::str::from_utf8(self.take(len)?).map_err(|_| MsgpackError::Invalid)
  }

  /// Reads one value into `out` as JSON; `depth` counts the containers around it.
  fn value(&mut self, out: &mut String, depth: usize) -> Result<(), MsgpackError> {
    let marker = self.byte()?;
    match marker {
      0x00..=0x7f => push_int(out, marker),
      0x80..=0x8f => self.map(out, usize::from(marker & 0x0f), depth)?,
      0x90..=0x9f => self.seq(out, usize::from(marker & 0x0f), depth)?,
      0xa0..=0xbf => push_string(out, self.str(usize::from(marker & 0x1f))?),
      0xc0 => out.push_str("null"),
      0xc1 => return Err(MsgpackError::Invalid),
      0xc2 => out.push_str("false"),
      0xc3 => out.push_str("true"),
      0xc4..=0xc6 => return Err(MsgpackError::Binary),
      0xc7..=0xc9 | 0xd4..=0xd8 => return Err(MsgpackError::Extension),
      0xca => push_f64(out, f64::from(f32::from_be_bytes(self.array()?))),
      0xcb => push_f64(out, f64::from_be_bytes(self.array()?)),
      0xcc => push_int(out, self.byte()?),
      0xcd => push_int(out, u16::from_be_bytes(self.array()?)),
      0xce => push_int(out, u32::from_be_bytes(self.array()?)),
      0xcf => push_int(out, u64::from_be_bytes(self.array()?)),
      0xd0 => push_int(out, i8::from_be_bytes(self.array()?)),
      0xd1 => push_int(out, i16::from_be_bytes(self.array()?)),
      0xd2 => push_int(out, i32::from_be_bytes(self.array()?)),
      0xd3 => push_int(out, i64::from_be_bytes(self.array()?)),
      0xd9 => {
        let len = usize::from(self.byte()?);
        push_string(out, self.str(len)?);
      }
      0xda => {
        let len = self.u16()?;
        push_string(out, self.str(len)?);
      }
      0xdb => {
        let len = self.u32()?;
        push_string(out, self.str(len)?);
      }
      0xdc => {
        let len = self.u16()?;
        self.seq(out, len, depth)?;
      }
      0xdd => {
        let len = self.u32()?;
        self.seq(out, len, depth)?;
      }
      0xde => {
        let len = self.u16()?;
        self.map(out, len, depth)?;
      }
      0xdf => {
        let len = self.u32()?;
        self.map(out, len, depth)?;
      }
      0xe0..=0xff => push_int(out, marker as i8),
    }
    Ok(())
  }

  fn seq(&mut self, out: &mut String, len: usize, depth: usize) -> Result<(), MsgpackError> {
    if depth >= MAX_DEPTH {
      return Err(MsgpackError::TooDeep);
    }
    out.push('[');
    for index in 0..len {
      if index > 0 {
        out.push(',');
      }
      self.value(out, depth + 1)?;
    }
    out.push(']');
    Ok(())
  }

  fn map(&mut self, out: &mut String, len: usize, depth: usize) -> Result<(), MsgpackError> {
    if depth >= MAX_DEPTH {
      return Err(MsgpackError::TooDeep);
    }
    out.push('{');
    for index in 0..len {
      if index > 0 {
        out.push(',');
      }
      let key = match self.byte()? {
        marker @ 0xa0..=0xbf => self.str(usize::from(marker & 0x1f))?,
        0xd9 => {
          let len = usize::from(self.byte()?);
          self.str(len)?
        }
        0xda => {
          let len = self.u16()?;
          self.str(len)?
        }
        0xdb => {
          let len = self.u32()?;
          self.str(len)?
        }
        _ => return Err(MsgpackError::KeyNotString),
      };
      push_string(out, key);
      out.push(':');
      self.value(out, depth + 1)?;
    }
    out.push('}');
    Ok(())
  }
}

/// A number as JSON writes it; NaN and infinities (no JSON form) as `null`.
fn push_f64(out: &mut String, value: f64) {
  match serde_json::Number::from_f64(value) {
    Some(number) => out.push_str(&number.to_string()),
    None => out.push_str("null"),
  }
}

#[cfg(test)]
mod tests;
