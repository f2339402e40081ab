// Run by `npm pack` / `npm publish` (prepack), after `npm run build:js`: refuses to pack the main
// package unless the JavaScript it runs is there, and while compiled files of deleted sources are. Sources are TypeScript (lib/, client/); the
// package ships their compiled .js/.d.ts and the client's ESM bundle, never the .ts.
import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));
const missing = [];
for (const file of ["index.js", "index.d.ts", "native.js", "native.d.ts", "loader.js", "client/index.mjs"]) {
  if (!existsSync(join(root, file))) missing.push(file);
}
for (const dir of ["lib", "client"]) {
  for (const file of readdirSync(join(root, dir), { recursive: true })) {
    if (!file.endsWith(".ts") || file.endsWith(".d.ts")) continue;
    const base = file.slice(0, -3);
    for (const built of [`${base}.js`, `${base}.d.ts`]) {
      if (!existsSync(join(root, dir, built))) missing.push(`${dir}/${built}`);
    }
  }
}
// Compiled files whose source is gone (a module moved or removed) would ship as dead code.
const stale = [];
for (const dir of ["lib", "client"]) {
  for (const file of readdirSync(join(root, dir), { recursive: true })) {
    const base = file.endsWith(".d.ts") ? file.slice(0, -5) : file.endsWith(".js") ? file.slice(0, -3) : null;
    if (base !== null && !existsSync(join(root, dir, `${base}.ts`))) stale.push(`${dir}/${file}`);
  }
}
if (stale.length > 0) {
  console.error(`Not packing warren: compiled files without a source would ship (${stale.join(", ")}). Delete them.`);
  process.exit(1);
}
if (missing.length > 0) {
  console.error(`Not packing warren: the compiled JavaScript is missing (${missing.join(", ")}). Run \`npm install\` (its prepare step builds it) or \`npm run build:js\`.`);
  process.exit(1);
}
