//! JS values to core values: options to configuration (validated once, by the core, when a
//! server is created), and numbers from JS to typed ids.

use std::time::Duration;

use napi::bindgen_prelude::Buffer;
use napi_derive::napi;

use crate::config::{
  ClusterConfig, Definition, Durability, Location, OverflowPolicy, ServerConfig, TlsConfig,
};
use crate::error::CoreError;
use crate::ids::{ActorId, DefinitionId, HandlerId, SessionId};

/// A connection definition's endpoint.
#[napi(object)]
pub struct NativeEndpoint {
  /// The connection definition's name (storage keys start with it).
  pub name: String,
  /// Upgrade path, e.g. `/ws`.
  pub path: String,
  /// True when the definition has `extractMeta` (the upgrade waits for it).
  pub authenticates: bool,
  /// True when `path` is a prefix followed by the actor's key (`/actors/counter/<key>`).
  pub prefix: Option<bool>,
  /// True for a raw endpoint (`messages: "raw"`): messages as they are, no JSON protocol.
  pub raw: Option<bool>,
}

/// Cluster mode: several processes share rooms and users through Redis.
#[napi(object)]
pub struct NativeCluster {
  /// `redis://host:port`.
  pub redis: String,
  /// This process's name among the nodes. @default a random id
  pub node_id: Option<String>,
  /// How long the node's lease lasts without renewal. @default 10000
  pub lease_ms: Option<u32>,
}

/// A certificate for `wss://`, PEM.
#[napi(object)]
pub struct NativeTls {
  pub cert: Buffer,
  pub key: Buffer,
  pub ca: Option<Buffer>,
}

/// Options of the native server; the JS layer fills them from `createServer` options.
#[napi(object)]
pub struct NativeOptions {
  pub endpoints: Vec<NativeEndpoint>,
  /// @default 1048576
  pub max_payload_bytes: Option<u32>,
  /// Frames one inbound message may arrive in. @default 4096
  pub max_fragments: Option<u32>,
  /// Outbox bytes per session before it counts as a slow consumer. @default 1048576
  pub max_backpressure: Option<u32>,
  /// `"close"` (1008 "slow consumer") or `"drop"`. @default "close"
  pub backpressure: Option<String>,
  /// @default 10000
  pub handshake_timeout_ms: Option<u32>,
  /// @default 5000
  pub close_timeout_ms: Option<u32>,
  /// @default 30000
  pub hibernate_after_ms: Option<u32>,
  /// How long a dropped session waits for its client to resume it; 0 disables resume.
  /// @default 120000
  pub resume_window_ms: Option<u32>,
  /// Sent bytes a resumable session keeps until acknowledged. @default 1048576
  pub resume_buffer_bytes: Option<u32>,
  /// Sessions, open or waiting for a resume. @default 100000
  pub max_sessions: Option<u32>,
  /// Connections whose handshake has not finished; past it accepting pauses. @default 1024
  pub max_pending_handshakes: Option<u32>,
  /// Directory served over plain GET for paths that are not socket paths.
  pub static_dir: Option<String>,
  /// Room handler names, by index.
  pub room_handlers: Vec<String>,
  /// A directory, or `":memory:"` for a temporary store.
  pub storage: String,
  /// `"strict"` or `"relaxed"`. @default "strict"
  pub durability: Option<String>,
  /// @default 60000
  pub call_timeout_ms: Option<u32>,
  /// Bearer token that enables `DELETE /actors/<kind>/<key>`.
  pub admin_token: Option<String>,
  pub cluster: Option<NativeCluster>,
  /// Serve `wss://` on the server's own listener with this certificate.
  pub tls: Option<NativeTls>,
  /// Serve `GET /metrics`. @default false
  pub metrics: Option<bool>,
  /// Serve the inspector under `/_warren/` (needs `adminToken`). @default false
  pub inspector: Option<bool>,
}

fn millis(value: Option<u32>, default: Duration) -> Duration {
  value
    .map(|ms| Duration::from_millis(u64::from(ms)))
    .unwrap_or(default)
}

