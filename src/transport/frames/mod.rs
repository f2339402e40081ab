//! WebSocket frames as RFC 6455 writes them, without a stream around them: [`decode`] turns
//! the bytes a client sends into messages (checking every rule of the protocol as it goes), and
//! [`encode`] writes the headers of the frames the server sends.
//!
//! Neither owns a buffer: the decoder reads whatever chunk the socket's reader hands it (the
//! reading thread's buffer) and keeps only what a frame or message cut by the chunk's end
//! needs, so an idle socket costs a few dozen bytes here; the encoder writes a header into a
//! few bytes on the stack, and the payload goes to the socket as the shared bytes it already is.

pub mod decode;
pub mod encode;

/// Opcodes (RFC 6455 §5.2).
pub(crate) const OP_CONTINUATION: u8 = 0x0;
pub(crate) const OP_TEXT: u8 = 0x1;
pub(crate) const OP_BINARY: u8 = 0x2;
pub(crate) const OP_CLOSE: u8 = 0x8;
pub(crate) const OP_PING: u8 = 0x9;
pub(crate) const OP_PONG: u8 = 0xA;

/// Largest payload of a control frame (Close, Ping, Pong).
pub const MAX_CONTROL_PAYLOAD: usize = 125;

/// Whether a peer may send `code` in a Close frame (RFC 6455 §7.4): the codes defined for use
/// on the wire (1000–1003, 1007–1014) and those for libraries and applications (3000–4999).
/// 1004–1006 and 1015 are reserved or for reporting only; the rest is unassigned.
pub fn is_valid_close_code(code: u16) -> bool {
  matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}
