/**
 * One client stream as the broker tracks it: its role, framing and decoding state, and the
 * optional flow header it started with.
 */
import type { Duplex } from "node:stream";
import type { FlowHeader } from "./flow-header.js";
import { PacketDecoder, PacketFramer } from "./framing.js";

/**
 * The role of a stream.
 * - `control`: the TCP socket, or the first client-opened QUIC bidi stream. Carries every packet
 *   type (single-stream clients send everything here; EMQX-style clients may too).
 * - `data`: a later client-opened bidi stream. PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP,
 *   SUBSCRIBE, UNSUBSCRIBE only; acks and deliveries for what it carried go back on it.
 * - `uni`: a client-opened unidirectional stream (mqtt.ai style). PUBLISH, and SUBSCRIBE /
 *   UNSUBSCRIBE (the mqttv5 CLI's per-topic strategy sends them there); every reply and every
 *   delivery for such a subscription goes on the control stream.
 * - `datagram`: QUIC DATAGRAM frames, one QoS 0 PUBLISH each. Errors drop the datagram only.
 */
export type StreamKind = "control" | "data" | "uni" | "datagram";

/** Packets a client may send on each kind of stream (MQTT-over-QUIC rules, DESIGN.md). */
export const ALLOWED_PACKETS: Readonly<Record<StreamKind, ReadonlySet<string>>> = {
  control: new Set([
    "connect",
    "publish",
    "puback",
    "pubrec",
    "pubrel",
    "pubcomp",
    "subscribe",
    "unsubscribe",
    "pingreq",
    "disconnect",
    "auth",
  ]),
  data: new Set(["publish", "puback", "pubrec", "pubrel", "pubcomp", "subscribe", "unsubscribe"]),
  uni: new Set(["publish", "subscribe", "unsubscribe"]),
  datagram: new Set(["publish"]),
};

/** The broker's view of one stream. */
export class StreamState {
  readonly framer: PacketFramer;
  decoder: PacketDecoder;
  /** False once closed, reset or errored: nothing more is read from or written to it. Packets
   * already received from it are still handled (their replies go to the control stream). */
  alive = true;
  /** Reset by the broker after an error on it: packets still queued from it are dropped. */
  abandoned = false;
  /** The client finished sending on it (FIN). */
  readEnded = false;
  /** Still looking for a flow header at the start. */
  expectFlowHeader = true;
  /** The flow header the stream began with, if any. */
  flow: FlowHeader | undefined;
  /** Reading paused by the broker (busy, or held until CONNACK). */
  paused = false;
  /** Subscriptions whose deliveries are routed to this stream. */
  routes = 0;
  /** Reading failed (bad framing or packet): the rest of its bytes are ignored. */
  readFailed = false;
  /** A 'drain' listener is armed. */
  drainWatched = false;

  constructor(
    readonly duplex: Duplex,
    readonly kind: StreamKind,
    /** A label for logs and errors ("control", "bidi 4", "uni 2"). */
    readonly label: string,
    maxPacketSize: number,
    protocolVersion: number | undefined,
  ) {
    this.framer = new PacketFramer(maxPacketSize);
    this.decoder = new PacketDecoder(protocolVersion);
  }

  /** Whether the broker can write on it. */
  get writable(): boolean {
    return (
      this.alive &&
      this.kind !== "uni" &&
      this.kind !== "datagram" &&
      !this.duplex.destroyed &&
      !this.duplex.writableEnded
    );
  }
}
