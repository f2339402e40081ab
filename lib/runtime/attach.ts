/**
 * Handing an upgrade request of the application's own HTTP server (Express, Fastify, Next.js,
 * plain `node:http`) over to the native core. Node parsed the request head and read a little
 * past it; the core gets the socket's file descriptor (which it duplicates), the head rebuilt
 * as bytes and those few bytes, and from then on serves the connection exactly like one of its
 * own listener (route, limits, `extractMeta`, refusals, the 101). Node's socket is then
 * destroyed, which closes Node's descriptor only: no byte of the connection passes through JS.
 */

import type { IncomingMessage } from "node:http";
import type { Duplex } from "node:stream";
import { Socket } from "node:net";
import { TLSSocket } from "node:tls";
import { WarrenError } from "../errors";

/** The request head as the client sent it, rebuilt from what Node parsed (names keep their case). */
export function requestHead(req: IncomingMessage): Buffer {
  let head = `${req.method ?? "GET"} ${req.url ?? "/"} HTTP/${req.httpVersion}\r\n`;
  const raw = req.rawHeaders;
  for (let i = 0; i + 1 < raw.length; i += 2) head += `${raw[i]}: ${raw[i + 1]}\r\n`;
  head += "\r\n";
  // Node decodes header bytes as latin1: encoding back the same way gives the bytes sent.
  return Buffer.from(head, "latin1");
}

/**
 * The file descriptor of an accepted TCP socket, or a `socket_not_adoptable` error saying why
 * there is none (a TLS socket, whose bytes Node decrypts; a socket without a handle of its own).
 */
export function descriptorOf(socket: Duplex): number {
  if (socket instanceof TLSSocket) {
    throw new WarrenError(
      "socket_not_adoptable",
      "warren cannot take a TLS socket from an https server: attach to a plain http server behind your TLS proxy, or give createServer a tls option",
    );
  }
  const handle = socket instanceof Socket ? (socket as Socket & { _handle?: { fd?: unknown } | null })._handle : undefined;
  const fd = handle?.fd;
  if (typeof fd !== "number" || !Number.isInteger(fd) || fd < 0) {
    throw new WarrenError(
      "socket_not_adoptable",
      process.platform === "win32"
        ? "warren can take sockets from another server on Unix only; on Windows use server.listen"
        : "the upgrade's socket has no file descriptor of its own (it is not a plain TCP socket)",
    );
  }
  return fd;
}

/** Refuses an upgrade request on a socket still Node's: a complete response, then the end. */
export function refuseOnSocket(socket: Duplex, status: number, reason: string, error: string): void {
  const body = JSON.stringify({ error });
  socket.end(
    `HTTP/1.1 ${status} ${reason}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
  );
}
