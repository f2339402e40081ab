//! The server's side of RFC 6455 framing: client bytes in, messages out.
//!
//! [`Decoder::feed`] takes chunks cut anywhere (a header may span reads) and hands each complete
//! message, ping and close to a callback as it completes. A message that arrives whole within
//! one chunk is unmasked where it lies and handed over as a slice of that chunk, never copied;
//! only a message cut by the chunk's end or split into fragments is assembled in a buffer of its
//! own, freed once it is delivered. Between messages a decoder owns no heap memory.
//!
//! Every rule a client can break ends the socket with the code RFC 6455 (and Autobahn) expect:
//! 1002 for a framing error (unmasked frame, RSV bits, reserved opcode, a control frame that is
//! long or fragmented, a continuation out of place, a bad close code), 1007 for text that is
//! not UTF-8 (found as soon as the bytes so far cannot be completed into UTF-8), and 1009 for a
//! message over `maxPayload` (judged from the length a header declares, before any of its
//! payload is buffered) or over `maxFragments` frames.

use super::encode::{apply_mask, MAX_HEADER_BYTES};
use super::{
  is_valid_close_code, MAX_CONTROL_PAYLOAD, OP_BINARY, OP_CLOSE, OP_CONTINUATION, OP_PING, OP_PONG, OP_TEXT,
};

