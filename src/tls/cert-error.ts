/**
 * Certificate errors (parsing, path building, validation). Every message names the certificate
 * and says in plain words what is wrong and, where it helps, what to do about it; `code` is a
 * stable string to switch on; `tlsAlert` is the RFC 8446 §6 alert a TLS peer sends for it.
 */
import { MquicttError } from "../errors.js";
import { AlertDescription } from "./alert.js";

/** Stable codes of {@link CertificateError}. */
export type CertificateErrorCode =
  | "CERT_EXPIRED"
  | "CERT_NOT_YET_VALID"
  | "CERT_NAME_MISMATCH"
  | "CERT_UNKNOWN_ISSUER"
  | "CERT_BAD_SIGNATURE"
  | "CERT_NOT_CA"
  | "CERT_PARSE_ERROR"
  | "CERT_UNSUPPORTED_ALGORITHM"
  | "CERT_UNSUPPORTED_CRITICAL_EXTENSION"
  | "CERT_EMPTY_CHAIN"
  | "CERT_WRONG_PURPOSE"
  | "CERT_BAD_KEY";

/**
 * The RFC 8446 §6 alert description a TLS endpoint sends for each certificate problem
 * (values of {@link AlertDescription}).
 */
export const CERTIFICATE_ALERTS: Readonly<Record<CertificateErrorCode, number>> = {
  CERT_EXPIRED: AlertDescription.certificate_expired,
  CERT_NOT_YET_VALID: AlertDescription.certificate_expired, // RFC 8446 has no "not yet valid"
  CERT_NAME_MISMATCH: AlertDescription.bad_certificate,
  CERT_UNKNOWN_ISSUER: AlertDescription.unknown_ca,
  CERT_BAD_SIGNATURE: AlertDescription.bad_certificate,
  CERT_NOT_CA: AlertDescription.bad_certificate,
  CERT_PARSE_ERROR: AlertDescription.bad_certificate,
  CERT_UNSUPPORTED_ALGORITHM: AlertDescription.unsupported_certificate,
  CERT_UNSUPPORTED_CRITICAL_EXTENSION: AlertDescription.unsupported_certificate,
  CERT_EMPTY_CHAIN: AlertDescription.certificate_required,
  CERT_WRONG_PURPOSE: AlertDescription.unsupported_certificate,
  CERT_BAD_KEY: AlertDescription.internal_error, // our own key file is unusable
};

/**
 * A certificate, chain or key that cannot be used, explained in words a user can act on,
 * e.g. "certificate for CN=localhost has expired on 2026-01-02T00:00:00Z (now 2026-11-26T10:00:00Z)".
 */
export class CertificateError extends MquicttError {
  /** The stable code. */
  declare readonly code: CertificateErrorCode;
  /** The RFC 8446 §6 alert description to send to the peer for this problem. */
  readonly tlsAlert: number;

  constructor(code: CertificateErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
    this.tlsAlert = CERTIFICATE_ALERTS[code];
  }
}
