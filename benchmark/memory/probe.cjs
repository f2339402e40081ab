// Preloaded into a benchmark server (`node --expose-gc --require probe.cjs server.mjs`): on SIGUSR2
// it collects garbage fully and writes one line `MEM <json>` to stderr with V8's heap figures per
// space and the process RSS, for benchmark/memory/idle.mjs. With PROBE_SNAPSHOT_DIR set it also
// writes a heap snapshot there (compare two with benchmark/memory/heap-diff.mjs).
const { readFileSync } = require("node:fs");
const v8 = require("node:v8");

function kib(bytes) {
  return Math.round(bytes / 1024);
}

function rssKib() {
  const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync("/proc/self/status", "utf8"));
  return match ? Number(match[1]) : NaN;
}

process.on("SIGUSR2", () => {
  const before = rssKib();
  for (let i = 0; i < 4; i++) globalThis.gc?.();
  const usage = process.memoryUsage();
  const spaces = {};
  for (const space of v8.getHeapSpaceStatistics()) {
    spaces[space.space_name] = { used_kib: kib(space.space_used_size), committed_kib: kib(space.physical_space_size) };
  }
  const report = {
    rss_kib_before_gc: before,
    rss_kib: rssKib(),
    heap_used_kib: kib(usage.heapUsed),
    heap_total_kib: kib(usage.heapTotal),
    external_kib: kib(usage.external),
    array_buffers_kib: kib(usage.arrayBuffers),
    spaces,
  };
  if (process.env.PROBE_SNAPSHOT_DIR) report.snapshot = v8.writeHeapSnapshot(`${process.env.PROBE_SNAPSHOT_DIR}/heap-${Date.now()}.heapsnapshot`);
  process.stderr.write(`MEM ${JSON.stringify(report)}\n`);
});