/// What the client sent, complete.
#[derive(Debug, PartialEq, Eq)]
pub enum Inbound<'a> {
  Text(&'a str),
  Binary(&'a [u8]),
  /// To be answered with a Pong carrying the same payload.
  Ping(&'a [u8]),
  /// The client's Close (`None` when it gave no code). Nothing after it is decoded.
  Close(Option<PeerClose<'a>>),
}

#[derive(Debug, PartialEq, Eq)]
pub struct PeerClose<'a> {
  pub code: u16,
  pub reason: &'a str,
}

/// A rule the client broke: the socket closes with `code`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Violation {
  pub code: u16,
  pub reason: &'static str,
}

pub const PROTOCOL_ERROR: Violation = Violation {
  code: 1002,
  reason: "protocol error",
};
pub const INVALID_UTF8: Violation = Violation {
  code: 1007,
  reason: "invalid UTF-8",
};
pub const TOO_BIG: Violation = Violation {
  code: 1009,
  reason: "message too big",
};
pub const TOO_MANY_FRAGMENTS: Violation = Violation {
  code: 1009,
  reason: "too many fragments",
};

/// The frame whose payload is being read.
#[derive(Clone, Copy, Debug)]
struct Frame {
  fin: bool,
  opcode: u8,
  mask: [u8; 4],
  len: usize,
  /// Payload bytes read so far.
  read: usize,
}

/// A data message cut by a chunk's end or split into fragments.
#[derive(Debug)]
struct Partial {
  text: bool,
  data: Vec<u8>,
  /// Frames so far.
  fragments: usize,
  /// Leading bytes of `data` known to be UTF-8 (text only).
  checked: usize,
}

impl Partial {
  /// Checks the text appended since the last check; an incomplete character at the end may
  /// still be completed by the next bytes.
  fn check_utf8(&mut self) -> Result<(), Violation> {
    let unchecked = self.data.get(self.checked..).unwrap_or_default();
    match std::str::from_utf8(unchecked) {
      Ok(_) => self.checked = self.data.len(),
      Err(error) if error.error_len().is_none() => self.checked += error.valid_up_to(),
      Err(_) => return Err(INVALID_UTF8),
    }
    Ok(())
  }
}

/// Decodes one client's frames.
#[derive(Debug)]
pub struct Decoder {
  max_payload: usize,
  max_fragments: usize,
  header: [u8; MAX_HEADER_BYTES],
  /// Header bytes read so far (of a frame whose payload has not started).
  header_len: usize,
  frame: Option<Frame>,
  message: Option<Box<Partial>>,
  /// A control frame cut by a chunk's end (at most 125 bytes; empty otherwise).
  control: Vec<u8>,
  /// A Close arrived: the rest of the stream is ignored.
  closed: bool,
}

/// The size of a header whose first two bytes are `first_two`.
fn header_size(second: u8) -> usize {
  let extended = match second & 0x7f {
    126 => 2,
    127 => 8,
    _ => 0,
  };
  2 + extended + if second & 0x80 != 0 { 4 } else { 0 }
}

impl Decoder {
  /// A message (all its frames) may carry `max_payload` bytes in at most `max_fragments`
  /// frames.
  pub fn new(max_payload: usize, max_fragments: usize) -> Self {
    Self {
      max_payload,
      max_fragments: max_fragments.max(1),
      header: [0; MAX_HEADER_BYTES],
      header_len: 0,
      frame: None,
      message: None,
      control: Vec::new(),
      closed: false,
    }
  }

  /// Whether a Close was decoded (what follows it is ignored).
  pub fn is_closed(&self) -> bool {
    self.closed
  }

  /// Whether the decoder holds nothing between messages (no heap memory).
  pub fn is_idle(&self) -> bool {
    self.header_len == 0 && self.frame.is_none() && self.message.is_none() && self.control.capacity() == 0
  }

  /// Decodes `bytes` (unmasking them in place), handing what completes to `deliver`. After an
  /// error the decoder must not be fed again.
  pub fn feed<F>(&mut self, mut bytes: &mut [u8], deliver: &mut F) -> Result<(), Violation>
  where
    F: FnMut(Inbound<'_>),
  {
    loop {
      if self.closed {
        return Ok(());
      }
      let frame = match self.frame {
        Some(frame) => frame,
        None => {
          if bytes.is_empty() {
            return Ok(());
          }
          let rest = std::mem::take(&mut bytes);
          let (used, complete) = self.read_header(rest);
          bytes = rest.get_mut(used..).unwrap_or_default();
          if !complete {
            return Ok(());
          }
          let frame = self.start_frame()?;
          self.frame = Some(frame);
          frame
        }
      };
      let wanted = frame.len - frame.read;
      if wanted > 0 && bytes.is_empty() {
        return Ok(());
      }
      let take = wanted.min(bytes.len());
      let rest = std::mem::take(&mut bytes);
      let (now, later) = rest.split_at_mut(take);
      bytes = later;
      apply_mask(now, frame.mask, frame.read);
      let done = take == wanted;
      if done {
        self.frame = None;
      } else if let Some(current) = self.frame.as_mut() {
        current.read += take;
      }
      if frame.opcode >= OP_CLOSE {
        self.control_payload(frame, now, done, deliver)?;
      } else {
        self.data_payload(frame, now, done, deliver)?;
      }
    }
  }

  /// Copies header bytes from `bytes`; how many were used, and whether the header is complete.
  fn read_header(&mut self, bytes: &[u8]) -> (usize, bool) {
    let mut used = 0;
    loop {
      let wanted = if self.header_len < 2 {
        2
      } else {
        header_size(self.header[1])
      };
      if self.header_len == wanted && self.header_len >= 2 {
        return (used, true);
      }
      let take = (wanted - self.header_len).min(bytes.len() - used);
      if take == 0 {
        return (used, false);
      }
      if let (Some(slot), Some(from)) = (
        self.header.get_mut(self.header_len..self.header_len + take),
        bytes.get(used..used + take),
      ) {
        slot.copy_from_slice(from);
      }
      self.header_len += take;
      used += take;
    }
  }

  /// Judges a complete header against the protocol and the limits.
  fn start_frame(&mut self) -> Result<Frame, Violation> {
    let header = self.header;
    let size = self.header_len;
    self.header_len = 0;
    let (first, second) = (header[0], header[1]);
    let fin = first & 0x80 != 0;
    let opcode = first & 0x0f;
    if first & 0x70 != 0 || second & 0x80 == 0 {
      // Reserved bits without an extension that defines them, or a client frame unmasked.
      return Err(PROTOCOL_ERROR);
    }
    let declared: u64 = match second & 0x7f {
      126 => u64::from(u16::from_be_bytes([header[2], header[3]])),
      127 => u64::from_be_bytes([
        header[2], header[3], header[4], header[5], header[6], header[7], header[8], header[9],
      ]),
      short => u64::from(short),
    };
    let mask = [
      header[size - 4],
      header[size - 3],
      header[size - 2],
      header[size - 1],
    ];
    match opcode {
      OP_CLOSE | OP_PING | OP_PONG => {
        if !fin || declared > MAX_CONTROL_PAYLOAD as u64 {
          return Err(PROTOCOL_ERROR);
        }
      }
      OP_TEXT | OP_BINARY | OP_CONTINUATION => {
        let continues = opcode == OP_CONTINUATION;
        if continues != self.message.is_some() {
          // A continuation with no message begun, or a new message inside a fragmented one.
          return Err(PROTOCOL_ERROR);
        }
        let so_far = self.message.as_ref().map_or(0, |partial| partial.data.len());
        if declared.saturating_add(so_far as u64) > self.max_payload as u64 {
          return Err(TOO_BIG);
        }
        let fragments = self.message.as_ref().map_or(0, |partial| partial.fragments) + 1;
        if fragments > self.max_fragments {
          return Err(TOO_MANY_FRAGMENTS);
        }
        if let Some(partial) = self.message.as_mut() {
          partial.fragments = fragments;
        }
      }
      _ => return Err(PROTOCOL_ERROR),
    }
    let len = usize::try_from(declared).map_err(|_| TOO_BIG)?;
    Ok(Frame {
      fin,
      opcode,
      mask,
      len,
      read: 0,
    })
  }

  fn data_payload<F>(
    &mut self,
    frame: Frame,
    now: &[u8],
    done: bool,
    deliver: &mut F,
  ) -> Result<(), Violation>
  where
    F: FnMut(Inbound<'_>),
  {
    let whole = frame.read == 0 && done && frame.fin && self.message.is_none();
    if whole {
      // The common case: a one-frame message within one chunk, handed over where it lies.
      if frame.opcode == OP_TEXT {
        let text = std::str::from_utf8(now).map_err(|_| INVALID_UTF8)?;
        deliver(Inbound::Text(text));
      } else {
        deliver(Inbound::Binary(now));
      }
      return Ok(());
    }
    let partial = self.message.get_or_insert_with(|| {
      Box::new(Partial {
        text: frame.opcode == OP_TEXT,
        data: Vec::new(),
        fragments: 1,
        checked: 0,
      })
    });
    if frame.read == 0 {
      // The frame's whole length passed the size check: reserve it once.
      partial.data.reserve(frame.len);
    }
    partial.data.extend_from_slice(now);
    if partial.text {
      partial.check_utf8()?;
    }
    if !(done && frame.fin) {
      return Ok(());
    }
    let Some(partial) = self.message.take() else {
      return Ok(());
    };
    if partial.text {
      if partial.checked != partial.data.len() {
        return Err(INVALID_UTF8);
      }
      let text = std::str::from_utf8(&partial.data).map_err(|_| INVALID_UTF8)?;
      deliver(Inbound::Text(text));
    } else {
      deliver(Inbound::Binary(&partial.data));
    }
    Ok(())
  }

  fn control_payload<F>(
    &mut self,
    frame: Frame,
    now: &[u8],
    done: bool,
    deliver: &mut F,
  ) -> Result<(), Violation>
  where
    F: FnMut(Inbound<'_>),
  {
    if !done || !self.control.is_empty() {
      self.control.extend_from_slice(now);
      if !done {
        return Ok(());
      }
      let payload = std::mem::take(&mut self.control);
      return self.control_frame(frame.opcode, &payload, deliver);
    }
    self.control_frame(frame.opcode, now, deliver)
  }

  fn control_frame<F>(&mut self, opcode: u8, payload: &[u8], deliver: &mut F) -> Result<(), Violation>
  where
    F: FnMut(Inbound<'_>),
  {
    match opcode {
      OP_PING => deliver(Inbound::Ping(payload)),
      OP_CLOSE => {
        let close = match payload {
          [] => None,
          [_] => return Err(PROTOCOL_ERROR),
          [high, low, reason @ ..] => {
            let code = u16::from_be_bytes([*high, *low]);
            if !is_valid_close_code(code) {
              return Err(PROTOCOL_ERROR);
            }
            let reason = std::str::from_utf8(reason).map_err(|_| INVALID_UTF8)?;
            Some(PeerClose { code, reason })
          }
        };
        self.closed = true;
        self.message = None;
        deliver(Inbound::Close(close));
      }
      // An unsolicited Pong (or the answer to a ping never sent) means nothing.
      _ => {}
    }
    Ok(())
  }
}

#[cfg(test)]
mod tests;
