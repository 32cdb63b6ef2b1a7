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

/** Memory an owner object holds exclusively through one of its fields (dominator tree). */
export interface RetainedField {
  /** e.g. "Connection.tls (TlsServer)". */
  name: string;
  /** Retained bytes per owner object: freed if that field were dropped. */
  bytesPerOwner: number;
}

/** Retained size per instance of one owner class, and by field. */
export interface RetainedOwner {
  owner: string;
  count: number;
  bytesPerOwner: number;
  fields: RetainedField[];
}

interface FullSnapshot extends RawSnapshot {
  snapshot: RawSnapshot["snapshot"] & {
    meta: RawSnapshot["snapshot"]["meta"] & { edge_fields: string[]; edge_types: [string[], ...unknown[]] };
  };
  edges: number[];
}

/**
 * Retained sizes (what would be freed with the object) of every instance of the `owners`
 * classes, averaged per instance, with the fields that retain most. Computes the dominator
 * tree of the snapshot (Cooper, Harvey & Kennedy's iterative algorithm over reverse postorder;
 * weak and shortcut edges ignored, as DevTools does).
 */
export function retainedByOwner(path: string, owners: readonly string[], topFields = 12): RetainedOwner[] {
  const raw = JSON.parse(readFileSync(path, "utf8")) as FullSnapshot;
  const meta = raw.snapshot.meta;
  const nf = meta.node_fields;
  const ef = meta.edge_fields;
  const nodeTypes = meta.node_types[0];
  const edgeTypes = meta.edge_types[0];
  const NS = nf.length;
  const ES = ef.length;
  const { nodes, edges, strings } = raw;
  const N = nodes.length / NS;
  const fEdges = nf.indexOf("edge_count");
  const fSize = nf.indexOf("self_size");
  const eTo = ef.indexOf("to_node");
  const eType = ef.indexOf("type");
  const eName = ef.indexOf("name_or_index");
  const weak = edgeTypes.indexOf("weak");
  const shortcut = edgeTypes.indexOf("shortcut");
  const first = new Uint32Array(N + 1);
  for (let i = 0, e = 0; i < N; i++) {
    first[i] = e;
    e += nodes[i * NS + fEdges] * ES;
  }
  first[N] = edges.length;
  const usable = (e: number): boolean => edges[e + eType] !== weak && edges[e + eType] !== shortcut;
  const className = (i: number): string => {
    const t = nodeTypes[nodes[i * NS]];
    const n = strings[nodes[i * NS + 1]];
    return t === "object" ? n : t === "closure" ? `closure ${n}` : `(${t}) ${n.slice(0, 30)}`;
  };

  // Depth-first postorder from the synthetic root (node 0).
  const order = new Int32Array(N).fill(-1);
  const post = new Int32Array(N);
  const cursor = new Uint32Array(N);
  const seen = new Uint8Array(N);
  let pc = 0;
  const stack = [0];
  seen[0] = 1;
  cursor[0] = first[0];
  while (stack.length > 0) {
    const v = stack[stack.length - 1];
    let pushed = false;
    while (cursor[v] < first[v + 1]) {
      const e = cursor[v];
      cursor[v] += ES;
      if (!usable(e)) continue;
      const w = edges[e + eTo] / NS;
      if (!seen[w]) {
        seen[w] = 1;
        cursor[w] = first[w];
        stack.push(w);
        pushed = true;
        break;
      }
    }
    if (!pushed) {
      stack.pop();
      order[v] = pc;
      post[pc++] = v;
    }
  }
  // Predecessor lists.
  const predStart = new Uint32Array(N + 1);
  for (let v = 0; v < N; v++)
    if (seen[v])
      for (let e = first[v]; e < first[v + 1]; e += ES) if (usable(e)) predStart[edges[e + eTo] / NS + 1]++;
  for (let i = 0; i < N; i++) predStart[i + 1] += predStart[i];
  const preds = new Uint32Array(predStart[N]);
  const fill = predStart.slice();
  for (let v = 0; v < N; v++)
    if (seen[v])
      for (let e = first[v]; e < first[v + 1]; e += ES) if (usable(e)) preds[fill[edges[e + eTo] / NS]++] = v;
  // Immediate dominators.
  const idom = new Int32Array(N).fill(-1);
  idom[0] = 0;
  const intersect = (a0: number, b0: number): number => {
    let a = a0;
    let b = b0;
    while (a !== b) {
      while (order[a] < order[b]) a = idom[a];
      while (order[b] < order[a]) b = idom[b];
    }
    return a;
  };
  for (let changed = true; changed; ) {
    changed = false;
    for (let k = pc - 2; k >= 0; k--) {
      const b = post[k];
      let d = -1;
      for (let p = predStart[b]; p < predStart[b + 1]; p++) {
        const q = preds[p];
        if (idom[q] !== -1) d = d === -1 ? q : intersect(q, d);
      }
      if (d !== -1 && idom[b] !== d) {
        idom[b] = d;
        changed = true;
      }
    }
  }
  // Retained sizes, children before parents.
  const retained = new Float64Array(N);
  for (let k = 0; k < pc; k++) {
    const v = post[k];
    retained[v] += nodes[v * NS + fSize];
    if (v !== 0) retained[idom[v]] += retained[v];
  }
  const out: RetainedOwner[] = [];
  for (const owner of owners) {
    let count = 0;
    let total = 0;
    const byField = new Map<string, number>();
    for (let v = 0; v < N; v++) {
      if (!seen[v] || className(v) !== owner) continue;
      count++;
      total += retained[v];
      for (let e = first[v]; e < first[v + 1]; e += ES) {
        if (!usable(e)) continue;
        const w = edges[e + eTo] / NS;
        if (idom[w] !== v) continue;
        const t = edgeTypes[edges[e + eType]];
        const field = t === "element" || t === "hidden" ? `[${edges[e + eName]}]` : strings[edges[e + eName]];
        const key = `${owner}.${field} (${className(w)})`;
        byField.set(key, (byField.get(key) ?? 0) + retained[w]);
      }
    }
    if (count === 0) continue;
    out.push({
      owner,
      count,
      bytesPerOwner: total / count,
      fields: [...byField]
        .sort((a, b) => b[1] - a[1])
        .slice(0, topFields)
        .map(([name, bytes]) => ({ name, bytesPerOwner: bytes / count })),
    });
  }
  return out;
}
