// Type-checks every ```ts block of README.md against the package's own sources: each block is
// written to a temporary directory as its own module and the lot is compiled with `tsc --strict`
// (paths map `warren` and `warren/client` to lib/index.ts and client/index.ts). A block without
// an import continues the block before it (same module). Errors are reported with the README
// line they come from. Run by `npm run test:types`.
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const readme = readFileSync(join(root, "README.md"), "utf8").split("\n");

/** Names the README uses as stand-ins for application code, declared in every module. */
const PLACEHOLDERS = "declare function resync(): void;";

/**
 * Next.js is too heavy a devDependency for one README block: its custom-server API (the part
 * the README uses, as `next` declares it) is declared here instead. Express and Fastify are
 * devDependencies and checked against their own types.
 */
const AMBIENT = `declare module "next" {
  import type { IncomingMessage, ServerResponse } from "node:http";
  import type { Duplex } from "node:stream";
  interface NextServer {
    prepare(): Promise<void>;
    getRequestHandler(): (req: IncomingMessage, res: ServerResponse) => Promise<void>;
    getUpgradeHandler(): (req: IncomingMessage, socket: Duplex, head: Buffer) => Promise<void>;
  }
  export default function next(options: { dev?: boolean; dir?: string; hostname?: string; port?: number }): NextServer;
}
`;

/** Each module: its README lines as [README line number (1-based), text]. */
const modules = [];
for (let i = 0; i < readme.length; i++) {
  if (readme[i].trim() !== "```ts") continue;
  const lines = [];
  for (i++; i < readme.length && readme[i].trim() !== "```"; i++) lines.push([i + 1, readme[i]]);
  const continues = modules.length > 0 && !lines.some(([, text]) => /^import\b/.test(text));
  if (continues) modules[modules.length - 1].push(...lines);
  else modules.push(lines);
}

const dir = mkdtempSync(join(tmpdir(), "warren-readme-"));
try {
  const files = modules.map((lines, n) => {
    const name = `block-${n + 1}.ts`;
    // Line 1 holds the placeholders, so module line k + 1 is lines[k - 1]; `export {}` keeps
    // every file a module, so modules never share names.
    const text = [PLACEHOLDERS, ...lines.map(([, line]) => line), "export {};"].join("\n");
    writeFileSync(join(dir, name), `${text}\n`);
    return name;
  });
  writeFileSync(join(dir, "ambient.d.ts"), AMBIENT);
  writeFileSync(
    join(dir, "tsconfig.json"),
    JSON.stringify({
      compilerOptions: {
        target: "ES2022",
        module: "esnext",
        moduleResolution: "bundler",
        lib: ["ES2022", "DOM"],
        types: ["node"],
        typeRoots: [join(root, "node_modules/@types")],
        strict: true,
        noEmit: true,
        skipLibCheck: true,
        paths: {
          warren: [join(root, "lib/index.ts")],
          "warren/client": [join(root, "client/index.ts")],
          express: [join(root, "node_modules/@types/express/index.d.ts")],
          fastify: [join(root, "node_modules/fastify/fastify.d.ts")],
        },
      },
      files: ["ambient.d.ts", ...files],
    }),
  );
  const tsc = join(root, "node_modules/typescript/bin/tsc");
  const result = spawnSync(process.execPath, [tsc, "-p", join(dir, "tsconfig.json"), "--pretty", "false"], {
    encoding: "utf8",
  });
  const output = `${result.stdout}${result.stderr}`;
  // block-N.ts(line,col): error … → README.md:<line>: error …
  const mapped = output.replace(/^(?:.*[\\/])?block-(\d+)\.ts\((\d+),(\d+)\)/gm, (whole, n, line, col) => {
    const found = modules[Number(n) - 1]?.[Number(line) - 2];
    return found === undefined ? whole : `README.md:${found[0]}:${col}`;
  });
  if (result.status !== 0) {
    process.stderr.write(mapped);
    process.stderr.write(`\n${modules.length} README modules checked: some do not type-check\n`);
    process.exitCode = 1;
  } else {
    console.log(`README.md: ${modules.length} modules of ts blocks type-check under --strict`);
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
