/**
 * The client side of an MQTT session (MQTT 5.0 §4.1): QoS 1 and 2 messages sent but not yet
 * completely acknowledged, and QoS 2 messages received whose PUBREL has not arrived. It outlives
 * a network connection, and with a durable store a process, so that after a reconnect to a
 * persistent session the client resends what was unacknowledged with the original packet
 * identifiers [MQTT-4.4.0-1] and a QoS 2 flow resumes where it stopped.
 *
 * The interface is deliberately small and keyed by client id; every method may return a promise
 * so a durable implementation can write to disk. The client calls `putOutgoing` before the first
 * transmission of a message and on each phase change, so what a store holds is exactly what
 * must be resent.
 */
import type { QoS, UserProperties } from "mqtt-packet";

/** MQTT 5.0 PUBLISH properties the client sends. */
export interface PublishProperties {
  payloadFormatIndicator?: boolean;
  messageExpiryInterval?: number;
  topicAlias?: number;
  responseTopic?: string;
  correlationData?: Buffer;
  userProperties?: UserProperties;
  subscriptionIdentifier?: number | number[];
  contentType?: string;
}

/** An outgoing QoS 1/2 message in the session. */
export interface StoredPublish {
  packetId: number;
  topic: string;
  payload: Buffer;
  qos: Exclude<QoS, 0>;
  retain: boolean;
  properties?: PublishProperties;
  /** "publish": waiting for PUBACK/PUBREC; "pubrel": PUBREC received, waiting for PUBCOMP. */
  phase: "publish" | "pubrel";
  /** The logical stream the message belongs to (a publisher's), so a resend keeps its stream. */
  stream?: string;
}

/** Everything a store holds for one client id. */
export interface SessionSnapshot {
  /** Outgoing messages in the order they were first sent. */
  outgoing: StoredPublish[];
  /** Packet ids of incoming QoS 2 messages delivered and answered with PUBREC, awaiting PUBREL. */
  incoming: number[];
}

/** Persistence of client session state. `MemoryClientSessionStore` is the default. */
export interface ClientSessionStore {
  /** The state kept for `clientId`, if any. */
  load(clientId: string): SessionSnapshot | undefined | Promise<SessionSnapshot | undefined>;
  /** Records a message (insert, or update of its phase keeping its position). */
  putOutgoing(clientId: string, message: StoredPublish): void | Promise<void>;
  /** Forgets a completed (or abandoned) outgoing message. */
  deleteOutgoing(clientId: string, packetId: number): void | Promise<void>;
  /** Records an incoming QoS 2 packet id after delivering the message. */
  putIncoming(clientId: string, packetId: number): void | Promise<void>;
  /** Forgets an incoming QoS 2 packet id on PUBREL. */
  deleteIncoming(clientId: string, packetId: number): void | Promise<void>;
  /** Drops the whole session of `clientId` (clean start, or the broker lost the session). */
  clear(clientId: string): void | Promise<void>;
}

/** The in-memory store: survives reconnects of one process, shared by clients given the same instance. */
export class MemoryClientSessionStore implements ClientSessionStore {
  private readonly sessions = new Map<
    string,
    { outgoing: Map<number, StoredPublish>; incoming: Set<number> }
  >();

  private session(clientId: string) {
    let s = this.sessions.get(clientId);
    if (!s) {
      s = { outgoing: new Map(), incoming: new Set() };
      this.sessions.set(clientId, s);
    }
    return s;
  }

  load(clientId: string): SessionSnapshot | undefined {
    const s = this.sessions.get(clientId);
    if (!s) return undefined;
    return { outgoing: [...s.outgoing.values()].map((m) => ({ ...m })), incoming: [...s.incoming] };
  }

  putOutgoing(clientId: string, message: StoredPublish): void {
    this.session(clientId).outgoing.set(message.packetId, { ...message });
  }

  deleteOutgoing(clientId: string, packetId: number): void {
    this.sessions.get(clientId)?.outgoing.delete(packetId);
  }

  putIncoming(clientId: string, packetId: number): void {
    this.session(clientId).incoming.add(packetId);
  }

  deleteIncoming(clientId: string, packetId: number): void {
    this.sessions.get(clientId)?.incoming.delete(packetId);
  }

  clear(clientId: string): void {
    this.sessions.delete(clientId);
  }
}
