//! Scenarios: one module per benchmark, each `Params::from_flags` + `run(&Common, &Params) -> results`.
//!
//! Every scenario is bounded twice: by its own counts and durations, finishing before
//! [`Common::deadline`] (one second ahead of `--timeout`), and by the hard `--timeout` in `main`.

pub mod accept;
pub mod echo;
pub mod fanout;
pub mod idle;

use futures_util::stream::{self, StreamExt};
use tokio::time::Instant;

use crate::conn::{self, Conn, Target};

/// Settings every scenario shares.
pub struct Common {
    pub target: Target,
    /// Connections being opened at once while setting up (members, echo clients, idle sockets).
    pub connect_concurrency: usize,
    /// Graceful end: scenarios stop their work and report by then.
    pub deadline: Instant,
}

impl Common {
    /// Opens connections `ids`, at most `connect_concurrency` at a time; results in completion order.
    pub async fn open_many(&self, ids: std::ops::Range<usize>) -> Vec<Result<Conn, String>> {
        stream::iter(ids)
            .map(|id| conn::open(&self.target, id, self.deadline))
            .buffer_unordered(self.connect_concurrency)
            .collect()
            .await
    }

    /// As [`Common::open_many`], but every connection must open: the first failure fails the run.
    pub async fn open_all(&self, ids: std::ops::Range<usize>) -> Result<Vec<Conn>, String> {
        let wanted = ids.len();
        let mut conns = Vec::with_capacity(wanted);
        let mut failed = 0usize;
        let mut first_error = None;
        for result in self.open_many(ids).await {
            match result {
                Ok(c) => conns.push(c),
                Err(e) => {
                    failed += 1;
                    first_error.get_or_insert(e);
                }
            }
        }
        match first_error {
            None => Ok(conns),
            Some(e) => Err(format!("{failed} of {wanted} connections failed; first: {e}")),
        }
    }
}

pub fn secs(raw: f64, name: &str) -> Result<std::time::Duration, String> {
    if !(raw.is_finite() && raw >= 0.0) {
        return Err(format!("--{name} must be a non-negative number of seconds"));
    }
    Ok(std::time::Duration::from_secs_f64(raw))
}

pub fn positive(v: usize, name: &str) -> Result<usize, String> {
    if v == 0 {
        Err(format!("--{name} must be at least 1"))
    } else {
        Ok(v)
    }
}
