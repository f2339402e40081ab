//! Counting the fragments of inbound messages, from the bytes a client sends.
//!
//! tungstenite bounds a message's size but not the number of frames it arrives in: a client
//! may split 1 MiB into a million one-byte continuation frames, each costing a frame header's
//! worth of work and bookkeeping. [`FragmentCounter`] reads only the frame headers of the byte
//! stream (the payloads are skipped, never looked at) and reports a message that takes more
//! than `maxFragments` frames, so the session can close with 1009 before it is assembled.
//!
//! It never judges anything else: a header that breaks the protocol is counted as it reads and
//! left for tungstenite, which parses every frame for real, to refuse.

/// Bytes of the longest frame header: 2, 8 of extended length, 4 of mask.
const MAX_HEADER_BYTES: usize = 14;

const OPCODE_CONTINUATION: u8 = 0x0;

/// A message took more frames than allowed.
#[derive(Debug, PartialEq, Eq)]
pub struct TooManyFragments;

impl std::fmt::Display for TooManyFragments {
  fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
    f.write_str("a message was split into too many fragments")
  }
}

impl std::error::Error for TooManyFragments {}

/// Follows the frame headers of one direction of a WebSocket (client to server).
#[derive(Debug)]
pub struct FragmentCounter {
  limit: usize,
  header: [u8; MAX_HEADER_BYTES],
  /// Bytes of the current header read so far.
  header_len: usize,
  /// Payload bytes of the current frame still to skip.
  payload_left: u64,
  /// Frames of the message being received (0 between messages).
  fragments: usize,
}

/// The size of a frame header, once its first two bytes are known.
fn header_size(first_two: [u8; 2]) -> usize {
  let masked = first_two[1] & 0x80 != 0;
  let extended = match first_two[1] & 0x7f {
    126 => 2,
    127 => 8,
    _ => 0,
  };
  2 + extended + if masked { 4 } else { 0 }
}

/// The payload length a complete header declares.
fn payload_len(header: &[u8]) -> u64 {
  let short = header.get(1).map_or(0, |b| b & 0x7f);
  match short {
    126 => header
      .get(2..4)
      .map_or(0, |b| u64::from(u16::from_be_bytes([b[0], b[1]]))),
    127 => header.get(2..10).map_or(0, |b| {
      let mut be = [0u8; 8];
      be.copy_from_slice(b);
      u64::from_be_bytes(be)
    }),
    n => u64::from(n),
  }
}

impl FragmentCounter {
  /// `limit`: frames one message may take (at least 1).
  pub fn new(limit: usize) -> Self {
    Self {
      limit: limit.max(1),
      header: [0; MAX_HEADER_BYTES],
      header_len: 0,
      payload_left: 0,
      fragments: 0,
    }
  }

  /// Reads the next bytes of the stream; an error once a message takes more than the limit.
  pub fn read(&mut self, mut bytes: &[u8]) -> Result<(), TooManyFragments> {
    while !bytes.is_empty() {
      if self.payload_left > 0 {
        let skip = usize::try_from(self.payload_left)
          .unwrap_or(usize::MAX)
          .min(bytes.len());
        bytes = bytes.get(skip..).unwrap_or_default();
        self.payload_left -= skip as u64;
        continue;
      }
      // Header bytes: the first two say how many follow.
      let wanted = if self.header_len < 2 {
        2
      } else {
        header_size([self.header[0], self.header[1]])
      };
      let take = (wanted - self.header_len).min(bytes.len());
      let (head, rest) = bytes.split_at(take);
      if let Some(slot) = self.header.get_mut(self.header_len..self.header_len + take) {
        slot.copy_from_slice(head);
      }
      self.header_len += take;
      bytes = rest;
      if self.header_len < 2 || self.header_len < header_size([self.header[0], self.header[1]]) {
        continue;
      }
      let header = self.header.get(..self.header_len).unwrap_or_default();
      self.payload_left = payload_len(header);
      self.header_len = 0;
      self.frame(self.header[0])?;
    }
    Ok(())
  }

  /// Counts one frame by its first header byte.
  fn frame(&mut self, first: u8) -> Result<(), TooManyFragments> {
    let fin = first & 0x80 != 0;
    let opcode = first & 0x0f;
    if opcode >= 0x8 {
      // Control frames may come between fragments and are no part of the message.
      return Ok(());
    }
    if opcode == OPCODE_CONTINUATION {
      self.fragments = self.fragments.saturating_add(1);
    } else {
      self.fragments = 1;
    }
    if self.fragments > self.limit {
      return Err(TooManyFragments);
    }
    if fin {
      self.fragments = 0;
    }
    Ok(())
  }
}

#[cfg(test)]
mod tests {
  use super::*;
  use proptest::prelude::*;

  /// A masked client frame with `payload`.
  fn frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![if fin { 0x80 } else { 0 } | opcode];
    let len = payload.len();
    if len < 126 {
      out.push(0x80 | len as u8);
    } else if len <= 0xffff {
      out.push(0x80 | 126);
      out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
      out.push(0x80 | 127);
      out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    out.extend_from_slice(&[1, 2, 3, 4]);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ [1, 2, 3, 4][i % 4]));
    out
  }

  /// A message of `parts` frames, with a ping between the first two.
  fn message(parts: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, part) in parts.iter().enumerate() {
      let last = i + 1 == parts.len();
      out.extend(frame(last, if i == 0 { 0x2 } else { 0x0 }, part));
      if i == 0 {
        out.extend(frame(true, 0x9, b"ping"));
      }
    }
    out
  }

  #[test]
  fn counts_fragments_of_each_message_apart() {
    let three: Vec<Vec<u8>> = vec![b"ab".to_vec(), vec![7; 300], vec![9; 70_000]];
    let mut counter = FragmentCounter::new(3);
    assert_eq!(counter.read(&message(&three)), Ok(()));
    assert_eq!(counter.read(&message(&three)), Ok(()));
    let four: Vec<Vec<u8>> = vec![b"a".to_vec(); 4];
    assert_eq!(counter.read(&message(&four)), Err(TooManyFragments));
  }

  proptest! {
    /// However the stream is cut into reads, the counter sees the same frames: a message
    /// within the limit always passes, one over it always fails.
    #[test]
    fn any_split_of_the_stream_counts_the_same(
      sizes in proptest::collection::vec(0usize..300, 1..12),
      cuts in proptest::collection::vec(1usize..64, 1..40),
      limit in 1usize..12,
    ) {
      let parts: Vec<Vec<u8>> = sizes.iter().map(|n| vec![0x5a; *n]).collect();
      let stream = message(&parts);
      let mut counter = FragmentCounter::new(limit);
      let mut rest = stream.as_slice();
      let mut result = Ok(());
      let mut cut = cuts.iter().cycle();
      while !rest.is_empty() && result.is_ok() {
        let n = (*cut.next().unwrap_or(&1)).min(rest.len());
        let (now, later) = rest.split_at(n);
        result = counter.read(now);
        rest = later;
      }
      prop_assert_eq!(result.is_ok(), parts.len() <= limit);
    }

    /// Arbitrary bytes never panic it.
    #[test]
    fn never_panics_on_any_bytes(reads in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 0..16)) {
      let mut counter = FragmentCounter::new(2);
      for bytes in &reads {
        let _ = counter.read(bytes);
      }
    }
  }
}
