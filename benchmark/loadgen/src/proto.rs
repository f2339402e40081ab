//! The three wire protocols the generator speaks: what each frame looks like and how a reply is recognised.
//!
//! Replies are recognised by scanning for a few fixed keys (`"seq":`, `"t":`) instead of parsing JSON, so
//! the generator spends its core on sockets, not on decoding: it must never be the bottleneck it measures.
//! The scan relies on the payloads this module itself builds (padding is `x` only, keys appear once).

/// The room every fan-out member joins; the peer servers use the same constant.
pub const ROOM: &str = "bench";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proto {
    /// Plain text frames echoed verbatim; no rooms.
    Raw,
    /// DESIGN §3 JSON frames; replies are `{"type":"event","channel":"default","data":{...}}`.
    Warren,
    /// socket.io v4 over the engine.io v4 WebSocket transport.
    SocketIo,
    /// warren's frames as MessagePack binary frames (`encoding=msgpack`, see [`crate::msgpack`]): built
    /// and recognised as [`Proto::Warren`]'s, transcoded by the connection.
    WarrenMsgpack,
}

/// What a received text frame means to a scenario.
#[derive(Debug, PartialEq, Eq)]
pub enum Incoming {
    /// The reply to the echo with this sequence number.
    Echo { seq: u64 },
    /// A fan-out delivery: sequence number and the publisher's send time (ns on the process clock).
    Tick { seq: u64, t_ns: u64 },
    /// A `system:error` event or anything the scenario did not ask for (welcome events, acks).
    Error,
    Other,
}

impl Proto {
    pub fn parse(raw: &str) -> Result<Proto, String> {
        match raw {
            "raw" => Ok(Proto::Raw),
            "warren" => Ok(Proto::Warren),
            "socketio" => Ok(Proto::SocketIo),
            "warren-msgpack" => Ok(Proto::WarrenMsgpack),
            _ => Err(format!("--proto {raw:?}: expected raw, warren, warren-msgpack or socketio")),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Proto::Raw => "raw",
            Proto::Warren => "warren",
            Proto::SocketIo => "socketio",
            Proto::WarrenMsgpack => "warren-msgpack",
        }
    }

    /// Request path and query for connection `id`. warren authenticates with `?token=` in `extractMeta`,
    /// so each connection is its own user.
    pub fn default_path(self, id: usize) -> String {
        match self {
            Proto::Raw => "/raw".to_string(),
            Proto::Warren => format!("/ws?token=u{id}"),
            Proto::SocketIo => "/socket.io/?EIO=4&transport=websocket".to_string(),
            Proto::WarrenMsgpack => format!("/ws?token=u{id}&encoding=msgpack"),
        }
    }

