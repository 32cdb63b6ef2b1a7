/**
 * Base class of every error mquictt throws at its users. `code` is a stable string a caller can
 * switch on (in the style of undici / Node's own `err.code`); the message is for humans.
 */
export class MquicttError extends Error {
  /** A stable, machine-readable code such as `ERR_QUIC_TRANSPORT` or `ERR_TLS_ALERT`. */
  readonly code: string;

  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}
