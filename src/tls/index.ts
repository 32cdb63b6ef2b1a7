/**
 * mquictt/tls: a sans-IO TLS 1.3 handshake for QUIC (RFC 8446, RFC 9001 §4 and §8).
 *
 * `TlsClient` and `TlsServer` take handshake bytes per encryption level and give back bytes to
 * send per level plus events (traffic secrets, peer transport parameters, ALPN, completion,
 * session tickets). Failures are `TlsAlert`s, which QUIC sends as CRYPTO_ERROR 0x100 + alert.
 */
export { AlertDescription, type AlertName, alertName, TlsAlert } from "./alert.js";
export {
  type ClientTestingHooks,
  DEFAULT_CIPHER_SUITES,
  DEFAULT_CLIENT_SIGNATURE_SCHEMES,
  DEFAULT_GROUPS,
  TlsClient,
  type TlsClientConfig,
} from "./client.js";
export {
  type Extension,
  type ExtensionContext,
  type ExtensionTag,
  ExtensionType,
  extensionCode,
  findExtension,
  type KeyShareEntry,
  type PskIdentity,
  parseExtensions,
  readExtensions,
  writeExtensions,
} from "./extensions.js";
export {
  certificateVerifyInput,
  type Direction,
  type EncryptionLevel,
  type PeerVerifier,
  type SessionTicket,
  type TlsEvent,
  type TlsOutput,
} from "./handshake-common.js";
export { deriveSecret, hkdfExpandLabel } from "./hkdf.js";
export {
  exportKeyingMaterial,
  finishedKey,
  finishedVerifyData,
  KeySchedule,
  nextApplicationTrafficSecret,
  resumptionPsk,
  Transcript,
  trafficKeys,
  verifyFinished,
} from "./key-schedule.js";
export {
  type CertificateEntry,
  type CertificateMessage,
  type CertificateRequest,
  type CertificateVerify,
  type ClientHello,
  DEFAULT_MAX_HANDSHAKE_MESSAGE,
  type EncryptedExtensions,
  type EndOfEarlyData,
  type Finished,
  frameHandshake,
  type HandshakeMessage,
  HandshakeReassembler,
  HandshakeType,
  HELLO_RETRY_REQUEST_RANDOM,
  type HelloRetryRequest,
  type KeyUpdate,
  type NewSessionTicket,
  parseHandshake,
  parseHandshakeBody,
  type RawHandshakeMessage,
  type ServerHello,
  serializeHandshake,
} from "./messages.js";
export {
  DEFAULT_SERVER_SIGNATURE_SCHEMES,
  DEFAULT_TICKET_LIFETIME,
  TlsServer,
  type TlsServerConfig,
} from "./server.js";
export {
  CIPHER_SUITES,
  type CipherSuite,
  type CipherSuiteName,
  cipherSuiteByCode,
  NamedGroupCode,
  namedGroupByCode,
  ProtocolVersion,
  SignatureSchemeCode,
  signatureSchemeByCode,
} from "./suites.js";
export { TicketKeys, type TicketState } from "./ticket.js";
