/**
 * Options of `connect()` and their defaults.
 */
import { randomBytes } from "node:crypto";
import type { UserProperties } from "mqtt-packet";
import type { ReconnectOptions } from "./backoff.js";
import type { Dialer, DialOptions } from "./dial.js";
import { type ClientSessionStore, MemoryClientSessionStore } from "./session-store.js";
import { type ClientScheduler, realScheduler } from "./timers.js";
import type { Payload, PublishProperties, QoS } from "./types.js";

/**
 * How MQTT packets map onto QUIC streams (DESIGN.md). Over TCP there is one stream whatever the mode.
 * - `single`: one bidirectional stream carries everything.
 * - `multi`: EMQX-compatible: the first stream is the control stream (CONNECT, CONNACK, PING, AUTH,
 *   DISCONNECT); `publish`/`subscribe` share one data stream; each `publisher()` and `subscriber()`
 *   gets a data stream of its own.
 * - `per-topic` (default): multi-stream on the wire, and also each topic of `publish()` (up to
 *   `perTopicStreamLimit`) and each `subscribe()` call gets its own data stream.
 */
export type StreamMode = "per-topic" | "multi" | "single";

/**
 * Which QUIC streams carry the client's data packets in the multi-stream modes.
 *
 * - `bidi`: EMQX-style client-opened bidirectional data streams; replies come back on them. Offers
 *   ALPN "mqtt" only.
 * - `uni`: mqtt.ai "simple multistreams" style (the Rust `mqtt5` broker behind `mqttv5 broker`):
 *   client-opened unidirectional streams, each starting with a client-data flow header when ALPN
 *   "MQTT-next" was negotiated; the broker answers on the control stream and delivers on
 *   streams it opens. Offers ALPN "MQTT-next" and "mqtt".
 * - `auto` (default): offers ALPN "mqtt" and "MQTT-next" and speaks what the broker picks:
 *   `bidi` under "mqtt", `uni` under "MQTT-next". (A `mqtt5` broker picks "MQTT-next"; it refuses
 *   client-opened bidi data streams with 0xB5 whatever the ALPN.)
 */
export type QuicDataStreams = "auto" | "bidi" | "uni";

/** The last will (MQTT 5.0 §3.1.3.2), published by the broker if the connection is lost. */
export interface WillOptions {
  topic: string;
  payload: Payload;
  qos?: QoS;
  retain?: boolean;
  /** MQTT 5.0 will properties. */
  properties?: {
    willDelayInterval?: number;
    payloadFormatIndicator?: boolean;
    messageExpiryInterval?: number;
    contentType?: string;
    responseTopic?: string;
    correlationData?: Buffer;
    userProperties?: UserProperties;
  };
}

