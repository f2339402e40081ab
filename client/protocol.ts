/**
 * Wire frames as the client sees them (DESIGN §3): JSON text frames, one object each, told apart by
 * their string `type` — or, with `encoding: "msgpack"`, binary frames carrying the same values in
 * MessagePack (see ./msgpack).
 *
 * Decoding is the only place that looks at raw socket data. It never throws: anything that is not a
 * JSON object with a string `type` decodes to `null` and is dropped by the caller, so a buggy or
 * hostile server cannot break the client's dispatch loop.
 */

import { decodeMsgpack, encodeMsgpack } from "./msgpack";

/** An event sent by the client: `{"type":"chat.message","data":{...}}`. */
export interface EventFrame {
  type: string;
  data?: unknown;
}

/**
 * The keepalive probe, answered by the server with {@link PongFrame}. `ack`, the number of the last
 * frame received, lets a server that keeps frames for resume forget them.
 */
export interface PingFrame {
  type: "ping";
  ack?: number;
}

/** A request that the server answers with exactly one {@link ReplyFrame} carrying the same `id`. */
export interface CallFrame {
  type: "call";
  id: number;
  event: string;
  data?: unknown;
}

/** Every frame the client sends. */
export type ClientFrame = EventFrame | PingFrame | CallFrame;

/** The error half of a reply, as sent by the server. */
export interface ReplyError {
  code: string;
  message: string;
  meta?: unknown;
}

/** The one answer to a {@link CallFrame}: `data` on success, `error` on failure. */
export interface ReplyFrame {
  type: "reply";
  id: number;
  data?: unknown;
  error?: ReplyError;
}

/**
 * The first frame of a resumable session: its token (absent when the server keeps no sessions for
 * resume) and whether this socket continues the previous session.
 */
export interface SessionFrame {
  type: "session";
  resumed: boolean;
  token?: string;
}

/** The server's answer to a ping. */
export interface PongFrame {
  type: "pong";
}

/**
 * A server event in the envelope Verani uses:
 * `{"type":"event","channel":"default","data":{"type":"chat.message", ...payload}}`.
 */
export interface ServerEventFrame {
  type: "event";
  channel?: string;
  data?: unknown;
}

/** Every frame the client understands, after {@link decodeServerFrame}. */
export type ServerFrame = ReplyFrame | PongFrame | ServerEventFrame | { type: string; data?: unknown };

/**
 * What a decoded frame means to the client: a pong, a reply to settle, or an event to hand to
 * listeners under `event`.
 */
export type Inbound =
  | { kind: "pong" }
  | { kind: "session"; resumed: boolean; token: string | null }
  | { kind: "reply"; frame: ReplyFrame; seq?: number }
  | { kind: "event"; event: string; data: unknown; seq?: number };

/** Frame types the client sends itself; {@link encodeEvent} refuses them as event names. */
export const RESERVED_CLIENT_TYPES: ReadonlySet<string> = new Set(["ping", "call"]);

/**
 * What the socket sends for a frame encoded as JSON `text`: the text itself, or with `msgpack` the
 * MessagePack of the same value.
 */
export function toWire(text: string, msgpack: boolean): string | Uint8Array {
  return msgpack ? encodeMsgpack(JSON.parse(text)) : text;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/**
 * Decodes one socket message and classifies it.
 *
 * Text is JSON; binary data (an `ArrayBuffer` or a view of one) is MessagePack. Returns `null` for
 * invalid JSON or MessagePack, non-objects, a missing or non-string `type`, a
 * non-string `channel`, and replies without a numeric `id`.
 */
export function decodeServerFrame(raw: unknown): Inbound | null {
  let value: unknown;
  try {
    if (typeof raw === "string") value = JSON.parse(raw);
    else if (raw instanceof ArrayBuffer) value = decodeMsgpack(new Uint8Array(raw));
    else if (ArrayBuffer.isView(raw)) value = decodeMsgpack(new Uint8Array(raw.buffer, raw.byteOffset, raw.byteLength));
    else return null;
  } catch {
    return null;
  }
  if (!isObject(value) || typeof value.type !== "string") return null;
  if (value.channel !== undefined && typeof value.channel !== "string") return null;

  // Frames a warren server may replay after a resume carry their number.
  const seq = typeof value.seq === "number" ? value.seq : undefined;
  switch (value.type) {
    case "pong":
      return { kind: "pong" };
    case "session":
      return {
        kind: "session",
        resumed: value.resumed === true,
        token: typeof value.token === "string" ? value.token : null,
      };
    case "reply": {
      if (typeof value.id !== "number") return null;
      const frame: ReplyFrame = { type: "reply", id: value.id, data: value.data };
      if (value.error !== undefined) frame.error = toReplyError(value.error);
      return { kind: "reply", frame, seq };
    }
    case "event":
      // The event name travels inside the payload, which keeps its `type` field for listeners.
      if (isObject(value.data) && typeof value.data.type === "string") {
        return { kind: "event", event: value.data.type, data: value.data, seq };
      }
      return { kind: "event", event: "event", data: value.data, seq };
    default:
      return { kind: "event", event: value.type, data: value.data, seq };
  }
}

/** Normalises a server error object so a malformed one still rejects with a string code. */
function toReplyError(error: unknown): ReplyError {
  if (!isObject(error)) return { code: "unknown", message: String(error) };
  const out: ReplyError = {
    code: typeof error.code === "string" ? error.code : "unknown",
    message: typeof error.message === "string" ? error.message : "call failed",
  };
  if (error.meta !== undefined) out.meta = error.meta;
  return out;
}

/**
 * Encodes an event frame. Throws a `TypeError` for a non-string name, a reserved name (`ping`,
 * `call`: the server would read them as protocol frames) or data JSON cannot encode.
 */
export function encodeEvent(event: string, data: unknown): string {
  if (typeof event !== "string") throw new TypeError("WarrenClient: event name must be a string");
  if (RESERVED_CLIENT_TYPES.has(event)) {
    throw new TypeError(`WarrenClient: "${event}" is a protocol frame type, not an event name`);
  }
  return encode({ type: event, data });
}

/** Encodes a call frame. Throws a `TypeError` like {@link encodeEvent}. */
export function encodeCall(id: number, event: string, data: unknown): string {
  if (typeof event !== "string") throw new TypeError("WarrenClient: call event name must be a string");
  return encode({ type: "call", id, event, data });
}

/** The keepalive frame without an acknowledgement; constant, so it is encoded once. */
export const PING_TEXT: string = JSON.stringify({ type: "ping" } satisfies PingFrame);

/** A keepalive frame acknowledging every frame up to `ack`. */
export function encodePing(ack: number): string {
  return ack > 0 ? JSON.stringify({ type: "ping", ack } satisfies PingFrame) : PING_TEXT;
}

function encode(frame: ClientFrame): string {
  try {
    return JSON.stringify(frame);
  } catch (cause) {
    throw new TypeError(`WarrenClient: data for "${frameName(frame)}" cannot be encoded as JSON`, { cause });
  }
}

function frameName(frame: ClientFrame): string {
  return frame.type === "call" && "event" in frame ? frame.event : frame.type;
}
