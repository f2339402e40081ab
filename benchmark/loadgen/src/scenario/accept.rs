//! `accept`: connect, handshake and close as fast as possible, `--concurrency` at a time.
//!
//! "Handshake" is everything a client of that protocol waits for before it can send: the HTTP upgrade
//! (warren runs `extractMeta` in JS before answering it), plus for socket.io the engine.io open packet
//! and the `40` namespace connect. The close handshake is part of each connection's work but not of the
//! reported handshake latency.

use std::time::Duration;

use futures_util::stream::{self, StreamExt};
use serde_json::{json, Value};
use tokio::time::Instant;

use super::{positive, Common};
use crate::args::Flags;
use crate::conn;
use crate::stats::{round1, CpuWindow, Samples};

/// How long one connection may take to finish its close handshake before it is dropped.
const CLOSE_WAIT: Duration = Duration::from_secs(2);

pub struct Params {
    connections: usize,
    concurrency: usize,
}

impl Params {
    pub fn from_flags(flags: &mut Flags) -> Result<Params, String> {
        Ok(Params {
            connections: positive(flags.get("connections", 2000)?, "connections")?,
            concurrency: positive(flags.get("concurrency", 50)?, "concurrency")?,
        })
    }

    pub fn json(&self) -> Value {
        json!({ "connections": self.connections, "concurrency": self.concurrency })
    }
}

pub async fn run(common: &Common, p: &Params) -> Result<Value, String> {
    let target = &common.target;
    let deadline = common.deadline;
    let cpu = CpuWindow::start();
    let started = Instant::now();
    let outcomes: Vec<Result<u64, String>> = stream::iter(0..p.connections)
        .map(|id| async move {
            let t0 = Instant::now();
            let c = conn::open(target, id, deadline).await?;
            let handshake_ns = t0.elapsed().as_nanos() as u64;
            c.close(CLOSE_WAIT).await;
            Ok(handshake_ns)
        })
        .buffer_unordered(p.concurrency)
        .collect()
        .await;
    let elapsed = started.elapsed().as_secs_f64();
    let server_window = cpu.server();
    let generator = cpu.finish();
    let mut samples = Samples::default();
    let mut failed = 0usize;
    let mut first_error = None;
    for o in outcomes {
        match o {
            Ok(ns) => samples.record(ns),
            Err(e) => {
                failed += 1;
                first_error.get_or_insert(e);
            }
        }
    }
    let ok = p.connections - failed;
    Ok(json!({
        "connections_per_s": if elapsed > 0.0 { round1(ok as f64 / elapsed) } else { 0.0 },
        "completed": ok,
        "failed": failed,
        "first_error": first_error,
        "elapsed_s": (elapsed * 1e3).round() / 1e3,
        "handshake_latency_us": samples.summary_us(),
        "generator": generator,
        "server_window": server_window,
    }))
}
