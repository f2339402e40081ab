#!/usr/bin/env bash
# CPU profile of the echo scenario: the warren benchmark app pinned to core 0 (node with
# --perf-basic-prof, so JIT-compiled JS frames have names), the load generator pinned to core 1.
# perf samples the server's threads for the steady part of the run; the report is bucketed by
# benchmark/profile/buckets.py. Also prints context switches per thread (perf stat).
#
#   benchmark/profile/echo.sh <warren repo dir> <inflight> [seconds] [out dir]
#
# For Rust symbols build the addon with them kept:
#   CARGO_PROFILE_RELEASE_STRIP=none CARGO_PROFILE_RELEASE_DEBUG=line-tables-only npm run build:native
set -euo pipefail
repo=$(cd "$1" && pwd)
inflight=$2
secs=${3:-6}
out=${4:-/tmp/warren-profile}
here=$(cd "$(dirname "$0")" && pwd)
loadgen="$here/../loadgen/target/release/loadgen"
mkdir -p "$out"
(cd "$out" && WARREN_WORKER_THREADS=1 exec taskset -c 0 node --perf-basic-prof "$repo/benchmark/servers/warren.mjs" 0 >"$out/server.out" 2>"$out/server.err") &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
for _ in $(seq 100); do grep -q READY "$out/server.out" 2>/dev/null && break; sleep 0.1; done
port=$(sed -n 's/READY \([0-9]*\)/\1/p' "$out/server.out")
taskset -c 1 "$loadgen" echo --port "$port" --proto warren --clients 50 --inflight "$inflight" --size 32 \
  --duration $((secs + 2)) --warmup 1 >"$out/loadgen.json" 2>"$out/loadgen.err" &
gen=$!
sleep 1.5
perf stat --per-thread -e context-switches,cpu-clock -p "$server" -o "$out/stat.txt" -- sleep 2 >/dev/null 2>&1 || true
perf record -F 2000 -g -e cpu-clock -p "$server" -o "$out/perf.data" -- sleep "$((secs - 2))" >/dev/null 2>&1
wait $gen
kill $server; wait $server 2>/dev/null || true
trap - EXIT
perf report -i "$out/perf.data" --no-children -g none --sort dso,sym --stdio --percent-limit 0.02 2>/dev/null >"$out/report.txt"
python3 "$here/buckets.py" "$out/report.txt"
grep -E "context-switches|cpu-clock" "$out/stat.txt" | awk '{print "  " $0}' | sort -k2 -n -r | head -8
python3 -c "import json,sys; r=json.loads(open('$out/loadgen.json').read().strip().splitlines()[-1]); print('msgs/s', r['results']['msgs_per_s'], 'generator cpu', r['results'].get('generator',{}).get('cpu_pct'))"
