// Run by `npm pack` / `npm publish` in npm/<platform>/ (its prepack): refuses to pack a platform
// package without its binary, or with a binary for another OS or CPU, and puts the LICENSE beside it.
// Put the binary there with `npm run build:cross` (Linux) or from the release workflow's artifacts.
import { copyFileSync, existsSync, openSync, readSync, closeSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const dir = process.cwd();
const pkg = JSON.parse(readFileSync(join(dir, "package.json"), "utf8"));
const binary = pkg.main;
const path = join(dir, binary);
if (!existsSync(path)) {
  const how = pkg.os[0] === "linux" ? "`npm run build:cross` puts it there" : "the release workflow builds it on that OS";
  console.error(`Not packing ${pkg.name}: ${binary} is missing from ${dir} (${how}).`);
  process.exit(1);
}

// What the file's header says it was built for.
const header = Buffer.alloc(4096);
const fd = openSync(path, "r");
readSync(fd, header, 0, header.length, 0);
closeSync(fd);
let found = "unknown";
if (header.readUInt32BE(0) === 0x7f454c46) {
  const machine = header.readUInt16LE(18);
  found = `linux-${{ 0x3e: "x64", 0xb7: "arm64" }[machine] ?? `machine ${machine}`}`;
} else if (header.readUInt32LE(0) === 0xfeedfacf) {
  const cpu = header.readUInt32LE(4);
  found = `darwin-${{ 0x01000007: "x64", 0x0100000c: "arm64" }[cpu] ?? `cpu ${cpu}`}`;
} else if (header.toString("latin1", 0, 2) === "MZ") {
  const pe = header.readUInt32LE(0x3c);
  const machine = header.readUInt16LE(pe + 4);
  found = `win32-${{ 0x8664: "x64", 0xaa64: "arm64" }[machine] ?? `machine ${machine}`}`;
}
const expected = `${pkg.os[0]}-${pkg.cpu[0]}`;
if (found !== expected) {
  console.error(`Not packing ${pkg.name}: ${binary} is a ${found} binary, the package is for ${expected}.`);
  process.exit(1);
}
copyFileSync(fileURLToPath(new URL("../LICENSE", import.meta.url)), join(dir, "LICENSE"));
