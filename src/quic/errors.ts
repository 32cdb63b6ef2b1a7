/**
 * QUIC transport errors, RFC 9000 §20.1. A peer's protocol violation becomes a
 * `TransportError`, which the connection turns into a CONNECTION_CLOSE frame and an event;
 * it never escapes the sans-IO core as an exception.
 */
import { MquicttError } from "../errors.js";

/** Transport error codes, RFC 9000 §20.1 (CRYPTO_ERROR is 0x0100-0x01ff: 0x100 + TLS alert). */
export const TransportErrorCode = {
  NO_ERROR: 0x00,
  INTERNAL_ERROR: 0x01,
  CONNECTION_REFUSED: 0x02,
  FLOW_CONTROL_ERROR: 0x03,
  STREAM_LIMIT_ERROR: 0x04,
  STREAM_STATE_ERROR: 0x05,
  FINAL_SIZE_ERROR: 0x06,
  FRAME_ENCODING_ERROR: 0x07,
  TRANSPORT_PARAMETER_ERROR: 0x08,
  CONNECTION_ID_LIMIT_ERROR: 0x09,
  PROTOCOL_VIOLATION: 0x0a,
  INVALID_TOKEN: 0x0b,
  APPLICATION_ERROR: 0x0c,
  CRYPTO_BUFFER_EXCEEDED: 0x0d,
  KEY_UPDATE_ERROR: 0x0e,
  AEAD_LIMIT_REACHED: 0x0f,
  NO_VIABLE_PATH: 0x10,
  /** RFC 9368 §4: compatible version negotiation failed. */
  VERSION_NEGOTIATION_ERROR: 0x11,
  CRYPTO_ERROR: 0x100,
} as const;

/** Name of a transport error code for messages and logs ("CRYPTO_ERROR(handshake_failure)" style). */
export function transportErrorName(code: number): string {
  if (code >= 0x100 && code <= 0x1ff)
    return `CRYPTO_ERROR(0x${(code - 0x100).toString(16).padStart(2, "0")})`;
  for (const [name, value] of Object.entries(TransportErrorCode)) if (value === code) return name;
  return `0x${code.toString(16)}`;
}

/**
 * A QUIC transport error: `code` from RFC 9000 §20.1, the frame type that caused it (0 when
 * none or unknown), and a reason phrase for the peer and the logs.
 */
export class TransportError extends MquicttError {
  /** RFC 9000 §20.1 error code. */
  readonly errorCode: number;
  /** The frame type that triggered the error, or 0 (CONNECTION_CLOSE's Frame Type field). */
  readonly frameType: number;
  /** Reason phrase sent to the peer. */
  readonly reason: string;

  constructor(errorCode: number, reason: string, frameType = 0) {
    super("ERR_QUIC_TRANSPORT", `${transportErrorName(errorCode)}: ${reason}`);
    this.errorCode = errorCode;
    this.frameType = frameType;
    this.reason = reason;
  }

  /** CRYPTO_ERROR for a TLS alert: 0x100 + alert description (RFC 9001 §4.8). */
  static crypto(alert: number, reason: string): TransportError {
    return new TransportError(TransportErrorCode.CRYPTO_ERROR + (alert & 0xff), reason);
  }
}

/** Failure builders for `Reader`, so decoders throw the right typed error. */
export const frameEncodingError = (reason: string): TransportError =>
  new TransportError(TransportErrorCode.FRAME_ENCODING_ERROR, reason);
export const protocolViolation = (reason: string): TransportError =>
  new TransportError(TransportErrorCode.PROTOCOL_VIOLATION, reason);
export const transportParameterError = (reason: string): TransportError =>
  new TransportError(TransportErrorCode.TRANSPORT_PARAMETER_ERROR, reason);
