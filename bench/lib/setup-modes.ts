/**
 * The connection modes of the connection-setup benchmark (bench/connect-setup.ts): how each one
 * opens an MQTT connection, publishes, subscribes and ends, behind one small interface, so the
 * benchmark's loops know nothing about transports.
 *
 * Adding a mode is one entry in {@link MODES}. The QUIC modes differ only in the client's
 * session-ticket use: `quic` asks for a full handshake (`quic.sessionTicket: undefined`),
 * `quic-resumed` offers the ticket the client keeps from its previous connection to the same
 * broker (the subscriber's connection seeds it), and `quic-0rtt` also sends CONNECT in 0-RTT
 * (`quic.earlyData`). Each QUIC mode has its own broker port (bench/lib/setup-broker.ts), which
 * counts per mode how many handshakes were resumed and how many 0-RTT attempts were accepted,
 * so the benchmark reports what happened rather than what the mode's name promises.
 */
import { connect as netConnect } from "node:net";
import { performance } from "node:perf_hooks";
import { type TLSSocket, connect as tlsConnect } from "node:tls";
import { MqttClient as MqttJsClient } from "mqtt";
import type { ConnectOptions } from "../../src/mqtt/client/options.js";
import { connect, type MqttClient } from "../../src/mqtt/index.js";

/** Where the brokers are and what clients trust. */
export interface SetupEnv {
  /** Host (IP) of the brokers. */
  host: string;
  /** Our broker: MQTT over QUIC (one UDP port per QUIC mode), plain TCP and TLS ports. */
  quicPorts: Record<string, number>;
  tcpPort: number;
  tlsPort: number;
  /** mosquitto's TLS and plain TCP ports, when mosquitto runs. */
  mosquittoTlsPort?: number;
  mosquittoTcpPort?: number;
  /** The CA that signed the brokers' certificate (PEM). */
  caPem: string;
  /** The name the certificate carries. */
  serverName: string;
}

/** An open MQTT connection as the benchmark uses it. */
export interface SetupConn {
  /** Publishes; resolves when the broker acknowledged it (QoS 1) or it was written (QoS 0). */
  publish(topic: string, payload: Buffer, qos: 0 | 1): Promise<void>;
  /** Subscribes (resolves at SUBACK). */
  subscribe(filter: string, qos: 0 | 1): Promise<void>;
  /** Called for every message delivered to this connection. */
  onMessage(listener: (topic: string, payload: Buffer) => void): void;
  /** DISCONNECT and close; resolves when the connection is gone (or after 3 s). */
  end(): Promise<void>;
  /** The TLS version negotiated (TLS modes), for the record. */
  readonly tlsVersion?: string;
}

/** One way of connecting. */
export interface SetupMode {
  /** Short name used on the command line and in the JSON. */
  id: string;
  /** What it is, for tables. */
  label: string;
  transport: "quic" | "tls" | "tcp";
  broker: "mquictt" | "mosquitto";
  client: "mquictt" | "mqtt.js";
  /**
   * Round trips from connect() to the first PUBLISH delivered to a subscriber across the same
   * link, by protocol design: handshake round trips + 1 (CONNECT/CONNACK) + 1 (PUBLISH to the
   * broker, then to the subscriber: half an RTT each way).
   */
  modelRtts: number;
  /** Whether the mode can run with these brokers. */
  available(env: SetupEnv): boolean;
  /** One-time preparation before measuring (e.g. obtaining a session ticket). */
  prepare?(env: SetupEnv): Promise<void>;
  /** Opens a connection; resolves at CONNACK. */
  open(env: SetupEnv, clientId: string): Promise<SetupConn>;
}

const END_TIMEOUT_MS = 3000;

function quicUrl(env: SetupEnv, mode: string): string {
  const port = env.quicPorts[mode];
  if (port === undefined) throw new Error(`no QUIC listener for mode ${mode}`);
  return `mqtt+quic://${env.host}:${port}`;
}

function withTimeout(p: Promise<unknown>, ms: number): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    p.then(
      () => {
        clearTimeout(t);
        resolve();
      },
      () => {
        clearTimeout(t);
        resolve();
      },
    );
  });
}

/** Our client (QUIC per-topic, or TLS/TCP with `mqtts://` / `mqtt://`). */
async function openOurs(
  url: string,
  env: SetupEnv,
  clientId: string,
  quic?: ConnectOptions["quic"],
): Promise<SetupConn> {
  const c: MqttClient = await connect(url, {
    ...(quic ? { quic } : {}),
    clientId,
    ca: env.caPem,
    serverName: env.serverName,
    streamMode: "per-topic",
    reconnect: false,
    keepalive: 0,
    connectTimeout: 15_000,
  });
  c.on("error", () => {});
  return {
    publish: async (topic, payload, qos) => {
      await c.publish(topic, payload, { qos });
    },
    subscribe: async (filter, qos) => {
      await c.subscribe(filter, { qos });
    },
    onMessage: (listener) => c.on("message", (topic: string, payload: Buffer) => listener(topic, payload)),
    end: () => withTimeout(c.end(), END_TIMEOUT_MS),
  };
}

/**
 * MQTT.js over TLS or TCP, on a socket we create so that TCP_NODELAY is set before the first
 * byte, as our client and broker do: with Nagle on, the CONNECT written right after the TLS
 * Finished waits for the Finished's ACK, which would charge TLS a round trip it does not need.
 */
