/**
 * MessagePack for the `encoding: "msgpack"` option: the protocol's frames carry the same values as
 * in JSON, in binary. Only JSON's values are spoken — objects, arrays, strings, numbers, booleans,
 * null — because the server transcodes to and from JSON at its socket's edge.
 *
 * The encoder takes a value made by `JSON.parse` (the client encodes every frame as JSON first, so
 * the MessagePack sent is exactly the JSON value a JSON client sends: `toJSON`, dropped
 * `undefined`, and the rest behave alike). The decoder refuses what JSON cannot say (bin, ext,
 * non-string keys) by throwing; the caller drops such a frame.
 */

/** Deepest nesting the decoder follows (the server never sends deeper than 128 levels). */
const MAX_DEPTH = 512;

const textEncoder = new TextEncoder();
const textDecoder = new TextDecoder("utf-8", { fatal: true });

/** Encodes a JSON value (as `JSON.parse` returns it) as MessagePack. */
export function encodeMsgpack(value: unknown): Uint8Array {
  const writer = new Writer();
  writer.value(value);
  return writer.finish();
}

/** Decodes one MessagePack value into what `JSON.parse` would return for its JSON; throws otherwise. */
export function decodeMsgpack(bytes: Uint8Array): unknown {
  const reader = new Reader(bytes);
  const value = reader.value(0);
  if (reader.at !== bytes.length) throw new Error("bytes after the MessagePack value");
  return value;
}

class Writer {
  #bytes = new Uint8Array(256);
  #view = new DataView(this.#bytes.buffer);
  #length = 0;

  finish(): Uint8Array {
    return this.#bytes.subarray(0, this.#length);
  }

  #reserve(extra: number): void {
    if (this.#length + extra <= this.#bytes.length) return;
    let size = this.#bytes.length * 2;
    while (size < this.#length + extra) size *= 2;
    const grown = new Uint8Array(size);
    grown.set(this.#bytes.subarray(0, this.#length));
    this.#bytes = grown;
    this.#view = new DataView(grown.buffer);
  }

  #byte(byte: number): void {
    this.#reserve(1);
    this.#bytes[this.#length++] = byte;
  }

  /** A marker then an unsigned big-endian integer of `size` bytes (1, 2 or 4). */
  #sized(marker: number, size: 1 | 2 | 4, n: number): void {
    this.#reserve(1 + size);
    this.#bytes[this.#length] = marker;
    if (size === 1) this.#view.setUint8(this.#length + 1, n);
    else if (size === 2) this.#view.setUint16(this.#length + 1, n);
    else this.#view.setUint32(this.#length + 1, n);
    this.#length += 1 + size;
  }

  /** A container or string header: the fix form under `fixLimit`, else 8-, 16- or 32-bit. */
  #header(n: number, fix: number, fixLimit: number, wide: readonly [number | null, number, number]): void {
    if (n < fixLimit) this.#byte(fix | n);
    else if (wide[0] !== null && n < 0x100) this.#sized(wide[0], 1, n);
    else if (n < 0x10000) this.#sized(wide[1], 2, n);
    else this.#sized(wide[2], 4, n);
  }

  value(value: unknown): void {
    if (value === null || value === undefined) this.#byte(0xc0);
    else if (value === false) this.#byte(0xc2);
    else if (value === true) this.#byte(0xc3);
    else if (typeof value === "number") this.#number(value);
    else if (typeof value === "string") this.#string(value);
    else if (Array.isArray(value)) {
      this.#header(value.length, 0x90, 16, [null, 0xdc, 0xdd]);
      for (const item of value) this.value(item);
    } else if (typeof value === "object") {
      const keys = Object.keys(value);
      this.#header(keys.length, 0x80, 16, [null, 0xde, 0xdf]);
      for (const key of keys) {
        this.#string(key);
        this.value((value as Record<string, unknown>)[key]);
      }
    } else {
      throw new TypeError(`cannot encode a ${typeof value} as MessagePack`);
    }
  }

  #number(n: number): void {
    if (Number.isInteger(n) && Math.abs(n) <= Number.MAX_SAFE_INTEGER) {
      if (n >= 0) {
        if (n < 0x80) this.#byte(n);
        else if (n < 0x100) this.#sized(0xcc, 1, n);
        else if (n < 0x10000) this.#sized(0xcd, 2, n);
        else if (n < 0x100000000) this.#sized(0xce, 4, n);
        else this.#wide(0xcf, BigInt(n));
      } else if (n >= -32) {
        this.#byte(n & 0xff);
      } else if (n >= -0x80) {
        this.#reserve(2);
        this.#bytes[this.#length] = 0xd0;
        this.#view.setInt8(this.#length + 1, n);
        this.#length += 2;
      } else if (n >= -0x8000) {
        this.#reserve(3);
        this.#bytes[this.#length] = 0xd1;
        this.#view.setInt16(this.#length + 1, n);
        this.#length += 3;
      } else if (n >= -0x80000000) {
        this.#reserve(5);
        this.#bytes[this.#length] = 0xd2;
        this.#view.setInt32(this.#length + 1, n);
        this.#length += 5;
      } else {
        this.#wide(0xd3, BigInt(n));
      }
      return;
    }
    if (!Number.isFinite(n)) {
      this.#byte(0xc0); // as JSON.stringify writes it
      return;
    }
    if (Math.fround(n) === n) {
      this.#reserve(5);
      this.#bytes[this.#length] = 0xca;
      this.#view.setFloat32(this.#length + 1, n);
      this.#length += 5;
    } else {
      this.#reserve(9);
      this.#bytes[this.#length] = 0xcb;
      this.#view.setFloat64(this.#length + 1, n);
      this.#length += 9;
    }
  }

  #wide(marker: number, n: bigint): void {
    this.#reserve(9);
    this.#bytes[this.#length] = marker;
    if (marker === 0xcf) this.#view.setBigUint64(this.#length + 1, n);
    else this.#view.setBigInt64(this.#length + 1, n);
    this.#length += 9;
  }

  #string(text: string): void {
    const encoded = textEncoder.encode(text);
    this.#header(encoded.length, 0xa0, 32, [0xd9, 0xda, 0xdb]);
    this.#reserve(encoded.length);
    this.#bytes.set(encoded, this.#length);
    this.#length += encoded.length;
  }
}

