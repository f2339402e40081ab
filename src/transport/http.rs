//! The HTTP/1.1 side of a connection: the request head before the upgrade, the routing
//! decision, and the plain responses (health check, errors, refusals).
//!
//! The head is read and parsed here instead of inside tungstenite so that the upgrade can wait
//! for `extractMeta` in JS before the 101 is sent: a refused client never holds a socket.

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio_tungstenite::tungstenite::error::{Error as WsError, ProtocolError};
use tokio_tungstenite::tungstenite::handshake::server::create_response;

use super::encoding::Encoding;
use crate::config::{Definition, MAX_REQUEST_HEADERS, MAX_REQUEST_HEAD_BYTES};
use crate::error::UpgradeRejection;
use crate::ids::DefinitionId;

/// Longest resume token looked up (they are 36-byte UUIDs).
const MAX_TOKEN_BYTES: usize = 64;

/// A client's resume parameters (see [`RequestHead::resume_request`]).
#[derive(Debug, PartialEq, Eq)]
pub struct ResumeRequest {
  pub token: Option<String>,
  pub last_seq: u64,
}

/// A parsed request head.
#[derive(Debug)]
pub struct RequestHead {
  pub method: String,
  /// The minor HTTP version: 1 for HTTP/1.1, 0 for HTTP/1.0.
  pub minor_version: u8,
  /// Path and query, as sent.
  pub target: String,
  /// Header names lower-cased, in order.
  pub headers: Vec<(String, String)>,
  /// Bytes read past the head (a client may send its first frame early).
  pub leftover: Vec<u8>,
}

impl RequestHead {
  pub fn path(&self) -> &str {
    self.target.split(['?', '#']).next().unwrap_or("")
  }

  /// The first value of query parameter `name`, percent-decoded (`+` is not a space here:
  /// warren's own parameters never contain one).
  pub fn query(&self, name: &str) -> Option<String> {
    let query = self.target.split('#').next()?.split_once('?')?.1;
    query.split('&').find_map(|pair| {
      let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
      (key == name).then(|| percent_decode(value)).flatten()
    })
  }

  /// Whether query parameter `name` is present, whatever its value.
  pub fn has_query(&self, name: &str) -> bool {
    let Some((_, query)) = self
      .target
      .split('#')
      .next()
      .and_then(|target| target.split_once('?'))
    else {
      return false;
    };
    query
      .split('&')
      .any(|pair| pair.split_once('=').map_or(pair, |(key, _)| key) == name)
  }

  /// What the client asks of resume: `_resume` (empty for a new session that may be resumed
  /// later, else the token of the session to continue) and `_lastSeq`, the number of the last
  /// frame it received. `None` when the client does not resume (a stock Verani client).
  pub fn resume_request(&self) -> Option<ResumeRequest> {
    let token = self.query("_resume")?;
    let last_seq = self
      .query("_lastSeq")
      .and_then(|seq| seq.parse::<u64>().ok())
      .unwrap_or(0);
    Some(ResumeRequest {
      token: Some(token).filter(|token| !token.is_empty() && token.len() <= MAX_TOKEN_BYTES),
      last_seq,
    })
  }

  pub fn header(&self, name: &str) -> Option<&str> {
    self
      .headers
      .iter()
      .find(|(key, _)| key == name)
      .map(|(_, value)| value.as_str())
  }

  /// Headers with repeated names joined with ", " (as `req.headers` shows them), in order.
  pub fn merged_headers(&self) -> Vec<(&str, String)> {
    let mut merged: Vec<(&str, String)> = Vec::with_capacity(self.headers.len());
    for (name, value) in &self.headers {
      match merged.iter_mut().find(|(key, _)| key == name) {
        Some((_, existing)) => {
          existing.push_str(", ");
          existing.push_str(value);
        }
        None => merged.push((name, value.clone())),
      }
    }
    merged
  }
}

/// Why no head could be read.
#[derive(Debug)]
pub enum HeadError {
  /// The peer closed or the socket failed: nothing to answer.
  Gone,
  /// Answer with this status and close.
  Reject(UpgradeRejection),
}

/// Reads until a complete request head (bounded by [`MAX_REQUEST_HEAD_BYTES`]).
pub async fn read_head<S: AsyncRead + Unpin>(stream: &mut S) -> Result<RequestHead, HeadError> {
  read_head_after(stream, Vec::new()).await
}