async function openMqttJs(
  kind: "tls" | "tcp",
  port: number,
  env: SetupEnv,
  clientId: string,
): Promise<SetupConn> {
  let socket: TLSSocket | ReturnType<typeof netConnect> | undefined;
  const c = new MqttJsClient(
    () => {
      const s =
        kind === "tls"
          ? tlsConnect({
              host: env.host,
              port,
              ca: env.caPem,
              servername: env.serverName,
              rejectUnauthorized: true,
            })
          : netConnect({ host: env.host, port });
      s.setNoDelay(true);
      socket = s;
      return s;
    },
    { clientId, protocolVersion: 5, reconnectPeriod: 0, keepalive: 0, clean: true, connectTimeout: 15_000 },
  );
  await new Promise<void>((resolve, reject) => {
    c.once("connect", () => resolve());
    c.once("error", reject);
    c.once("close", () => reject(new Error(`MQTT.js ${kind} connection closed before CONNACK`)));
  });
  c.on("error", () => {});
  const tlsVersion = kind === "tls" ? ((socket as TLSSocket).getProtocol() ?? undefined) : undefined;
  return {
    publish: async (topic, payload, qos) => {
      await c.publishAsync(topic, payload, { qos });
    },
    subscribe: async (filter, qos) => {
      await c.subscribeAsync(filter, { qos });
    },
    onMessage: (listener) => c.on("message", (topic, payload) => listener(topic, payload)),
    end: () => withTimeout(c.endAsync(false), END_TIMEOUT_MS),
    ...(tlsVersion ? { tlsVersion } : {}),
  };
}

/** Every mode, in table order. */
export const MODES: SetupMode[] = [
  {
    id: "quic",
    label: "MQTT over QUIC, 1-RTT (mquictt client → mquictt broker, per-topic)",
    transport: "quic",
    broker: "mquictt",
    client: "mquictt",
    modelRtts: 3,
    available: (env) => env.quicPorts.quic !== undefined,
    // An explicit `sessionTicket: undefined`: no resumption, every handshake a full one.
    open: (env, id) => openOurs(quicUrl(env, "quic"), env, id, { sessionTicket: undefined }),
  },
  {
    id: "quic-resumed",
    label: "MQTT over QUIC, resumed TLS session (ticket from the previous connection), 1-RTT",
    transport: "quic",
    broker: "mquictt",
    client: "mquictt",
    modelRtts: 3,
    available: (env) => env.quicPorts["quic-resumed"] !== undefined,
    open: (env, id) => openOurs(quicUrl(env, "quic-resumed"), env, id),
  },
  {
    id: "quic-0rtt",
    label: "MQTT over QUIC, resumed with CONNECT in 0-RTT",
    transport: "quic",
    broker: "mquictt",
    client: "mquictt",
    modelRtts: 2,
    available: (env) => env.quicPorts["quic-0rtt"] !== undefined,
    open: (env, id) => openOurs(quicUrl(env, "quic-0rtt"), env, id, { earlyData: true }),
  },
  {
    id: "tls-ours",
    label: "MQTT over TCP+TLS 1.3 (MQTT.js mqtts:// → mquictt broker)",
    transport: "tls",
    broker: "mquictt",
    client: "mqtt.js",
    modelRtts: 4,
    available: () => true,
    open: (env, id) => openMqttJs("tls", env.tlsPort, env, id),
  },
  {
    id: "tls-mosquitto",
    label: "MQTT over TCP+TLS 1.3 (MQTT.js mqtts:// → mosquitto, same certificate)",
    transport: "tls",
    broker: "mosquitto",
    client: "mqtt.js",
    modelRtts: 4,
    available: (env) => env.mosquittoTlsPort !== undefined,
    open: (env, id) => openMqttJs("tls", env.mosquittoTlsPort ?? 0, env, id),
  },
  {
    id: "tcp-ours",
    label: "MQTT over plain TCP, reference (MQTT.js mqtt:// → mquictt broker)",
    transport: "tcp",
    broker: "mquictt",
    client: "mqtt.js",
    modelRtts: 3,
    available: () => true,
    open: (env, id) => openMqttJs("tcp", env.tcpPort, env, id),
  },
  {
    id: "tls-ours-mquictt",
    label: "MQTT over TCP+TLS 1.3 (mquictt client mqtts:// → mquictt broker)",
    transport: "tls",
    broker: "mquictt",
    client: "mquictt",
    modelRtts: 4,
    available: () => true,
    open: (env, id) => openOurs(`mqtts://${env.host}:${env.tlsPort}`, env, id),
  },
];

/** The modes run unless `--modes` says otherwise. */
export const DEFAULT_MODES = ["quic", "quic-resumed", "quic-0rtt", "tls-ours", "tls-mosquitto", "tcp-ours"];

/** Looks a mode up by id; throws with the known ids. */
export function modeById(id: string): SetupMode {
  const m = MODES.find((x) => x.id === id);
  if (!m) throw new Error(`unknown mode ${id}; known: ${MODES.map((x) => x.id).join(", ")}`);
  return m;
}

/** Milliseconds since an arbitrary origin, one clock for the whole process. */
export const now = (): number => performance.now();
