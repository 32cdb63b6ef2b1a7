/**
 * mquictt: MQTT over QUIC in pure TypeScript.
 *
 * ```ts
 * import { Broker, connect } from "mquictt";
 * const client = await connect("mqtt+quic://localhost:14567", { ca });
 * const pub = await client.publisher("hello/world", "hello");
 * for await (const msg of await client.subscriber("hello/#")) console.log(msg.topic, msg.payload);
 * ```
 *
 * The QUIC transport is exported too (`QuicEndpoint`, `QuicConnection`, `QuicStream`); the sans-IO
 * core lives in "mquictt/quic", TLS in "mquictt/tls", crypto providers in "mquictt/crypto".
 */
export { MquicttError } from "./errors.js";
export * from "./mqtt/index.js";
export {
  type QuicCommonOptions,
  QuicConnection,
  type QuicConnectOptions,
  QuicEndpoint,
  QuicError,
  type QuicListenOptions,
  QuicStream,
  StreamResetError,
} from "./net/quic.js";
