// Run by `npm version <new>` (the "version" script), after npm has set the new version in
// package.json and package-lock.json: gives every platform package under npm/ that version and
// pins warren's optionalDependencies (and the lock file's copy of them) to it, so the release
// workflow's check that all versions agree with the tag passes.
import { readFileSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));
const read = (path) => JSON.parse(readFileSync(join(root, path), "utf8"));
const write = (path, value) => writeFileSync(join(root, path), JSON.stringify(value, null, 2) + "\n");

const pkg = read("package.json");
const { version } = pkg;
for (const name of Object.keys(pkg.optionalDependencies)) pkg.optionalDependencies[name] = version;
write("package.json", pkg);

const lock = read("package-lock.json");
const lockRoot = lock.packages[""];
if (lockRoot.optionalDependencies) {
  for (const name of Object.keys(lockRoot.optionalDependencies)) lockRoot.optionalDependencies[name] = version;
  write("package-lock.json", lock);
}

for (const dir of readdirSync(join(root, "npm"))) {
  const platform = read(`npm/${dir}/package.json`);
  platform.version = version;
  write(`npm/${dir}/package.json`, platform);
}
console.log(`warren ${version}: npm/*/package.json and optionalDependencies set to ${version}`);