    /// One echo request. For raw the whole frame is `size` bytes (or the header alone if longer); for
    /// the JSON protocols `pad` is `size` bytes of `x`, so frames differ by the protocol's envelope only.
    pub fn echo(self, seq: u64, t_ns: u64, pad: &str) -> String {
        if self == Proto::WarrenMsgpack {
            return Proto::Warren.echo(seq, t_ns, pad);
        }
        // Built by pushes, not `format!`: this runs once per message on the generator's one core.
        let mut out = String::with_capacity(pad.len() + 72);
        match self {
            Proto::Raw => {
                push_u64(&mut out, seq);
                out.push(' ');
                push_u64(&mut out, t_ns);
                out.push(' ');
                let fill = pad.len().saturating_sub(out.len());
                out.extend(std::iter::repeat_n('x', fill));
            }
            Proto::Warren | Proto::SocketIo | Proto::WarrenMsgpack => {
                out.push_str(if self == Proto::Warren {
                    r#"{"type":"echo","data":{"seq":"#
                } else {
                    r#"42["echo",{"seq":"#
                });
                push_u64(&mut out, seq);
                out.push_str(r#","t":"#);
                push_u64(&mut out, t_ns);
                out.push_str(r#","pad":""#);
                out.push_str(pad);
                out.push_str(if self == Proto::Warren { r#""}}"# } else { r#""}]"# });
            }
        }
        out
    }

    /// Payload bytes of request `text` on the wire (its MessagePack for `warren-msgpack`).
    pub fn wire_len(self, text: &str) -> usize {
        if self == Proto::WarrenMsgpack {
            crate::msgpack::from_json(text).len()
        } else {
            text.len()
        }
    }

    pub fn join(self, room: &str) -> String {
        match self {
            Proto::Raw => unreachable!("raw has no rooms; fanout rejects it before connecting"),
            Proto::Warren | Proto::WarrenMsgpack => format!(r#"{{"type":"join","data":{{"room":"{room}"}}}}"#),
            Proto::SocketIo => format!(r#"42["join",{{"room":"{room}"}}]"#),
        }
    }

    pub fn publish(self, seq: u64, t_ns: u64, pad: &str) -> String {
        let body = if pad.is_empty() {
            format!(r#"{{"seq":{seq},"t":{t_ns}}}"#)
        } else {
            format!(r#"{{"seq":{seq},"t":{t_ns},"pad":"{pad}"}}"#)
        };
        match self {
            Proto::Raw => unreachable!("raw has no rooms; fanout rejects it before connecting"),
            Proto::Warren | Proto::WarrenMsgpack => format!(r#"{{"type":"publish","data":{body}}}"#),
            Proto::SocketIo => format!(r#"42["publish",{body}]"#),
        }
    }

    /// Classifies one text frame. socket.io's engine.io ping (`2`) is handled by the connection before
    /// this is called.
    pub fn classify(self, text: &str) -> Incoming {
        match self {
            Proto::Raw => match leading_u64(text) {
                Some(seq) => Incoming::Echo { seq },
                None => Incoming::Other,
            },
            Proto::Warren | Proto::WarrenMsgpack => match text.strip_prefix(WARREN_EVENT_HEAD) {
                Some(rest) if rest.starts_with(r#"tick","#) => tick(&rest[6..]),
                Some(rest) if rest.starts_with(r#"echo","#) => echo(&rest[6..]),
                Some(rest) if rest.starts_with(r#"system:error""#) => Incoming::Error,
                Some(_) => Incoming::Other,
                None => self.classify_slow(text),
            },
            Proto::SocketIo => {
                if let Some(rest) = text.strip_prefix(r#"42["tick",{"#) {
                    tick(rest)
                } else if let Some(rest) = text.strip_prefix(r#"42["echo",{"#) {
                    echo(rest)
                } else if text.starts_with("44") {
                    // CONNECT_ERROR from a namespace middleware.
                    Incoming::Error
                } else {
                    Incoming::Other
                }
            }
        }
    }

    /// Warren frames whose keys are not in the documented order: find the keys anywhere.
    fn classify_slow(self, text: &str) -> Incoming {
        if text.contains(r#""type":"system:error""#) {
            return Incoming::Error;
        }
        let Some(seq) = number_after(text, r#""seq":"#) else {
            return Incoming::Other;
        };
        if text.contains(r#""type":"tick""#) {
            match number_after(text, r#""t":"#) {
                Some(t_ns) => Incoming::Tick { seq, t_ns },
                None => Incoming::Other,
            }
        } else if text.contains(r#""type":"echo""#) {
            Incoming::Echo { seq }
        } else {
            Incoming::Other
        }
    }
}

/// DESIGN §3 event frame up to the event name: `{"type":"event","channel":"default","data":{"type":"`.
const WARREN_EVENT_HEAD: &str = r#"{"type":"event","channel":"default","data":{"type":""#;

/// `rest` is the payload object's fields after the event name (`"seq":N,"t":T...` possibly after a
/// comma). The fields this module sends come first and in order, so the fast path is a few prefix
/// checks; anything else falls back to a search.
fn tick(rest: &str) -> Incoming {
    let rest = rest.strip_prefix(',').unwrap_or(rest);
    if let Some(after) = rest.strip_prefix(r#""seq":"#) {
        let digits = after.bytes().take_while(u8::is_ascii_digit).count();
        if let (Ok(seq), Some(t)) = (after[..digits].parse(), after[digits..].strip_prefix(r#","t":"#)) {
            if let Some(t_ns) = leading_u64(t) {
                return Incoming::Tick { seq, t_ns };
            }
        }
    }
    match (number_after(rest, r#""seq":"#), number_after(rest, r#""t":"#)) {
        (Some(seq), Some(t_ns)) => Incoming::Tick { seq, t_ns },
        _ => Incoming::Other,
    }
}

fn echo(rest: &str) -> Incoming {
    let rest = rest.strip_prefix(',').unwrap_or(rest);
    let seq = match rest.strip_prefix(r#""seq":"#) {
        Some(after) => leading_u64(after),
        None => number_after(rest, r#""seq":"#),
    };
    match seq {
        Some(seq) => Incoming::Echo { seq },
        None => Incoming::Other,
    }
}

fn push_u64(out: &mut String, mut v: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    out.push_str(std::str::from_utf8(&digits[i..]).expect("ASCII digits"));
}

fn leading_u64(text: &str) -> Option<u64> {
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    text[..digits].parse().ok()
}

fn number_after(text: &str, key: &str) -> Option<u64> {
    let at = text.find(key)? + key.len();
    leading_u64(&text[at..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_frames_have_the_requested_size_and_carry_their_seq() {
        let frame = Proto::Raw.echo(42, 123_456, &"x".repeat(32));
        assert_eq!(frame.len(), 32);
        assert_eq!(Proto::Raw.classify(&frame), Incoming::Echo { seq: 42 });
    }

    #[test]
    fn warren_replies_are_recognised_in_the_servers_key_order() {
        let echo = r#"{"type":"event","channel":"default","data":{"type":"echo","seq":7,"t":99,"pad":"xx"}}"#;
        assert_eq!(Proto::Warren.classify(echo), Incoming::Echo { seq: 7 });
        let tick = r#"{"type":"event","channel":"default","data":{"type":"tick","seq":3,"t":1000}}"#;
        assert_eq!(Proto::Warren.classify(tick), Incoming::Tick { seq: 3, t_ns: 1000 });
        let welcome = r#"{"type":"event","channel":"default","data":{"type":"welcome","count":1}}"#;
        assert_eq!(Proto::Warren.classify(welcome), Incoming::Other);
        let err = r#"{"type":"event","channel":"default","data":{"type":"system:error","code":"bad_frame","message":"x"}}"#;
        assert_eq!(Proto::Warren.classify(err), Incoming::Error);
        let reordered = r#"{"channel":"default","type":"event","data":{"t":5,"seq":2,"type":"tick"}}"#;
        assert_eq!(Proto::Warren.classify(reordered), Incoming::Tick { seq: 2, t_ns: 5 });
        let reordered_err = r#"{"channel":"default","data":{"type":"system:error","code":"x"},"type":"event"}"#;
        assert_eq!(Proto::Warren.classify(reordered_err), Incoming::Error);
    }

    #[test]
    fn socketio_events_are_recognised() {
        assert_eq!(Proto::SocketIo.classify(r#"42["echo",{"seq":5,"t":1,"pad":"x"}]"#), Incoming::Echo { seq: 5 });
        assert_eq!(Proto::SocketIo.classify(r#"42["tick",{"seq":5,"t":77}]"#), Incoming::Tick { seq: 5, t_ns: 77 });
        assert_eq!(Proto::SocketIo.classify(r#"40{"sid":"abc"}"#), Incoming::Other);
    }

    #[test]
    fn requests_match_the_documented_frames() {
        assert_eq!(Proto::Warren.echo(1, 2, "xx"), r#"{"type":"echo","data":{"seq":1,"t":2,"pad":"xx"}}"#);
        assert_eq!(Proto::SocketIo.echo(0, 18_446_744_073_709_551_615, ""), r#"42["echo",{"seq":0,"t":18446744073709551615,"pad":""}]"#);
        assert_eq!(Proto::Warren.join("bench"), r#"{"type":"join","data":{"room":"bench"}}"#);
        assert_eq!(Proto::Warren.publish(1, 2, ""), r#"{"type":"publish","data":{"seq":1,"t":2}}"#);
        assert_eq!(Proto::SocketIo.publish(1, 2, ""), r#"42["publish",{"seq":1,"t":2}]"#);
    }
}
