'use strict';
// The transport-agnostic core (servers/hub.py): decode a request, run its
// operation, encode the reply; and the Session of a push connection (a
// WebSocket or an event stream) with its bounded outgoing queue. No I/O.
//
//   const reply = hub.handle(bytes, ctx);   // {status, body}, or a Promise of one (long polls)
//   const session = hub.openSession(token); // throws Unauthorized for a bad token
//   session.wake = () => ...;               // the transport sends what session.take() gives
//
// Replies are returned synchronously whenever the operation allows it (all but
// long polls and a delayed echo), so the hot paths never wait for a microtask.

const protocol = require('./protocol');
const json = require('./json');
const { CANCELLED, Realtime, clock } = require('./realtime');
const { Stalls, serverWatchesLoop } = require('./stalls');

const DEFAULT_SEND_QUEUE = 1000;
const CLOSE_POLICY = 1008;
const CLOSE_TRY_AGAIN = 1013;
const TOKEN_SWEEP_S = 1.0;

/** What Session.take() returns once the connection must close. */
const CLOSE = Symbol('close');

const nothing = () => {};

/** Who is asking, and over what: filled in by the transport. */
class Context {
  constructor(user = null, token = null) {
    this.user = user;
    this.token = token;
    this.session = null;
    // Set by a held long poll: the transport calls it when the client goes away.
    this.onAbort = null;
  }

  abort() {
    if (this.onAbort) this.onAbort();
  }
}

class Hub {
  constructor({
    maxMessageBytes = protocol.DEFAULT_MAX_MESSAGE_BYTES,
    realtime = {},
    sendQueue = DEFAULT_SEND_QUEUE,
    echoDelayS = 0,
    watchLoop = null,
  } = {}) {
    if (!(maxMessageBytes > 0)) throw new Error('max_message_bytes must be positive');
    if (!(sendQueue >= 1)) throw new Error('send_queue must be >= 1');
    if (!(echoDelayS >= 0)) throw new Error('echo_delay_s must be >= 0');
    this.maxMessageBytes = maxMessageBytes;
    this.sendQueue = sendQueue;
    this.echoDelayMs = echoDelayS * 1000;
    this.requests = 0;
    this.errors = 0;
    this.ops = new Map([['echo', { handler: (req) => this.echo(req), auth: false }]]);
    this.realtime = new Realtime(realtime);
    for (const [op, handler, auth] of this.realtime.operations())
      this.ops.set(op, { handler, auth });
    // The record of what stopped this process answers with the counters.
    this.ops.get('stats').handler = (req) => this.stats(req);
    this.knownOps = [...this.ops.keys()].sort().join(', ');
    this.stalls = new Stalls();
    this.watchLoop = watchLoop === null ? serverWatchesLoop() : watchLoop;
    this.sweeper = null;
  }

  /** Start background work: the token and presence sweep, timing collections. */
  start() {
    const cfg = this.realtime.config;
    // At most a second: streams end within a second of their token's expiry.
    const period = Math.min(TOKEN_SWEEP_S, Math.max(0.05, cfg.presenceTimeoutS / 10));
    this.sweeper = setInterval(() => this.realtime.sweep(), period * 1000);
    this.stalls.install();
    if (this.watchLoop) this.stalls.watchLoop();
  }

  stop() {
    clearInterval(this.sweeper);
    this.sweeper = null;
    this.stalls.uninstall();
  }

  /** A context for a bearer token (null: anonymous); throws Unauthorized if invalid. */
  authenticate(token) {
    if (token === null || token === undefined) return new Context();
    const user = this.realtime.auth.userFor(token, clock());
    if (user === null) {
      throw new protocol.Unauthorized(
        'the bearer token is not valid (unknown, expired or revoked); sign in again',
      );
    }
    return new Context(user, token);
  }

  /** A push connection's session; throws Unauthorized for an invalid token. */
  openSession(token = null) {
    const { user } = this.authenticate(token);
    const session = new Session(this, new Context());
    if (user !== null) session.bind(user, token || '');
    return session;
  }

  /** Decode, dispatch and encode one request (a Buffer). Never throws for bad input. */
  handle(data, ctx = new Context()) {
    this.requests++;
    let req;
    try {
      protocol.checkSize(data, this.maxMessageBytes);
      req = protocol.decodeRequest(data);
    } catch (err) {
      return this.fail(err, null);
    }
    return this.run(req, ctx);
  }

  /** Run an already-decoded request (an HTTP GET's query, an SSE subscription). */
  dispatch(req, ctx = new Context()) {
    this.requests++;
    return this.run(req, ctx);
  }

  run(req, ctx) {
    let result;
    try {
      const entry = this.ops.get(req.op);
      if (!entry) {
        throw new protocol.UnknownOp(`unknown op ${json.pyRepr(req.op)}; known: ${this.knownOps}`);
      }
      if (entry.auth) this.checkUser(req, ctx);
      result = entry.handler(req, ctx);
    } catch (err) {
      return this.fail(err, req);
    }
    if (result instanceof Promise) {
      return result.then(
        (payload) => this.ok(req, payload),
        (err) => (err === CANCELLED ? null : this.fail(err, req)),
      );
    }
    return this.ok(req, result);
  }

