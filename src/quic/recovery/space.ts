/**
 * Packet number spaces, RFC 9000 §12.3 and RFC 9002 Appendix A.2 (`kPacketNumberSpace`).
 *
 * Loss detection and acknowledgment are per space; RTT and congestion control are per path.
 * The numeric values index small fixed arrays (`state[space]`), in the RFC's order.
 */

/** The three packet number spaces, RFC 9000 §12.3. 0-RTT and 1-RTT share `ApplicationData`. */
export const PnSpace = {
  Initial: 0,
  Handshake: 1,
  ApplicationData: 2,
} as const;

/** A packet number space: `PnSpace.Initial | PnSpace.Handshake | PnSpace.ApplicationData`. */
export type PnSpace = (typeof PnSpace)[keyof typeof PnSpace];

/** All spaces in the order RFC 9002 Appendix A.8 iterates them. */
export const PN_SPACES: readonly PnSpace[] = [PnSpace.Initial, PnSpace.Handshake, PnSpace.ApplicationData];

/** Human-readable space name for logs and error reasons. */
export function pnSpaceName(space: PnSpace): string {
  return space === PnSpace.Initial
    ? "Initial"
    : space === PnSpace.Handshake
      ? "Handshake"
      : "ApplicationData";
}
