import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { gzipSync } from "node:zlib";

const BUNDLE = "dist/notify-client.min.js";
const CONSOLE_COPY = "../../read-api/internal/console/static/notify-client.js";

test("the bundle fits the size budget: 6 KB minified and gzipped", () => {
  const size = gzipSync(readFileSync(BUNDLE), { level: 9 }).length;
  assert.ok(size <= 6 * 1024, `${size} bytes`);
});

test("the console's copy is the current build (run make console-js after changing src/)", () => {
  assert.ok(readFileSync(CONSOLE_COPY).equals(readFileSync(BUNDLE)), `${CONSOLE_COPY} differs from ${BUNDLE}: run make console-js`);
});

test("the package has no runtime dependencies", () => {
  const pkg = JSON.parse(readFileSync("package.json", "utf8"));
  assert.equal(pkg.dependencies, undefined);
  assert.equal(pkg.type, "module");
});

test("npm pack ships dist/ with the type declarations", () => {
  const out = JSON.parse(execFileSync("npm", ["pack", "--dry-run", "--json", "--ignore-scripts"], { encoding: "utf8" }));
  const files = out[0].files.map((f) => f.path);
  for (const f of ["dist/index.js", "dist/index.d.ts", "dist/client.js", "dist/client.d.ts", "README.md", "package.json"]) assert.ok(files.includes(f), `${f} not in ${files}`);
  assert.ok(!files.some((f) => f.startsWith("src/") || f.startsWith("test/") || f.startsWith("node_modules/")), String(files));
});
