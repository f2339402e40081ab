// A warren connection for the benchmark drivers (actors.mjs, calls.mjs): sends call frames and
// settles each call by its reply id — with the reply's data, or an Error naming its code.
import WebSocket from "ws";

export class WarrenCaller {
  #next = 1;
  #pending = new Map();

  constructor(url) {
    this.socket = new WebSocket(url);
    this.socket.on("message", (data) => {
      const frame = JSON.parse(String(data));
      if (frame.type !== "reply") return;
      const pending = this.#pending.get(frame.id);
      this.#pending.delete(frame.id);
      if (!pending) return;
      if (frame.error) pending.reject(new Error(`${frame.error.code}: ${frame.error.message}`));
      else pending.resolve(frame.data);
    });
    this.opened = new Promise((resolve, reject) => {
      this.socket.once("open", resolve);
      this.socket.once("error", reject);
    });
  }

  /** Calls `event` with `data`; resolves with the reply's data. */
  call(event, data = {}) {
    const id = this.#next++;
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      this.socket.send(JSON.stringify({ type: "call", id, event, data }));
    });
  }

  increment() {
    return this.call("increment");
  }

  close() {
    this.socket.terminate();
  }
}
