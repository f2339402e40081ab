//! Latency samples, percentiles and the generator's own CPU time.
//!
//! Samples are kept exact (one `u64` of nanoseconds each) rather than bucketed: a 10 s echo run at
//! 300k msgs/s is 24 MB, and exact values make p99 and max trustworthy. Each recorder is capped at
//! [`MAX_SAMPLES_PER_RECORDER`] so memory stays bounded whatever the flags; drops are counted.

use std::time::Instant;

use serde_json::{json, Value};

/// 8M samples (64 MB) per recorder: several times a 10 s single-core run.
pub const MAX_SAMPLES_PER_RECORDER: usize = 8 << 20;

#[derive(Default)]
pub struct Samples {
    ns: Vec<u64>,
    dropped: u64,
}

impl Samples {
    pub fn record(&mut self, ns: u64) {
        if self.ns.len() < MAX_SAMPLES_PER_RECORDER {
            self.ns.push(ns);
        } else {
            self.dropped += 1;
        }
    }

    pub fn merge(&mut self, other: Samples) {
        let room = MAX_SAMPLES_PER_RECORDER.saturating_sub(self.ns.len());
        let take = room.min(other.ns.len());
        self.ns.extend_from_slice(&other.ns[..take]);
        self.dropped += other.dropped + (other.ns.len() - take) as u64;
    }

    /// `{count, p50, p90, p99, p999, max, mean}` in microseconds (0.1 µs resolution).
    pub fn summary_us(mut self) -> Value {
        if self.ns.is_empty() {
            return json!({ "count": 0 });
        }
        self.ns.sort_unstable();
        let n = self.ns.len();
        let at = |q: f64| -> f64 {
            let idx = ((q * n as f64).ceil() as usize).clamp(1, n) - 1;
            us(self.ns[idx])
        };
        let mean = self.ns.iter().map(|&v| v as f64).sum::<f64>() / n as f64 / 1000.0;
        json!({
            "count": n,
            "dropped": self.dropped,
            "p50": at(0.50),
            "p90": at(0.90),
            "p99": at(0.99),
            "p999": at(0.999),
            "max": us(self.ns[n - 1]),
            "mean": round1(mean),
        })
    }
}

fn us(ns: u64) -> f64 {
    round1(ns as f64 / 1000.0)
}

pub fn round1(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

/// User + system CPU seconds of this process so far (all threads).
pub fn cpu_seconds() -> f64 {
    // SAFETY: getrusage writes into the zeroed struct we own.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// The server's processes (`--server-pids`), whose CPU is read at the same moments as ours.
static SERVER_PIDS: std::sync::OnceLock<Vec<u32>> = std::sync::OnceLock::new();

/// Records `--server-pids` (comma-separated; empty: none).
pub fn watch_server(list: &str) -> Result<(), String> {
    let pids = list
        .split(',')
        .filter(|part| !part.is_empty())
        .map(|part| part.parse::<u32>().map_err(|_| format!("--server-pids: bad pid {part:?}")))
        .collect::<Result<Vec<_>, _>>()?;
    let _ = SERVER_PIDS.set(pids);
    Ok(())
}

/// User + system CPU seconds of the watched server processes so far (those still alive), or
/// None when none is watched.
fn server_cpu_seconds() -> Option<f64> {
    let pids = SERVER_PIDS.get().filter(|pids| !pids.is_empty())?;
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let total: u64 = pids
        .iter()
        .filter_map(|pid| std::fs::read_to_string(format!("/proc/{pid}/stat")).ok())
        .filter_map(|stat| {
            // Fields after the command name, which may hold spaces: state is field 0, utime 11, stime 12.
            let rest = stat.rsplit_once(')')?.1;
            let fields: Vec<&str> = rest.split_whitespace().collect();
            Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
        })
        .sum();
    Some(total as f64 / ticks)
}

/// CPU use of the generator (and of the watched server) over one measured interval, so a harness
/// can label a generator-bound result and count the server's CPU for exactly the measured work.
pub struct CpuWindow {
    cpu_start: f64,
    server_start: Option<f64>,
    wall_start: Instant,
}

impl CpuWindow {
    pub fn start() -> CpuWindow {
        CpuWindow { cpu_start: cpu_seconds(), server_start: server_cpu_seconds(), wall_start: Instant::now() }
    }

    /// The watched server's `{cpu_s, cpu_pct}` over the same interval as [`CpuWindow::finish`]'s.
    pub fn server(&self) -> Value {
        let (Some(start), Some(now)) = (self.server_start, server_cpu_seconds()) else {
            return Value::Null;
        };
        let cpu = now - start;
        let wall = self.wall_start.elapsed().as_secs_f64();
        json!({
            "cpu_s": (cpu * 1000.0).round() / 1000.0,
            "cpu_pct": if wall > 0.0 { round1(100.0 * cpu / wall) } else { 0.0 },
        })
    }

    /// `{cpu_s, wall_s, cpu_pct}`; with `--threads 1`, 100% means the generator was saturated.
    pub fn finish(&self) -> Value {
        let cpu = cpu_seconds() - self.cpu_start;
        let wall = self.wall_start.elapsed().as_secs_f64();
        json!({
            "cpu_s": (cpu * 1000.0).round() / 1000.0,
            "wall_s": (wall * 1000.0).round() / 1000.0,
            "cpu_pct": if wall > 0.0 { round1(100.0 * cpu / wall) } else { 0.0 },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_pick_nearest_rank() {
        let mut s = Samples::default();
        for v in 1..=100u64 {
            s.record(v * 1000);
        }
        let sum = s.summary_us();
        assert_eq!(sum["p50"], 50.0);
        assert_eq!(sum["p99"], 99.0);
        assert_eq!(sum["max"], 100.0);
    }
}
