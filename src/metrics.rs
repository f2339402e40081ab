//! What the server counts about itself, for Prometheus (`GET /metrics`, `server.metrics()`) and
//! for `server.stats()`.
//!
//! Counters are atomics bumped with relaxed ordering where the thing happens (a frame read, a
//! frame handed to a socket writer, a call answered, a commit flushed): no lock on the hot path,
//! and nothing is allocated per observation. Histograms have fixed buckets, each an atomic, so an
//! observation is one bucket search and three atomic adds. Gauges (sessions, actors, rooms,
//! held frames, queue bytes) are not kept here: they are read from their owners when a scrape
//! renders the text, so they can never drift from the truth.
//!
//! The only map is the per-node forwarding count of cluster mode, behind a mutex that forwarded
//! frames (which cross Redis anyway) take; it holds one entry per peer node and direction.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;

/// A monotonically increasing count.
#[derive(Default, Debug)]
pub struct Counter(AtomicU64);

impl Counter {
  pub fn add(&self, n: u64) {
    self.0.fetch_add(n, Ordering::Relaxed);
  }

  pub fn inc(&self) {
    self.add(1);
  }

  pub fn get(&self) -> u64 {
    self.0.load(Ordering::Relaxed)
  }
}

/// Upper bounds of the histogram buckets, in microseconds (100 µs to 10 s; `+Inf` is implied).
/// One scale for every latency the server observes: calls, commits, JS batches, Redis.
pub const BUCKET_BOUNDS_MICROS: [u64; 16] = [
  100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000,
  2_500_000, 5_000_000, 10_000_000,
];

/// A latency histogram with the fixed buckets of [`BUCKET_BOUNDS_MICROS`].
#[derive(Default, Debug)]
pub struct Histogram {
  /// Observations per bucket (not cumulative); the last one is `+Inf`.
  buckets: [AtomicU64; BUCKET_BOUNDS_MICROS.len() + 1],
  count: AtomicU64,
  sum_micros: AtomicU64,
}

impl Histogram {
  pub fn observe(&self, elapsed: Duration) {
    let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
    let index = BUCKET_BOUNDS_MICROS
      .iter()
      .position(|bound| micros <= *bound)
      .unwrap_or(BUCKET_BOUNDS_MICROS.len());
    if let Some(bucket) = self.buckets.get(index) {
      bucket.fetch_add(1, Ordering::Relaxed);
    }
    self.count.fetch_add(1, Ordering::Relaxed);
    self.sum_micros.fetch_add(micros, Ordering::Relaxed);
  }

  pub fn count(&self) -> u64 {
    self.count.load(Ordering::Relaxed)
  }

  /// Writes the `_bucket`, `_sum` and `_count` lines of `name`, with `labels` (`key="v"`,
  /// comma-separated, or empty) on each.
  fn render(&self, out: &mut String, name: &str, labels: &str) {
    let sep = if labels.is_empty() { "" } else { "," };
    let mut cumulative = 0;
    for (i, bucket) in self.buckets.iter().enumerate() {
      cumulative += bucket.load(Ordering::Relaxed);
      let le = match BUCKET_BOUNDS_MICROS.get(i) {
        Some(bound) => seconds(*bound),
        None => "+Inf".to_string(),
      };
      let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{le}\"}} {cumulative}");
    }
    let braces = if labels.is_empty() {
      String::new()
    } else {
      format!("{{{labels}}}")
    };
    let _ = writeln!(
      out,
      "{name}_sum{braces} {}",
      seconds(self.sum_micros.load(Ordering::Relaxed))
    );
    // The count is the sum of the buckets read above, so `_count` equals the `+Inf` bucket.
    let _ = writeln!(out, "{name}_count{braces} {cumulative}");
  }
}

/// Microseconds as decimal seconds, without float formatting noise.
fn seconds(micros: u64) -> String {
  let whole = micros / 1_000_000;
  let fraction = micros % 1_000_000;
  if fraction == 0 {
    return whole.to_string();
  }
  let digits = format!("{fraction:06}");
  format!("{whole}.{}", digits.trim_end_matches('0'))
}

/// How a call ended, for `warren_calls_total{outcome=...}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallOutcome {
  /// The handler's value was the reply.
  Ok,
  /// An error reply: a `UserError`, `internal_error`, `bad_payload`, ...
  Error,
  /// No answer within `callTimeoutMs`.
  Timeout,
}

impl CallOutcome {
  const ALL: [CallOutcome; 3] = [CallOutcome::Ok, CallOutcome::Error, CallOutcome::Timeout];

  fn label(self) -> &'static str {
    match self {
      CallOutcome::Ok => "ok",
      CallOutcome::Error => "error",
      CallOutcome::Timeout => "timeout",
    }
  }
}