/// [`read_head`] for a connection whose first bytes were read already (`read`, possibly a
/// whole head: a socket handed over by another HTTP server).
pub async fn read_head_after<S: AsyncRead + Unpin>(
  stream: &mut S,
  read: Vec<u8>,
) -> Result<RequestHead, HeadError> {
  let mut buf = read;
  buf.reserve(1024);
  let mut chunk = [0u8; 2048];
  let mut first = !buf.is_empty();
  loop {
    if !std::mem::take(&mut first) {
      let read = stream.read(&mut chunk).await.map_err(|_| HeadError::Gone)?;
      if read == 0 {
        return Err(HeadError::Gone);
      }
      buf.extend_from_slice(&chunk[..read]);
    }
    let mut headers = [httparse::EMPTY_HEADER; MAX_REQUEST_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    match request.parse(&buf) {
      Ok(httparse::Status::Complete(len)) => {
        let head = RequestHead {
          method: request.method.unwrap_or("").to_string(),
          minor_version: request.version.unwrap_or(0),
          target: request.path.unwrap_or("").to_string(),
          headers: request
            .headers
            .iter()
            .map(|h| {
              (
                h.name.to_ascii_lowercase(),
                String::from_utf8_lossy(h.value).into_owned(),
              )
            })
            .collect(),
          leftover: buf[len..].to_vec(),
        };
        return Ok(head);
      }
      Ok(httparse::Status::Partial) if buf.len() < MAX_REQUEST_HEAD_BYTES => continue,
      Ok(httparse::Status::Partial) | Err(httparse::Error::TooManyHeaders) => {
        return Err(HeadError::Reject(UpgradeRejection::HeadTooLarge))
      }
      Err(_) => {
        return Err(HeadError::Reject(UpgradeRejection::BadRequest(
          "malformed HTTP request",
        )))
      }
    }
  }
}

/// What a request asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Route {
  Health,
  /// `DELETE /actors/<kind>/<key>` (percent-decoded), when an admin token is configured.
  DestroyActor {
    kind: String,
    key: String,
    authorized: bool,
  },
  /// A GET for a path that is not an endpoint, while a static directory is configured.
  Static,
  /// A valid WebSocket upgrade for a connection definition, with its `Sec-WebSocket-Accept`.
  Upgrade {
    definition: DefinitionId,
    accept_key: String,
    /// How its frames are spelled (`encoding=` in the query).
    encoding: Encoding,
  },
  Reject(UpgradeRejection),
}

/// Compares without stopping at the first difference, so timing does not reveal the token.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
  a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Decodes `%XX` escapes; `None` for a malformed escape or invalid UTF-8.
pub fn percent_decode(input: &str) -> Option<String> {
  let bytes = input.as_bytes();
  let well_formed = bytes.iter().enumerate().all(|(i, byte)| {
    *byte != b'%'
      || bytes
        .get(i + 1..i + 3)
        .is_some_and(|hex| hex.iter().all(u8::is_ascii_hexdigit))
  });
  if !well_formed {
    return None;
  }
  percent_encoding::percent_decode_str(input)
    .decode_utf8()
    .ok()
    .map(|decoded| decoded.into_owned())
}

/// Whether `path` is `prefix` followed by one non-empty segment.
fn names_actor(prefix: &str, path: &str) -> bool {
  path
    .strip_prefix(prefix)
    .is_some_and(|rest| !rest.is_empty() && !rest.contains('/'))
}

fn has_token(value: Option<&str>, token: &str) -> bool {
  value.is_some_and(|v| v.split(',').any(|part| part.trim().eq_ignore_ascii_case(token)))
}

/// The definition whose sockets upgrade at `path` (without its query), if any.
pub fn definition_for(definitions: &[Definition], path: &str) -> Option<usize> {
  definitions.iter().position(|e| {
    if e.prefix {
      names_actor(&e.path, path)
    } else {
      e.path == path
    }
  })
}

/// Whether the request carries `Authorization: Bearer <token>`. The scheme is case-insensitive
/// (RFC 9110 §11.1): "bearer" and "BEARER" are "Bearer".
pub fn bearer_matches(head: &RequestHead, token: &str) -> bool {
  head
    .header("authorization")
    .and_then(|value| value.trim().split_once(' '))
    .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
    .is_some_and(|(_, given)| constant_time_eq(given.trim().as_bytes(), token.as_bytes()))
}

pub fn route(
  head: &RequestHead,
  definitions: &[Definition],
  serves_static: bool,
  admin_token: Option<&str>,
) -> Route {
  let path = head.path();
  if path == "/healthz" && head.method == "GET" {
    return Route::Health;
  }
  if let (Some(token), "DELETE", Some(rest)) =
    (admin_token, head.method.as_str(), path.strip_prefix("/actors/"))
  {
    let authorized = bearer_matches(head, token);
    return match rest
      .split_once('/')
      .map(|(kind, key)| (percent_decode(kind), percent_decode(key)))
    {
      Some((Some(kind), Some(key))) if !kind.is_empty() && !key.is_empty() => Route::DestroyActor {
        kind,
        key,
        authorized,
      },
      _ => Route::Reject(UpgradeRejection::NotFound),
    };
  }
  let Some(index) = definition_for(definitions, path) else {
    if serves_static && (head.method == "GET" || head.method == "HEAD") {
      return Route::Static;
    }
    return Route::Reject(UpgradeRejection::NotFound);
  };
  if head.method != "GET" {
    return Route::Reject(UpgradeRejection::MethodNotAllowed);
  }
  if !has_token(head.header("upgrade"), "websocket") || !has_token(head.header("connection"), "upgrade") {
    return Route::Reject(UpgradeRejection::UpgradeRequired);
  }
  let raw = definitions.get(index).is_some_and(|definition| definition.raw);
  // A value that does not decode is a value all the same: refused, not taken for no value.
  let requested = head
    .query("encoding")
    .or_else(|| head.has_query("encoding").then(String::new));
  let encoding = match Encoding::requested(requested.as_deref(), raw) {
    Ok(encoding) => encoding,
    Err(rejection) => return Route::Reject(rejection),
  };
  match accept_key(head) {
    Ok(accept_key) => Route::Upgrade {
      definition: DefinitionId(index),
      accept_key,
      encoding,
    },
    Err(rejection) => Route::Reject(rejection),
  }
}

