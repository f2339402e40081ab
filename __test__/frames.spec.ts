import assert from "node:assert/strict";
import { once } from "node:events";
import { createConnection, type Socket } from "node:net";
import { describe, test } from "node:test";
import WebSocket from "ws";
import { defineRawConnection } from "../index.js";
import { serve, withTimeout } from "./helpers.js";

/** A raw endpoint that echoes every message. */
const Echo = defineRawConnection({
  name: "FrameEcho",
  websocketPath: "/echo",
  onMessage(ctx, data) {
    ctx.send(data);
  },
});

/** A masked client frame (RFC 6455 §5.2). */
function clientFrame(opcode: number, fin: boolean, payload: Buffer, mask = [0x5a, 0x01, 0xc3, 0x7e]): Buffer {
  const length =
    payload.length < 126
      ? Buffer.from([0x80 | payload.length])
      : payload.length < 65536
        ? Buffer.from([0x80 | 126, payload.length >> 8, payload.length & 0xff])
        : Buffer.concat([Buffer.from([0x80 | 127]), (() => { const b = Buffer.alloc(8); b.writeBigUInt64BE(BigInt(payload.length)); return b; })()]);
  return Buffer.concat([Buffer.from([(fin ? 0x80 : 0) | opcode]), length, Buffer.from(mask), payload.map((byte, i) => byte ^ mask[i % 4]!)]);
}

interface ServerFrame {
  opcode: number;
  payload: Buffer;
}

/** A WebSocket over a plain TCP socket, to send exactly the bytes a test wants. */
class WireClient {
  readonly socket: Socket;
  #received = Buffer.alloc(0);
  #upgraded = false;
  #frames: ServerFrame[] = [];
  #waiters: Array<() => void> = [];
  readonly ended: Promise<unknown>;

