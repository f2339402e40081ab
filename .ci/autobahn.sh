#!/usr/bin/env bash
# WebSocket conformance: the Autobahn test suite's fuzzing client against the raw echo example
# (examples/echo/server.mjs), every case but 12.* and 13.* (compression, which warren does not
# offer). Fails when a case's behavior or close behavior is anything but OK, NON-STRICT or
# INFORMATIONAL. Needs the addon built (npm run build) and Python 2.7 (the suite runs on it
# only); installs the suite itself into a scratch directory.
set -euo pipefail
cd "$(dirname "$0")/.."

work="$(mktemp -d)"
server_pid=""
cleanup() {
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

# Python 2.7: pyenv's when there is one (it may not be the default python), else the PATH's.
# (No `pyenv versions | grep -q`: under pipefail, grep quitting early fails the pipe.)
if command -v pyenv >/dev/null && pyenv prefix 2.7.18 >/dev/null 2>&1; then
  export PYENV_VERSION=2.7.18
fi
python=python2.7
command -v "$python" >/dev/null || { echo "autobahn: python2.7 is required" >&2; exit 1; }
"$python" -m pip --version >/dev/null 2>&1 || "$python" -m ensurepip --user >/dev/null
started=$(date +%s)
"$python" -m pip install --quiet --disable-pip-version-check --no-warn-script-location \
  --target "$work/site" autobahntestsuite==25.10.1 2>&1 | grep -v DEPRECATION || true
[ -d "$work/site/autobahntestsuite" ] || { echo "autobahn: the suite did not install" >&2; exit 1; }
echo "autobahn: suite installed in $(( $(date +%s) - started ))s"

# The echo server on a free port; it prints its URL once listening.
node examples/echo/server.mjs 0 >"$work/server.log" 2>&1 &
server_pid=$!
url=""
for _ in $(seq 1 200); do
  url="$(head -n 1 "$work/server.log" 2>/dev/null || true)"
  [ -n "$url" ] && break
  kill -0 "$server_pid" 2>/dev/null || { cat "$work/server.log" >&2; exit 1; }
  sleep 0.05
done
[ -n "$url" ] || { echo "autobahn: the echo server did not start" >&2; exit 1; }

cat >"$work/spec.json" <<JSON
{
  "outdir": "$work/reports",
  "servers": [{ "agent": "warren", "url": "$url" }],
  "cases": ["*"],
  "exclude-cases": ["12.*", "13.*"],
  "exclude-agent-cases": {}
}
JSON

started=$(date +%s)
(cd "$work" && "$python" -c "import site,sys; site.addsitedir('$work/site'); sys.argv=['wstest']+sys.argv[1:]; from autobahntestsuite.wstest import run; run()" \
  -m fuzzingclient -s "$work/spec.json" >"$work/wstest.log" 2>&1) || { tail -n 30 "$work/wstest.log" >&2; exit 1; }
echo "autobahn: cases ran in $(( $(date +%s) - started ))s"

# One line per case that failed; the index lists every case with both verdicts.
node --input-type=module - "$work/reports/index.json" <<'JS'
import { readFileSync } from "node:fs";
const index = JSON.parse(readFileSync(process.argv[2], "utf8"));
const passing = new Set(["OK", "NON-STRICT", "INFORMATIONAL"]);
let total = 0;
const failed = [];
for (const cases of Object.values(index)) {
  for (const [id, result] of Object.entries(cases)) {
    total++;
    if (!passing.has(result.behavior) || !passing.has(result.behaviorClose)) {
      failed.push(`${id}: behavior ${result.behavior}, close ${result.behaviorClose}`);
    }
  }
}
console.log(`autobahn: ${total - failed.length} of ${total} cases passed`);
if (total === 0 || failed.length > 0) {
  for (const line of failed) console.log(`  ${line}`);
  process.exit(1);
}
JS
