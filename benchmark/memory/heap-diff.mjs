// Compares two V8 heap snapshots (before and after opening N sockets): the growth of the
// objects' own sizes, grouped by node type and constructor or closure name, per socket.
//
//   node benchmark/memory/heap-diff.mjs before.heapsnapshot after.heapsnapshot 2000
import { readFileSync } from "node:fs";

const [beforeFile, afterFile, countArg] = process.argv.slice(2);
const count = Number(countArg ?? 1);

function groups(file) {
  const snap = JSON.parse(readFileSync(file, "utf8"));
  const meta = snap.snapshot.meta;
  const fields = meta.node_fields;
  const width = fields.length;
  const typeAt = fields.indexOf("type");
  const nameAt = fields.indexOf("name");
  const sizeAt = fields.indexOf("self_size");
  const types = meta.node_types[typeAt];
  const out = new Map();
  const nodes = snap.nodes;
  for (let i = 0; i < nodes.length; i += width) {
    const type = types[nodes[i + typeAt]];
    let name = snap.strings[nodes[i + nameAt]];
    if (type === "string" || type === "concatenated string" || type === "sliced string") name = "";
    if (type === "number") name = "";
    if (name.length > 60) name = `${name.slice(0, 57)}...`;
    const key = `${type}:${name}`;
    const group = out.get(key) ?? { count: 0, bytes: 0 };
    group.count++;
    group.bytes += nodes[i + sizeAt];
    out.set(key, group);
  }
  return out;
}

const before = groups(beforeFile);
const after = groups(afterFile);
const rows = [];
let total = 0;
for (const [key, group] of after) {
  const base = before.get(key) ?? { count: 0, bytes: 0 };
  const bytes = group.bytes - base.bytes;
  const objects = group.count - base.count;
  if (bytes === 0 && objects === 0) continue;
  total += bytes;
  rows.push({ key, per_socket_bytes: Math.round((bytes / count) * 10) / 10, objects_per_socket: Math.round((objects / count) * 100) / 100 });
}
rows.sort((a, b) => b.per_socket_bytes - a.per_socket_bytes);
console.log(`growth: ${Math.round(total / count)} bytes per socket (own sizes, ${count} sockets)`);
for (const row of rows.slice(0, 45)) console.log(`${String(row.per_socket_bytes).padStart(9)} B ${String(row.objects_per_socket).padStart(6)} obj  ${row.key}`);
