/**
 * The subscription index: a tree with one node per topic level, so matching a topic visits only
 * the branches its levels (and `+`/`#`) name. Shared subscriptions (MQTT 5.0 §4.8.2) hang off the
 * node of their inner filter as groups that hand each message to one member, round robin.
 */
import { parseSharedFilter } from "../topic.js";
import type { SubscriptionRecord } from "./store.js";

/** The members of one shared subscription group (one `$share/{group}/{filter}`). */
export class SharedGroup {
  /** clientId -> that member's subscription. */
  readonly members = new Map<string, SubscriptionRecord>();
  private order: string[] = [];
  private cursor = 0;

  constructor(
    /** ShareName. */
    readonly group: string,
    /** The inner topic filter. */
    readonly filter: string,
  ) {}

  /** @internal */
  add(clientId: string, sub: SubscriptionRecord): void {
    if (!this.members.has(clientId)) this.order.push(clientId);
    this.members.set(clientId, sub);
  }

  /** @internal */
  remove(clientId: string): void {
    if (!this.members.delete(clientId)) return;
    const i = this.order.indexOf(clientId);
    this.order.splice(i, 1);
    if (this.cursor > i) this.cursor--;
    if (this.cursor >= this.order.length) this.cursor = 0;
  }

  /**
   * The next member in round robin order, preferring members for which `online` is true; an
   * offline member (with a persistent session) is chosen only when nobody is online.
   */
  pick(online: (clientId: string) => boolean): [string, SubscriptionRecord] | undefined {
    const n = this.order.length;
    if (n === 0) return undefined;
    for (let k = 0; k < n; k++) {
      const i = (this.cursor + k) % n;
      const id = this.order[i]!;
      if (online(id)) {
        this.cursor = (i + 1) % n;
        return [id, this.members.get(id)!];
      }
    }
    const id = this.order[this.cursor % n]!;
    this.cursor = (this.cursor + 1) % n;
    return [id, this.members.get(id)!];
  }
}

interface Node {
  readonly children: Map<string, Node>;
  /** Non-shared subscriptions at this node: clientId -> subscription. */
  readonly subs: Map<string, SubscriptionRecord>;
  /** Shared groups at this node by ShareName. */
  readonly shared: Map<string, SharedGroup>;
}

function newNode(): Node {
  return { children: new Map(), subs: new Map(), shared: new Map() };
}

/** The result of matching a topic. */
export interface MatchResult {
  /** Non-shared subscriptions: [clientId, subscription]. */
  readonly normal: Array<[string, SubscriptionRecord]>;
  /** Shared groups with at least one member. */
  readonly shared: SharedGroup[];
}

/** All subscriptions of all sessions, indexed by topic level. */
export class SubscriptionTree {
  private readonly root = newNode();
  private count = 0;

  /** Number of subscriptions held. */
  get size(): number {
    return this.count;
  }

  private path(filter: string): string[] {
    return filter.split("/");
  }

  /** Adds or replaces a client's subscription. `sub.filter` may be shared. */
  add(clientId: string, sub: SubscriptionRecord): void {
    const share = parseSharedFilter(sub.filter);
    let node = this.root;
    for (const level of this.path(share ? share.filter : sub.filter)) {
      let child = node.children.get(level);
      if (!child) {
        child = newNode();
        node.children.set(level, child);
      }
      node = child;
    }
    if (share) {
      let g = node.shared.get(share.group);
      if (!g) {
        g = new SharedGroup(share.group, share.filter);
        node.shared.set(share.group, g);
      }
      if (!g.members.has(clientId)) this.count++;
      g.add(clientId, sub);
    } else {
      if (!node.subs.has(clientId)) this.count++;
      node.subs.set(clientId, sub);
    }
  }

  /** Removes a client's subscription; true if it existed. */
  remove(clientId: string, filter: string): boolean {
    const share = parseSharedFilter(filter);
    const levels = this.path(share ? share.filter : filter);
    const nodes: Node[] = [this.root];
    for (const level of levels) {
      const child = nodes[nodes.length - 1]!.children.get(level);
      if (!child) return false;
      nodes.push(child);
    }
    const node = nodes[nodes.length - 1]!;
    let removed = false;
    if (share) {
      const g = node.shared.get(share.group);
      if (g?.members.has(clientId)) {
        g.remove(clientId);
        if (g.members.size === 0) node.shared.delete(share.group);
        removed = true;
      }
    } else {
      removed = node.subs.delete(clientId);
    }
    if (!removed) return false;
    this.count--;
    for (let i = levels.length; i > 0; i--) {
      const n = nodes[i]!;
      if (n.subs.size > 0 || n.shared.size > 0 || n.children.size > 0) break;
      nodes[i - 1]!.children.delete(levels[i - 1]!);
    }
    return true;
  }

  /** Subscriptions matching a topic name. Leading wildcards skip `$` topics [MQTT-4.7.2-1]. */
  match(topic: string): MatchResult {
    const normal: Array<[string, SubscriptionRecord]> = [];
    const shared: SharedGroup[] = [];
    const levels = topic.split("/");
    const dollar = topic.startsWith("$");
    const take = (node: Node): void => {
      for (const e of node.subs) normal.push(e);
      for (const g of node.shared.values()) shared.push(g);
    };
    const walk = (node: Node, i: number): void => {
      const wild = !(i === 0 && dollar);
      if (wild) {
        // `#` matches this level and everything below, including the parent ("a/#" matches "a").
        const hash = node.children.get("#");
        if (hash) take(hash);
      }
      if (i === levels.length) {
        take(node);
        return;
      }
      const exact = node.children.get(levels[i]!);
      if (exact) walk(exact, i + 1);
      if (wild) {
        const plus = node.children.get("+");
        if (plus) walk(plus, i + 1);
      }
    };
    walk(this.root, 0);
    return { normal, shared };
  }
}
