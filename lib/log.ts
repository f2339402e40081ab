/**
 * The one logging facade of the JS layer. Each module takes a logger named `warren:<module>`;
 * its `debug` lines are printed only when the `DEBUG` environment variable enables that name
 * (the `debug` package's patterns: `DEBUG=warren:*`, `DEBUG=warren:upgrade,warren:state`,
 * `-warren:rooms` to exclude), so a server that logs nothing pays one boolean test per call.
 * `warn` and `error` are always printed to stderr, prefixed `[warren]`: they report what an
 * application must see (a hook that threw with no `onError`, state that could not be read or
 * stored, a cluster link that dropped).
 *
 * `console.error` is looked up at each call, so tests that silence it for a moment still can.
 */

export interface Logger {
  /** The namespace, e.g. `warren:upgrade`. */
  readonly namespace: string;
  /** Whether `DEBUG` enables this namespace (read once, when the logger is made). */
  readonly enabled: boolean;
  /** Prints to stderr when enabled, with the namespace in front. */
  debug(message: string, ...details: unknown[]): void;
  /** Always prints to stderr, as `[warren] warning: <message>`. */
  warn(message: string, ...details: unknown[]): void;
  /** Always prints to stderr, as `[warren] <message>`. */
  error(message: string, ...details: unknown[]): void;
}

/** Whether `namespace` is enabled by a `DEBUG`-style list of patterns (`*` matches any run). */
export function enabledBy(patterns: string | undefined, namespace: string): boolean {
  if (patterns === undefined || patterns.length === 0) return false;
  let enabled = false;
  for (const pattern of patterns.split(/[\s,]+/)) {
    if (pattern.length === 0) continue;
    const excluded = pattern.startsWith("-");
    const body = excluded ? pattern.slice(1) : pattern;
    const regex = new RegExp(`^${body.split("*").map(escape).join(".*?")}$`);
    if (!regex.test(namespace)) continue;
    // An exclusion wins over any inclusion, wherever it stands in the list.
    if (excluded) return false;
    enabled = true;
  }
  return enabled;
}

function escape(text: string): string {
  return text.replace(/[.+?^${}()|[\]\\]/g, "\\$&");
}

/** A logger for `warren:<module>`. */
export function logger(module: string): Logger {
  const namespace = `warren:${module}`;
  const enabled = enabledBy(typeof process === "object" ? process.env.DEBUG : undefined, namespace);
  return {
    namespace,
    enabled,
    debug(message, ...details) {
      if (enabled) console.error(`${namespace} ${message}`, ...details);
    },
    warn(message, ...details) {
      console.error(`[warren] warning: ${message}`, ...details);
    },
    error(message, ...details) {
      console.error(`[warren] ${message}`, ...details);
    },
  };
}
