/**
 * Type declarations for wyre.js: request/reply messaging over WebSocket,
 * for browsers and Node.js. See docs/browser.md.
 */

/** A message: a JSON object. `key`, `direction` and `type` carry the protocol. */
export type Message = { [field: string]: any };

/** A message type: `5` and `"5"` route alike. */
export type MessageType = string | number;

/** Settings of `reconnect`; `true` means the defaults. */
export interface ReconnectOptions {
  /** Cap of the first delay, in ms (default 500). */
  initialDelay?: number;
  /** Largest delay between attempts, in ms (default 30000). */
  maxDelay?: number;
  /** Attempts after a drop before the connection closes for good (default Infinity). */
  maxAttempts?: number;
}

/** A WebSocket constructor: the browser's, Node.js >= 22's global one, or the `ws` package's. */
export type WebSocketConstructor = new (url: string, protocols?: string | string[]) => any;

export interface ClientOptions {
  /** Default wait for a reply or an acknowledgement, in ms (default 30000; null: none). */
  requestTimeout?: number | null;
  /** Wait for a socket to open, in ms (default 10000; null: none). */
  openTimeout?: number | null;
  /** Application subprotocols, offered before wyre's own. */
  protocols?: string[];
  /** Reconnect after a drop (default false). */
  reconnect?: boolean | ReconnectOptions;
  /** Offer the wyre.v2 extensions: ACK and CANCEL (default true). */
  extensions?: boolean;
  /** Bytes a socket may buffer before sends wait (default 262144). */
  writeLimit?: number;
  /** Outgoing requests pending at once per connection (default 1024). */
  maxPendingRequests?: number;
  /** Unread partial replies kept per request; the oldest are dropped past it (default 1024). */
  maxBufferedPartials?: number;
  /** The WebSocket constructor to use (default: the global one). */
  WebSocket?: WebSocketConstructor;
}

export interface SendOptions {
  /** Resolve when the peer received the message (wyre.v2; else once written). */
  ack?: boolean;
  /** Send a binary frame. */
  binary?: boolean;
  /** How long to wait for the acknowledgement or for a socket, in ms. */
  timeout?: number | null;
}

export interface RequestOptions {
  /** How long to wait for the reply, in ms (default: the client's requestTimeout). */
  timeout?: number | null;
  /** Aborting it cancels the request. */
  signal?: AbortSignal;
  /** Send a binary frame. */
  binary?: boolean;
}

export type ConnectionState = "connecting" | "open" | "reconnecting" | "closed";

/** What a handler receives, and what a reply or partial resolves with. */
export declare class Context<M extends Message = Message> {
  readonly connection: Connection;
  readonly message: M;
  readonly key: string | undefined;
  readonly direction: "REQUEST" | "MESSAGE" | "REPLY" | "ERROR" | "PARTIAL";
  readonly type: MessageType | undefined;
  /** Aborted when the requester cancels (wyre.v2) or the connection drops. */
  readonly signal: AbortSignal;
  /** Send the REPLY; resolves true once written, false when the requester gave up. */
  reply(body?: Message): Promise<boolean>;
  /** Send an ERROR reply. */
  error(body?: Message): Promise<boolean>;
  /** Send a PARTIAL reply. */
  partial(body?: Message): Promise<boolean>;
}

/** The original's callback: `(err)`, `(null, reply)` or `(null, null, partial)`. */
export type RequestCallback = (
  error: Error | null,
  reply?: Context | null,
  partial?: Context,
) => void;

/** A request on its way: await it for the reply. */
export declare class Request implements PromiseLike<Context> {
  readonly connection: Connection;
  readonly key: string;
  readonly type: MessageType | undefined;
  /** Partial replies dropped because nobody read them in time. */
  readonly droppedPartials: number;
  readonly done: boolean;
  then<T = Context, E = never>(
    onFulfilled?: ((reply: Context) => T | PromiseLike<T>) | null,
    onRejected?: ((error: any) => E | PromiseLike<E>) | null,
  ): Promise<T | E>;
  catch<E = never>(onRejected?: ((error: any) => E | PromiseLike<E>) | null): Promise<Context | E>;
  finally(onFinally?: (() => void) | null): Promise<Context>;
  /** The partial replies in order; throws the request's failure after the last one. */
  partials(): AsyncIterableIterator<Context>;
  /** Give up: it fails with `reason` (default RequestCancelled); a wyre.v2 peer's handler is cancelled. */
  cancel(reason?: unknown): void;
}

/** One connection; with `reconnect`, the same object across sockets. */
export declare class Connection {
  readonly id: string;
  readonly url: string;
  readonly closed: boolean;
  readonly state: ConnectionState;
  readonly closeCode: number | undefined;
  readonly closeReason: string | undefined;
  /** Whether the server agreed on wyre.v2 (ACK, CANCEL). */
  readonly extensions: boolean;
  readonly subprotocol: string;
  readonly pendingRequests: number;
  readonly bufferedAmount: number;
  send(message: Message, callback: (error: Error | null) => void): Promise<void>;
  send(
    message: Message,
    options?: SendOptions,
    callback?: (error: Error | null) => void,
  ): Promise<void>;
  request(message: Message, callback: RequestCallback): Request;
  request(message: Message, options?: RequestOptions, callback?: RequestCallback): Request;
  close(code?: number, reason?: string, callback?: (error: Error | null) => void): Promise<void>;
}

export type RequestHandler = (context: Context) => Message | void | Promise<Message | void>;
export type MessageHandler = (context: Context) => void | Promise<void>;

export declare class Client {
  constructor(options?: ClientOptions);
  readonly options: Required<ClientOptions>;
  /** Open connections, by id. */
  readonly connections: Map<string, Connection>;
  on(event: "request", handler: RequestHandler): this;
  on(event: "request", type: MessageType, handler: RequestHandler): this;
  on(event: "message", handler: MessageHandler): this;
  on(event: "message", type: MessageType, handler: MessageHandler): this;
  on(event: "connection" | "reconnected", handler: (connection: Connection) => void): this;
  on(
    event: "close",
    handler: (code: number, reason: string, connection: Connection) => void,
  ): this;
  on(event: "error", handler: (error: Error, connection?: Connection) => void): this;
  on(
    event: "reconnecting",
    handler: (attempt: number, delay: number, connection: Connection) => void,
  ): this;
  off(event: string, type?: MessageType): this;
  connect(
    url: string | URL,
    options?: string[] | { protocols?: string[] },
    callback?: (error: Error | null, connection?: Connection) => void,
  ): Promise<Connection>;
  connect(
    url: string | URL,
    callback: (error: Error | null, connection?: Connection) => void,
  ): Promise<Connection>;
  /** Close every connection and stop reconnecting. */
  close(code?: number, reason?: string): Promise<void>;
}

/** A random uuid4 (without crypto.randomUUID). */
export declare function newKey(): string;

export declare class WyreError extends Error {}
export declare class ConnectError extends WyreError {}
export declare class ConnectionClosed extends WyreError {
  readonly code: number;
  readonly reason: string;
}
export declare class RequestError extends WyreError {
  /** The ERROR reply; its body is `context.message`. */
  readonly context: Context;
}
export declare class RequestTimeout extends WyreError {}
export declare class RequestCancelled extends WyreError {}
export declare class LimitExceeded extends WyreError {}
export declare class ProtocolError extends WyreError {
  /** The start of the frame that could not be handled. */
  readonly frame: string | undefined;
}
