// The RivetKit side of the `calls` scenario, shared by the peers of each RivetKit version: a `counter`
// actor whose `increment` changes persisted state (RivetKit's own state persistence, default
// settings) and returns the new count. Each peer passes in its own `rivetkit` (the versions live in
// separate package directories) and the `setup` options that make it listen on `port`; this starts
// the registry, waits until the counter answers through `rivetkit/client`, then prints `READY <port>`.
export async function serveCounter({ actor, setup, createClient }, setupOptions, port) {
  const counter = actor({
    state: { count: 0 },
    actions: {
      increment: (c, by = 1) => {
        c.state.count += by;
        return c.state.count;
      },
      get: (c) => c.state.count,
    },
  });
  setup({ use: { counter }, ...setupOptions }).start();

  const endpoint = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 60_000;
  for (;;) {
    try {
      await createClient(endpoint).counter.getOrCreate(["ready-probe"]).get();
      break;
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  }
  process.stdout.write(`READY ${port}\n`);
}
