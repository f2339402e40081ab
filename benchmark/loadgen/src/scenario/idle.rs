//! `idle`: open N sockets and hold them, so the harness can read the server's RSS per socket.
//!
//! Protocol with the harness: once opening is done, one line `IDLE OPEN <opened> <failed>` goes to
//! stderr; the sockets are then held for `--hold-secs`, or (without it) until stdin closes, and never
//! past the deadline. Held sockets keep reading so heartbeats (WebSocket pings, engine.io `2`) are
//! answered and the server does not drop them as dead. The JSON result follows on stdout.

use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::AsyncReadExt;
use tokio::sync::watch;
use tokio::time::{sleep_until, timeout_at, Instant};

use super::{positive, secs, Common};
use crate::args::Flags;
use crate::conn::Conn;
use crate::stats::{round1, CpuWindow};

pub struct Params {
    sockets: usize,
    hold: Option<Duration>,
}

impl Params {
    pub fn from_flags(flags: &mut Flags) -> Result<Params, String> {
        Ok(Params {
            sockets: positive(flags.get("sockets", 10_000)?, "sockets")?,
            hold: flags.opt::<f64>("hold-secs")?.map(|s| secs(s, "hold-secs")).transpose()?,
        })
    }

    pub fn json(&self) -> Value {
        json!({
            "sockets": self.sockets,
            "hold_s": self.hold.map(|d| d.as_secs_f64()),
        })
    }
}

pub async fn run(common: &Common, p: &Params) -> Result<Value, String> {
    let cpu = CpuWindow::start();
    let open_started = Instant::now();
    let mut conns = Vec::with_capacity(p.sockets);
    let mut failed = 0usize;
    let mut first_error = None;
    for result in common.open_many(0..p.sockets).await {
        match result {
            Ok(c) => conns.push(c),
            Err(e) => {
                failed += 1;
                first_error.get_or_insert(e);
            }
        }
    }
    let open_s = open_started.elapsed().as_secs_f64();
    let opening = cpu.finish();
    let opened = conns.len();
    {
        let mut err = std::io::stderr().lock();
        let _ = writeln!(err, "IDLE OPEN {opened} {failed}");
        let _ = err.flush();
    }

    let closed_by_server = Arc::new(AtomicUsize::new(0));
    let (stop_tx, stop_rx) = watch::channel(false);
    let holders: Vec<_> = conns
        .into_iter()
        .map(|conn| tokio::spawn(hold(conn, stop_rx.clone(), closed_by_server.clone())))
        .collect();

    let hold_started = Instant::now();
    let ended_by = match p.hold {
        Some(d) => {
            let until = (hold_started + d).min(common.deadline);
            sleep_until(until).await;
            if until < hold_started + d { "timeout" } else { "hold-secs" }
        }
        None => {
            let mut stdin = tokio::io::stdin();
            let mut sink = [0u8; 256];
            let drained = timeout_at(common.deadline, async {
                while let Ok(n) = stdin.read(&mut sink).await {
                    if n == 0 {
                        break;
                    }
                }
            })
            .await;
            if drained.is_ok() { "stdin" } else { "timeout" }
        }
    };
    let held_s = hold_started.elapsed().as_secs_f64();
    let still_open = opened - closed_by_server.load(Ordering::Acquire);
    let _ = stop_tx.send(true);
    for h in holders {
        let _ = h.await;
    }
    Ok(json!({
        "opened": opened,
        "failed": failed,
        "first_error": first_error,
        "open_s": (open_s * 1e3).round() / 1e3,
        "opens_per_s": if open_s > 0.0 { round1(opened as f64 / open_s) } else { 0.0 },
        "held_s": (held_s * 1e3).round() / 1e3,
        "ended_by": ended_by,
        "still_open_at_end": still_open,
        "closed_by_server": opened - still_open,
        "generator_opening": opening,
    }))
}

/// Reads until told to stop (then drops the socket) or until the server closes it (counted).
async fn hold(mut conn: Conn, mut stop: watch::Receiver<bool>, closed_by_server: Arc<AtomicUsize>) {
    let stopped = stop.changed();
    tokio::pin!(stopped);
    loop {
        tokio::select! {
            _ = &mut stopped => return,
            frame = conn.recv() => match frame {
                Ok(Some(_)) => continue,
                Ok(None) | Err(_) => {
                    closed_by_server.fetch_add(1, Ordering::AcqRel);
                    return;
                }
            },
        }
    }
}
