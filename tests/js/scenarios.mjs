// The JavaScript side of tests/test_browser.py, run in Chromium and in Node.js.
//
// Each scenario is `async (wyre, url, args) => result`: `wyre` is the module
// under test, `url` the server to connect to, `args` what the Python side
// passes (always `scale`, the factor for every wait). The result must be
// JSON; the Python test asserts on it and on what its own server saw.

function settled(promise) {
  return Promise.resolve(promise).then(
    (value) => ({ ok: true, value }),
    (error) => ({ ok: false, error }),
  );
}

/** Request/reply, partials by async iteration, ERROR, typed routing with numeric types. */
export async function requests(wyre, url) {
  const client = new wyre.Client();
  const conn = await client.connect(url);
  const out = { id: conn.id, extensions: conn.extensions, subprotocol: conn.subprotocol };
  out.sum = (await conn.request({ type: "add", a: 2, b: 3 })).message.sum;

  const countdown = conn.request({ type: "countdown", from: 3 });
  out.partials = [];
  for await (const partial of countdown.partials()) out.partials.push(partial.message.n);
  out.reply = (await countdown).message.text;

  try {
    await conn.request({ type: "fail", text: "amount must be positive" });
  } catch (error) {
    out.error = {
      isRequestError: error instanceof wyre.RequestError,
      isWyreError: error instanceof wyre.WyreError,
      name: error.name,
      body: error.context.message.error,
      text: error.context.message.message,
    };
  }
  try {
    await conn.request({ type: "nothing like it" });
  } catch (error) {
    out.noHandler = error.context.message.error;
  }
  out.typed = [];
  for (const type of [5, "5", 6]) out.typed.push((await conn.request({ type })).message.route);

  // the original's callback form: (err, reply, partial)
  out.callback = await new Promise((resolve) => {
    const seen = [];
    conn.request({ type: "countdown", from: 2 }, (err, reply, partial) => {
      if (err) resolve({ err: err.name });
      else if (partial) seen.push(partial.message.n);
      else resolve({ partials: seen, reply: reply.message.text });
    });
  });

  // many in flight at once, each matched to its own reply
  const many = await Promise.all(
    Array.from({ length: 50 }, (_, i) => conn.request({ type: "add", a: i, b: 1 })),
  );
  out.many = many.every((reply, i) => reply.message.sum === i + 1);
  out.pending = conn.pendingRequests;
  await conn.close();
  return out;
}

/** A request that outlives its timeout fails with RequestTimeout; its handler is cancelled. */
export async function timeout(wyre, url, { scale }) {
  const client = new wyre.Client({ requestTimeout: 200 * scale });
  const conn = await client.connect(url);
  const result = await settled(conn.request({ type: "forever" }));
  const out = {
    name: result.error.name,
    isTimeout: result.error instanceof wyre.RequestTimeout,
    isWyreError: result.error instanceof wyre.WyreError,
    pending: conn.pendingRequests,
  };
  // per request too, and the connection goes on
  const own = await settled(conn.request({ type: "forever" }, { timeout: 100 * scale }));
  out.own = own.error.name;
  out.after = (await conn.request({ type: "add", a: 1, b: 1 })).message.sum;
  await conn.close();
  return out;
}

/** cancel() and an AbortSignal stop the request and, under wyre.v2, the Python handler. */
export async function cancel(wyre, url) {
  const client = new wyre.Client();
  const conn = await client.connect(url);

  const first = conn.request({ type: "forever", n: 1 });
  for await (const partial of first.partials()) {
    if (partial.message.started) break;
  }
  first.cancel();
  const one = await settled(first);

  const controller = new AbortController();
  const second = conn.request({ type: "forever", n: 2 }, { signal: controller.signal });
  for await (const partial of second.partials()) {
    if (partial.message.started) break;
  }
  controller.abort();
  const two = await settled(second);

  const aborted = new AbortController();
  aborted.abort();
  const three = await settled(conn.request({ type: "add", a: 1, b: 1 }, { signal: aborted.signal }));
  const out = {
    first: { name: one.error.name, isCancelled: one.error instanceof wyre.RequestCancelled },
    second: two.error.name,
    third: three.error.name,
    pending: conn.pendingRequests,
    after: (await conn.request({ type: "add", a: 2, b: 2 })).message.sum,
  };
  await conn.close();
  return out;
}

