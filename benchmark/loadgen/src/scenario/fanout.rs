//! `fanout`: M members join one room, then one publisher (not a member) sends `--messages` ticks.
//!
//! Join barrier: each member sends `join` then an echo, and counts as joined when the echo returns.
//! Every server handles one connection's frames in order, so the reply proves the join was applied
//! before the first publish.
//!
//! Pacing: `--rate R` sends at R msgs/s; `--rate 0` sends as fast as deliveries allow while at most
//! `--window` messages are not yet delivered to every member, so server queues stay bounded and the
//! figure is the server's sustained fan-out, not the size of its buffers.
//!
//! Warm-up: `--warmup-messages W` ticks go first (same pacing) and are fully delivered before the
//! measured ticks start; they warm JITs and buffers and are excluded from every figure.
//!
//! Deliveries/s = measured deliveries / (last measured delivery − first measured send). Latency =
//! receive time − the send time embedded in the tick (one process, one monotonic clock).

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::stream::{self, StreamExt};
use serde_json::{json, Value};
use tokio::sync::{watch, Notify};
use tokio::time::{sleep_until, timeout_at, Instant};

use super::{positive, secs, Common};
use crate::args::Flags;
use crate::clock;
use crate::conn::Conn;
use crate::proto::{Incoming, Proto, ROOM};
use crate::stats::{round1, CpuWindow, Samples};

/// Upper bound on `--messages`: one counter per message is kept.
const MAX_MESSAGES: u64 = 10_000_000;

pub struct Params {
    members: usize,
    messages: u64,
    warmup_messages: u64,
    rate: f64,
    window: u64,
    size: usize,
    drain: Duration,
}

impl Params {
    pub fn from_flags(flags: &mut Flags) -> Result<Params, String> {
        let p = Params {
            members: positive(flags.get("members", 1000)?, "members")?,
            messages: flags.get("messages", 200)?,
            warmup_messages: flags.get("warmup-messages", 0)?,
            rate: flags.get("rate", 0.0)?,
            window: flags.get("window", 32)?,
            size: flags.get("size", 0)?,
            drain: secs(flags.get("drain", 10.0)?, "drain")?,
        };
        if p.messages == 0 || p.messages + p.warmup_messages > MAX_MESSAGES {
            return Err(format!("--messages must be at least 1, and with --warmup-messages at most {MAX_MESSAGES}"));
        }
        if !(p.rate.is_finite() && p.rate >= 0.0) {
            return Err("--rate must be >= 0 (0 = bounded window)".to_string());
        }
        if p.window == 0 {
            return Err("--window must be at least 1".to_string());
        }
        Ok(p)
    }

    pub fn json(&self) -> Value {
        json!({
            "members": self.members,
            "messages": self.messages,
            "warmup_messages": self.warmup_messages,
            "rate": self.rate,
            "window": if self.rate == 0.0 { Some(self.window) } else { None },
            "size": self.size,
            "drain_s": self.drain.as_secs_f64(),
        })
    }
}

/// Delivery bookkeeping shared by members (writers) and the publisher (reader).
struct Progress {
    members: u32,
    /// Members that received message `seq`; the member that completes it bumps `completed`.
    per_seq: Vec<AtomicU32>,
    /// Messages delivered to every member.
    completed: AtomicU64,
    /// Woken once per completed message; the publisher is the only waiter.
    notify: Notify,
}

#[derive(Default)]
struct MemberOutcome {
    received: u64,
    last_ns: u64,
    samples: Samples,
    duplicates: u64,
    gaps: u64,
    bad_seq: u64,
    server_errors: u64,
    other_frames: u64,
    closed_early: bool,
    error: Option<String>,
}