/// Checks the opening handshake with tungstenite's own server rules (RFC 6455 §4.2.1: GET,
/// HTTP/1.1 or later, `Upgrade: websocket`, `Connection: Upgrade`, version 13, a key that is 16
/// bytes in base64) and returns the `Sec-WebSocket-Accept` value.
fn accept_key(head: &RequestHead) -> Result<String, UpgradeRejection> {
  let version = match head.minor_version {
    0 => ::http::Version::HTTP_10,
    _ => ::http::Version::HTTP_11,
  };
  let mut request = ::http::Request::builder()
    .method(head.method.as_str())
    .version(version)
    .uri("/");
  for name in [
    "connection",
    "upgrade",
    "sec-websocket-version",
    "sec-websocket-key",
  ] {
    if let Some(value) = head.header(name) {
      request = request.header(name, value.trim());
    }
  }
  let request = request
    .body(())
    .map_err(|_| UpgradeRejection::BadRequest("malformed WebSocket handshake headers"))?;
  let response = create_response(&request).map_err(|error| match error {
    WsError::Protocol(ProtocolError::WrongHttpMethod) => UpgradeRejection::MethodNotAllowed,
    WsError::Protocol(ProtocolError::WrongHttpVersion) => {
      UpgradeRejection::BadRequest("WebSocket upgrades need HTTP/1.1 or later")
    }
    WsError::Protocol(
      ProtocolError::MissingConnectionUpgradeHeader | ProtocolError::MissingUpgradeWebSocketHeader,
    ) => UpgradeRejection::UpgradeRequired,
    WsError::Protocol(ProtocolError::MissingSecWebSocketVersionHeader) => {
      UpgradeRejection::BadRequest("Sec-WebSocket-Version must be 13")
    }
    WsError::Protocol(ProtocolError::MissingSecWebSocketKey) => {
      UpgradeRejection::BadRequest("missing Sec-WebSocket-Key")
    }
    WsError::Protocol(ProtocolError::InvalidSecWebSocketKey) => {
      UpgradeRejection::BadRequest("Sec-WebSocket-Key must be 16 bytes in base64")
    }
    _ => UpgradeRejection::BadRequest("invalid WebSocket handshake"),
  })?;
  response
    .headers()
    .get("sec-websocket-accept")
    .and_then(|value| value.to_str().ok())
    .map(str::to_string)
    .ok_or(UpgradeRejection::BadRequest("invalid WebSocket handshake"))
}

fn reason_phrase(status: u16) -> &'static str {
  ::http::StatusCode::from_u16(status)
    .ok()
    .and_then(|status| status.canonical_reason())
    .unwrap_or("Error")
}

/// A complete response that closes the connection.
pub fn response(status: u16, content_type: &str, body: &str, extra_headers: &str) -> Vec<u8> {
  format!(
    "HTTP/1.1 {status} {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n{extra_headers}\r\n{body}",
    reason_phrase(status),
    body.len()
  )
  .into_bytes()
}

/// The JSON error response for a refused request: `{"error": message}` (and `"code"` if any).
pub fn rejection_response(rejection: &UpgradeRejection) -> Vec<u8> {
  let body = match rejection.code() {
    Some(code) => serde_json::json!({ "error": rejection.message(), "code": code }),
    None => serde_json::json!({ "error": rejection.message() }),
  }
  .to_string();
  let extra = match rejection {
    UpgradeRejection::UpgradeRequired => "Upgrade: websocket\r\n",
    _ => "",
  };
  response(rejection.status(), "application/json", &body, extra)
}

/// A static file; `HEAD` gets the headers only.
pub fn file_response(content_type: &str, body: &[u8], head_only: bool) -> Vec<u8> {
  let mut out = format!(
    "HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nCache-Control: no-cache\r\nX-Content-Type-Options: nosniff\r\nConnection: close\r\n\r\n",
    body.len()
  )
  .into_bytes();
  if !head_only {
    out.extend_from_slice(body);
  }
  out
}

pub fn no_content_response() -> Vec<u8> {
  b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n".to_vec()
}

pub fn health_response() -> Vec<u8> {
  response(200, "application/json", r#"{"status":"ok"}"#, "")
}

pub fn switching_protocols(accept_key: &str) -> Vec<u8> {
  format!(
    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept_key}\r\n\r\n"
  )
  .into_bytes()
}

#[cfg(test)]
pub(crate) mod tests;
