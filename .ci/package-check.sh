#!/usr/bin/env bash
# `npm install warren` on a machine without Rust, proved from the tarballs a release would publish:
# packs the main package and this machine's platform package (with the binary `npm run build` just
# made), installs both into a fresh project in a temporary directory with cargo and rustc off the
# PATH, then (.ci/package-smoke.mjs) requires and imports warren, starts a server, answers a call
# from warren/client over a real socket and closes. Last, it hides the platform package and checks
# that the loader's error names it. Run after `npm run build` (.ci/run does).
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$PWD"
started=$SECONDS
size() { wc -c <"$1" | tr -d ' '; }

platform="$(node -e '
  const { platform: p, arch: a } = process;
  const musl = p === "linux" && !process.report.getReport().header.glibcVersionRuntime;
  process.stdout.write(p === "linux" ? `linux-${a}-${musl ? "musl" : "gnu"}` : p === "win32" ? `win32-${a}-msvc` : `${p}-${a}`);
')"
version="$(node -p 'require("./package.json").version')"
[ -d "npm/$platform" ] || { echo "package-check: no platform package npm/$platform" >&2; exit 1; }
[ -f "warren.$platform.node" ] || { echo "package-check: warren.$platform.node is missing: run npm run build first" >&2; exit 1; }

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/tarballs" "$work/app"

# The main package: prepack builds the JS and refuses to pack without it.
npm pack --silent --pack-destination "$work/tarballs" >/dev/null
main_tgz="$work/tarballs/warren-$version.tgz"
tar -tzf "$main_tgz" | sed 's#^package/##' | sort >"$work/main-files"
bad="$(grep -E '\.node$|\.ts$' "$work/main-files" | grep -v '\.d\.ts$' || true)"
[ -z "$bad" ] || { echo "package-check: the main package ships files it must not: $bad" >&2; exit 1; }
for file in LICENSE README.md package.json index.js loader.js native.js lib/index.js lib/server.js client/index.js client/index.mjs; do
  grep -qx "$file" "$work/main-files" || { echo "package-check: the main package lacks $file" >&2; exit 1; }
done
echo "package-check: warren-$version.tgz: $(wc -l <"$work/main-files") files, $(size "$main_tgz") bytes"

# The platform package, with this build's binary; its prepack checks the binary's OS and CPU.
cp "warren.$platform.node" "npm/$platform/"
(cd "npm/$platform" && npm pack --silent --pack-destination "$work/tarballs" >/dev/null)
platform_tgz="$work/tarballs/warren-$platform-$version.tgz"
tar -tzf "$platform_tgz" | sed 's#^package/##' | sort | tr '\n' ' ' >"$work/platform-files"
echo "package-check: warren-$platform-$version.tgz: $(cat "$work/platform-files")($(size "$platform_tgz") bytes)"
grep -q "warren.$platform.node" "$work/platform-files" || { echo "package-check: no binary in the platform package" >&2; exit 1; }

# A PATH without Rust: every directory holding cargo or rustc (.exe on Windows) is left out.
no_rust_path="$(tr ':' '\n' <<<"$PATH" | while read -r dir; do
  [ -n "$dir" ] || continue
  for tool in cargo rustc cargo.exe rustc.exe; do [ -e "$dir/$tool" ] && continue 2; done
  echo "$dir"
done | paste -sd: -)"
run() { env -u CARGO_HOME -u RUSTUP_HOME PATH="$no_rust_path" "$@"; }
if run sh -c 'command -v cargo || command -v rustc' >/dev/null; then
  echo "package-check: cargo or rustc is still on the PATH" >&2; exit 1
fi
run sh -c 'command -v node && command -v npm' >/dev/null || {
  echo "package-check: node and npm share a directory with cargo or rustc; cannot hide Rust" >&2; exit 1; }

# A fresh project installs the two tarballs (the optional dependencies of other platforms are
# skipped, as on a user's machine) and ws for the client under Node 20.
cd "$work/app"
echo '{ "name": "warren-package-check", "private": true }' >package.json
ws_version="$(node -p 'require(process.argv[1]).packages["node_modules/ws"].version' "$repo/package-lock.json")"
run npm install --no-audit --no-fund --loglevel=error "$main_tgz" "$platform_tgz" "ws@$ws_version"
cp "$repo/.ci/package-smoke.mjs" .
run node package-smoke.mjs

# Without the platform package, loading fails with an error that names it.
mv "node_modules/warren-$platform" "$work/hidden"
if message="$(run node -e 'require("warren")' 2>&1)"; then
  echo "package-check: warren loaded without its platform package" >&2; exit 1
fi
mv "$work/hidden" "node_modules/warren-$platform"
for expected in "warren-$platform@$version" "the package warren-$platform: not installed" "npm run build"; do
  grep -qF "$expected" <<<"$message" || { echo "package-check: the loader error lacks \"$expected\":" >&2; echo "$message" >&2; exit 1; }
done
echo "package-check: without warren-$platform, require('warren') fails naming it:"
grep -m1 '^Error' <<<"$message" | sed 's/^/  /'
echo "package-check: passed in $((SECONDS - started)) s"