  checkUser(req, ctx) {
    if (ctx.user === null) {
      throw new protocol.Unauthorized(`op ${json.pyRepr(req.op)} needs a signed-in user`);
    }
    if (ctx.session && ctx.token !== null) {
      // A push connection lives longer than one request: its token may have
      // expired, or been revoked by bye elsewhere, since it opened.
      if (this.realtime.auth.userFor(ctx.token, clock()) !== ctx.user) {
        ctx.session.unbind();
        throw new protocol.Unauthorized(
          "the connection's token expired or was revoked; sign in again",
        );
      }
    } else if (!ctx.session) {
      // A request over HTTP is a sign of life for presence.
      this.realtime.presence.touch(ctx.user, clock());
    }
    // Every operation that acts as a user refuses to act as another.
    Realtime.checkSelf(req.payload, ctx);
  }

  ok(req, payload) {
    try {
      return { status: 200, body: protocol.encodeOk(req, payload) };
    } catch (err) {
      if (!(err instanceof json.JsonEncodeError)) return this.fail(err, req);
      // orjson reads deeper nesting than it writes, so an echoed payload can fail here.
      const error =
        payload === req.payload
          ? new protocol.InvalidEnvelope(`payload cannot be encoded in a reply: ${err.message}`)
          : new protocol.InternalError(
              `op ${json.pyRepr(req.op)} returned an unencodable reply: ${err.message}`,
            );
      return this.error(error, req);
    }
  }

  fail(err, req) {
    if (!(err instanceof protocol.ProtocolError)) {
      const where = req ? `op ${json.pyRepr(req.op)}` : 'request';
      err = new protocol.InternalError(
        `${where} failed: ${err instanceof Error ? err.message : err}`,
      );
    }
    return this.error(err, req);
  }

  /** Encode an error found by a transport before the hub saw the bytes. */
  reject(err) {
    this.requests++;
    return this.error(err, null);
  }

  error(err, req) {
    this.errors++;
    return { status: err.httpStatus, body: protocol.encodeError(err, req) };
  }

  echo(req) {
    if (this.echoDelayMs > 0) {
      return new Promise((resolve) => setTimeout(() => resolve(req.payload), this.echoDelayMs));
    }
    return req.payload;
  }

  stats(req) {
    // stalls_since_ns (this machine's CLOCK_MONOTONIC ns) keeps only later stalls. It is a
    // filter, not an argument: anything but a signed 64-bit integer is ignored.
    const since = req.payload instanceof Map ? req.payload.get('stalls_since_ns') : undefined;
    return {
      ...this.realtime.opStats(),
      stalls: this.stalls.report(protocol.isInt64(since) ? since : null),
    };
  }
}

/** A bounded FIFO: an array and the index of its head. */
class Queue {
  constructor() {
    this.items = [];
    this.head = 0;
  }

  get length() {
    return this.items.length - this.head;
  }

  push(item) {
    this.items.push(item);
  }

  shift() {
    const item = this.items[this.head];
    this.items[this.head++] = undefined;
    if (this.head === this.items.length) {
      this.items = [];
      this.head = 0;
    } else if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return item;
  }

  clear() {
    this.items = [];
    this.head = 0;
  }
}

/**
 * One push connection: its user, its inbox subscription and its outgoing queue.
 *
 * Replies and pushes share one queue of at most hub.sendQueue messages, so they
 * leave in order. A consumer too slow to drain it is closed (1013) and counted in
 * stats.slow_consumer_closes; its items stay in the inbox for a resume. A resume
 * replays the backlog as the queue drains, never more than half the queue at a
 * time, then pushes new items as they come.
 *
 * The transport sets `wake` (called when there may be something to send) and
 * sends what take() returns: a message, null (nothing now) or CLOSE.
 */
class Session {
  constructor(hub, ctx) {
    this.hub = hub;
    this.ctx = ctx;
    ctx.session = this;
    this.out = new Queue();
    this.box = null;
    // While catching up: items after this seq still to be queued. null once live.
    this.replayAfter = null;
    // The replay waits until the reply to subscribe_inbox is queued.
    this.replayHeld = false;
    this.closeCode = null;
    this.closeReason = '';
    this.closed = false;
    this.unwatch = nothing;
    this.wake = nothing;
    this.onItem = (seq, item) => {
      // While replaying, the replay reads this item from the inbox.
      if (this.replayAfter === null) this.enqueue(protocol.encodePush(seq, item));
    };
  }

  get user() {
    return this.ctx.user;
  }

  /** Attach the connection to `user`; it closes (1008) when that token ends. */
  bind(user, token) {
    if (this.ctx.user === user) {
      this.watch(token);
      this.ctx.token = token;
      return;
    }
    this.unbind();
    this.ctx.user = user;
    this.ctx.token = token;
    this.watch(token);
    this.hub.realtime.presence.connected(user, clock());
  }

