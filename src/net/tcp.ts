/**
 * MQTT over TCP (port 1883): a `node:net` listener that hands each socket to the broker as an
 * {@link MqttTransport} with the socket as the control stream and no data streams.
 */
import { EventEmitter } from "node:events";
import { createServer, type Server, type Socket } from "node:net";
import type { Duplex } from "node:stream";
import type { MqttTransport } from "../mqtt/transport.js";

/** How long a closing socket may take to flush before it is destroyed. */
const CLOSE_FLUSH_TIMEOUT_MS = 5000;

/** A TCP socket as an MQTT transport (single stream). */
export class TcpTransport extends EventEmitter implements MqttTransport {
  readonly kind = "tcp" as const;
  readonly remoteAddress: string;
  readonly control: Duplex;
  private closed = false;

  constructor(private readonly socket: Socket) {
    super();
    const host = socket.remoteAddress ?? "?";
    this.remoteAddress = host.includes(":")
      ? `[${host}]:${socket.remotePort}`
      : `${host}:${socket.remotePort}`;
    this.control = socket;
    socket.setNoDelay(true);
    socket.on("error", () => {}); // reported through 'close'
    socket.once("close", () => {
      this.closed = true;
      this.emit("close");
    });
  }

  resetStream(_stream: Duplex, _code: number): void {
    // A TCP connection has one stream: resetting it is closing the connection.
    this.socket.destroy();
  }

  close(_code: number, _reason: string): void {
    if (this.closed || this.socket.destroyed) return;
    // Flush what was written (CONNACK/DISCONNECT), then FIN; do not wait forever for the peer.
    this.socket.end();
    const t = setTimeout(() => this.socket.destroy(), CLOSE_FLUSH_TIMEOUT_MS);
    t.unref();
    this.socket.once("close", () => clearTimeout(t));
  }
}

/** Options of {@link listenTcp}. */
export interface TcpListenOptions {
  /** TCP port (default 1883; 0 = any free port). */
  port?: number;
  /** Address to bind (default: all interfaces). */
  host?: string;
}

/** A listening TCP server. */
export interface TcpListener {
  /** The bound address and port. */
  address(): { address: string; port: number };
  /** Stops accepting and closes open sockets. */
  close(): Promise<void>;
}

/** Listens for TCP connections and passes each one on as an MqttTransport. */
export async function listenTcp(
  opts: TcpListenOptions,
  onTransport: (transport: MqttTransport) => void,
): Promise<TcpListener> {
  const sockets = new Set<Socket>();
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
    onTransport(new TcpTransport(socket));
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(opts.port ?? 1883, opts.host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  return {
    address() {
      const a = server.address();
      if (a && typeof a === "object") return { address: a.address, port: a.port };
      return { address: String(a), port: 0 };
    },
    close() {
      return new Promise<void>((resolve) => {
        server.close(() => resolve());
        // Give sockets a moment to flush a final DISCONNECT, then cut them.
        setImmediate(() => {
          for (const s of sockets) s.end();
          const t = setTimeout(() => {
            for (const s of sockets) s.destroy();
          }, 1000);
          t.unref();
        });
      });
    },
  };
}