pub async fn run(common: &Common, p: &Params) -> Result<Value, String> {
    let proto = common.target.proto;
    if proto == Proto::Raw {
        return Err("fanout needs rooms: use --proto warren or --proto socketio".to_string());
    }
    let deadline = common.deadline;
    let connect_started = Instant::now();
    let mut publisher_conn = common
        .open_all(0..1)
        .await?
        .pop()
        .expect("open_all returns one connection per id");
    let members = common.open_all(1..p.members + 1).await?;
    let connect_s = connect_started.elapsed().as_secs_f64();

    let join_started = Instant::now();
    let joined: Vec<Result<Conn, String>> = stream::iter(members)
        .map(|conn| join(conn, proto, deadline))
        .buffer_unordered(common.connect_concurrency)
        .collect()
        .await;
    let mut members = Vec::with_capacity(joined.len());
    for r in joined {
        members.push(r.map_err(|e| format!("join: {e}"))?);
    }
    let join_s = join_started.elapsed().as_secs_f64();

    let total_messages = p.warmup_messages + p.messages;
    let progress = Arc::new(Progress {
        members: p.members as u32,
        per_seq: (0..total_messages).map(|_| AtomicU32::new(0)).collect(),
        completed: AtomicU64::new(0),
        notify: Notify::new(),
    });
    let (stop_tx, stop_rx) = watch::channel(false);
    let tasks: Vec<_> = members
        .into_iter()
        .map(|conn| tokio::spawn(member(conn, progress.clone(), stop_rx.clone(), p.warmup_messages, total_messages)))
        .collect();

    let pad = "x".repeat(p.size);
    let mut publisher = Publisher { conn: &mut publisher_conn, proto, pad: &pad, progress: &progress, p, deadline };
    let warm = publisher.send_range(0..p.warmup_messages).await;
    let warm = match warm {
        Ok(()) if publisher.drain(p.warmup_messages).await => Ok(()),
        Ok(()) => Err(PublishStop::Stalled(p.warmup_messages)),
        Err(stop) => Err(stop),
    };

    let cpu = CpuWindow::start();
    let first_send_ns = clock::now_ns();
    let publish_started = Instant::now();
    let measured = match warm {
        Ok(()) => publisher.send_range(p.warmup_messages..total_messages).await,
        Err(stop) => Err(stop),
    };
    let (sent_to, stalled, publisher_error) = match measured {
        Ok(()) => (total_messages, false, None),
        Err(PublishStop::Stalled(at)) => (at, true, None),
        Err(PublishStop::Failed(at, e)) => (at, false, Some(e)),
    };
    let sent = sent_to.saturating_sub(p.warmup_messages);
    let publish_s = publish_started.elapsed().as_secs_f64();
    publisher.drain(sent_to).await;
    let server_window = cpu.server();
    let generator = cpu.finish();
    let _ = stop_tx.send(true);

    let mut total = MemberOutcome::default();
    let mut errors = Vec::new();
    let mut closed_early = 0usize;
    let mut conns = Vec::with_capacity(tasks.len());
    for task in tasks {
        let (conn, out) = task.await.map_err(|e| format!("member task: {e}"))?;
        conns.push(conn);
        total.received += out.received;
        total.last_ns = total.last_ns.max(out.last_ns);
        total.samples.merge(out.samples);
        total.duplicates += out.duplicates;
        total.gaps += out.gaps;
        total.bad_seq += out.bad_seq;
        total.server_errors += out.server_errors;
        total.other_frames += out.other_frames;
        closed_early += out.closed_early as usize;
        errors.extend(out.error);
    }
    let expected = sent * p.members as u64;
    let span_s = total.last_ns.saturating_sub(first_send_ns) as f64 / 1e9;
    let result = json!({
        "deliveries_per_s": if span_s > 0.0 { round1(total.received as f64 / span_s) } else { 0.0 },
        "deliveries": total.received,
        "expected_deliveries": expected,
        "lost": expected.saturating_sub(total.received),
        "sent": sent,
        "latency_us": total.samples.summary_us(),
        "span_s": (span_s * 1e6).round() / 1e6,
        "publish_s": (publish_s * 1e6).round() / 1e6,
        "connect_s": (connect_s * 1e3).round() / 1e3,
        "join_s": (join_s * 1e3).round() / 1e3,
        "stalled": stalled,
        "publisher_error": publisher_error,
        "duplicates": total.duplicates,
        "gaps": total.gaps,
        "bad_seq": total.bad_seq,
        "server_errors": total.server_errors,
        "other_frames": total.other_frames,
        "closed_early": closed_early,
        "member_errors": errors.len(),
        "first_member_error": errors.first(),
        "generator": generator,
        "server_window": server_window,
    });
    stream::iter(conns.into_iter().chain(std::iter::once(publisher_conn)))
        .for_each_concurrent(common.connect_concurrency, |c| c.close(Duration::from_millis(500)))
        .await;
    Ok(result)
}

/// `join`, then an echo whose reply proves the join was applied (see the module doc).
async fn join(mut conn: Conn, proto: Proto, deadline: Instant) -> Result<Conn, String> {
    let work = async {
        conn.send(proto.join(ROOM)).await?;
        conn.send(proto.echo(0, clock::now_ns(), "")).await?;
        loop {
            match conn.recv().await? {
                Some(Incoming::Echo { .. }) => return Ok(()),
                Some(Incoming::Error) => return Err("server sent an error frame".to_string()),
                Some(_) => continue,
                None => return Err("closed before the join was confirmed".to_string()),
            }
        }
    };
    match timeout_at(deadline, work).await {
        Ok(Ok(())) => Ok(conn),
        Ok(Err(e)) => Err(e),
        Err(_) => Err("timed out waiting for the join confirmation".to_string()),
    }
}