/** Options of `connect()` / `createClient()`. */
export interface ConnectOptions {
  /** Client identifier (default: "mquictt_" and 16 random hex digits). Keys the session store. */
  clientId?: string;
  /** MQTT version: 5 (default) or 4 (3.1.1). */
  protocolVersion?: 4 | 5;
  /**
   * Clean start / clean session (default true). `false` resumes the broker's session; on MQTT 5.0 it
   * also sets the session expiry to "never" unless `sessionExpiryInterval` says otherwise.
   */
  clean?: boolean;
  /** Keep alive in seconds (default 60; 0 disables). */
  keepalive?: number;
  username?: string;
  password?: string | Uint8Array;
  will?: WillOptions;
  /** MQTT 5.0 session expiry in seconds (default 0 with clean, 0xFFFFFFFF without). */
  sessionExpiryInterval?: number;
  /** MQTT 5.0: how many QoS 1/2 messages the broker may have in flight to us. */
  receiveMaximum?: number;
  /** MQTT 5.0: the largest packet we accept. */
  maximumPacketSize?: number;
  /** MQTT 5.0: how many topic aliases the broker may use towards us (default 0). */
  topicAliasMaximum?: number;
  /** MQTT 5.0 CONNECT user properties and requests. */
  properties?: {
    userProperties?: UserProperties;
    requestResponseInformation?: boolean;
    requestProblemInformation?: boolean;
  };
  /** QUIC stream mapping (default "per-topic"). */
  streamMode?: StreamMode;
  /** Most data streams `publish()` opens in per-topic mode before sharing one (default 64). */
  perTopicStreamLimit?: number;
  /** QUIC data stream dialect in the multi-stream modes (default "auto"; see {@link QuicDataStreams}). */
  quicDataStreams?: QuicDataStreams;
  /** Trusted CA certificates (PEM text or DER list). Default: the system roots. */
  ca?: string | Uint8Array[];
  /** Skip certificate verification. For tests; never the default. */
  insecure?: boolean;
  /** Name for SNI and certificate checks (default: the URL's host). */
  serverName?: string;
  /** Client certificate and key, PEM (mqtts:// only). */
  cert?: string;
  key?: string;
  /** Extra QUIC connection settings (crypto provider, transport parameters, keylog file...). */
  quic?: DialOptions["quic"];
  /** Reconnect policy (default `{ minDelay: 1000, maxDelay: 30000 }`); `false` never reconnects. */
  reconnect?: ReconnectOptions | false;
  /** Most publishes kept while offline (default 1000); beyond it `publish()` rejects with ERR_MQTT_OFFLINE_QUEUE_FULL. */
  offlineQueueLimit?: number;
  /** Give up on a connection attempt (network handshake and CONNACK) after this many ms (default 30 000). */
  connectTimeout?: number;
  /** How long `end()` waits for in-flight messages and for the broker to close, in ms (default 10 000). */
  endTimeout?: number;
  /** Session persistence (default: a fresh in-memory store). */
  store?: ClientSessionStore;
  /** Clock and timers (default: real ones). */
  scheduler?: ClientScheduler;
  /** Random numbers in [0, 1) for the reconnect jitter (default Math.random). */
  random?: () => number;
  /** Opens the network connection (default: QUIC, TCP or TLS by URL scheme). */
  dial?: Dialer;
}

/** Options with every default applied. */
export interface ResolvedOptions {
  clientId: string;
  protocolVersion: 4 | 5;
  clean: boolean;
  keepalive: number;
  streamMode: StreamMode;
  perTopicStreamLimit: number;
  quicDataStreams: QuicDataStreams;
  reconnect: Required<ReconnectOptions> | false;
  offlineQueueLimit: number;
  connectTimeout: number;
  endTimeout: number;
  store: ClientSessionStore;
  scheduler: ClientScheduler;
  random: () => number;
  raw: ConnectOptions;
}

/** Applies the defaults. */
export function resolveOptions(opts: ConnectOptions): ResolvedOptions {
  const reconnect =
    opts.reconnect === false
      ? false
      : { minDelay: opts.reconnect?.minDelay ?? 1000, maxDelay: opts.reconnect?.maxDelay ?? 30_000 };
  return {
    clientId: opts.clientId ?? `mquictt_${randomBytes(8).toString("hex")}`,
    protocolVersion: opts.protocolVersion ?? 5,
    clean: opts.clean ?? true,
    keepalive: opts.keepalive ?? 60,
    streamMode: opts.streamMode ?? "per-topic",
    perTopicStreamLimit: opts.perTopicStreamLimit ?? 64,
    quicDataStreams: opts.quicDataStreams ?? "auto",
    reconnect,
    offlineQueueLimit: opts.offlineQueueLimit ?? 1000,
    connectTimeout: opts.connectTimeout ?? 30_000,
    endTimeout: opts.endTimeout ?? 10_000,
    store: opts.store ?? new MemoryClientSessionStore(),
    scheduler: opts.scheduler ?? realScheduler,
    random: opts.random ?? Math.random,
    raw: opts,
  };
}

/** Converts a payload to a Buffer (copying, so later changes by the caller do not alter a queued message). */
export function toBuffer(payload: Payload): Buffer {
  return typeof payload === "string" ? Buffer.from(payload, "utf8") : Buffer.from(payload);
}

/** Re-exported for option builders. */
export type { PublishProperties };
