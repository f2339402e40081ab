/**
 * The logging facade of the JS layer. Each module logs through a `Logger` named
 * `warren:<module>`, made per server by `serverLog(options.logger)`:
 *
 * - by default, `debug` lines are printed only when the `DEBUG` environment variable enables
 *   that name (the `debug` package's patterns: `DEBUG=warren:*`, `DEBUG=warren:upgrade,warren:state`,
 *   `-warren:rooms` to exclude), so a server that logs nothing pays one boolean test per call;
 *   `warn` and `error` are always printed to stderr, prefixed `[warren]`: they report what an
 *   application must see (a hook that threw with no `onError`, state that could not be read or
 *   stored, a cluster link that dropped);
 * - with `createServer({ logger })`, every line goes to that logger instead: any pino-compatible
 *   object (`trace`…`fatal` taking `(obj, msg)` or `(msg)`, and `child(bindings)`), as
 *   `logger.child({ module: "warren:<module>" })[level](fields, message)`, with an error under
 *   `err` as pino expects.
 *
 * `console.error` is looked up at each call, so tests that silence it for a moment still can.
 */

/** One level of a pino-compatible logger: `(obj, msg)` or `(msg)`. */
export interface LogFn {
  (obj: object, msg?: string): void;
  (msg: string): void;
}

/** A pino-compatible logger (pino, or anything with the same six levels and `child`). */
export interface WarrenLogger {
  trace: LogFn;
  debug: LogFn;
  info: LogFn;
  warn: LogFn;
  error: LogFn;
  fatal: LogFn;
  child(bindings: Record<string, unknown>): WarrenLogger;
  /** pino's: when present, debug lines are built only if it says "debug" is enabled. */
  isLevelEnabled?(level: string): boolean;
}

export interface Logger {
  /** The namespace, e.g. `warren:upgrade`. */
  readonly namespace: string;
  /** Whether debug lines are wanted (`DEBUG` enables this namespace, or the custom logger's
   * level lets debug through): callers test it before building a message. */
  readonly enabled: boolean;
  debug(message: string, ...details: unknown[]): void;
  /** Always reported: to stderr as `[warren] warning: <message>`, or the logger's `warn`. */
  warn(message: string, ...details: unknown[]): void;
  /** Always reported: to stderr as `[warren] <message>`, or the logger's `error`. */
  error(message: string, ...details: unknown[]): void;
  /** `error` with structured fields (`err` holds the error), for loggers that keep them. */
  failure(fields: { err: unknown } & Record<string, unknown>, message: string): void;
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

/** The default logger for `warren:<module>`: `DEBUG`-style debug lines, errors to stderr. */
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
    failure(fields, message) {
      console.error(`[warren] ${message}`, fields.err);
    },
  };
}

/** `details` as pino fields: the first error under `err`, anything else under `details`. */
function fieldsOf(details: unknown[]): Record<string, unknown> {
  if (details.length === 0) return {};
  const err = details.find((detail) => detail instanceof Error);
  const rest = details.filter((detail) => detail !== err);
  return { ...(err !== undefined ? { err } : {}), ...(rest.length > 0 ? { details: rest } : {}) };
}

/** A `Logger` for `warren:<module>` writing to a pino-compatible logger. */
function forward(custom: WarrenLogger, module: string): Logger {
  const namespace = `warren:${module}`;
  const child = custom.child({ module: namespace });
  return {
    namespace,
    enabled: child.isLevelEnabled?.("debug") ?? true,
    debug: (message, ...details) => child.debug(fieldsOf(details), message),
    warn: (message, ...details) => child.warn(fieldsOf(details), message),
    error: (message, ...details) => child.error(fieldsOf(details), message),
    failure: (fields, message) => child.error(fields, message),
  };
}

/** Whether `value` looks like a pino-compatible logger. */
export function isWarrenLogger(value: unknown): value is WarrenLogger {
  if (value === null || typeof value !== "object") return false;
  const candidate = value as Record<string, unknown>;
  return ["trace", "debug", "info", "warn", "error", "fatal", "child"].every((name) => typeof candidate[name] === "function");
}

/** Makes a server's loggers, one per module: the default ones, or children of `custom`. */
export type LogFactory = (module: string) => Logger;

/**
 * The key of a context's server loggers, for code that holds only the context (`Actor#_log`): the
 * context classes answer it with a getter on their prototype, so a context costs nothing more.
 */
export const contextLogs: unique symbol = Symbol("warren.contextLogs");

/** The loggers of the server `context` belongs to (the default ones if it is not known). */
export function contextLog(context: object, module: string): Logger {
  return ((context as { [contextLogs]?: LogFactory })[contextLogs] ?? logger)(module);
}

export function serverLog(custom?: WarrenLogger): LogFactory {
  if (custom === undefined) return logger;
  const made = new Map<string, Logger>();
  return (module) => {
    let log = made.get(module);
    if (log === undefined) {
      log = forward(custom, module);
      made.set(module, log);
    }
    return log;
  };
}