/** send() resolves once written; {ack: true} once the server received it. */
export async function sends(wyre, url) {
  const client = new wyre.Client();
  const conn = await client.connect(url);
  await conn.send({ type: "chat", text: "plain" });
  await conn.send({ type: "chat", text: "acked" }, { ack: true });
  const callback = await new Promise((resolve) =>
    conn.send({ type: "chat", text: "callback" }, (err) => resolve(err ? err.name : "ok")),
  );
  await conn.send({ type: "chat", text: "binary" }, { binary: true, ack: true });
  const refused = await settled(conn.send(["not", "an", "object"]));
  const out = { callback, refused: refused.error.name, buffered: conn.bufferedAmount };
  out.last = (await conn.request({ type: "add", a: 0, b: 0 })).message.sum;
  await conn.close();
  return out;
}

/** The server's requests and messages, answered by this side's handlers. */
export async function handlers(wyre, url) {
  const client = new wyre.Client();
  const seen = { messages: [], cancelled: false, errors: [] };
  let finish;
  const done = new Promise((resolve) => (finish = resolve));
  client.on("request", (ctx) => ({ route: "untyped", type: ctx.type }));
  client.on("request", 5, (ctx) => ({ route: "typed", type: ctx.type, key: ctx.key }));
  client.on("request", "add", (ctx) => ({ sum: ctx.message.a + ctx.message.b }));
  client.on("request", "countdown", async (ctx) => {
    for (let n = ctx.message.from; n > 0; n--) await ctx.partial({ n });
    return { text: "liftoff" };
  });
  client.on("request", "boom", () => {
    throw new TypeError("bad input");
  });
  client.on("request", "async-boom", async () => {
    throw new RangeError("out of range");
  });
  client.on("request", "later", (ctx) => {
    setTimeout(() => ctx.reply({ late: true }), 10);
  });
  client.on("request", "silent", async () => {});
  client.on("request", "slow", (ctx) => {
    ctx.signal.addEventListener("abort", () => {
      seen.cancelled = true;
      ctx.reply({ too: "late" }).then((sent) => (seen.lateReplySent = sent));
    });
  });
  client.on("message", "note", (ctx) => seen.messages.push(ctx.message.text));
  client.on("message", "done", () => finish());
  client.on("error", (error) => seen.errors.push(error.name));
  const conn = await client.connect(url);
  await done;
  await conn.close();
  return seen;
}

/** close(code, reason) from this side. */
export async function closeHere(wyre, url) {
  const client = new wyre.Client();
  const events = [];
  client.on("close", (code, reason, conn) => events.push([code, reason, conn.closed]));
  const conn = await client.connect(url);
  await conn.close(4000, "bye");
  const refused = await settled(conn.request({ type: "add", a: 1, b: 1 }));
  return {
    events,
    closed: conn.closed,
    closeCode: conn.closeCode,
    after: refused.error.name,
    connections: client.connections.size,
  };
}

/** The server closes with a code and reason: pending requests fail with them. */
export async function closeThere(wyre, url) {
  const client = new wyre.Client();
  let closed;
  const gone = new Promise((resolve) => (closed = resolve));
  client.on("close", (code, reason) => closed([code, reason]));
  const conn = await client.connect(url);
  const pending = settled(conn.request({ type: "hold" }));
  const [code, reason] = await gone;
  const failure = (await pending).error;
  return {
    code,
    reason,
    closeCode: conn.closeCode,
    closeReason: conn.closeReason,
    failure: { name: failure.name, code: failure.code, reason: failure.reason },
    isClosed: failure instanceof wyre.ConnectionClosed,
  };
}

/** A dropped socket fails every pending request at once with ConnectionClosed. */
export async function dropped(wyre, url) {
  const client = new wyre.Client();
  const events = [];
  client.on("close", (code) => events.push(code));
  const conn = await client.connect(url);
  const pending = [1, 2, 3].map((n) => settled(conn.request({ type: "hold", n })));
  const results = await Promise.all(pending);
  return {
    failures: results.map((r) => [r.error.name, r.error.code]),
    events,
    pending: conn.pendingRequests,
  };
}

