/**
 * TLS alerts, RFC 8446 §6. The handshake state machine throws `TlsAlert` for every failure;
 * QUIC carries it as CRYPTO_ERROR (0x100 + description), RFC 9001 §4.8.
 */
import { MquicttError } from "../errors.js";

/** Alert descriptions, RFC 8446 §6 (and RFC 7301 §3.2 for no_application_protocol). */
export const AlertDescription = {
  close_notify: 0,
  unexpected_message: 10,
  bad_record_mac: 20,
  record_overflow: 22,
  handshake_failure: 40,
  bad_certificate: 42,
  unsupported_certificate: 43,
  certificate_revoked: 44,
  certificate_expired: 45,
  certificate_unknown: 46,
  illegal_parameter: 47,
  unknown_ca: 48,
  access_denied: 49,
  decode_error: 50,
  decrypt_error: 51,
  protocol_version: 70,
  insufficient_security: 71,
  internal_error: 80,
  inappropriate_fallback: 86,
  user_canceled: 90,
  missing_extension: 109,
  unsupported_extension: 110,
  unrecognized_name: 112,
  bad_certificate_status_response: 113,
  unknown_psk_identity: 115,
  certificate_required: 116,
  no_application_protocol: 120,
} as const;

export type AlertName = keyof typeof AlertDescription;

/** Name of an alert description, or its number. */
export function alertName(description: number): string {
  for (const [name, value] of Object.entries(AlertDescription)) if (value === description) return name;
  return `alert_${description}`;
}

/** A fatal TLS alert: `description` is the RFC 8446 §6 code; `message` says why in plain words. */
export class TlsAlert extends MquicttError {
  readonly description: number;
  readonly reason: string;

  constructor(description: number, reason: string, options?: { cause?: unknown }) {
    super("ERR_TLS_ALERT", `TLS alert ${alertName(description)}: ${reason}`, options);
    this.description = description;
    this.reason = reason;
  }
}

/** `Reader` failure builder for TLS codecs: malformed input is a decode_error alert. */
export const tlsDecodeError = (reason: string): TlsAlert =>
  new TlsAlert(AlertDescription.decode_error, reason);