/// Which way a forwarded frame went (cluster mode).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Direction {
  /// A client frame of a session held here, sent to the node that owns its actor.
  ToOwner,
  /// A frame of an actor owned here, sent to the node that holds its session's socket.
  ToGateway,
}

impl Direction {
  fn label(self) -> &'static str {
    match self {
      Direction::ToOwner => "to_owner",
      Direction::ToGateway => "to_gateway",
    }
  }
}

/// The counters and histograms of one server.
#[derive(Default, Debug)]
pub struct Metrics {
  /// Event and call frames read from clients (pings are answered in the socket task, uncounted).
  pub frames_received: Counter,
  /// Frames handed to a socket's writer.
  pub frames_sent: Counter,
  /// Payload bytes of those frames.
  pub bytes_sent: Counter,
  /// Sessions closed with 1008 "slow consumer".
  pub backpressure_closes: Counter,
  /// Frames dropped under `backpressure: "drop"`.
  pub frames_dropped: Counter,
  calls: [Counter; 3],
  /// Time from a call frame handed to JS to its answer (reply, error or timeout).
  pub call_seconds: Histogram,
  /// Time from a state commit (a tick's changes applied) to the fsync that made it durable.
  pub commit_seconds: Histogram,
  /// Time the JS thread took to handle one batch of events.
  pub js_batch_seconds: Histogram,
  /// Cluster mode: round trip of the pipeline that writes a commit through to Redis.
  pub redis_commit_seconds: Histogram,
  /// Cluster mode: frames forwarded, by peer node and direction.
  forwarded: Mutex<BTreeMap<(String, Direction), u64>>,
}

/// The values read from their owners at render time.
#[derive(Clone, Copy, Debug, Default)]
pub struct Gauges {
  pub sessions: usize,
  pub actors_awake: usize,
  pub actors_hibernated: usize,
  pub rooms: usize,
  pub connections: usize,
  pub detached: usize,
  pub held_frames: usize,
  pub held_bytes: usize,
  pub dispatch_queue_bytes: usize,
  pub flush_failures: u64,
}

impl Metrics {
  pub fn call(&self, outcome: CallOutcome, elapsed: Duration) {
    if let Some(counter) = self.calls.get(outcome as usize) {
      counter.inc();
    }
    self.call_seconds.observe(elapsed);
  }

  pub fn calls(&self, outcome: CallOutcome) -> u64 {
    self.calls.get(outcome as usize).map_or(0, Counter::get)
  }

  pub fn forwarded(&self, node: &str, direction: Direction, frames: u64) {
    let mut forwarded = self.forwarded.lock();
    match forwarded.get_mut(&(node.to_string(), direction)) {
      Some(count) => *count += frames,
      None => {
        forwarded.insert((node.to_string(), direction), frames);
      }
    }
  }

