#!/usr/bin/env bash
# Builds the Linux binaries of warren's native core and puts each into its platform package:
#   npm/<platform>/warren.<platform>.node
# Usage: scripts/build-platforms.sh [platform...]   (npm run build:cross -- [platform...])
#   platforms: linux-x64-gnu linux-arm64-gnu linux-x64-musl linux-arm64-musl (the default: all four)
#
# Every build goes through zig (`napi build -x`, i.e. cargo-zigbuild), so one x64 or arm64 Linux
# host builds all four, and the glibc builds link against glibc 2.17 symbols: they load on any
# glibc from 2.17 on, whatever the build host has. Needs: rustup, Python's pip (for zig) and
# `npm install` done. Installs what is missing: the Rust targets (rustup), zig (PyPI's `ziglang`,
# whose `python3 -m ziglang` cargo-zigbuild finds by itself) and cargo-zigbuild (crates.io).
# macOS and Windows binaries are built by .github/workflows/release.yml on those systems.
set -euo pipefail
cd "$(dirname "$0")/.."

declare -A TRIPLES=(
  [linux-x64-gnu]=x86_64-unknown-linux-gnu.2.17
  [linux-arm64-gnu]=aarch64-unknown-linux-gnu.2.17
  [linux-x64-musl]=x86_64-unknown-linux-musl
  [linux-arm64-musl]=aarch64-unknown-linux-musl
)
platforms=("$@")
[ ${#platforms[@]} -gt 0 ] || platforms=(linux-x64-gnu linux-arm64-gnu linux-x64-musl linux-arm64-musl)
for platform in "${platforms[@]}"; do
  [ -n "${TRIPLES[$platform]:-}" ] || { echo "unknown platform $platform (known: ${!TRIPLES[*]})" >&2; exit 2; }
done

# The tools, each only when missing.
installed_targets="$(rustup target list --installed)"
for platform in "${platforms[@]}"; do
  target="${TRIPLES[$platform]%%.*}"
  grep -qx "$target" <<<"$installed_targets" || rustup target add "$target"
done
if ! command -v zig >/dev/null && ! python3 -m ziglang version >/dev/null 2>&1; then
  python3 -m pip install --quiet ziglang
fi
command -v cargo-zigbuild >/dev/null || cargo install --locked cargo-zigbuild

out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
for platform in "${platforms[@]}"; do
  echo "== $platform (${TRIPLES[$platform]})"
  start=$SECONDS
  # --output-dir: the .node and a copy of the type definitions land in a scratch directory, so
  # neither the checkout's own warren.<platform>.node nor native.d.ts is touched.
  npx napi build --platform --release --no-js --cross-compile --target "${TRIPLES[$platform]}" \
    --output-dir "$out" --dts native.d.ts
  mv "$out/warren.$platform.node" "npm/$platform/"
  echo "npm/$platform/warren.$platform.node: $(stat -c %s "npm/$platform/warren.$platform.node") bytes, $((SECONDS - start)) s"
done