pub fn server_config(options: NativeOptions) -> Result<ServerConfig, CoreError> {
  let defaults = ServerConfig::default();
  let overflow_policy = match options.backpressure.as_deref() {
    None | Some("close") => OverflowPolicy::Close,
    Some("drop") => OverflowPolicy::Drop,
    Some(other) => {
      return Err(CoreError::InvalidOption(format!(
        "backpressure must be \"close\" or \"drop\", got {other:?}"
      )))
    }
  };
  let durability = match options.durability.as_deref() {
    None | Some("strict") => Durability::Strict,
    Some("relaxed") => Durability::Relaxed,
    Some(other) => {
      return Err(CoreError::InvalidOption(format!(
        "durability must be \"strict\" or \"relaxed\", got {other:?}"
      )))
    }
  };
  let storage = match options.storage.as_str() {
    "" => {
      return Err(CoreError::InvalidOption(
        "storage must be a directory or \":memory:\"".into(),
      ))
    }
    ":memory:" => Location::Memory,
    dir => Location::Directory(std::path::PathBuf::from(dir)),
  };
  let config = ServerConfig {
    tls: options.tls.map(tls_config),
    call_timeout: millis(options.call_timeout_ms, defaults.call_timeout),
    admin_token: options.admin_token.filter(|token| !token.is_empty()),
    cluster: options.cluster.map(|cluster| ClusterConfig {
      redis_url: cluster.redis,
      node_id: cluster
        .node_id
        .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string()),
      lease: millis(cluster.lease_ms, crate::config::NODE_LEASE),
    }),
    room_handlers: options.room_handlers,
    metrics: options.metrics.unwrap_or(false),
    inspector: options.inspector.unwrap_or(false),
    storage,
    durability,
    definitions: options
      .endpoints
      .into_iter()
      .map(|e| Definition {
        name: e.name,
        path: e.path,
        authenticates: e.authenticates,
        prefix: e.prefix.unwrap_or(false),
        raw: e.raw.unwrap_or(false),
      })
      .collect(),
    max_payload_bytes: options
      .max_payload_bytes
      .map_or(defaults.max_payload_bytes, |v| v as usize),
    max_fragments: options
      .max_fragments
      .map_or(defaults.max_fragments, |v| v as usize),
    max_backpressure_bytes: options
      .max_backpressure
      .map_or(defaults.max_backpressure_bytes, |v| v as usize),
    overflow_policy,
    handshake_timeout: millis(options.handshake_timeout_ms, defaults.handshake_timeout),
    close_timeout: millis(options.close_timeout_ms, defaults.close_timeout),
    hibernate_after: millis(options.hibernate_after_ms, defaults.hibernate_after),
    resume_window: millis(options.resume_window_ms, defaults.resume_window),
    resume_buffer_bytes: options
      .resume_buffer_bytes
      .map_or(defaults.resume_buffer_bytes, |v| v as usize),
    max_sessions: options.max_sessions.map_or(defaults.max_sessions, |v| v as usize),
    max_pending_handshakes: options
      .max_pending_handshakes
      .map_or(defaults.max_pending_handshakes, |v| v as usize),
    static_dir: match options.static_dir {
      Some(dir) => {
        let path = std::path::PathBuf::from(&dir);
        if !path.is_dir() {
          return Err(CoreError::InvalidOption(format!(
            "static must be an existing directory, got {dir:?}"
          )));
        }
        Some(path)
      }
      None => None,
    },
  };
  Ok(config)
}

pub fn tls_config(tls: NativeTls) -> TlsConfig {
  TlsConfig {
    cert_pem: tls.cert.to_vec(),
    key_pem: tls.key.to_vec(),
    ca_pem: tls.ca.map(|ca| ca.to_vec()),
  }
}

/// A number from JS as an id; a negative one names nothing.
fn id(value: i64) -> u64 {
  u64::try_from(value).unwrap_or(0)
}

pub fn session(value: i64) -> SessionId {
  SessionId(id(value))
}

pub fn actor(value: i64) -> ActorId {
  ActorId(id(value))
}

pub fn definition(value: u32) -> DefinitionId {
  DefinitionId(value as usize)
}

pub fn handler(value: u32) -> HandlerId {
  HandlerId(value as usize)
}
