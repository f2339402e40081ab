//! The ceiling for warren's benchmarks: the same work as warren's benchmark app (DESIGN §3 frames,
//! echo, join, publish) with no JavaScript at all, built the way warren's core is built.
//!
//! Layout:
//! - `main`     — flags, runtime, accept loop, `READY <port>`
//! - `session`  — one socket: reader task parses and dispatches, writer task drains a bounded outbox
//! - `rooms`    — room name -> member outboxes; a publish is encoded once and its bytes shared
//! - `protocol` — parsing client frames once (borrowed) and building server frames
//!
//! Usage: `rust-ceiling [port] [--threads N]` (port also from `PORT`; 0 = any free port). One runtime
//! thread by default: the harness pins every server to one core.

mod protocol;
mod rooms;
mod session;

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

use crate::rooms::Rooms;

/// How long the accept loop waits after an accept error (EMFILE at the fd limit) before retrying.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(10);

fn parse_args() -> Result<(u16, usize), String> {
    let mut port: Option<u16> = None;
    let mut threads = 1usize;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--threads" {
            let v = args.next().ok_or("--threads needs a value")?;
            threads = v.parse().map_err(|_| format!("--threads: bad value {v:?}"))?;
        } else if arg == "--port" {
            let v = args.next().ok_or("--port needs a value")?;
            port = Some(v.parse().map_err(|_| format!("--port: bad value {v:?}"))?);
        } else {
            port = Some(arg.parse().map_err(|_| format!("unexpected argument {arg:?}"))?);
        }
    }
    let port = match port {
        Some(p) => p,
        None => match std::env::var("PORT") {
            Ok(v) => v.parse().map_err(|_| format!("PORT: bad value {v:?}"))?,
            Err(_) => 0,
        },
    };
    if threads == 0 {
        return Err("--threads must be at least 1".to_string());
    }
    Ok((port, threads))
}

fn main() {
    let (port, threads) = match parse_args() {
        Ok(v) => v,
        Err(e) => {
            eprintln!("rust-ceiling: {e}\nusage: rust-ceiling [port] [--threads N]");
            std::process::exit(2);
        }
    };
    let runtime = if threads == 1 {
        tokio::runtime::Builder::new_current_thread().enable_all().build()
    } else {
        tokio::runtime::Builder::new_multi_thread().worker_threads(threads).enable_all().build()
    };
    let runtime = runtime.expect("a tokio runtime can be built on Linux");
    if let Err(e) = runtime.block_on(serve(port)) {
        eprintln!("rust-ceiling: {e}");
        std::process::exit(1);
    }
}

async fn serve(port: u16) -> std::io::Result<()> {
    let listener = TcpListener::bind(("127.0.0.1", port)).await?;
    println!("READY {}", listener.local_addr()?.port());
    let rooms = Arc::new(Rooms::default());
    let mut next_id = 0u64;
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                next_id += 1;
                tokio::spawn(session::run(stream, next_id, rooms.clone()));
            }
            Err(_) => tokio::time::sleep(ACCEPT_BACKOFF).await,
        }
    }
}
