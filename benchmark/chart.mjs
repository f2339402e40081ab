// Draws benchmark/results/chart.svg from a results file written by run.mjs, with vega-lite (compiled
// to a vega spec) and vega's headless SVG renderer: one row per scenario, one bar per server (median,
// with a rule over the min – max range of the rounds), and a caption with the date, the machine and
// the method. A throughput scenario gets a second panel beside it with the same work per second of
// server CPU: a multi-threaded server and a single-threaded one compare fairly only per CPU they burn.
//
//   node benchmark/chart.mjs                   the newest benchmark/results/*.json
//   node benchmark/chart.mjs <results.json> [out.svg]
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const resultsDir = join(here, "results");

/** Display order and colours; warren first and in a colour no peer uses. */
const SERVERS = ["warren", "rust", "bun", "ws", "socketio", "rivetkit-2.2", "rivetkit-2.3"];
const LABELS = {
  warren: "warren",
  rust: "pure Rust (tungstenite)",
  bun: "Bun (uWebSockets)",
  ws: "ws",
  socketio: "socket.io",
  "rivetkit-2.2": "RivetKit 2.2.1",
  "rivetkit-2.3": "RivetKit 2.3",
};
const COLORS = {
  warren: "#d9480f",
  rust: "#495057",
  bun: "#f59f00",
  ws: "#1c7ed6",
  socketio: "#7048e8",
  "rivetkit-2.2": "#2f9e44",
  "rivetkit-2.3": "#66a80f",
};

/** The newest results file run.mjs wrote (not actors-*.json, not chart files). */
export function latestResults() {
  const files = readdirSync(resultsDir)
    .filter((f) => /^\d{4}-\d\d-\d\dT.*\.json$/.test(f))
    .sort();
  if (files.length === 0) throw new Error(`no results in ${resultsDir}`);
  return join(resultsDir, files[files.length - 1]);
}

const compact = (value) => {
  if (value >= 1e6) return `${(value / 1e6).toFixed(2)}M`;
  if (value >= 1e4) return `${Math.round(value / 1e3)}k`;
  if (value >= 1e3) return `${(value / 1e3).toFixed(1)}k`;
  if (value >= 100) return String(Math.round(value));
  return String(Math.round(value * 10) / 10);
};

const formatRatio = (ratio) => `  (warren ×${ratio >= 100 ? Math.round(ratio) : ratio.toFixed(2)})`;

const serverLabel = (results, server) =>
  server.startsWith("rivetkit-") && results.peers?.[server] ? `RivetKit ${results.peers[server]}` : (LABELS[server] ?? server);

/**
 * A throughput figure per second of server CPU for each round of `scenario` on `server`, from the
 * rounds' raw figures and the server's sampled CPU share (the summary keeps only the median).
 */
function perCpuRounds(results, scenario, server) {
  return (results.runs ?? [])
    .filter((r) => r.scenario === scenario && r.server === server && (r.result?.server_cpu_pct ?? 0) > 0)
    .map((r) => r.figure / (r.result.server_cpu_pct / 100));
}

/** The bars of one scenario, per wall-clock second: median, min – max, label with p99 and ratio. */
function wallRows(results, meta, byServer) {
  const base = byServer.warren?.median;
  return SERVERS.filter((server) => byServer[server]).map((server) => {
    const s = byServer[server];
    const ratio = base && server !== "warren" ? (meta.lowerIsBetter ? s.median / base : base / s.median) : undefined;
    const latency = s.p99_us !== undefined && !meta.lowerIsBetter ? `, p99 ${compact(s.p99_us / 1000)} ms` : "";
    return {
      server: serverLabel(results, server),
      key: server,
      median: s.median,
      min: s.min,
      max: s.max,
      label: `${compact(s.median)}${latency}${ratio ? formatRatio(ratio) : ""}${s.generator_bound ? " †" : ""}`,
    };
  });
}

/** The bars of one scenario per second of server CPU, for the servers whose CPU was sampled. */
function perCpuRows(results, scenario, byServer) {
  const base = byServer.warren?.per_cpu_second;
  return SERVERS.filter((server) => byServer[server]?.per_cpu_second !== undefined).map((server) => {
    const median = byServer[server].per_cpu_second;
    const rounds = perCpuRounds(results, scenario, server);
    const ratio = base && server !== "warren" ? base / median : undefined;
    return {
      server: serverLabel(results, server),
      key: server,
      median,
      min: rounds.length ? Math.min(...rounds) : median,
      max: rounds.length ? Math.max(...rounds) : median,
      label: `${compact(median)}${ratio ? formatRatio(ratio) : ""}`,
    };
  });
}

