/**
 * Broker URLs: `mqtt+quic://host:port` (QUIC, default UDP port 14567, ALPN "mqtt"),
 * `mqtt://host:port` (TCP, default 1883) and `mqtts://host:port` (TLS over TCP, default 8883).
 */
import { MqttUrlError } from "./errors.js";

/** Transport named by a URL scheme. */
export type MqttTransportKind = "quic" | "tcp" | "tls";

/** A parsed broker address. */
export interface BrokerAddress {
  kind: MqttTransportKind;
  /** Host name or IP literal (IPv6 without brackets). */
  host: string;
  port: number;
}

/** Default ports by transport. */
export const DEFAULT_PORTS: Readonly<Record<MqttTransportKind, number>> = {
  quic: 14567,
  tcp: 1883,
  tls: 8883,
};

const SCHEMES: Readonly<Record<string, MqttTransportKind>> = {
  "mqtt+quic:": "quic",
  "mqtt:": "tcp",
  "tcp:": "tcp",
  "mqtts:": "tls",
  "ssl:": "tls",
};

/** Parses a broker URL; throws `MqttUrlError` with the accepted schemes when it is not one. */
export function parseBrokerUrl(url: string | URL): BrokerAddress {
  let u: URL;
  try {
    u = typeof url === "string" ? new URL(url) : url;
  } catch {
    throw new MqttUrlError(`not a URL: ${String(url)} (expected e.g. mqtt+quic://localhost:14567)`);
  }
  const kind = SCHEMES[u.protocol];
  if (!kind)
    throw new MqttUrlError(
      `unsupported scheme ${u.protocol} in ${u.href}: use mqtt+quic:// (QUIC), mqtt:// (TCP) or mqtts:// (TLS)`,
    );
  if (!u.hostname) throw new MqttUrlError(`no host in ${u.href}`);
  const host = u.hostname.startsWith("[") ? u.hostname.slice(1, -1) : u.hostname;
  const port = u.port ? Number(u.port) : DEFAULT_PORTS[kind];
  return { kind, host, port };
}
