//! The one clock for embedded timestamps: nanoseconds since this process started.
//!
//! Publisher and members live in the same process, so a monotonic process-local clock is exact and
//! immune to wall-clock steps; it means nothing to the server, which only copies it back.

use std::sync::OnceLock;
use std::time::Instant;

static EPOCH: OnceLock<Instant> = OnceLock::new();

pub fn init() {
    EPOCH.get_or_init(Instant::now);
}

pub fn now_ns() -> u64 {
    EPOCH.get_or_init(Instant::now).elapsed().as_nanos() as u64
}