/** With reconnect, the same connection object survives a server restart. */
export async function reconnect(wyre, url, { scale }) {
  const client = new wyre.Client({
    reconnect: { initialDelay: 20, maxDelay: 100 },
    requestTimeout: 10000 * scale,
  });
  const events = [];
  client.on("reconnecting", (attempt, delay) => events.push(["reconnecting", attempt, delay >= 0]));
  client.on("reconnected", (conn) => events.push(["reconnected", conn.state]));
  client.on("close", (code) => events.push(["close", code]));
  const conn = await client.connect(url);
  const before = (await conn.request({ type: "whoami" })).message.server;
  const held = await settled(conn.request({ type: "hold" })); // the server goes away meanwhile
  const state = conn.state;
  // made while disconnected: they wait for the next socket
  const queued = conn.request({ type: "whoami" });
  const sent = conn.send({ type: "chat", text: "while away" }, { ack: true });
  const after = (await queued).message.server;
  await sent;
  const out = {
    before,
    after,
    held: [held.error.name, held.error.code],
    state,
    events,
    same: client.connections.get(conn.id) === conn,
    open: conn.state,
  };
  await conn.close();
  return out;
}

/** A server that speaks the original protocol and sends a malformed frame first. */
export async function original(wyre, url) {
  const client = new wyre.Client();
  const errors = [];
  client.on("error", (error) => errors.push({ name: error.name, message: error.message }));
  client.on("request", "add", (ctx) => ({ sum: ctx.message.a + ctx.message.b }));
  const conn = await client.connect(url);
  const reply = await conn.request({ type: "echo", text: "hi" });
  await conn.send({ type: "chat" }, { ack: true }); // no ACK in the base protocol: on write
  const out = {
    extensions: conn.extensions,
    subprotocol: conn.subprotocol,
    reply: reply.message.text,
  };
  await conn.request({ type: "wait-for-server" }); // the server's own request came before
  out.errors = errors;
  await conn.close();
  return out;
}

/** connect() rejects with ConnectError when nothing listens. */
export async function refused(wyre, url) {
  const client = new wyre.Client();
  const result = await settled(client.connect(url));
  return {
    name: result.error.name,
    isConnectError: result.error instanceof wyre.ConnectError,
    isWyreError: result.error instanceof wyre.WyreError,
  };
}

/** Sends above writeLimit wait until the socket drains; bufferedAmount says how much is queued. */
export async function backpressure(wyre, url, { scale }) {
  const writeLimit = 64 * 1024;
  const client = new wyre.Client({ writeLimit });
  const conn = await client.connect(url);
  const big = "x".repeat(64 * 1024);
  let resolved = 0;
  const sends = [];
  for (let i = 0; i < 400; i++) {
    sends.push(conn.send({ type: "big", i, big }).then(() => resolved++));
  }
  // the server reads nothing yet: the buffer stays above the limit
  const until = performance.now() + 2000 * scale;
  while (conn.bufferedAmount <= writeLimit && performance.now() < until) {
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  const stalled = { buffered: conn.bufferedAmount, resolved };
  await Promise.all(sends); // the server starts reading
  const out = { stalled, writeLimit, resolved, after: conn.bufferedAmount };
  await conn.close();
  return out;
}

/** With reconnect, a server that stays away closes the connection after maxAttempts. */
export async function giveUp(wyre, url) {
  const client = new wyre.Client({ reconnect: { initialDelay: 10, maxDelay: 20, maxAttempts: 2 } });
  const events = [];
  let closed;
  const gone = new Promise((resolve) => (closed = resolve));
  client.on("reconnecting", (attempt) => events.push(["reconnecting", attempt]));
  client.on("close", (code) => {
    events.push(["close", code]);
    closed();
  });
  const conn = await client.connect(url);
  await gone;
  const after = await conn.request({ type: "add", a: 1, b: 1 }).then(
    () => "sent",
    (error) => error.name,
  );
  return { events, closed: conn.closed, after, connections: client.connections.size };
}