/// Why publishing stopped early, with the next sequence number it would have sent.
enum PublishStop {
    /// No delivery progress for `--drain`, or the deadline came.
    Stalled(u64),
    Failed(u64, String),
}

/// The publisher connection and what pacing it needs.
struct Publisher<'a> {
    conn: &'a mut Conn,
    proto: Proto,
    pad: &'a str,
    progress: &'a Progress,
    p: &'a Params,
    deadline: Instant,
}

impl Publisher<'_> {
    /// Sends ticks `seqs`, paced by `--rate` or by the `--window` of undelivered messages.
    async fn send_range(&mut self, seqs: std::ops::Range<u64>) -> Result<(), PublishStop> {
        let started = Instant::now();
        let first = seqs.start;
        for seq in seqs {
            if self.p.rate == 0.0 {
                while seq - self.progress.completed.load(Ordering::Acquire) >= self.p.window {
                    let limit = self.deadline.min(Instant::now() + self.p.drain);
                    match timeout_at(limit, wait_or_read(&self.progress.notify, self.conn)).await {
                        Ok(Ok(())) => {}
                        Ok(Err(e)) => return Err(PublishStop::Failed(seq, e)),
                        Err(_) => return Err(PublishStop::Stalled(seq)),
                    }
                }
            } else {
                let due = started + Duration::from_secs_f64((seq - first) as f64 / self.p.rate);
                if due >= self.deadline {
                    return Err(PublishStop::Stalled(seq));
                }
                sleep_until(due).await;
            }
            let frame = self.proto.publish(seq, clock::now_ns(), self.pad);
            match timeout_at(self.deadline, self.conn.send(frame)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(PublishStop::Failed(seq, e)),
                Err(_) => return Err(PublishStop::Stalled(seq)),
            }
        }
        Ok(())
    }

    /// Waits until the first `sent` messages reached every member; `false` if `--drain` passed without
    /// progress or the deadline came first.
    async fn drain(&mut self, sent: u64) -> bool {
        while self.progress.completed.load(Ordering::Acquire) < sent {
            let limit = self.deadline.min(Instant::now() + self.p.drain);
            match timeout_at(limit, wait_or_read(&self.progress.notify, self.conn)).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) | Err(_) => return false,
            }
        }
        true
    }
}

/// Waits for the next completed message while keeping the publisher's own socket read (socket.io pings,
/// anything a server sends it).
async fn wait_or_read(notify: &Notify, publisher: &mut Conn) -> Result<(), String> {
    tokio::select! {
        _ = notify.notified() => Ok(()),
        frame = publisher.recv() => match frame? {
            Some(_) => Ok(()),
            None => Err("publisher closed by the server".to_string()),
        },
    }
}

/// Receives ticks until all `total` arrived or the run stops; seqs below `warmup` are not measured.
async fn member(
    mut conn: Conn,
    progress: Arc<Progress>,
    mut stop: watch::Receiver<bool>,
    warmup: u64,
    total: u64,
) -> (Conn, MemberOutcome) {
    let mut out = MemberOutcome::default();
    let mut next = 0u64;
    // One registration with the watch for the whole loop, not one per frame.
    let stopped = stop.changed();
    tokio::pin!(stopped);
    while next < total {
        let frame = tokio::select! {
            biased;
            frame = conn.recv() => frame,
            _ = &mut stopped => break,
        };
        match frame {
            Ok(Some(Incoming::Tick { seq, t_ns })) => {
                let now = clock::now_ns();
                if seq >= total {
                    out.bad_seq += 1;
                    continue;
                }
                if seq < next {
                    out.duplicates += 1;
                    continue;
                }
                if seq > next {
                    out.gaps += 1;
                }
                next = seq + 1;
                if seq >= warmup {
                    out.received += 1;
                    out.last_ns = now;
                    out.samples.record(now.saturating_sub(t_ns));
                }
                let reached = progress.per_seq[seq as usize].fetch_add(1, Ordering::AcqRel) + 1;
                if reached == progress.members {
                    progress.completed.fetch_add(1, Ordering::AcqRel);
                    progress.notify.notify_one();
                }
            }
            Ok(Some(Incoming::Error)) => out.server_errors += 1,
            Ok(Some(_)) => out.other_frames += 1,
            Ok(None) => {
                out.closed_early = true;
                break;
            }
            Err(e) => {
                out.error = Some(e);
                break;
            }
        }
    }
    (conn, out)
}
