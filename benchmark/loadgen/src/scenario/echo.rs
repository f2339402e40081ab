//! `echo`: N clients, each keeping `inflight` echoes outstanding; throughput and round-trip latency.
//!
//! Replies come back in order on each connection, so a per-client FIFO of send instants gives the round
//! trip without trusting the server to copy anything; the echoed `seq` is checked against the FIFO.
//! Only replies received inside the measured window (after `--warmup`, for `--duration`) count.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::time::{sleep_until, timeout_at, Instant};

use super::{positive, secs, Common};
use crate::clock;
use crate::conn::Conn;
use crate::proto::{Incoming, Proto};
use crate::stats::{round1, CpuWindow, Samples};
use crate::args::Flags;

pub struct Params {
    clients: usize,
    inflight: usize,
    size: usize,
    duration: Duration,
    warmup: Duration,
}

impl Params {
    pub fn from_flags(flags: &mut Flags) -> Result<Params, String> {
        Ok(Params {
            clients: positive(flags.get("clients", 50)?, "clients")?,
            inflight: positive(flags.get("inflight", 1)?, "inflight")?,
            size: flags.get("size", 32)?,
            duration: secs(flags.get("duration", 10.0)?, "duration")?,
            warmup: secs(flags.get("warmup", 2.0)?, "warmup")?,
        })
    }

    pub fn json(&self) -> Value {
        json!({
            "clients": self.clients,
            "inflight": self.inflight,
            "size": self.size,
            "duration_s": self.duration.as_secs_f64(),
            "warmup_s": self.warmup.as_secs_f64(),
        })
    }
}

#[derive(Default)]
struct ClientOutcome {
    received: u64,
    samples: Samples,
    seq_mismatch: u64,
    server_errors: u64,
    other_frames: u64,
    closed_early: bool,
    error: Option<String>,
}

pub async fn run(common: &Common, p: &Params) -> Result<Value, String> {
    if p.duration.is_zero() {
        return Err("--duration must be above 0".to_string());
    }
    if Instant::now() + p.warmup + p.duration >= common.deadline {
        return Err("--warmup + --duration leave no time before --timeout".to_string());
    }
    let conns = common.open_all(0..p.clients).await?;
    let proto = common.target.proto;
    let pad: Arc<str> = "x".repeat(p.size).into();
    let warm_end = Instant::now() + p.warmup;
    let end = warm_end + p.duration;
    if end >= common.deadline {
        return Err("connecting took the time --timeout leaves for --warmup + --duration".to_string());
    }
    let frame_bytes = proto.wire_len(&proto.echo(0, clock::now_ns(), &pad));

    let tasks: Vec<_> = conns
        .into_iter()
        .map(|conn| tokio::spawn(client(conn, proto, p.inflight, pad.clone(), warm_end, end)))
        .collect();

    sleep_until(warm_end).await;
    let cpu = CpuWindow::start();
    sleep_until(end).await;
    let server_window = cpu.server();
    let generator = cpu.finish();

    let mut total = ClientOutcome::default();
    let mut errors = Vec::new();
    let mut closed_early = 0usize;
    for task in tasks {
        let out = task.await.map_err(|e| format!("client task: {e}"))?;
        total.received += out.received;
        total.samples.merge(out.samples);
        total.seq_mismatch += out.seq_mismatch;
        total.server_errors += out.server_errors;
        total.other_frames += out.other_frames;
        closed_early += out.closed_early as usize;
        errors.extend(out.error);
    }
    let measured_s = p.duration.as_secs_f64();
    Ok(json!({
        "msgs_per_s": round1(total.received as f64 / measured_s),
        "messages": total.received,
        "latency_us": total.samples.summary_us(),
        "request_frame_bytes": frame_bytes,
        "seq_mismatch": total.seq_mismatch,
        "server_errors": total.server_errors,
        "other_frames": total.other_frames,
        "closed_early": closed_early,
        "client_errors": errors.len(),
        "first_client_error": errors.first(),
        "generator": generator,
        "server_window": server_window,
    }))
}

async fn client(
    mut conn: Conn,
    proto: Proto,
    inflight: usize,
    pad: Arc<str>,
    warm_end: Instant,
    end: Instant,
) -> ClientOutcome {
    let mut out = ClientOutcome::default();
    let mut pending: VecDeque<(u64, Instant)> = VecDeque::with_capacity(inflight);
    let mut next_seq = 0u64;
    let result: Result<(), String> = async {
        send_batch(&mut conn, proto, inflight, &mut next_seq, &pad, &mut pending, end).await?;
        // One timer for the whole run rather than one per read.
        let window_closed = sleep_until(end);
        tokio::pin!(window_closed);
        loop {
            let first = tokio::select! {
                biased;
                frame = conn.recv() => frame?,
                _ = &mut window_closed => return Ok(()),
            };
            // Replies that arrived together are answered together: one write for the batch, as a
            // pipelining client does, so the generator's syscalls do not cap the 8-in-flight figure.
            // They were read in one wake-up, so one clock reading stamps them all.
            let now = Instant::now();
            let mut replaced = 0usize;
            let mut frame = Some(first);
            while let Some(f) = frame.take() {
                match f {
                    Some(Incoming::Echo { seq }) => {
                        let Some((sent_seq, sent_at)) = pending.pop_front() else {
                            out.other_frames += 1;
                            continue;
                        };
                        if sent_seq != seq {
                            out.seq_mismatch += 1;
                        }
                        if now >= end {
                            return Ok(());
                        }
                        if now >= warm_end {
                            out.received += 1;
                            out.samples.record((now - sent_at).as_nanos() as u64);
                        }
                        replaced += 1;
                    }
                    Some(Incoming::Error) => out.server_errors += 1,
                    Some(_) => out.other_frames += 1,
                    None => {
                        out.closed_early = true;
                        return Ok(());
                    }
                }
                if pending.is_empty() {
                    break;
                }
                frame = conn.recv_ready().transpose()?;
            }
            send_batch(&mut conn, proto, replaced, &mut next_seq, &pad, &mut pending, end).await?;
        }
    }
    .await;
    if let Err(e) = result {
        out.error = Some(e);
    }
    conn.close(Duration::from_millis(500)).await;
    out
}

/// Sends `count` new echoes with one flush. Running into the end of the window is not an error.
async fn send_batch(
    conn: &mut Conn,
    proto: Proto,
    count: usize,
    next_seq: &mut u64,
    pad: &str,
    pending: &mut VecDeque<(u64, Instant)>,
    end: Instant,
) -> Result<(), String> {
    if count == 0 {
        return Ok(());
    }
    let work = async {
        let (t_ns, sent_at) = (clock::now_ns(), Instant::now());
        for _ in 0..count {
            let seq = *next_seq;
            *next_seq += 1;
            conn.feed(proto.echo(seq, t_ns, pad)).await?;
            pending.push_back((seq, sent_at));
        }
        conn.flush().await
    };
    match timeout_at(end, work).await {
        Ok(result) => result,
        Err(_) => Ok(()),
    }
}
