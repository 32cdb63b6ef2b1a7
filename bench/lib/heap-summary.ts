/**
 * Summarises a V8 heap snapshot (`v8.writeHeapSnapshot()` / `--heapsnapshot-signal`) by
 * constructor: count and total shallow (self) size of the nodes of each class, and the
 * difference between two snapshots divided by the number of connections added between them,
 * which names what an idle connection costs (bench/idle-scale.ts).
 *
 * The snapshot format: `snapshot.meta.node_fields` names the fields of each node in the flat
 * `nodes` array (type, name, id, self_size, edge_count, ...); `node_types[0]` names the types;
 * `name` indexes `strings`.
 */
import { readFileSync } from "node:fs";

/** Count and shallow bytes of one class of heap objects. */
export interface HeapClass {
  /** e.g. "Connection", "closure onData", "(array) Array", "(string)", "system / Context". */
  name: string;
  count: number;
  bytes: number;
}

interface RawSnapshot {
  snapshot: { meta: { node_fields: string[]; node_types: [string[], ...unknown[]] } };
  nodes: number[];
  strings: string[];
}

/** The class key of one node: its constructor for objects, a bucket for strings, code and numbers. */
function classOf(type: string, name: string): string {
  switch (type) {
    case "object":
      return name;
    case "closure":
      return `closure ${name || "(anonymous)"}`;
    case "array":
      return `(array) ${name}`;
    case "string":
    case "concatenated string":
    case "sliced string":
      return "(string)";
    case "number":
      return "(heap number)";
    case "code":
      return "(code)";
    case "native":
      return `native ${name}`;
    case "hidden":
    case "synthetic":
      // Context, maps, descriptor arrays, feedback vectors: the name says enough.
      return name.startsWith("system /") ? name : `(${type}) ${name}`;
    default:
      return `(${type}) ${name}`;
  }
}

/** Counts and shallow sizes of every class in the snapshot file, keyed by class name. */
export function summariseHeapSnapshot(path: string): Map<string, HeapClass> {
  const raw = JSON.parse(readFileSync(path, "utf8")) as RawSnapshot;
  const fields = raw.snapshot.meta.node_fields;
  const types = raw.snapshot.meta.node_types[0];
  const stride = fields.length;
  const fType = fields.indexOf("type");
  const fName = fields.indexOf("name");
  const fSize = fields.indexOf("self_size");
  const out = new Map<string, HeapClass>();
  const nodes = raw.nodes;
  for (let i = 0; i < nodes.length; i += stride) {
    const key = classOf(types[nodes[i + fType]], raw.strings[nodes[i + fName]]);
    let c = out.get(key);
    if (!c) {
      c = { name: key, count: 0, bytes: 0 };
      out.set(key, c);
    }
    c.count++;
    c.bytes += nodes[i + fSize];
  }
  return out;
}

/** One class's growth between two snapshots, per connection added. */
export interface HeapGrowth {
  name: string;
  /** Objects of this class added per connection (may be fractional). */
  countPerConn: number;
  /** Shallow bytes of this class added per connection. */
  bytesPerConn: number;
}

/**
 * The classes that grew most between `before` and `after`, per connection (`added`
 * connections), largest first; `top` of them plus the total of all classes.
 */
export function heapGrowth(
  before: Map<string, HeapClass>,
  after: Map<string, HeapClass>,
  added: number,
  top = 15,
): { top: HeapGrowth[]; totalBytesPerConn: number } {
  const rows: HeapGrowth[] = [];
  let total = 0;
  for (const [name, a] of after) {
    const b = before.get(name);
    const dBytes = a.bytes - (b?.bytes ?? 0);
    const dCount = a.count - (b?.count ?? 0);
    total += dBytes;
    rows.push({ name, countPerConn: dCount / added, bytesPerConn: dBytes / added });
  }
  for (const [name, b] of before) if (!after.has(name)) total -= b.bytes;
  rows.sort((x, y) => y.bytesPerConn - x.bytesPerConn);
  return { top: rows.slice(0, top), totalBytesPerConn: total / added };
}
