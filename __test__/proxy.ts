/**
 * A TCP proxy between a client and a server on loopback, to break the network between them the
 * ways real networks break: `cut()` drops every connection without a close handshake and refuses
 * new ones (Wi-Fi off: the server sees the socket die), `blackhole()` silently stops forwarding
 * while both ends keep their sockets (a dead NAT entry: nobody notices until a heartbeat times
 * out), `isolate()` black-holes new connections too (a partition: connecting seems to work, nothing
 * crosses), `restore()` heals it.
 */
import { once } from "node:events";
import net from "node:net";

interface Pair {
  client: net.Socket;
  upstream: net.Socket;
  /** While true nothing crosses, not even a close. */
  frozen: boolean;
}

export class TcpProxy {
  readonly #server: net.Server;
  readonly #target: number;
  readonly #pairs = new Set<Pair>();
  #down = false;
  #isolated = false;

  private constructor(server: net.Server, target: number) {
    this.#server = server;
    this.#target = target;
    server.on("connection", (client) => this.#accept(client));
  }

  /** Listens on a free loopback port and forwards to `targetPort` on 127.0.0.1. */
  static async start(targetPort: number): Promise<TcpProxy> {
    const server = net.createServer();
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    return new TcpProxy(server, targetPort);
  }

  get port(): number {
    return (this.#server.address() as net.AddressInfo).port;
  }

  /** Connections currently forwarded (frozen ones included). */
  get connections(): number {
    return this.#pairs.size;
  }

  /** Closes every connection on both sides (no close handshake) and refuses new ones until {@link restore}. */
  cut(): void {
    this.#down = true;
    for (const pair of this.#pairs) {
      pair.client.destroy();
      pair.upstream.destroy();
    }
    this.#pairs.clear();
  }

  /** Stops forwarding on the current connections without closing either side. */
  blackhole(): void {
    for (const pair of this.#pairs) pair.frozen = true;
  }

  /** Black-holes the current connections and every new one until {@link restore}. */
  isolate(): void {
    this.#isolated = true;
    this.blackhole();
  }

  /** New connections are forwarded again (frozen ones stay frozen). */
  restore(): void {
    this.#down = false;
    this.#isolated = false;
  }

  async close(): Promise<void> {
    this.cut();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  #accept(client: net.Socket): void {
    client.on("error", () => {});
    if (this.#down) {
      client.destroy();
      return;
    }
    const upstream = net.connect(this.#target, "127.0.0.1");
    upstream.on("error", () => {});
    const pair: Pair = { client, upstream, frozen: this.#isolated };
    this.#pairs.add(pair);
    client.on("data", (chunk) => {
      if (!pair.frozen) upstream.write(chunk);
    });
    upstream.on("data", (chunk) => {
      if (!pair.frozen) client.write(chunk);
    });
    const end = () => {
      if (pair.frozen) return;
      this.#pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on("close", end);
    upstream.on("close", end);
  }
}