  constructor(port: number) {
    this.socket = createConnection({ host: "127.0.0.1", port });
    this.socket.setNoDelay(true);
    this.socket.on("error", () => {});
    this.ended = once(this.socket, "close");
    this.socket.on("data", (chunk: Buffer) => {
      this.#received = Buffer.concat([this.#received, chunk]);
      this.#parse();
      for (const wake of this.#waiters.splice(0)) wake();
    });
  }

  async open(): Promise<this> {
    await withTimeout(once(this.socket, "connect"), "the TCP connection");
    this.socket.write(
      "GET /echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
        "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
    );
    while (!this.#upgraded) await this.#next("the 101");
    return this;
  }

  /** Writes `bytes` in pieces of `size`, each its own write (and, with no delay, its own segment). */
  async write(bytes: Buffer, size = bytes.length): Promise<void> {
    for (let at = 0; at < bytes.length; at += size) {
      await new Promise<void>((resolve, reject) => this.socket.write(bytes.subarray(at, at + size), (error) => (error ? reject(error) : resolve())));
    }
  }

  /** The next frame from the server. */
  async frame(): Promise<ServerFrame> {
    while (this.#frames.length === 0) await this.#next("a frame from the server");
    return this.#frames.shift()!;
  }

  /** The server's Close: code and reason. */
  async closed(): Promise<{ code: number; reason: string }> {
    for (;;) {
      const frame = await this.frame();
      if (frame.opcode === 0x8) return { code: frame.payload.readUInt16BE(0), reason: frame.payload.subarray(2).toString() };
    }
  }

  #next(what: string): Promise<void> {
    return withTimeout(new Promise<void>((resolve) => this.#waiters.push(resolve)), what);
  }

  #parse(): void {
    if (!this.#upgraded) {
      const end = this.#received.indexOf("\r\n\r\n");
      if (end < 0) return;
      assert.match(this.#received.subarray(0, end).toString(), /^HTTP\/1.1 101/);
      this.#received = this.#received.subarray(end + 4);
      this.#upgraded = true;
    }
    for (;;) {
      const bytes = this.#received;
      if (bytes.length < 2) return;
      let length = bytes[1]! & 0x7f;
      let at = 2;
      if (length === 126) {
        if (bytes.length < 4) return;
        length = bytes.readUInt16BE(2);
        at = 4;
      } else if (length === 127) {
        if (bytes.length < 10) return;
        length = Number(bytes.readBigUInt64BE(2));
        at = 10;
      }
      assert.equal(bytes[1]! & 0x80, 0, "server frames are never masked");
      if (bytes.length < at + length) return;
      this.#frames.push({ opcode: bytes[0]! & 0x0f, payload: bytes.subarray(at, at + length) });
      this.#received = bytes.subarray(at + length);
    }
  }
}

describe("frames on the wire", () => {
  test("a message cut into one-byte TCP segments, header included, arrives whole", async () => {
    const { port } = await serve({ connections: [Echo] });
    const client = await new WireClient(port).open();
    const text = "héllo ✓ ".repeat(40);
    await client.write(clientFrame(0x1, true, Buffer.from(text)), 1);
    const echoed = await client.frame();
    assert.equal(echoed.opcode, 0x1);
    assert.equal(echoed.payload.toString(), text);
    // A fragmented binary message of 70,000 bytes in 1,000-byte writes, a ping in between.
    const big = Buffer.alloc(70_000, 7);
    const stream = Buffer.concat([
      clientFrame(0x2, false, big.subarray(0, 30_000)),
      clientFrame(0x9, true, Buffer.from("mid")),
      clientFrame(0x0, true, big.subarray(30_000)),
    ]);
    await client.write(stream, 1000);
    const pong = await client.frame();
    assert.deepEqual([pong.opcode, pong.payload.toString()], [0xa, "mid"]);
    const whole = await client.frame();
    assert.equal(whole.opcode, 0x2);
    assert.deepEqual(whole.payload, big);
    client.socket.destroy();
  });

  test("a ping is answered with a pong carrying its payload; an unsolicited pong is ignored", async () => {
    const { port } = await serve({ connections: [Echo] });
    const socket = new WebSocket(`ws://127.0.0.1:${port}/echo`);
    await withTimeout(once(socket, "open"), "the socket to open");
    socket.pong(Buffer.from("unasked"));
    socket.ping(Buffer.from([1, 2, 3, 250]));
    const [payload] = (await withTimeout(once(socket, "pong"), "the pong")) as [Buffer];
    assert.deepEqual(payload, Buffer.from([1, 2, 3, 250]));
    socket.send("still open");
    const [echo] = (await withTimeout(once(socket, "message"), "the echo")) as [Buffer];
    assert.equal(echo.toString(), "still open");
    socket.close(1000);
    await withTimeout(once(socket, "close"), "the close");
  });

  test("the peer's close code is echoed back", async () => {
    const { port } = await serve({ connections: [Echo] });
    const client = await new WireClient(port).open();
    await client.write(clientFrame(0x8, true, Buffer.from([0x0f, 0xa0, ...Buffer.from("bye")])));
    assert.deepEqual(await client.closed(), { code: 4000, reason: "" });
    await withTimeout(client.ended, "the server to end the connection");
  });

  for (const [what, bytes, code, reason] of [
    ["an unmasked frame", Buffer.from([0x81, 0x02, 0x68, 0x69]), 1002, "protocol error"],
    ["a reserved opcode", clientFrame(0x3, true, Buffer.alloc(0)), 1002, "protocol error"],
    ["a close code no peer may send (1005)", clientFrame(0x8, true, Buffer.from([0x03, 0xed])), 1002, "protocol error"],
    ["a continuation with no message begun", clientFrame(0x0, true, Buffer.from("x")), 1002, "protocol error"],
    ["text that is not UTF-8", clientFrame(0x1, true, Buffer.from([0x68, 0xff])), 1007, "invalid UTF-8"],
  ] as const) {
    test(`${what} closes the socket with ${code}`, async () => {
      const { port } = await serve({ connections: [Echo] });
      const client = await new WireClient(port).open();
      await client.write(bytes);
      assert.deepEqual(await client.closed(), { code, reason });
      await withTimeout(client.ended, "the server to end the connection");
    });
  }

  test("a message over maxPayload is refused from its header alone, before its payload is sent", async () => {
    const { port } = await serve({ connections: [Echo], maxPayload: 1024 });
    const client = await new WireClient(port).open();
    // A header declaring 1 GiB, and not one byte of it.
    const header = Buffer.from([0x82, 0x80 | 127, 0, 0, 0, 0, 0x40, 0, 0, 0, 1, 2, 3, 4]);
    await client.write(header);
    assert.deepEqual(await client.closed(), { code: 1009, reason: "message too big" });
  });
});
