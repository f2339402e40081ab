//! Client frames parsed once with borrowed strings; server frames built by splicing the client's raw
//! `data` object, which yields exactly the bytes of JS's
//! `JSON.stringify({type:"event",channel:"default",data:{type, ...data}})` for compact input.

use serde::Deserialize;
use serde_json::value::RawValue;

#[derive(Deserialize)]
pub struct ClientFrame<'a> {
    #[serde(rename = "type", borrow)]
    pub kind: &'a str,
    #[serde(borrow, default)]
    pub data: Option<&'a RawValue>,
}

#[derive(Deserialize)]
pub struct JoinData<'a> {
    #[serde(borrow)]
    pub room: &'a str,
}

pub const PONG: &str = r#"{"type":"pong"}"#;

/// `{"type":"event","channel":"default","data":{"type":<event>, ...data}}`; `None` if `data` is not an
/// object.
pub fn event(event: &str, data: Option<&RawValue>) -> Option<String> {
    const HEAD: &str = r#"{"type":"event","channel":"default","data":{"type":""#;
    let body = data.map(RawValue::get).unwrap_or("{}");
    let rest = body.strip_prefix('{')?.trim_start();
    let mut out = String::with_capacity(HEAD.len() + event.len() + body.len() + 4);
    out.push_str(HEAD);
    out.push_str(event);
    out.push('"');
    if !rest.starts_with('}') {
        out.push(',');
    }
    out.push_str(rest);
    out.push('}');
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_frames_match_json_stringify() {
        let frame: ClientFrame = serde_json::from_str(r#"{"type":"echo","data":{"seq":1,"t":2,"pad":"xx"}}"#).unwrap();
        assert_eq!(
            event("echo", frame.data).unwrap(),
            r#"{"type":"event","channel":"default","data":{"type":"echo","seq":1,"t":2,"pad":"xx"}}"#
        );
        let empty: ClientFrame = serde_json::from_str(r#"{"type":"echo","data":{}}"#).unwrap();
        assert_eq!(event("echo", empty.data).unwrap(), r#"{"type":"event","channel":"default","data":{"type":"echo"}}"#);
        let scalar: ClientFrame = serde_json::from_str(r#"{"type":"echo","data":3}"#).unwrap();
        assert!(event("echo", scalar.data).is_none());
    }
}
