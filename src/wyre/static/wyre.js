/**
 * wyre for browsers and Node.js: request/reply messaging over WebSocket.
 *
 * One ES module without dependencies. It speaks the wyre wire format
 * (docs/protocol.md): JSON objects whose `key`, `direction` and `type`
 * fields carry the protocol, and the `wyre.v2` extensions (ACK, CANCEL)
 * when the server agrees on them in the handshake.
 *
 *     import { Client } from "/wyre.js";
 *     const client = new Client();
 *     const conn = await client.connect("ws://127.0.0.1:8765/");
 *     const reply = await conn.request({ type: "add", a: 2, b: 3 });
 *
 * Runs on the browser's WebSocket, on Node.js >= 22's global one, or on
 * any WebSocket constructor given as `new Client({ WebSocket })`.
 */

const V2 = "wyre.v2";
const BASE = "wyre";
const DIRECTIONS = new Set(["REQUEST", "REPLY", "ERROR", "PARTIAL", "MESSAGE", "ACK", "CANCEL"]);
const ABANDONED_MEMORY = 4096; // keys of given-up requests whose late answers are dropped quietly
const DRAIN_POLL = 4; // ms between looks at bufferedAmount while a send waits for it
const PREVIEW = 200;
const OPEN = 0;
const ANSWERED = 1;
const CANCELLED = 2;

const DEFAULTS = {
  requestTimeout: 30000,
  openTimeout: 10000,
  protocols: [],
  reconnect: false,
  extensions: true,
  writeLimit: 256 * 1024,
  maxPendingRequests: 1024,
  maxBufferedPartials: 1024,
  WebSocket: undefined,
};
const RECONNECT = { initialDelay: 500, maxDelay: 30000, maxAttempts: Infinity };

// -- errors ---------------------------------------------------------------

/** The root of every error wyre raises. */
export class WyreError extends Error {
  constructor(message, options) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** The socket could not be opened (nothing listening, refused handshake, timeout). */
export class ConnectError extends WyreError {}

/** The connection closed while the operation waited; `code` and `reason` say how. */
export class ConnectionClosed extends WyreError {
  constructor(code, reason = "") {
    super(`connection closed (${code}${reason ? ` ${reason}` : ""})`);
    this.code = code;
    this.reason = reason;
  }
}

/** The peer answered with an ERROR; `context.message` is its body. */
export class RequestError extends WyreError {
  constructor(context) {
    const body = context.message;
    const what = body && body.error !== undefined ? String(body.error) : "error";
    super(body && body.message !== undefined ? `${what}: ${body.message}` : what);
    this.context = context;
  }
}

/** No reply (or acknowledgement) in time. */
export class RequestTimeout extends WyreError {}

/** `request.cancel()` gave up on the request. */
export class RequestCancelled extends WyreError {}

/** A limit was reached (pending requests, sends waiting for a socket). */
export class LimitExceeded extends WyreError {}

/** A frame could not be handled; `frame` is the start of it. */
export class ProtocolError extends WyreError {
  constructor(message, frame) {
    super(message);
    this.frame = frame === undefined ? undefined : preview(frame);
  }
}

function preview(value) {
  let text;
  try {
    text = typeof value === "string" ? value : JSON.stringify(value);
  } catch {
    text = String(value);
  }
  text = String(text);
  return text.length > PREVIEW ? `${text.slice(0, PREVIEW)}…` : text;
}

// -- keys -----------------------------------------------------------------

const HEX = Array.from({ length: 256 }, (_, i) => (i + 256).toString(16).slice(1));
const POOL = new Uint8Array(16 * 256);
let poolAt = POOL.length;

function refill() {
  const source = globalThis.crypto;
  if (source && typeof source.getRandomValues === "function") {
    source.getRandomValues(POOL); // in every browser page, secure or not, and Node.js
  } else {
    for (let i = 0; i < POOL.length; i++) POOL[i] = (Math.random() * 256) | 0;
  }
  poolAt = 0;
}

/** A random uuid4 (it does not need `crypto.randomUUID`, missing on plain-http pages). */
export function newKey() {
  if (poolAt === POOL.length) refill();
  const b = POOL;
  const i = poolAt;
  poolAt += 16;
  return (
    HEX[b[i]] + HEX[b[i + 1]] + HEX[b[i + 2]] + HEX[b[i + 3]] + "-" +
    HEX[b[i + 4]] + HEX[b[i + 5]] + "-" +
    HEX[(b[i + 6] & 0x0f) | 0x40] + HEX[b[i + 7]] + "-" +
    HEX[(b[i + 8] & 0x3f) | 0x80] + HEX[b[i + 9]] + "-" +
    HEX[b[i + 10]] + HEX[b[i + 11]] + HEX[b[i + 12]] +
    HEX[b[i + 13]] + HEX[b[i + 14]] + HEX[b[i + 15]]
  );
}

// -- helpers --------------------------------------------------------------

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });
const now = () => performance.now();
const noop = () => {};
const EMPTY = Object.freeze({});

