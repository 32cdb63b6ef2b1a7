/**
 * MQTT over QUIC listener (DESIGN.md "MQTT over QUIC wire format"): UDP port 14567 by default,
 * ALPN "mqtt", and "MQTT-next" (mqtt.ai "simple multistreams", the Rust `mqtt5` crate) for clients
 * that offer only that. Each QUIC connection becomes one `MqttTransport`: the first client-opened
 * bidi stream is the control stream, later client streams are data streams (bidi or uni, with or
 * without flow headers: the broker recognises either under both ALPNs), and QoS 0 PUBLISH may
 * arrive in DATAGRAM frames.
 *
 * The server's order of preference decides (TLS ALPN, RFC 7301 §3.2): "mqtt" first by default, so
 * a client offering both (ours in "auto", `mqttv5 --quic-flow-headers`) gets "mqtt" and EMQX-style
 * data streams whose deliveries come back on the stream of the SUBSCRIBE. Put "MQTT-next" first
 * (`alpn: ["MQTT-next", "mqtt"]`) to have `mqttv5` send flow headers.
 */
import { EventEmitter } from "node:events";
import type { Duplex } from "node:stream";
import type { MqttTransport, StreamInfo } from "../mqtt/transport.js";
import { type QuicConnection, QuicEndpoint, type QuicListenOptions, type QuicStream } from "./quic.js";

/** Default UDP port of MQTT over QUIC. */
export const MQTT_QUIC_PORT = 14567;

/** ALPN protocols the listener offers by default, in order of preference. */
export const MQTT_QUIC_ALPN: readonly string[] = ["mqtt", "MQTT-next"];

/** Options of `listenQuic`: the QUIC listener's, with MQTT defaults (port 14567, ALPN "mqtt", "MQTT-next"). */
export type MqttQuicListenOptions = Omit<QuicListenOptions, "alpn" | "port"> & {
  port?: number;
  alpn?: string[];
};

/** Errors of streams and connections reach the broker through "close"; the "error" events are ignored. */
function ignore(): void {}

/** One QUIC connection as the broker sees it. */
export class QuicMqttTransport extends EventEmitter implements MqttTransport {
  readonly kind = "quic" as const;
  readonly alpn: string | undefined;
  private gone = false;

  constructor(
    /** The QUIC connection (for inspection, statistics, or cutting it in tests). */
    readonly connection: QuicConnection,
    readonly control: QuicStream,
  ) {
    super();
    this.alpn = connection.alpn;
    control.on("error", ignore);
    connection.on("datagram", (d: Uint8Array) => this.emit("datagram", d));
    // `on`, not `once`: a QuicConnection emits "close" once, and once() costs a bound wrapper
    // (~200 bytes) per connection for as long as it lives.
    connection.on("close", () => {
      this.gone = true;
      this.emit("close");
    });
  }

  /** The client's address now (it changes when the client migrates, RFC 9000 §9). */
  get remoteAddress(): string {
    return this.connection.remoteAddress;
  }

  resetStream(stream: Duplex, code: number): void {
    const s = stream as QuicStream;
    if (s.bidi || s.local) s.reset(code);
    if (s.bidi || !s.local) s.stopSending(code);
  }

  close(code: number, reason: string): void {
    if (this.gone) return;
    this.gone = true;
    this.control.end();
    // The CONNACK refusal or DISCONNECT just written must reach the client before
    // CONNECTION_CLOSE discards it: close once it is acknowledged (about one RTT), or after 1 s.
    void this.connection.closeWhenFlushed(code, reason, 1000).catch(() => {});
  }

  /** @internal A later client-opened stream. */
  addStream(s: QuicStream): void {
    s.on("error", ignore);
    this.emit("stream", s, { bidi: s.bidi, id: s.id } satisfies StreamInfo);
    // Take what already arrived into the stream's buffer now: a peer that sends DISCONNECT and
    // CONNECTION_CLOSE right after a PUBLISH on a new stream has all three processed in one batch,
    // and the close destroys a stream whose first read was still a tick away (losing its data).
    s.read(0);
  }
}

/**
 * Accepts MQTT-over-QUIC connections and hands each to `handle` once its control stream opens.
 * Returns the QUIC endpoint (close it to stop listening).
 */
export async function listenQuic(
  opts: MqttQuicListenOptions,
  handle: (transport: QuicMqttTransport) => void,
): Promise<QuicEndpoint> {
  const endpoint = await QuicEndpoint.listen({
    ...opts,
    port: opts.port ?? MQTT_QUIC_PORT,
    alpn: opts.alpn ?? [...MQTT_QUIC_ALPN],
    transport: { maxDatagramFrameSize: 1200, maxStreamsBidi: 1000, maxStreamsUni: 1000, ...opts.transport },
  });
  endpoint.on("connection", (conn: QuicConnection) => {
    let transport: QuicMqttTransport | undefined;
    conn.on("stream", (s: QuicStream) => {
      if (!transport) {
        if (!s.bidi) {
          // The control stream must be a client bidi stream; a uni stream first is a data stream
          // that arrived early: hold it until the control stream shows up.
          s.on("error", ignore);
          conn.once("control", (t: QuicMqttTransport) => t.addStream(s));
          return;
        }
        transport = new QuicMqttTransport(conn, s);
        handle(transport);
        conn.emit("control", transport);
      } else transport.addStream(s);
    });
  });
  return endpoint;
}