class Reader {
  at = 0;
  readonly #bytes: Uint8Array;
  readonly #view: DataView;

  constructor(bytes: Uint8Array) {
    this.#bytes = bytes;
    this.#view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  #need(n: number): number {
    const at = this.at;
    if (at + n > this.#bytes.length) throw new Error("MessagePack value cut short");
    this.at = at + n;
    return at;
  }

  #u8(): number {
    return this.#view.getUint8(this.#need(1));
  }

  #u16(): number {
    return this.#view.getUint16(this.#need(2));
  }

  #u32(): number {
    return this.#view.getUint32(this.#need(4));
  }

  #string(length: number): string {
    const at = this.#need(length);
    return textDecoder.decode(this.#bytes.subarray(at, at + length));
  }

  value(depth: number): unknown {
    const marker = this.#u8();
    if (marker < 0x80) return marker;
    if (marker >= 0xe0) return marker - 0x100;
    if (marker < 0x90) return this.#map(marker & 0x0f, depth);
    if (marker < 0xa0) return this.#array(marker & 0x0f, depth);
    if (marker < 0xc0) return this.#string(marker & 0x1f);
    switch (marker) {
      case 0xc0:
        return null;
      case 0xc2:
        return false;
      case 0xc3:
        return true;
      case 0xca:
        return this.#view.getFloat32(this.#need(4));
      case 0xcb:
        return this.#view.getFloat64(this.#need(8));
      case 0xcc:
        return this.#u8();
      case 0xcd:
        return this.#u16();
      case 0xce:
        return this.#u32();
      case 0xcf:
        return Number(this.#view.getBigUint64(this.#need(8)));
      case 0xd0:
        return this.#view.getInt8(this.#need(1));
      case 0xd1:
        return this.#view.getInt16(this.#need(2));
      case 0xd2:
        return this.#view.getInt32(this.#need(4));
      case 0xd3:
        return Number(this.#view.getBigInt64(this.#need(8)));
      case 0xd9:
        return this.#string(this.#u8());
      case 0xda:
        return this.#string(this.#u16());
      case 0xdb:
        return this.#string(this.#u32());
      case 0xdc:
        return this.#array(this.#u16(), depth);
      case 0xdd:
        return this.#array(this.#u32(), depth);
      case 0xde:
        return this.#map(this.#u16(), depth);
      case 0xdf:
        return this.#map(this.#u32(), depth);
      default:
        throw new Error(`MessagePack type 0x${marker.toString(16)} has no JSON form`);
    }
  }

  #array(length: number, depth: number): unknown[] {
    if (depth >= MAX_DEPTH) throw new Error("MessagePack value nested too deep");
    const items: unknown[] = [];
    for (let i = 0; i < length; i++) items.push(this.value(depth + 1));
    return items;
  }

  #map(length: number, depth: number): Record<string, unknown> {
    if (depth >= MAX_DEPTH) throw new Error("MessagePack value nested too deep");
    const object: Record<string, unknown> = {};
    for (let i = 0; i < length; i++) {
      const key = this.value(depth + 1);
      if (typeof key !== "string") throw new Error("MessagePack map keys must be strings");
      const value = this.value(depth + 1);
      // An own property, as JSON.parse makes it: assigning "__proto__" would set the prototype.
      if (key === "__proto__") {
        Object.defineProperty(object, key, { value, writable: true, enumerable: true, configurable: true });
      } else {
        object[key] = value;
      }
    }
    return object;
  }
}
