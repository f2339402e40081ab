#!/usr/bin/env python3
"""Buckets a `perf report --no-children --sort dso,sym --stdio` listing of the warren server into
Rust socket I/O, Rust parse/dispatch, the napi boundary, V8/JS and the kernel (self time)."""
import re
import sys
from collections import defaultdict

LINE = re.compile(r"^\s*([\d.]+)%\s+(\S+)\s+\[(.)\]\s+(.*)$")

def bucket(dso, sym):
    s = sym.lower()
    if dso.startswith("[kernel") or dso == "[unknown]" and sym.startswith("0xffff"):
        if re.search(r"tcp|skb|sock|inet|ip_|__dev|loopback|net_|napi_|netif|nf_|sk_|csum|copy_user|copyout|copyin|_copy_to_iter|_copy_from_iter", s):
            return "kernel: TCP/loopback and socket copies"
        if re.search(r"schedul|switch|futex|wake|ttwu|enqueue|dequeue|pick_|idle|update_curr|cpuacct|psi_|hrtimer|tick|rcu|__sched|eevdf|place_entity|select_task|load_balance|task_", s):
            return "kernel: scheduler, futex and wake-ups"
        if re.search(r"epoll|eventfd|ep_|poll", s):
            return "kernel: epoll and eventfd"
        return "kernel: syscall entry and other"
    if dso.endswith(".node"):
        if re.search(r"napi|threadsafe|bindings|js_values|bindgen", s):
            return "napi boundary (Rust side: argument conversion, threadsafe call)"
        if re.search(r"serde|protocol|dispatch|registry|gate|outbox|on_text|push_json|event_frame|parse_client|itoa|ryu|fmt", s):
            return "Rust parse, dispatch and routing (protocol, dispatcher, registry, gate, outbox)"
        if re.search(r"tungstenite|mio|tcp|poll_read|poll_write|bytes|io::|frame|mask|utf8|sha1|base64|split|bilock|sink|stream", s):
            return "Rust socket I/O (tungstenite frames, tokio/mio readiness)"
        if re.search(r"tokio|runtime|task|park|notify|waker|sched|semaphore|mutex|parking_lot|condvar|time::", s):
            return "Rust runtime (tokio scheduler, wakers, locks)"
        if re.search(r"alloc|malloc|free|memcpy|memmove|realloc|drop_in_place|rawvec|raw_vec", s):
            return "Rust allocation and copies"
        return "Rust other"
    if dso == "[JIT]" or dso.startswith("perf-") or sym.startswith("JS:") or sym.startswith("LazyCompile") or sym.startswith("Function:"):
        return "JS (JIT-compiled: dispatch loop, handler, ctx, emit)"
    if dso in ("node", "nodejs") or dso.endswith("/node"):
        if re.search(r"napi|v8impl|threadsafe|tsfn|callbackscope|makecallback|internalcallbackscope|async_wrap|asyncwrap|uv_async|node::.*callback", s):
            return "napi boundary (Node side: calls, handle scopes, threadsafe function)"
        if re.search(r"utf8|string::new|newfromutf8|writeutf8|utf8length|string::write|latin1|onebyte|stringhasher|internalize|flatten", s):
            return "napi boundary: string conversion (UTF-8 <-> V8 strings)"
        if re.search(r"json", s):
            return "V8: JSON.parse / JSON.stringify"
        if re.search(r"scaveng|markcompact|heap::|gc|sweep|marking|evacuat|concurrentmark|minor|remembered|write_barrier|writebarrier|memoryallocator", s):
            return "V8: garbage collection"
        if re.search(r"^builtins_|interpreter|bytecode|ignition|^builtin", s):
            return "V8: builtins and interpreter (Map.get, Proxy, calls, ...)"
        if re.search(r"uv_|uv__|epoll", s):
            return "libuv (event loop)"
        if re.search(r"v8::|internal::", s):
            return "V8: runtime (IC misses, object creation, property access)"
        return "node other"
    if "libc" in dso or "ld-linux" in dso or "libpthread" in dso:
        if re.search(r"malloc|free|memcpy|memmove|memset|realloc|calloc|_int_|tcache|cfree|strlen|memchr", s):
            return "libc: malloc/free and copies"
        if re.search(r"pthread|futex|lll_|mutex|cond", s):
            return "libc: locks and futex wrappers"
        return "libc: syscall wrappers and other"
    if "libstdc++" in dso:
        return "node other"
    return "other: " + dso

def main():
    totals = defaultdict(float)
    tops = defaultdict(list)
    for line in open(sys.argv[1], errors="replace"):
        m = LINE.match(re.sub(r"\[JIT\] tid \d+", "[JIT]", line))
        if not m:
            continue
        pct, dso, _, sym = float(m.group(1)), m.group(2), m.group(3), m.group(4).strip()
        b = bucket(dso, sym)
        totals[b] += pct
        if len(tops[b]) < 4:
            tops[b].append(f"{pct:.1f}% {sym[:90]}")
    for b, pct in sorted(totals.items(), key=lambda kv: -kv[1]):
        print(f"{pct:6.1f}%  {b}")
        for t in tops[b]:
            print(f"           {t}")
    print(f"{sum(totals.values()):6.1f}%  total listed")

main()
