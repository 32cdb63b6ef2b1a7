#!/usr/bin/env node
// Entry point of the `mquictt` command once the package is built (npm run build).
import("../dist/cli/main.js").then(async (m) => {
  process.exitCode = await m.main(process.argv.slice(2));
});
