// Bundles dist/ into one minified ESM file (the console serves it) and
// checks the size budget: 6 KB minified and gzipped.
import { build } from "esbuild";
import { readFileSync } from "node:fs";
import { gzipSync } from "node:zlib";

export const BUDGET = 6 * 1024;
export const BUNDLE = "dist/notify-client.min.js";

await build({ entryPoints: ["dist/index.js"], bundle: true, minify: true, format: "esm", target: "es2020", outfile: BUNDLE, legalComments: "none" });
const size = gzipSync(readFileSync(BUNDLE), { level: 9 }).length;
console.log(`${BUNDLE}: ${size} bytes minified+gzipped (budget ${BUDGET})`);
if (size > BUDGET) {
  console.error(`over the size budget by ${size - BUDGET} bytes`);
  process.exit(1);
}
