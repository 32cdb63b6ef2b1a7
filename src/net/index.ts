/**
 * `mquictt/quic`: QUIC over node:dgram (`QuicEndpoint`, `QuicConnection`, `QuicStream`) and,
 * for those who drive it themselves, the sans-IO core.
 */
export * from "../quic/index.js";
export {
  type QuicCommonOptions,
  QuicConnection,
  type QuicConnectOptions,
  QuicEndpoint,
  QuicError,
  type QuicListenOptions,
  QuicStream,
  StreamResetError,
} from "./quic.js";
export { MQTT_TLS_PORT, TlsListenError, type TlsListener, type TlsListenOptions } from "./tls.js";
