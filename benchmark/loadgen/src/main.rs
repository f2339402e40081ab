//! warren's load generator: one binary that drives every benchmarked server, so figures are comparable.
//!
//! Layout:
//! - `args`     — the hand-written flag parser and the loopback-only `--host` rule
//! - `clock`    — process-local nanosecond clock for timestamps embedded in payloads
//! - `proto`    — raw / warren / socket.io frames: building requests, recognising replies
//! - `msgpack`  — warren's frames as MessagePack (`--proto warren-msgpack`)
//! - `conn`     — one client socket: spread source address, handshakes, engine.io ping answers
//! - `stats`    — exact latency percentiles and the generator's own CPU use
//! - `scenario` — `echo`, `fanout`, `idle`, `accept`
//!
//! Each run prints one JSON object on stdout: `{scenario, proto, target, threads, timeout_s, params,
//! results}` or, on failure, `error` instead of `results` (exit 1; 3 when the hard `--timeout` fired).
//! Runs on one runtime thread by default because the harness pins the generator to one core.

mod args;
mod clock;
mod conn;
mod msgpack;
mod proto;
mod scenario;
mod stats;

use std::time::Duration;

use serde_json::{json, Value};

use crate::args::{Flags, USAGE};
use crate::conn::Target;
use crate::proto::Proto;
use crate::scenario::{accept, echo, fanout, idle, Common};

/// Scenarios stop their own work this long before the hard timeout, so they report instead of being cut.
const GRACE: Duration = Duration::from_secs(1);

enum Scenario {
    Echo(echo::Params),
    Fanout(fanout::Params),
    Idle(idle::Params),
    Accept(accept::Params),
}

impl Scenario {
    fn name(&self) -> &'static str {
        match self {
            Scenario::Echo(_) => "echo",
            Scenario::Fanout(_) => "fanout",
            Scenario::Idle(_) => "idle",
            Scenario::Accept(_) => "accept",
        }
    }

    fn params(&self) -> Value {
        match self {
            Scenario::Echo(p) => p.json(),
            Scenario::Fanout(p) => p.json(),
            Scenario::Idle(p) => p.json(),
            Scenario::Accept(p) => p.json(),
        }
    }

    async fn run(&self, common: &Common) -> Result<Value, String> {
        match self {
            Scenario::Echo(p) => echo::run(common, p).await,
            Scenario::Fanout(p) => fanout::run(common, p).await,
            Scenario::Idle(p) => idle::run(common, p).await,
            Scenario::Accept(p) => accept::run(common, p).await,
        }
    }
}

struct Invocation {
    scenario: Scenario,
    target: Target,
    threads: usize,
    timeout: Duration,
    connect_concurrency: usize,
}

fn parse(argv: &[String]) -> Result<Option<Invocation>, String> {
    let Some((name, rest)) = argv.split_first() else {
        return Err("missing scenario".to_string());
    };
    if matches!(name.as_str(), "help" | "--help" | "-h") {
        return Ok(None);
    }
    let mut flags = Flags::parse(rest)?;
    let proto = Proto::parse(&flags.get("proto", "warren".to_string())?)?;
    let ip = args::loopback_host(&flags.get("host", "127.0.0.1".to_string())?)?;
    let port: u16 = flags.opt("port")?.ok_or("--port is required")?;
    let path: Option<String> = flags.opt("path")?;
    if let Some(p) = &path {
        if !p.starts_with('/') {
            return Err("--path must start with /".to_string());
        }
    }
    let threads = scenario::positive(flags.get("threads", 1)?, "threads")?;
    let timeout = scenario::secs(flags.get("timeout", 60.0)?, "timeout")?;
    if timeout <= GRACE {
        return Err(format!("--timeout must exceed {}s", GRACE.as_secs()));
    }
    let connect_concurrency =
        scenario::positive(flags.get("connect-concurrency", 100)?, "connect-concurrency")?;
    let server_pids: String = flags.get("server-pids", String::new())?;
    stats::watch_server(&server_pids)?;
    let scenario = match name.as_str() {
        "echo" => Scenario::Echo(echo::Params::from_flags(&mut flags)?),
        "fanout" => Scenario::Fanout(fanout::Params::from_flags(&mut flags)?),
        "idle" => Scenario::Idle(idle::Params::from_flags(&mut flags)?),
        "accept" => Scenario::Accept(accept::Params::from_flags(&mut flags)?),
        other => return Err(format!("unknown scenario {other:?}")),
    };
    flags.finish()?;
    Ok(Some(Invocation {
        scenario,
        target: Target { ip, port, proto, path },
        threads,
        timeout,
        connect_concurrency,
    }))
}

fn runtime(threads: usize) -> std::io::Result<tokio::runtime::Runtime> {
    if threads == 1 {
        tokio::runtime::Builder::new_current_thread().enable_all().build()
    } else {
        tokio::runtime::Builder::new_multi_thread().worker_threads(threads).enable_all().build()
    }
}

fn main() {
    clock::init();
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let inv = match parse(&argv) {
        Ok(Some(inv)) => inv,
        Ok(None) => {
            println!("{USAGE}");
            std::process::exit(0);
        }
        Err(msg) => {
            eprintln!("loadgen: {msg}\n\n{USAGE}");
            std::process::exit(2);
        }
    };
    let rt = match runtime(inv.threads) {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("loadgen: cannot start the runtime: {e}");
            std::process::exit(2);
        }
    };
    let outcome = rt.block_on(async {
        let common = Common {
            target: inv.target.clone(),
            connect_concurrency: inv.connect_concurrency,
            deadline: tokio::time::Instant::now() + (inv.timeout - GRACE),
        };
        tokio::time::timeout(inv.timeout, inv.scenario.run(&common)).await
    });
    let mut report = json!({
        "scenario": inv.scenario.name(),
        "proto": inv.target.proto.name(),
        "target": format!("{}:{}", inv.target.ip, inv.target.port),
        "path": inv.target.path.clone().unwrap_or_else(|| inv.target.proto.default_path(0)),
        "threads": inv.threads,
        "timeout_s": inv.timeout.as_secs_f64(),
        "params": inv.scenario.params(),
    });
    let code = match outcome {
        Ok(Ok(results)) => {
            report["results"] = results;
            0
        }
        Ok(Err(e)) => {
            report["error"] = Value::String(e);
            1
        }
        Err(_) => {
            report["error"] = Value::String(format!("hard timeout after {}s", inv.timeout.as_secs_f64()));
            3
        }
    };
    println!("{report}");
    // Exit without dropping the runtime: a blocked stdin reader (idle) must not hold the process open.
    std::process::exit(code);
}