/** One panel: a bar per row, the min – max rule and the label to its right. */
function panel(title, subtitle, rows) {
  const order = rows.map((r) => r.server);
  // Room to the right of the longest bar for its label.
  const domainMax = Math.max(...rows.map((r) => r.max)) * 2;
  return {
    title: { text: title, subtitle, anchor: "start" },
    width: 420,
    height: { step: 24 },
    data: { values: rows },
    encoding: {
      y: { field: "server", type: "nominal", sort: order, title: null, axis: { labelLimit: 220 } },
    },
    layer: [
      {
        mark: { type: "bar", height: 16 },
        encoding: {
          x: { field: "median", type: "quantitative", title: null, axis: { labelExpr: "datum.value === 0 ? '0' : format(datum.value, '~s')", tickCount: 4 }, scale: { domain: [0, domainMax], nice: false } },
          color: { field: "key", type: "nominal", scale: { domain: SERVERS, range: SERVERS.map((s) => COLORS[s]) }, legend: null },
        },
      },
      {
        mark: { type: "rule", color: "#212529", strokeWidth: 1.5 },
        encoding: { x: { field: "min", type: "quantitative" }, x2: { field: "max" } },
      },
      {
        mark: { type: "text", align: "left", dx: 4, fontSize: 10, color: "#212529" },
        encoding: { x: { field: "max", type: "quantitative" }, text: { field: "label" } },
      },
    ],
    resolve: { scale: { x: "shared" } },
  };
}

/** The vega-lite spec for a results object. */
export function chartSpec(results) {
  const date = new Date(results.started).toISOString().slice(0, 10);
  const scenarios = results.scenarios ?? {};
  // Throughput scenarios as pairs (per second | per server CPU-second), one pair per row of the
  // two-column grid; scenarios with one panel (memory) after them.
  const pairs = [];
  const singles = [];
  for (const [scenario, byServer] of Object.entries(results.summary)) {
    const meta = scenarios[scenario] ?? { what: scenario, unit: "", lowerIsBetter: scenario.startsWith("idle") };
    const rows = wallRows(results, meta, byServer);
    if (rows.length === 0) continue;
    const title = meta.what.replace(/\s*\(.*\)$/, "");
    const better = meta.lowerIsBetter ? " — lower is better" : " — higher is better";
    const wall = panel(title, `${meta.unit}${better}`, rows);
    const perCpu = perCpuRows(results, scenario, byServer);
    if (perCpu.length === 0) {
      singles.push(wall);
      continue;
    }
    const unit = meta.unit.replace(/\/s$/, "");
    pairs.push(wall, panel("… the same per second of server CPU", `${unit} per server CPU-second${better}`, perCpu));
  }
  const peers = Object.entries(results.peers ?? {})
    .filter(([name]) => name !== "rust")
    .map(([name, version]) => `${name} ${version}`)
    .join(", ");
  return {
    $schema: "https://vega.github.io/schema/vega-lite/v6.json",
    title: {
      text: "warren side by side: JS-handler servers, pub/sub, a pure-Rust ceiling and RivetKit actors",
      subtitle: [
        `${date} · ${results.machine ?? ""} · ${results.method ?? `${results.rounds} round(s)`}`,
        `loadgen (Rust) drives every scenario except actor calls, which benchmark/calls.mjs drives (warren: raw ws call frames; RivetKit: its own client)`,
        `bars: median; black rule: min – max over rounds; (warren ×r) = warren ÷ peer (for memory, peer ÷ warren); † generator-bound; right: the same work per second of server CPU`,
        `${peers}${results.warren_build && results.warren_build !== "release" ? ` · WARNING: warren addon was a ${results.warren_build} build` : ""}`,
        ...(results.notes ?? []).map((note) => `note: ${note}`),
      ],
      anchor: "start",
      fontSize: 15,
      subtitleFontSize: 11,
      subtitleColor: "#495057",
      offset: 14,
    },
    concat: [...pairs, ...singles],
    columns: 2,
    spacing: { row: 80, column: 250 },
    bounds: "flush",
    padding: 16,
    config: {
      font: "DejaVu Sans, Helvetica, Arial, sans-serif",
      view: { stroke: null },
      axis: { labelFontSize: 11, grid: true, gridColor: "#e9ecef", domainColor: "#adb5bd", tickColor: "#adb5bd" },
      title: { fontSize: 12, subtitleFontSize: 10, subtitleColor: "#868e96" },
      background: "#ffffff",
    },
  };
}

/** Renders the chart for `file` (default: the newest results) to `out` (default: results/chart.svg). */
export async function renderChart(file = latestResults(), out = join(resultsDir, "chart.svg")) {
  const vega = await import("vega");
  const vegaLite = await import("vega-lite");
  const results = JSON.parse(readFileSync(file, "utf8"));
  const { spec } = vegaLite.compile(chartSpec(results));
  const view = new vega.View(vega.parse(spec), { renderer: "none" });
  const svg = await view.toSVG();
  view.finalize();
  writeFileSync(out, svg);
  return out;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const [file, out] = process.argv.slice(2);
  renderChart(file ? resolve(file) : undefined, out ? resolve(out) : undefined).then(
    (path) => console.log(path),
    (error) => {
      console.error(error);
      process.exit(1);
    },
  );
}
