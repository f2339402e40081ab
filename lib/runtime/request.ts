/**
 * The upgrade request as `onBeforeConnect` and `extractMeta` see it: read once from what the
 * native core sends (target, remote address, headers), with warren's conveniences (`path`,
 * `query`, `params`, `key`, `remoteAddress`) and the WHATWG shapes code written for `fetch`
 * handlers expects (`method`, `headers` as a `Headers`, `request` as a real `Request`).
 *
 * `url` is absolute (`http://<Host header><target>`), as a Fetch `Request`'s is, so
 * `new URL(req.url)` works as it does in a Worker; `path` and `query` are its parts, read once.
 * `url`, `headers` and `request` are built on first use: most `extractMeta`s read the query only,
 * and an accept should not pay for objects nobody looks at.
 */

import type { UpgradeHeaders, UpgradeRequest } from "../types";

/** Largest `params` query value accepted (Rivet's limit for connection params). */
const MAX_PARAMS_LENGTH = 4096;

/** Why a request is refused before any hook runs. */
export interface Refusal {
  status: number;
  message: string;
  code: string;
}

/**
 * The request as the hooks see it, or why it is refused before they run: an actor key in the
 * path that is not valid percent-encoding, or `params` that are too long or not JSON.
 * @param keyPrefix with `keyFromPath`, the definition's path: what follows it is the actor key.
 */
export function readRequest(
  target: string,
  remoteAddress: string,
  headers: Record<string, string>,
  keyPrefix: string | null,
): UpgradeRequest | Refusal {
  const queryStart = target.indexOf("?");
  const path = queryStart < 0 ? target : target.slice(0, queryStart);
  const query = new URLSearchParams(queryStart < 0 ? "" : target.slice(queryStart + 1));
  let key: string | undefined;
  if (keyPrefix !== null) {
    try {
      key = decodeURIComponent(path.slice(keyPrefix.length));
    } catch {
      return { status: 400, message: "the actor key in the path is not valid percent-encoding", code: "bad_key" };
    }
  }
  const rawParams = query.get("params");
  let params: unknown;
  if (rawParams !== null) {
    if (rawParams.length > MAX_PARAMS_LENGTH) {
      return { status: 400, message: `params must be at most ${MAX_PARAMS_LENGTH} bytes`, code: "params_too_large" };
    }
    try {
      params = JSON.parse(rawParams);
    } catch {
      return { status: 400, message: "params must be JSON", code: "bad_params" };
    }
  }
  return new Upgrade(target, path, query, headers, remoteAddress, params, key);
}

/** An upgrade request; `url`, `headers` and `request` are own enumerable accessors, built on first use. */
class Upgrade {
  readonly method = "GET";
  declare readonly url: string;
  declare readonly headers: UpgradeHeaders;
  declare readonly request: Request;
  #target: string;
  #raw: Record<string, string>;
  #url: string | undefined;
  #headers: UpgradeHeaders | undefined;
  #request: Request | undefined;

  constructor(
    target: string,
    readonly path: string,
    readonly query: URLSearchParams,
    raw: Record<string, string>,
    readonly remoteAddress: string,
    readonly params: unknown,
    readonly key: string | undefined,
  ) {
    this.#target = target;
    this.#raw = raw;
    // Own and enumerable, as on the plain object this used to be (`{ ...req }` keeps them).
    Object.defineProperties(this, LAZY);
  }

  static headersOf(request: Upgrade): UpgradeHeaders {
    return (request.#headers ??= upgradeHeaders(request.#raw));
  }

  static urlOf(request: Upgrade): string {
    return (request.#url ??= absoluteUrl(request.#target, request.#raw["host"]));
  }

  static requestOf(request: Upgrade): Request {
    return (request.#request ??= new Request(Upgrade.urlOf(request), {
      method: "GET",
      headers: Upgrade.headersOf(request),
    }));
  }
}

const LAZY: PropertyDescriptorMap = {
  url: {
    enumerable: true,
    get(this: Upgrade) {
      return Upgrade.urlOf(this);
    },
  },
  headers: {
    enumerable: true,
    get(this: Upgrade) {
      return Upgrade.headersOf(this);
    },
  },
  request: {
    enumerable: true,
    get(this: Upgrade) {
      return Upgrade.requestOf(this);
    },
  },
};

/** Names a header must not shadow: the members of `Headers` (reached with `get()` instead). */
const HEADERS_MEMBERS = new Set<string>(["constructor", ...Object.getOwnPropertyNames(Headers.prototype)]);

/**
 * A `Headers` whose entries are also plain properties (`headers["x-token"]`, as the headers
 * object of earlier versions was). A value `Headers` refuses (a character above U+00FF) is left
 * out of the `Headers` side and kept as a property.
 */
function upgradeHeaders(raw: Record<string, string>): UpgradeHeaders {
  const headers = new Headers();
  for (const [name, value] of Object.entries(raw)) {
    try {
      headers.append(name, value);
    } catch {
      // Not a ByteString: only the plain property carries it.
    }
    if (!HEADERS_MEMBERS.has(name)) {
      Object.defineProperty(headers, name, { value, enumerable: true, configurable: true, writable: false });
    }
  }
  return headers as UpgradeHeaders;
}

/** The absolute `http:` URL of an upgrade target (`ws:` is not a scheme `Request` accepts). */
function absoluteUrl(target: string, host: string | undefined): string {
  if (host !== undefined) {
    try {
      return new URL(target, `http://${host}`).href;
    } catch {
      // A Host header that is not a host: fall back to localhost below.
    }
  }
  return new URL(target, "http://localhost").href;
}
