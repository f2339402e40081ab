//! warren's native core: a WebSocket server whose sessions, actors, fan-out and storage live in
//! Rust, and whose user code (hooks and handlers) lives in JavaScript.
//!
//! Layout, from the leaves up (a module only uses the ones listed before it):
//! - [`config`]: every option, limit and timeout, with its default and why;
//! - [`metrics`]: counters and fixed-bucket histograms of atomics, rendered for Prometheus;
//! - [`error`]: close codes, how sessions end, and the typed errors of each boundary;
//! - [`ids`]: one identifier type per thing the core keeps;
//! - [`json`]: the one hand-written JSON writer (raw JSON copied, never re-parsed);
//! - [`msgpack`]: MessagePack to and from JSON text, streamed (a socket's second encoding);
//! - [`protocol`]: client frames parsed once (borrowed), server frames encoded once;
//! - [`events`]: the one event path to JS: an [`events::Event`] enum and its batched queue;
//! - [`inspector`]: the inspector's bounded journal of recent events and its embedded page;
//! - [`transport`]: listener, HTTP head and upgrade, static files, one task per socket, the
//!   bounded outbox; it calls up into the core only through [`transport::Host`];
//! - [`registry`]: sessions, actors and rooms under one lock, and the fan-out to them;
//! - [`durability`]: the output gate, the store (the only module that names sled), records;
//! - [`calls`]: call deadlines; the first answer (reply or timeout) wins;
//! - [`schedules`]: scheduled events, stored and fired in due order;
//! - [`core`]: [`core::Core`], the one API the bindings call, and the transport's host;
//! - [`bindings`]: the napi skin; nothing else in the crate names napi.
//!
//! Rules (DESIGN §4): Rust owns I/O, JS owns user code; events cross to JS in batches; a frame
//! is encoded once whatever the number of recipients; every queue is bounded.
#![deny(clippy::all)]

pub mod bindings;
pub mod calls;
pub mod cluster;
pub mod config;
pub mod core;
pub mod durability;
pub mod error;
pub mod events;
pub mod ids;
pub mod inspector;
pub mod json;
pub mod metrics;
pub mod msgpack;
pub mod protocol;
pub mod registry;
pub mod schedules;
pub mod transport;
