//! warren's native core: a WebSocket server whose sessions, actors, fan-out and storage live in
//! Rust, and whose user code (hooks and handlers) lives in JavaScript.
//!
//! Layout:
//! - [`config`]: every limit and timeout, with its default and why.
//! - [`error`]: close codes and the typed errors of each boundary.
//! - [`protocol`]: client frames parsed once (borrowed), server frames encoded once.
//! - [`calls`]: call deadlines; the first answer (reply or timeout) wins.
//! - [`dispatch`]: inbound events batched for the JS thread; the only queue towards JS.
//! - [`store`]: the only module that names sled: durable state, room lists, group commit.
//! - [`durable`]: what is kept on disk and the operations that change it (commit, destroy).
//! - [`gate`]: the output gate: frames after a state change wait until it is durable.
//! - [`outbox`]: the bounded per-session queue of frames towards a socket.
//! - [`registry`]: the single owner of sessions, actors and rooms, and the fan-out to them.
//! - [`rooms`]: room instances and live membership (per user, while it has a session).
//! - [`http`]: the HTTP/1.1 request head before the upgrade, and the plain responses.
//! - [`session`]: one WebSocket: its reader and writer, pings answered here.
//! - [`static_files`]: a directory served over GET beside the sockets (the demo page).
//! - [`schedules`]: scheduled events, stored and fired in due order.
//! - [`server`]: accept loop, upgrade with auth in JS, idle eviction, shutdown.
//! - [`bindings`]: the napi skin; nothing else in the crate names napi.
//!
//! Rules (DESIGN §4): Rust owns I/O, JS owns user code; events cross to JS in batches; a frame
//! is encoded once whatever the number of recipients; every queue is bounded.
#![deny(clippy::all)]

pub mod bindings;
pub mod calls;
pub mod config;
pub mod dispatch;
pub mod durable;
pub mod error;
pub mod gate;
pub mod http;
pub mod outbox;
pub mod protocol;
pub mod registry;
pub mod rooms;
pub mod schedules;
pub mod server;
pub mod session;
pub mod static_files;
pub mod store;