  /// The Prometheus text exposition (format 0.0.4) of everything, `gauges` included. The
  /// cluster series appear only with `cluster`.
  pub fn render(&self, gauges: &Gauges, cluster: bool) -> String {
    let mut out = String::with_capacity(8 * 1024);
    let gauge = |out: &mut String, name: &str, help: &str, value: u64| {
      let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}");
    };
    let counter = |out: &mut String, name: &str, help: &str, value: u64| {
      let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}");
    };
    let histogram = |out: &mut String, name: &str, help: &str, h: &Histogram| {
      let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
      h.render(out, name, "");
    };
    let n = |v: usize| u64::try_from(v).unwrap_or(u64::MAX);
    gauge(&mut out, "warren_sessions", "Open sessions.", n(gauges.sessions));
    gauge(
      &mut out,
      "warren_detached_sessions",
      "Sessions whose socket dropped, waiting for their client to resume them.",
      n(gauges.detached),
    );
    gauge(
      &mut out,
      "warren_connections",
      "TCP connections in any phase.",
      n(gauges.connections),
    );
    let _ = writeln!(
      out,
      "# HELP warren_actors Actors in memory, by whether their JS side is awake or hibernated.\n# TYPE warren_actors gauge\nwarren_actors{{state=\"awake\"}} {}\nwarren_actors{{state=\"hibernated\"}} {}",
      gauges.actors_awake, gauges.actors_hibernated
    );
    gauge(
      &mut out,
      "warren_rooms",
      "Room instances in memory.",
      n(gauges.rooms),
    );
    gauge(
      &mut out,
      "warren_held_frames",
      "Frames waiting behind the output gate for a flush.",
      n(gauges.held_frames),
    );
    gauge(
      &mut out,
      "warren_held_bytes",
      "Bytes of the frames waiting behind the output gate.",
      n(gauges.held_bytes),
    );
    gauge(
      &mut out,
      "warren_dispatch_queue_bytes",
      "Bytes of events waiting for the JS thread.",
      n(gauges.dispatch_queue_bytes),
    );
    counter(
      &mut out,
      "warren_frames_received_total",
      "Event and call frames read from clients.",
      self.frames_received.get(),
    );
    counter(
      &mut out,
      "warren_frames_sent_total",
      "Frames handed to a socket's writer.",
      self.frames_sent.get(),
    );
    counter(
      &mut out,
      "warren_bytes_sent_total",
      "Payload bytes of the frames handed to a socket's writer, in the socket's encoding.",
      self.bytes_sent.get(),
    );
    counter(
      &mut out,
      "warren_backpressure_closes_total",
      "Sessions closed with 1008 slow consumer.",
      self.backpressure_closes.get(),
    );
    counter(
      &mut out,
      "warren_frames_dropped_total",
      "Frames dropped under backpressure: drop.",
      self.frames_dropped.get(),
    );
    counter(
      &mut out,
      "warren_flush_failures_total",
      "Commits and flushes the store refused (a full or failing disk).",
      gauges.flush_failures,
    );
    let _ = writeln!(
      out,
      "# HELP warren_calls_total Calls answered, by outcome.\n# TYPE warren_calls_total counter"
    );
    for outcome in CallOutcome::ALL {
      let _ = writeln!(
        out,
        "warren_calls_total{{outcome=\"{}\"}} {}",
        outcome.label(),
        self.calls(outcome)
      );
    }
    histogram(
      &mut out,
      "warren_call_seconds",
      "Time from a call reaching JS to its answer.",
      &self.call_seconds,
    );
    histogram(
      &mut out,
      "warren_commit_seconds",
      "Time from a state commit to the fsync that made it durable.",
      &self.commit_seconds,
    );
    histogram(
      &mut out,
      "warren_js_batch_seconds",
      "Time the JS thread took to handle one batch of events.",
      &self.js_batch_seconds,
    );
    if cluster {
      let _ = writeln!(
        out,
        "# HELP warren_forwarded_frames_total Frames forwarded to other nodes, by node and direction.\n# TYPE warren_forwarded_frames_total counter"
      );
      for ((node, direction), count) in self.forwarded.lock().iter() {
        let _ = writeln!(
          out,
          "warren_forwarded_frames_total{{node=\"{}\",direction=\"{}\"}} {count}",
          escape_label(node),
          direction.label()
        );
      }
      histogram(
        &mut out,
        "warren_redis_commit_seconds",
        "Round trip of the Redis pipeline that writes a commit through.",
        &self.redis_commit_seconds,
      );
    }
    out
  }
}

/// A label value as the text format wants it (`\`, `"` and newlines escaped).
fn escape_label(value: &str) -> String {
  value
    .replace('\\', "\\\\")
    .replace('"', "\\\"")
    .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn a_histogram_renders_cumulative_buckets_sum_and_count() {
    let metrics = Metrics::default();
    metrics.call(CallOutcome::Ok, Duration::from_micros(80));
    metrics.call(CallOutcome::Ok, Duration::from_millis(3));
    metrics.call(CallOutcome::Timeout, Duration::from_secs(60));
    let text = metrics.render(&Gauges::default(), false);
    assert!(
      text.contains("warren_call_seconds_bucket{le=\"0.0001\"} 1\n"),
      "{text}"
    );
    assert!(text.contains("warren_call_seconds_bucket{le=\"0.0025\"} 1\n"));
    assert!(text.contains("warren_call_seconds_bucket{le=\"0.005\"} 2\n"));
    assert!(text.contains("warren_call_seconds_bucket{le=\"10\"} 2\n"));
    assert!(text.contains("warren_call_seconds_bucket{le=\"+Inf\"} 3\n"));
    assert!(text.contains("warren_call_seconds_sum 60.00308\n"));
    assert!(text.contains("warren_call_seconds_count 3\n"));
    assert!(text.contains("warren_calls_total{outcome=\"ok\"} 2\n"));
    assert!(text.contains("warren_calls_total{outcome=\"timeout\"} 1\n"));
    assert!(!text.contains("warren_forwarded_frames_total"));
  }

  #[test]
  fn cluster_series_name_each_node_and_direction() {
    let metrics = Metrics::default();
    metrics.forwarded("web-2", Direction::ToOwner, 2);
    metrics.forwarded("web-2", Direction::ToOwner, 1);
    metrics.forwarded("we\"b-3", Direction::ToGateway, 4);
    let text = metrics.render(&Gauges::default(), true);
    assert!(text.contains("warren_forwarded_frames_total{node=\"web-2\",direction=\"to_owner\"} 3\n"));
    assert!(text.contains("warren_forwarded_frames_total{node=\"we\\\"b-3\",direction=\"to_gateway\"} 4\n"));
    assert!(text.contains("warren_redis_commit_seconds_count 0\n"));
  }
}