  watch(token) {
    this.unwatch();
    this.unwatch = this.hub.realtime.auth.watch(token, (reason) => {
      // What is still queued is dropped: nothing leaves under a dead token.
      this.requestClose(CLOSE_POLICY, `token ${reason}; sign in again`);
    });
  }

  /** Detach the connection from its user (bye, or a token no longer valid). */
  unbind() {
    this.unwatch();
    this.unwatch = nothing;
    const user = this.ctx.user;
    if (user === null) return;
    this.unfollow();
    this.ctx.user = null;
    this.ctx.token = null;
    this.hub.realtime.presence.disconnected(user, clock());
  }

  /** Run one received message and queue its reply, then any replayed pushes.
   * Returns a Promise only when the reply has to wait (a long poll). */
  handle(data) {
    const reply = this.hub.handle(data, this.ctx);
    if (reply instanceof Promise) return reply.then((r) => this.replied(r));
    this.replied(reply);
    return undefined;
  }

  replied(reply) {
    if (reply === null) return;
    this.enqueue(reply.body);
    if (reply.status === 403) {
      // The error envelope still leaves, then the connection closes.
      this.requestClose(CLOSE_POLICY, 'forbidden', true);
      return;
    }
    if (this.replayHeld) {
      this.replayHeld = false;
      this.refill();
    }
  }

  /** Replay `box` after `after`, then push every later item (after the current reply). */
  follow(box, after) {
    this.unfollow();
    this.box = box;
    this.replayAfter = Math.max(after, box.firstKept - 1);
    this.replayHeld = true;
    box.subscribe(this.onItem);
  }

  /** subscribe_inbox for a push-only transport (SSE): the reply is returned, not
   * queued, and the replay starts at once. */
  subscribe(after) {
    const req = { op: 'subscribe_inbox', id: 0, ts: 0, payload: new Map([['after', after]]) };
    const reply = this.hub.dispatch(req, this.ctx);
    if (this.replayHeld) {
      this.replayHeld = false;
      this.refill();
    }
    return reply;
  }

  /** Queue replayed items, up to half the queue; go live once caught up. */
  refill() {
    const box = this.box;
    if (box === null || this.replayAfter === null || this.replayHeld) return;
    if (this.replayAfter >= box.lastSeq) {
      this.replayAfter = null;
      return;
    }
    const room = Math.max(1, Math.floor(this.hub.sendQueue / 2)) - this.out.length;
    if (room <= 0) return;
    const page = box.read(this.replayAfter, room);
    if (page.gap) {
      // The inbox dropped items this connection had not sent yet.
      this.hub.realtime.counters.slow_consumer_closes++;
      this.requestClose(CLOSE_TRY_AGAIN, 'slow consumer: fell behind the inbox');
      return;
    }
    for (const [seq, item] of page.items) {
      this.out.push(protocol.encodePush(seq, item));
      this.replayAfter = seq;
    }
    if (this.replayAfter >= box.lastSeq) this.replayAfter = null;
    this.wake();
  }

  enqueue(body) {
    if (this.closeCode !== null) return;
    if (this.out.length >= this.hub.sendQueue) {
      this.hub.realtime.counters.slow_consumer_closes++;
      this.requestClose(CLOSE_TRY_AGAIN, 'slow consumer: send queue full');
      return;
    }
    this.out.push(body);
    this.wake();
  }

  /** The transport gave up sending to this client: count it as a slow consumer. */
  stalled() {
    if (this.closeCode === null) {
      this.hub.realtime.counters.slow_consumer_closes++;
      this.closeCode = CLOSE_TRY_AGAIN;
      this.closeReason = 'slow consumer: send timed out';
    }
  }

  /** Ask the transport to close with `code`; pending messages are dropped unless `flush`. */
  requestClose(code, reason, flush = false) {
    if (this.closeCode !== null) return;
    this.closeCode = code;
    this.closeReason = reason;
    this.unfollow();
    if (!flush) this.out.clear();
    this.wake();
  }

  /** The next message to send, null when there is none now, CLOSE when the connection must close. */
  take() {
    if (this.closeCode !== null && this.out.length === 0) return CLOSE;
    this.refill();
    return this.out.length ? this.out.shift() : null;
  }

  unfollow() {
    if (this.box !== null) {
      this.box.unsubscribe(this.onItem);
      this.box = null;
    }
    this.replayAfter = null;
    this.replayHeld = false;
  }

  /** The connection ended: stop following the inbox, update presence. */
  close() {
    if (this.closed) return;
    this.closed = true;
    this.ctx.abort();
    this.unbind();
    this.unfollow();
    this.wake = nothing;
  }
}

module.exports = {
  CLOSE,
  CLOSE_POLICY,
  CLOSE_TRY_AGAIN,
  DEFAULT_SEND_QUEUE,
  Context,
  Hub,
  Session,
};
