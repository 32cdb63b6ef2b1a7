/**
 * The sans-IO QUIC core (RFC 9000/9001/9002): connections and endpoints driven by the caller
 * with datagrams and time. Most users want `QuicEndpoint` from "mquictt/quic" instead, which
 * drives this core over node:dgram.
 */

export type { SessionTicket } from "../tls/handshake-common.js";
export {
  type ConnectionConfig,
  defaultTransportSettings,
  type QlogEvent,
  type TransportSettings,
} from "./config.js";
export { type CloseInfo, Connection, ConnectionError, type ConnectionEvent } from "./connection.js";
export { Endpoint, type EndpointConfig, type EndpointEvent, type ServerConfig } from "./endpoint.js";
export { TransportError, TransportErrorCode, transportErrorName } from "./errors.js";
export { QUIC_V1, QUIC_V2, SUPPORTED_VERSIONS } from "./version.js";