function directionOf(raw) {
  if (raw === undefined || raw === null) return "MESSAGE";
  if (typeof raw !== "string") return null;
  const upper = raw.toUpperCase();
  return DIRECTIONS.has(upper) ? upper : null;
}

function isObject(value) {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function checkMessage(message) {
  if (!isObject(message)) {
    const kind = message === null ? "null" : Array.isArray(message) ? "array" : typeof message;
    throw new TypeError(
      `a message must be an object, not ${kind}: the protocol fields (key, direction, type) ` +
        "live at its top level",
    );
  }
}

function typeKey(type) {
  return typeof type === "string" || typeof type === "number" ? String(type) : undefined;
}

function timeoutOf(value, fallback) {
  const ms = value === undefined ? fallback : value;
  return ms === null || ms === Infinity || ms === undefined ? null : ms;
}

/** Splits the original's optional arguments: (options?, callback?). */
function optionsAndCallback(options, callback) {
  if (typeof options === "function") return [{}, options];
  return [options || {}, typeof callback === "function" ? callback : undefined];
}

/** A promise a callback also hears about; handled, so a callback user sees no unhandled rejection. */
function withCallback(promise, callback) {
  if (callback === undefined) return promise;
  promise.then(
    (value) => callback(null, value),
    (error) => callback(error),
  );
  return promise;
}

// -- contexts -------------------------------------------------------------

/** What a handler receives, and what a reply or partial resolves with. */
export class Context {
  constructor(connection, message, key, direction, type) {
    this.connection = connection;
    this.message = message;
    this.key = key;
    this.direction = direction;
    this.type = type;
    this._state = OPEN;
    this._abort = undefined;
  }

  /** Aborted when the requester cancels (under wyre.v2) or the connection drops. */
  get signal() {
    if (this._abort === undefined) {
      this._abort = new AbortController();
      if (this._state === CANCELLED) this._abort.abort();
    }
    return this._abort.signal;
  }

  /** Send the REPLY; resolves true once written, false when the requester gave up. */
  reply(body) {
    return this.connection._answer(this, "REPLY", body);
  }

  /** Send an ERROR reply. */
  error(body) {
    return this.connection._answer(this, "ERROR", body);
  }

  /** Send a PARTIAL reply (any number, before the reply). */
  partial(body) {
    return this.connection._answer(this, "PARTIAL", body);
  }

  _cancel() {
    this._state = CANCELLED;
    if (this._abort !== undefined) this._abort.abort();
  }
}

// -- outgoing requests ----------------------------------------------------

/**
 * A request on its way: await it for the reply's context, iterate
 * `partials()` for the partial replies, `cancel()` it.
 */
export class Request {
  constructor(connection, key, type, deadline, callback) {
    this.connection = connection;
    this.key = key;
    this.type = type;
    this.droppedPartials = 0;
    this.deadline = deadline;
    this._callback = callback;
    this._sent = false;
    this._done = false;
    this._value = undefined;
    this._error = undefined;
    this._promise = undefined;
    this._resolve = undefined;
    this._reject = undefined;
    this._partials = null;
    this._wake = undefined;
    this._unlisten = undefined;
  }

  /** Whether it ended (reply, error, timeout, cancel or close). */
  get done() {
    return this._done;
  }

  then(onFulfilled, onRejected) {
    return this._settled().then(onFulfilled, onRejected);
  }

  catch(onRejected) {
    return this._settled().catch(onRejected);
  }

  finally(onFinally) {
    return this._settled().finally(onFinally);
  }

  /**
   * The partial replies, in order, as an async iterator. It ends after the
   * last one when the reply came, and throws the request's failure.
   */
  partials() {
    const request = this;
    return {
      [Symbol.asyncIterator]() {
        return this;
      },
      next() {
        if (request._partials !== null && request._partials.length > 0) {
          return Promise.resolve({ value: request._partials.shift(), done: false });
        }
        if (request._done) {
          if (request._error !== undefined) return Promise.reject(request._error);
          return Promise.resolve({ value: undefined, done: true });
        }
        return new Promise((resolve) => {
          request._wake = resolve;
        }).then(() => this.next());
      },
      return() {
        return Promise.resolve({ value: undefined, done: true });
      },
    };
  }

  /** Give up: the request fails with `reason` (default RequestCancelled); a wyre.v2 peer's handler is cancelled. */
  cancel(reason) {
    if (this._done) return;
    this.connection._abandon(this);
    this._settle(reason === undefined ? new RequestCancelled("request cancelled") : reason);
  }

  _settled() {
    if (this._promise === undefined) {
      if (this._done) {
        this._promise =
          this._error === undefined ? Promise.resolve(this._value) : Promise.reject(this._error);
      } else {
        this._promise = new Promise((resolve, reject) => {
          this._resolve = resolve;
          this._reject = reject;
        });
      }
    }
    return this._promise;
  }

  _partial(context) {
    if (this._callback !== undefined) {
      this._callback(null, null, context);
      return;
    }
    if (this._partials === null) this._partials = [];
    const partials = this._partials;
    if (partials.length >= this.connection._client.options.maxBufferedPartials) {
      partials.shift();
      this.droppedPartials++;
    }
    partials.push(context);
    this._wakeUp();
  }

  _settle(error, value) {
    if (this._done) return;
    this._done = true;
    this._error = error;
    this._value = value;
    if (this._unlisten !== undefined) this._unlisten();
    if (this._resolve !== undefined) {
      if (error === undefined) this._resolve(value);
      else this._reject(error);
    }
    if (this._callback !== undefined) {
      if (error === undefined) this._callback(null, value);
      else this._callback(error);
    }
    this._wakeUp();
  }

  _wakeUp() {
    const wake = this._wake;
    if (wake !== undefined) {
      this._wake = undefined;
      wake();
    }
  }
}

/** An acknowledged send waiting for its ACK. */
class Delivery {
  constructor(key, deadline, resolve, reject) {
    this.key = key;
    this.deadline = deadline;
    this.resolve = resolve;
    this.reject = reject;
  }
}

/** An operation made while the socket is down, waiting for the next one. */
class Waiting {
  constructor(deadline, run, fail, request) {
    this.deadline = deadline;
    this.run = run;
    this.fail = fail;
    this.request = request;
  }
}

// -- routing --------------------------------------------------------------

class Router {
  constructor() {
    this.events = new Map();
  }

  on(event, type, handler) {
    if (typeof type === "function" && handler === undefined) [type, handler] = [undefined, type];
    if (typeof event !== "string") throw new TypeError("the event must be a string");
    if (typeof handler !== "function") throw new TypeError("the handler must be a function");
    let entry = this.events.get(event);
    if (entry === undefined) this.events.set(event, (entry = { any: undefined, typed: new Map() }));
    if (type === undefined || type === null) {
      entry.any = handler;
    } else {
      const key = typeKey(type);
      if (key === undefined) throw new TypeError("a type must be a string or a number");
      entry.typed.set(key, handler);
    }
  }

  off(event, type) {
    const entry = this.events.get(event);
    if (entry === undefined) return;
    if (type === undefined || type === null) entry.any = undefined;
    else entry.typed.delete(typeKey(type));
  }

  find(event, type) {
    const entry = this.events.get(event);
    if (entry === undefined) return undefined;
    if (entry.typed.size > 0 && type !== undefined) {
      const handler = entry.typed.get(typeKey(type));
      if (handler !== undefined) return handler;
    }
    return entry.any;
  }
}

// -- the client -----------------------------------------------------------

/**
 * Opens connections to a wyre server and serves the requests it sends.
 *
 * Options: `requestTimeout` (ms, default 30000; null: none), `openTimeout`
 * (10000), `protocols` (application subprotocols), `reconnect` (false, true,
 * or `{initialDelay, maxDelay, maxAttempts}`), `extensions` (offer wyre.v2),
 * `writeLimit` (bytes buffered before sends wait), `maxPendingRequests`,
 * `maxBufferedPartials`, `WebSocket` (a constructor).
 */
export class Client {
  constructor(options = {}) {
    const merged = { ...DEFAULTS, ...options };
    merged.WebSocket = options.WebSocket || globalThis.WebSocket;
    if (merged.reconnect === true) merged.reconnect = { ...RECONNECT };
    else if (isObject(merged.reconnect)) merged.reconnect = { ...RECONNECT, ...merged.reconnect };
    else merged.reconnect = null;
    this.options = merged;
    this.connections = new Map();
    this._router = new Router();
    this._closed = false;
  }

  /** `on(event, handler)` or `on(event, type, handler)`: request, message, connection, close, error, reconnecting, reconnected. */
  on(event, type, handler) {
    this._router.on(event, type, handler);
    return this;
  }

  /** Remove the handler for an event (and type). */
  off(event, type) {
    this._router.off(event, type);
    return this;
  }

  /**
   * Open a connection; resolves with it once the socket is open, rejects
   * with ConnectError. `options`: an array of subprotocols, or
   * `{protocols}`; the original's callback `cb(err, conn)` may come last.
   */
  connect(url, options, callback) {
    [options, callback] = optionsAndCallback(options, callback);
    const protocols = Array.isArray(options) ? options : options.protocols;
    const connection = new Connection(this, String(url), protocols || this.options.protocols);
    const opened = connection._dial().then(() => {
      this.connections.set(connection.id, connection);
      this._emit("connection", connection);
      return connection;
    });
    return withCallback(opened, callback);
  }

  /** Close every connection (and stop reconnecting). */
  close(code = 1000, reason = "") {
    this._closed = true;
    return Promise.all([...this.connections.values()].map((c) => c.close(code, reason))).then(
      noop,
    );
  }

  _emit(event, ...args) {
    const handler = this._router.find(event, undefined);
    if (handler === undefined) {
      if (event === "error") console.error("wyre:", args[0]);
      return;
    }
    try {
      const result = handler(...args);
      if (result && typeof result.then === "function") {
        result.then(noop, (error) => this._handlerError(event, error, args));
      }
    } catch (error) {
      this._handlerError(event, error, args);
    }
  }

  _handlerError(event, error, args) {
    if (event === "error") console.error("wyre: the error handler failed:", error);
    else this._emit("error", error, event === "close" ? args[2] : args[0]);
  }
}

// -- connections ----------------------------------------------------------

/** One connection to a server; with `reconnect`, the same object across sockets. */
export class Connection {
  constructor(client, url, protocols) {
    this.id = newKey();
    this.url = url;
    this.closeCode = undefined;
    this.closeReason = undefined;
    this.extensions = false;
    this.subprotocol = "";
    this._client = client;
    this._options = client.options;
    this._offer = protocols.filter((p) => p !== BASE && p !== V2);
    if (this._options.extensions) this._offer.push(BASE, V2);
    this._ws = null;
    this._state = "connecting";
    this._requests = new Map();
    this._acks = new Map();
    this._incoming = new Map();
    this._abandoned = new Set();
    this._waiting = [];
    this._timer = undefined;
    this._timerAt = Infinity;
    this._drainWaiters = [];
    this._drainTimer = undefined;
    this._closeWaiters = [];
    this._closing = false;
    this._retryTimer = undefined;
  }

  /** Whether it is closed for good. */
  get closed() {
    return this._state === "closed";
  }

  /** "connecting", "open", "reconnecting" or "closed". */
  get state() {
    return this._state;
  }

  /** Outgoing requests waiting for their reply (including those waiting for a socket). */
  get pendingRequests() {
    let waiting = 0;
    for (const item of this._waiting) if (item.request !== undefined) waiting++;
    return this._requests.size + waiting;
  }

  /** Bytes handed to the socket and not yet sent. */
  get bufferedAmount() {
    return this._ws === null ? 0 : this._ws.bufferedAmount;
  }

  /**
   * Send a one-way message; resolves once written (and the write buffer is
   * below `writeLimit`). `{ack: true}` (or a callback) resolves when the peer
   * received it, under wyre.v2. Options: `ack`, `binary`, `timeout` (ms).
   */
  send(message, options, callback) {
    [options, callback] = optionsAndCallback(options, callback);
    const ack = Boolean(options.ack) || callback !== undefined;
    let promise;
    try {
      checkMessage(message);
      promise = this._whenOpen(options.timeout, undefined, () =>
        ack && this.extensions
          ? this._sendAcked(message, options)
          : this._written(this._encode(message), options.binary),
      );
    } catch (error) {
      promise = Promise.reject(error);
    }
    return withCallback(promise, callback);
  }

  /**
   * Send a request; the returned Request resolves with the reply's context.
   * Options: `timeout` (ms), `signal` (an AbortSignal), `binary`. The
   * original's callback `cb(err, reply, partial)` may come last.
   */
  request(message, options, callback) {
    if (typeof options === "function") [options, callback] = [EMPTY, options];
    else if (options === undefined || options === null) options = EMPTY;
    const timeout = options.timeout === undefined ? this._options.requestTimeout : options.timeout;
    const deadline = timeout === null || timeout === Infinity ? null : now() + timeout;
    const request = new Request(this, undefined, undefined, deadline, callback);
    try {
      checkMessage(message);
      const key = message.key === undefined || message.key === null ? newKey() : message.key;
      if (typeof key !== "string") throw new TypeError("a key must be a string");
      request.key = key;
      request.type = message.type;
      if (this._requests.size + this._waiting.length >= this._options.maxPendingRequests) {
        throw new LimitExceeded(`${this._options.maxPendingRequests} requests already pending`);
      }
      if (this._requests.has(key)) throw new WyreError(`a request with key ${key} is pending`);
      const signal = options.signal;
      if (signal) {
        if (signal.aborted) throw signal.reason;
        const onAbort = () => request.cancel(signal.reason);
        signal.addEventListener("abort", onAbort, { once: true });
        request._unlisten = () => signal.removeEventListener("abort", onAbort);
      }
      if (this._state === "open") {
        this._sendRequest(request, message, options.binary);
      } else {
        const send = () => {
          if (!request._done) this._sendRequest(request, message, options.binary);
        };
        this._queue(deadline, send, (error) => request._settle(error), request);
      }
    } catch (error) {
      queueMicrotask(() => request._settle(error));
    }
    return request;
  }

  _sendRequest(request, message, binary) {
    const key = request.key;
    this._write(this._encode({ ...message, key, direction: "REQUEST" }), binary);
    request._sent = true;
    this._requests.set(key, request);
    if (request.deadline !== null && request.deadline < this._timerAt) this._track(request.deadline);
  }

  /** Close the connection (and stop reconnecting); resolves once it closed. */
  close(code = 1000, reason = "", callback) {
    if (typeof code === "function") [code, reason, callback] = [1000, "", code];
    if (typeof reason === "function") [reason, callback] = ["", reason];
    let promise;
    if (this._state === "closed") {
      promise = Promise.resolve();
    } else if (this._ws === null) {
      this._finish(code, reason);
      promise = Promise.resolve();
    } else {
      promise = new Promise((resolve, reject) => {
        try {
          this._ws.close(code, reason);
          this._closing = true;
          this._closeWaiters.push(resolve);
        } catch (error) {
          reject(error); // e.g. a code browsers refuse (only 1000 and 3000-4999)
        }
      });
    }
    return withCallback(promise, callback);
  }

  // -- the socket ------------------------------------------------------------

  _dial() {
    const { WebSocket, openTimeout } = this._options;
    return new Promise((resolve, reject) => {
      if (typeof WebSocket !== "function") {
        reject(new ConnectError("no WebSocket here: pass one, new Client({ WebSocket })"));
        return;
      }
      let ws;
      try {
        ws = new WebSocket(this.url, this._offer);
      } catch (error) {
        reject(new ConnectError(`cannot connect to ${this.url}: ${error.message}`, { cause: error }));
        return;
      }
      ws.binaryType = "arraybuffer";
      let timer;
      // Some WebSockets (undici before Node.js 22) report a failed handshake
      // with an error event and no close event: either one ends the attempt.
      const fail = (why) => {
        clearTimeout(timer);
        ws.onopen = ws.onclose = ws.onerror = null;
        try {
          ws.close();
        } catch {
          // not open: nothing to close
        }
        reject(new ConnectError(`cannot connect to ${this.url}: ${why}`));
      };
      if (openTimeout !== null && openTimeout !== Infinity) {
        timer = setTimeout(() => fail("timed out"), openTimeout);
      }
      ws.onerror = (event) => {
        fail((event && (event.message || (event.error && event.error.message))) || "failed");
      };
      ws.onclose = (event) => {
        fail(`closed with ${event.code}${event.reason ? ` ${event.reason}` : ""}`);
      };
      ws.onopen = () => {
        clearTimeout(timer);
        this._attach(ws);
        resolve();
      };
    });
  }

  _attach(ws) {
    this._ws = ws;
    this._state = "open";
    this.subprotocol = ws.protocol || "";
    this.extensions = this._options.extensions && this.subprotocol === V2;
    this.closeCode = this.closeReason = undefined;
    ws.onmessage = (event) => this._receive(event.data);
    ws.onerror = noop; // a close event follows
    ws.onclose = (event) => this._lost(ws, event.code, event.reason);
    const waiting = this._waiting;
    this._waiting = [];
    for (const item of waiting) {
      try {
        item.run();
      } catch (error) {
        item.fail(error);
      }
    }
  }

  _lost(ws, code, reason) {
    if (ws !== this._ws) return;
    ws.onmessage = ws.onclose = null;
    this._ws = null;
    this.closeCode = code;
    this.closeReason = reason;
    const error = new ConnectionClosed(code, reason);
    const requests = [...this._requests.values()];
    const acks = [...this._acks.values()];
    this._requests.clear();
    this._acks.clear();
    for (const context of this._incoming.values()) context._cancel();
    this._incoming.clear();
    for (const request of requests) request._settle(error);
    for (const delivery of acks) delivery.reject(error);
    this._failDrains(error);
    const reconnect = this._options.reconnect;
    if (
      reconnect !== null &&
      !this._closing &&
      !this._client._closed &&
      code !== 1000 &&
      code !== 1008
    ) {
      this._state = "reconnecting";
      this._retry(1);
      return;
    }
    this._finish(code, reason);
  }

  _retry(attempt) {
    const { initialDelay, maxDelay, maxAttempts } = this._options.reconnect;
    if (attempt > maxAttempts) {
      this._finish(this.closeCode, this.closeReason);
      return;
    }
    // exponential backoff with full jitter
    const delay = Math.random() * Math.min(maxDelay, initialDelay * 2 ** (attempt - 1));
    this._client._emit("reconnecting", attempt, delay, this);
    this._retryTimer = setTimeout(() => {
      this._retryTimer = undefined;
      if (this._state !== "reconnecting") return;
      this._dial().then(
        () => {
          if (this._state === "open") this._client._emit("reconnected", this);
        },
        () => {
          if (this._state === "reconnecting") this._retry(attempt + 1);
        },
      );
    }, delay);
  }

  _finish(code, reason) {
    if (this._state === "closed") return;
    this._state = "closed";
    this.closeCode = code;
    this.closeReason = reason;
    clearTimeout(this._retryTimer);
    clearTimeout(this._timer);
    this._timerAt = Infinity;
    const error = new ConnectionClosed(code, reason);
    const waiting = this._waiting;
    this._waiting = [];
    for (const item of waiting) item.fail(error);
    this._client.connections.delete(this.id);
    const waiters = this._closeWaiters;
    this._closeWaiters = [];
    this._client._emit("close", code, reason, this);
    for (const resolve of waiters) resolve();
  }

  // -- writing ---------------------------------------------------------------

  _encode(body) {
    try {
      return JSON.stringify(body);
    } catch (error) {
      throw new WyreError(`cannot encode message: ${error.message}`, { cause: error });
    }
  }

  _write(data, binary) {
    const ws = this._ws;
    if (ws === null || ws.readyState !== 1) {
      throw new ConnectionClosed(this.closeCode ?? 1006, this.closeReason ?? "");
    }
    ws.send(binary ? encoder.encode(data) : data);
  }

  /** Runs `operation` now when open; else queues it until the next socket, bounded by `timeout`. */
  _whenOpen(timeout, request, operation) {
    if (this._state === "open") return operation();
    if (this._state === "closed" || this._closing) {
      return Promise.reject(new ConnectionClosed(this.closeCode ?? 1006, this.closeReason ?? ""));
    }
    return new Promise((resolve, reject) => {
      const ms = timeoutOf(timeout, this._options.requestTimeout);
      const deadline = ms === null ? null : now() + ms;
      this._queue(deadline, () => operation().then(resolve, reject), reject, request);
    });
  }

  _queue(deadline, run, fail, request) {
    if (this._state === "closed" || this._closing) {
      fail(new ConnectionClosed(this.closeCode ?? 1006, this.closeReason ?? ""));
      return;
    }
    if (this._waiting.length >= this._options.maxPendingRequests) {
      fail(new LimitExceeded(`${this._waiting.length} operations already wait for a socket`));
      return;
    }
    this._waiting.push(new Waiting(deadline, run, fail, request));
    this._track(deadline);
  }

  /** Resolves when the write buffer is at or below `writeLimit`. */
  _written(data, binary) {
    this._write(data, binary);
    if (this._ws.bufferedAmount <= this._options.writeLimit) return Promise.resolve();
    return new Promise((resolve, reject) => {
      this._drainWaiters.push({ resolve, reject });
      if (this._drainTimer === undefined) this._drainTimer = setTimeout(() => this._drain(), DRAIN_POLL);
    });
  }

  _drain() {
    this._drainTimer = undefined;
    const ws = this._ws;
    if (ws === null) return;
    if (ws.bufferedAmount > this._options.writeLimit) {
      this._drainTimer = setTimeout(() => this._drain(), DRAIN_POLL);
      return;
    }
    const waiters = this._drainWaiters;
    this._drainWaiters = [];
    for (const waiter of waiters) waiter.resolve();
  }

  _failDrains(error) {
    clearTimeout(this._drainTimer);
    this._drainTimer = undefined;
    const waiters = this._drainWaiters;
    this._drainWaiters = [];
    for (const waiter of waiters) waiter.reject(error);
  }

  _sendAcked(message, options) {
    const key = message.key === undefined || message.key === null ? newKey() : message.key;
    if (typeof key !== "string") return Promise.reject(new TypeError("a key must be a string"));
    if (this._acks.has(key)) {
      return Promise.reject(new WyreError(`a send with key ${key} is already awaiting its ACK`));
    }
    const timeout = timeoutOf(options.timeout, this._options.requestTimeout);
    const deadline = timeout === null ? null : now() + timeout;
    return new Promise((resolve, reject) => {
      this._write(this._encode({ ...message, key }), options.binary);
      this._acks.set(key, new Delivery(key, deadline, resolve, reject));
      this._track(deadline);
    });
  }

  _answer(context, direction, body) {
    if (context._state === CANCELLED) return Promise.resolve(false);
    if (context._state === ANSWERED) {
      return Promise.reject(new WyreError(`request ${context.key} was already answered`));
    }
    try {
      if (body === undefined || body === null) body = {};
      checkMessage(body);
      const data = this._encode({ ...body, key: context.key, direction });
      if (direction !== "PARTIAL") {
        context._state = ANSWERED;
        this._incoming.delete(context.key);
      }
      return this._written(data, false).then(() => true);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  _control(direction, key) {
    try {
      this._write(JSON.stringify({ key, direction }), false);
    } catch {
      // the socket is closing; its close event reports that
    }
  }

  // -- deadlines and giving up ----------------------------------------------

  _track(deadline) {
    if (deadline === null || deadline >= this._timerAt) return;
    clearTimeout(this._timer);
    this._timerAt = deadline;
    this._timer = setTimeout(() => this._expire(), Math.max(0, deadline - now()));
  }

  _expire() {
    this._timer = undefined;
    this._timerAt = Infinity;
    const at = now() + 1; // timers may fire a little early
    let next = Infinity;
    const expired = [];
    for (const table of [this._requests, this._acks]) {
      for (const pending of table.values()) {
        if (pending.deadline === null) continue;
        if (pending.deadline <= at) expired.push(pending);
        else if (pending.deadline < next) next = pending.deadline;
      }
    }
    const waiting = [];
    for (const item of this._waiting) {
      if (item.deadline !== null && item.deadline <= at) expired.push(item);
      else {
        waiting.push(item);
        if (item.deadline !== null && item.deadline < next) next = item.deadline;
      }
    }
    this._waiting = waiting;
    for (const pending of expired) {
      if (pending instanceof Request) {
        this._abandon(pending);
        pending._settle(new RequestTimeout(`no reply to request ${pending.key} in time`));
      } else if (pending instanceof Delivery) {
        this._acks.delete(pending.key);
        this._remember(pending.key);
        pending.reject(new RequestTimeout(`no acknowledgement of message ${pending.key} in time`));
      } else if (pending.request !== undefined) {
        pending.request._settle(new RequestTimeout("no socket to send the request on in time"));
      } else {
        pending.fail(new RequestTimeout("no socket to send the message on in time"));
      }
    }
    if (next !== Infinity) this._track(next);
  }

  _abandon(request) {
    if (this._requests.get(request.key) === request) {
      this._requests.delete(request.key);
      if (this.extensions) this._control("CANCEL", request.key);
      this._remember(request.key);
    } else if (!request._sent) {
      this._waiting = this._waiting.filter((item) => item.request !== request);
    }
  }

  _remember(key) {
    const abandoned = this._abandoned;
    abandoned.add(key);
    if (abandoned.size > ABANDONED_MEMORY) abandoned.delete(abandoned.values().next().value);
  }

  // -- reading ---------------------------------------------------------------

  _receive(data) {
    let text = data;
    let message;
    try {
      if (typeof data !== "string") text = decoder.decode(data);
      message = JSON.parse(text);
    } catch (error) {
      this._report(new ProtocolError(`undecodable frame (${error.name})`, text));
      return;
    }
    if (!isObject(message)) {
      this._report(new ProtocolError("frame is not a JSON object", text));
      return;
    }
    const raw = message.direction;
    const key = message.key;
    const direction =
      raw === "REPLY" || raw === "REQUEST" || raw === "PARTIAL" ? raw : directionOf(raw);
    if (direction === "REPLY" || direction === "ERROR" || direction === "PARTIAL") {
      const request = this._requests.get(key);
      if (request !== undefined) {
        const context = new Context(this, message, key, direction, message.type);
        if (direction === "PARTIAL") {
          request._partial(context);
        } else {
          this._requests.delete(key);
          request._settle(direction === "REPLY" ? undefined : new RequestError(context), context);
        }
      } else if (!this._abandoned.has(key)) {
        this._report(new ProtocolError(`${direction} for unknown key ${preview(key)}`, text));
      }
    } else if (direction === "REQUEST") {
      this._onRequest(message, key, text);
    } else if (direction === "MESSAGE") {
      if (key !== undefined && key !== null && this.extensions) this._control("ACK", key);
      this._onMessage(message, key);
    } else if (direction === "ACK" && this.extensions) {
      const delivery = this._acks.get(key);
      if (delivery !== undefined) {
        this._acks.delete(key);
        delivery.resolve();
      }
    } else if (direction === "CANCEL" && this.extensions) {
      const context = this._incoming.get(key);
      if (context !== undefined) {
        this._incoming.delete(key);
        context._cancel();
      }
    } else {
      const error = new ProtocolError(`unknown direction ${preview(raw)}`, text);
      this._report(error);
      if (typeof key === "string" && !this._incoming.has(key)) this._refuse(key, error);
    }
  }

  _onRequest(message, key, text) {
    if (typeof key !== "string") {
      this._report(new ProtocolError("request key is not a string", text));
      if (key !== undefined && key !== null) this._refuse(key, new ProtocolError("bad key"));
      return;
    }
    if (this._incoming.has(key)) {
      this._report(new ProtocolError(`duplicate request key ${key}`, text));
      this._writeError(key, "DuplicateKey", `request ${key} is already running`);
      return;
    }
    const type = message.type;
    const context = new Context(this, message, key, "REQUEST", type);
    const handler = this._client._router.find("request", type);
    this._incoming.set(key, context);
    if (handler === undefined) {
      this._answer(context, "ERROR", {
        error: "NoHandler",
        message: `no request handler for type ${preview(type)}`,
      }).catch(noop);
      return;
    }
    let result;
    try {
      result = handler(context);
    } catch (error) {
      this._handlerFailed(context, error);
      return;
    }
    if (result !== null && typeof result === "object" && typeof result.then === "function") {
      result.then(
        (value) => {
          if (context._state !== OPEN) return;
          if (value !== undefined) this._reply(context, value);
          else {
            this._answer(context, "ERROR", {
              error: "NoReply",
              message: `the handler for type ${preview(type)} sent no reply`,
            }).catch(noop);
          }
        },
        (error) => this._handlerFailed(context, error),
      );
    } else if (result !== undefined && context._state === OPEN) {
      this._reply(context, result);
    }
  }

  _reply(context, value) {
    this._answer(context, "REPLY", value).catch((error) => this._handlerFailed(context, error));
  }

  _onMessage(message, key) {
    const type = message.type;
    const handler = this._client._router.find("message", type);
    if (handler === undefined) return;
    const context = new Context(this, message, key, "MESSAGE", type);
    try {
      const result = handler(context);
      if (result !== null && typeof result === "object" && typeof result.then === "function") {
        result.then(noop, (error) => this._report(error));
      }
    } catch (error) {
      this._report(error);
    }
  }

  _handlerFailed(context, error) {
    this._report(error);
    if (context._state !== OPEN) return;
    const name = error instanceof Error ? error.name : "Error";
    const text = error instanceof Error ? error.message : String(error);
    this._answer(context, "ERROR", { error: name, message: text }).catch(noop);
  }

  _refuse(key, error) {
    this._writeError(key, error.name, error.message);
  }

  _writeError(key, name, text) {
    try {
      this._write(JSON.stringify({ error: name, message: text, key, direction: "ERROR" }), false);
    } catch {
      // the socket is closing
    }
  }

  _report(error) {
    this._client._emit("error", error, this);
  }
}
