import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { heapGrowth, summariseHeapSnapshot } from "../../bench/lib/heap-summary.js";

const dir = mkdtempSync(join(tmpdir(), "heap-summary-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A minimal snapshot in V8's format: nodes as [type, name, id, self_size, edge_count]. */
function snapshot(file: string, nodes: Array<[type: number, name: number, size: number]>): string {
  const path = join(dir, file);
  writeFileSync(
    path,
    JSON.stringify({
      snapshot: {
        meta: {
          node_fields: ["type", "name", "id", "self_size", "edge_count"],
          node_types: [["hidden", "array", "string", "object", "code", "closure"], "string", "number"],
        },
      },
      nodes: nodes.flatMap(([t, n, s], i) => [t, n, i + 1, s, 0]),
      strings: ["Connection", "Buffer", "onData", "hello", "system / Context"],
    }),
  );
  return path;
}

describe("heap snapshot summary", () => {
  it("counts shallow sizes by class: constructor for objects, buckets for strings and code", () => {
    const m = summariseHeapSnapshot(
      snapshot("a.heapsnapshot", [
        [3, 0, 400], // object Connection
        [3, 0, 400],
        [3, 1, 96], // object Buffer
        [2, 3, 24], // string
        [5, 2, 32], // closure onData
        [4, 3, 1000], // code
        [0, 4, 40], // hidden system / Context
      ]),
    );
    expect(m.get("Connection")).toEqual({ name: "Connection", count: 2, bytes: 800 });
    expect(m.get("Buffer")?.bytes).toBe(96);
    expect(m.get("(string)")?.count).toBe(1);
    expect(m.get("closure onData")?.bytes).toBe(32);
    expect(m.get("(code)")?.bytes).toBe(1000);
    expect(m.get("system / Context")?.bytes).toBe(40);
  });

  it("reports growth per added connection, largest first, with the total over all classes", () => {
    const before = summariseHeapSnapshot(
      snapshot("b.heapsnapshot", [
        [3, 0, 400],
        [4, 3, 1000],
      ]),
    );
    const after = summariseHeapSnapshot(
      snapshot("c.heapsnapshot", [
        [3, 0, 400],
        [3, 0, 400],
        [3, 0, 400],
        [3, 1, 96],
        [3, 1, 96],
      ]),
    );
    const g = heapGrowth(before, after, 2, 2);
    expect(g.top).toEqual([
      { name: "Connection", countPerConn: 1, bytesPerConn: 400 },
      { name: "Buffer", countPerConn: 1, bytesPerConn: 96 },
    ]);
    // +800 Connection, +192 Buffer, -1000 code (gone after): (800 + 192 - 1000) / 2
    expect(g.totalBytesPerConn).toBe(-4);
  });
});
