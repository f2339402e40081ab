//! Command line: `loadgen <scenario> [--flag value]...`.
//!
//! A hand-written parser instead of clap keeps the cold build short on the shared 2-core machine. Every
//! flag is read once through [`Flags::get`]; [`Flags::finish`] rejects what no scenario asked for, so a
//! typo fails loudly instead of silently running with a default.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::str::FromStr;

pub const USAGE: &str = "\
usage: loadgen <echo|fanout|idle|accept> --port N [options]

common:    --proto raw|warren|warren-msgpack|socketio (warren)  --host 127.0.0.x (127.0.0.1)  --path /p (per protocol)
           --threads N (1: current-thread runtime)  --timeout SECS (60: hard stop)
           --connect-concurrency N (100)
           --server-pids P1,P2 (the server's processes: their CPU over the measured window is reported)
echo:      --clients 50 --inflight 1 --size 32 --duration 10 --warmup 2
fanout:    --members 1000 --messages 200 --rate 0 (msgs/s, 0 = bounded window) --window 32 --size 0
           --drain 10 (secs to wait for the last deliveries)
idle:      --sockets 10000 [--hold-secs S] (default: hold until stdin closes)
accept:    --connections 2000 --concurrency 50

Prints one JSON object on stdout. Connects only to 127.0.0.0/8.";

/// Parsed `--name value` pairs, consumed as scenarios read them.
pub struct Flags {
    values: BTreeMap<String, String>,
}

impl Flags {
    pub fn parse(args: &[String]) -> Result<Flags, String> {
        let mut values = BTreeMap::new();
        let mut it = args.iter();
        while let Some(arg) = it.next() {
            let name = arg
                .strip_prefix("--")
                .ok_or_else(|| format!("expected --flag, got {arg:?}"))?;
            let value = it.next().ok_or_else(|| format!("--{name} needs a value"))?;
            if values.insert(name.to_string(), value.clone()).is_some() {
                return Err(format!("--{name} given twice"));
            }
        }
        Ok(Flags { values })
    }

    /// Reads and removes `--name`, or returns `default` when absent.
    pub fn get<T: FromStr>(&mut self, name: &str, default: T) -> Result<T, String> {
        Ok(self.opt(name)?.unwrap_or(default))
    }

    pub fn opt<T: FromStr>(&mut self, name: &str) -> Result<Option<T>, String> {
        match self.values.remove(name) {
            None => Ok(None),
            Some(raw) => raw
                .parse()
                .map(Some)
                .map_err(|_| format!("--{name}: cannot parse {raw:?}")),
        }
    }

    pub fn finish(self) -> Result<(), String> {
        match self.values.keys().next() {
            None => Ok(()),
            Some(name) => Err(format!("unknown flag --{name} for this scenario")),
        }
    }
}

/// `--host`: an IPv4 loopback literal or `localhost`. Anything else is refused, so a benchmark can never
/// be pointed at another machine.
pub fn loopback_host(raw: &str) -> Result<Ipv4Addr, String> {
    let ip = if raw == "localhost" {
        Ipv4Addr::LOCALHOST
    } else {
        raw.parse::<Ipv4Addr>()
            .map_err(|_| format!("--host {raw:?}: give an IPv4 address in 127.0.0.0/8"))?
    };
    if !ip.is_loopback() {
        return Err(format!("--host {ip}: only 127.0.0.0/8 is allowed"));
    }
    Ok(ip)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_non_loopback_hosts() {
        assert!(loopback_host("127.0.0.9").is_ok());
        assert!(loopback_host("localhost").is_ok());
        assert!(loopback_host("10.0.0.1").is_err());
        assert!(loopback_host("example.com").is_err());
    }

    #[test]
    fn unknown_flags_are_errors() {
        let args: Vec<String> = ["--port", "1", "--bogus", "2"].iter().map(|s| s.to_string()).collect();
        let mut flags = Flags::parse(&args).unwrap();
        assert_eq!(flags.get::<u16>("port", 0).unwrap(), 1);
        assert!(flags.finish().is_err());
    }
}
