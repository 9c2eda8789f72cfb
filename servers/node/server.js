#!/usr/bin/env node
'use strict';
// A reference rtbench server for node: the whole wire protocol on one port, with
// node's http module and the ws package only.
//
//   node servers/node/server.js [--host 127.0.0.1] [--port 0] [--max-message-bytes N]
//        [--open-signin] [--ws-ping-interval S] [--keepalive-timeout S] [--body-timeout S]
//        [--presence-timeout S] ...   (--help lists them all)
//
// POST /rpc      one envelope each way (servers/http_server.py)
// GET  /inbox    ?after&wait_ms&limit&id&ts: the poll op, short or long
// GET  /events   Server-Sent Events: pushes as "id: SEQ\ndata: {...}\n\n", resumed
//                after Last-Event-ID (else ?after=); token in Authorization or ?token=
// GET  /ws       WebSocket: envelopes and pushes (servers/ws_aiohttp.py)
//
// Once listening it prints one "RTBENCH-READY {...}" line (servers/common.py's keys,
// then endpoints and versions); on SIGTERM or SIGINT it stops accepting, ends event
// streams cleanly, closes WebSockets with 1001, prints "RTBENCH-STATS {...}" (the
// stats op's counters) and exits 0.

const fs = require('node:fs');
const http = require('node:http');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const v8 = require('node:v8');
const { WebSocket, WebSocketServer } = require('ws');

const json = require('./json');
const protocol = require('./protocol');
const { CLOSE, Hub, DEFAULT_SEND_QUEUE } = require('./hub');
const { DEFAULT_CONFIG, SECRET_ENV, bearerToken, newSecret, secretFromEnv } = require('./realtime');

const PROG = 'servers/node/server.js';
const EXIT_REFUSED = 2;

const JSON_CONTENT_TYPE = 'application/json';
const TEXT_CONTENT_TYPE = 'text/plain; charset=utf-8';
const SSE_PING = ': ping\n\n';

// servers/common.py
const READY_PREFIX = 'RTBENCH-READY ';
const STATS_PREFIX = 'RTBENCH-STATS ';
const WS_HARD_LIMIT_FACTOR = 2;
const SHUTDOWN_TIMEOUT_MS = 5000;
const SEND_TIMEOUT_MS = 10000;
const CLOSE_GOING_AWAY = 1001;
const FD_HEADROOM = 64;
// Bytes a connection may have waiting to leave before the next message waits for
// them to drain: asyncio's default high-water mark, as the Python servers have.
const HIGH_WATER = 64 * 1024;

// -- the command line ----------------------------------------------------------------------

// [flags, key, type, default, help]; the first flag is the Python server's name.
const OPTIONS = [
  [['--host'], 'host', 'str', '127.0.0.1', 'loopback address'],
  [['--port'], 'port', 'int', 0, 'TCP port, 0 for any'],
  [
    ['--max-message-bytes'],
    'maxMessageBytes',
    'posint',
    protocol.DEFAULT_MAX_MESSAGE_BYTES,
    'largest accepted request body or message',
  ],
  [
    ['--presence-timeout', '--presence-timeout-s'],
    'presenceTimeoutS',
    'float',
    DEFAULT_CONFIG.presenceTimeoutS,
    'seconds without a poll or heartbeat before an HTTP user is offline',
  ],
  [
    ['--idle-timeout', '--idle-timeout-s'],
    'idleTimeoutS',
    'float',
    DEFAULT_CONFIG.idleTimeoutS,
    'seconds without activity that end a session (time on site)',
  ],
  [
    ['--inbox-retention'],
    'inboxRetention',
    'posint',
    DEFAULT_CONFIG.inboxRetention,
    'items kept per inbox; readers further behind see a gap',
  ],
  [
    ['--token-ttl', '--token-ttl-s'],
    'tokenTtlS',
    'float',
    DEFAULT_CONFIG.tokenTtlS,
    'seconds a sign-in token stays valid',
  ],
  [
    ['--max-users'],
    'maxUsers',
    'posint',
    DEFAULT_CONFIG.maxUsers,
    'users who may sign in; further ones are refused',
  ],
  [
    ['--inbox-max-bytes'],
    'inboxMaxBytes',
    'posint',
    DEFAULT_CONFIG.inboxMaxBytes,
    'bytes kept per inbox',
  ],
  [
    ['--inbox-total-bytes'],
    'inboxTotalBytes',
    'posint',
    DEFAULT_CONFIG.inboxTotalBytes,
    'bytes kept by all inboxes together',
  ],
  [
    ['--send-queue'],
    'sendQueue',
    'posint',
    DEFAULT_SEND_QUEUE,
    'messages queued per push connection before it is closed as a slow consumer',
  ],
  [['--delay-ms'], 'delayMs', 'float', 0, 'test only: sleep this long in every echo'],
  [
    ['--sse-heartbeat', '--sse-heartbeat-s'],
    'sseHeartbeatS',
    'float',
    0,
    "seconds without an event before GET /events sends ': ping' (0: off)",
  ],
  [
    ['--keepalive-timeout', '--keepalive-timeout-s'],
    'keepaliveTimeoutS',
    'float',
    75.0,
    'seconds a connection may go without a complete request',
  ],
  [
    ['--body-timeout', '--body-timeout-s'],
    'bodyTimeoutS',
    'float',
    60.0,
    'seconds a request body may take (408 after)',
  ],
  [
    ['--ws-ping-interval', '--ws-ping-interval-s'],
    'wsPingIntervalS',
    'float',
    20.0,
    'seconds between WebSocket pings; a client that does not answer is disconnected (0: off)',
  ],
  [['--backlog'], 'backlog', 'posint', 128, 'listen backlog'],
  [
    ['--connections'],
    'connections',
    'posint',
    0,
    'connections to hold at once: exit 1 naming the limit when the open-files limit is lower',
  ],
  [
    ['--open-signin'],
    'openSignin',
    'flag',
    false,
    'demos only: anyone may sign in as anyone without a key',
  ],
];

function usageOf([flags, , type, def, help]) {
  const value = type === 'flag' ? '' : ' VALUE';
  const shown = type === 'flag' ? '' : ` (default ${def})`;
  return `  ${flags.join(', ')}${value}\n        ${help}${shown}`;
}

const USAGE =
  `usage: node ${PROG} [options]\n\nRun the rtbench node server until SIGTERM/SIGINT.\n\n` +
  `options:\n  -h, --help  show this help and exit\n${OPTIONS.map(usageOf).join('\n')}\n`;

class UsageError extends Error {}

function convert(flag, type, text) {
  const bad = (what) => new UsageError(`argument ${flag}: ${what}: '${text}'`);
  if (type === 'str') return text;
  if (type === 'float') {
    const value = Number(text);
    if (text.trim() === '' || Number.isNaN(value)) throw bad('invalid float value');
    return value;
  }
  if (!/^\s*[+-]?\d+\s*$/.test(text)) throw bad('invalid int value');
  const value = Number(text);
  if (type === 'posint' && value <= 0) {
    throw new UsageError(`argument ${flag}: must be a positive integer, got ${text}`);
  }
  return value;
}

/** The options as an object; throws UsageError (exit 2) for anything it cannot read. */
function parseArgs(argv) {
  const byFlag = new Map();
  const opts = {};
  for (const [flags, key, type, def] of OPTIONS) {
    for (const flag of flags) byFlag.set(flag, [key, type]);
    opts[key] = def;
  }
  for (let k = 0; k < argv.length; k++) {
    const arg = argv[k];
    if (arg === '-h' || arg === '--help') {
      process.stdout.write(USAGE);
      process.exit(0);
    }
    const eq = arg.indexOf('=');
    const flag = arg.startsWith('--') && eq > 0 ? arg.slice(0, eq) : arg;
    const spec = byFlag.get(flag);
    if (!spec) throw new UsageError(`unrecognized arguments: ${arg}`);
    const [key, type] = spec;
    if (type === 'flag') {
      if (flag !== arg) throw new UsageError(`argument ${flag}: ignored explicit argument`);
      opts[key] = true;
      continue;
    }
    let text;
    if (flag !== arg) text = arg.slice(eq + 1);
    else if (k + 1 < argv.length) text = argv[++k];
    else throw new UsageError(`argument ${flag}: expected one argument`);
    opts[key] = convert(flag, type, text);
  }
  if (!(opts.port >= 0 && opts.port <= 65535)) {
    throw new UsageError(`port must be in 0..65535, got ${opts.port}`);
  }
  for (const [key, name] of [
    ['keepaliveTimeoutS', 'keepalive_timeout_s'],
    ['bodyTimeoutS', 'body_timeout_s'],
    ['presenceTimeoutS', 'presence_timeout_s'],
    ['idleTimeoutS', 'idle_timeout_s'],
    ['tokenTtlS', 'token_ttl_s'],
  ]) {
    if (!(opts[key] > 0)) throw new UsageError(`${name} must be > 0, got ${opts[key]}`);
  }
  for (const [key, name] of [
    ['wsPingIntervalS', 'ws_ping_interval_s'],
    ['sseHeartbeatS', 'sse_heartbeat_s'],
    ['delayMs', 'delay_ms'],
  ]) {
    if (!(opts[key] >= 0)) throw new UsageError(`${name} must be >= 0, got ${opts[key]}`);
  }
  return opts;
}

// -- hosts (servers/common.py) -------------------------------------------------------------

const LOOPBACK = new net.BlockList();
LOOPBACK.addSubnet('127.0.0.0', 8, 'ipv4');
LOOPBACK.addAddress('::1', 'ipv6');
// The kernel link's subnet (loadgen.link.kernel), allowed only inside an rtbench netns.
const LINK_SUBNET = new net.BlockList();
LINK_SUBNET.addSubnet('10.77.0.0', 30, 'ipv4');
const INIT_NET_INO = 0xeffffff9n;

function inBlock(list, host) {
  const bare = host.replace(/^\[|\]$/g, '');
  const family = net.isIPv4(bare) ? 'ipv4' : net.isIPv6(bare) ? 'ipv6' : null;
  return family !== null && list.check(bare, family);
}

function isLoopbackHost(host) {
  return host.toLowerCase() === 'localhost' || inBlock(LOOPBACK, host);
}

function nsId(file) {
  try {
    const st = fs.statSync(file, { bigint: true });
    return `${st.dev}:${st.ino}`;
  } catch {
    return null;
  }
}

/** Whether this process runs inside one of rtbench's own network namespaces. */
function inLinkNamespace() {
  const mine = nsId('/proc/self/ns/net');
  if (mine === null || mine.endsWith(`:${INIT_NET_INO}`)) return false;
  if (nsId('/proc/1/ns/net') === mine) return false;
  let names;
  try {
    names = fs.readdirSync('/run/netns').sort();
  } catch {
    return false;
  }
  return names.some(
    (name) => name.startsWith('rtbench-') && nsId(path.join('/run/netns', name)) === mine,
  );
}

function hostAllowed(host) {
  if (isLoopbackHost(host)) return true;
  return inBlock(LINK_SUBNET, host) && inLinkNamespace();
}

function bindHost(host) {
  return host.toLowerCase() === 'localhost' ? '127.0.0.1' : host.replace(/^\[|\]$/g, '');
}

// -- what the ready line reports -----------------------------------------------------------

/** The open-files limit (node raises its soft limit to the hard one when it starts). */
function fdLimit(maxUsers, connections = 0) {
  let soft = null;
  let hard = null;
  try {
    const line = fs
      .readFileSync('/proc/self/limits', 'utf8')
      .split('\n')
      .find((l) => l.startsWith('Max open files'));
    const [s, h] = line.slice('Max open files'.length).trim().split(/\s+/);
    soft = s === 'unlimited' ? null : Number(s);
    hard = h === 'unlimited' ? null : Number(h);
  } catch {
    // Not Linux: the limits stay unknown.
  }
  const needed = connections > 0 ? connections + FD_HEADROOM : 2 * maxUsers + FD_HEADROOM;
  return { needed, soft_before: soft, hard_before: hard, soft_after: soft, hard_after: hard };
}

function wsVersion() {
  try {
    return require('ws/package.json').version;
  } catch {
    return null;
  }
}

// -- the sign-in secret --------------------------------------------------------------------

/** [secret, file]: $RTBENCH_SIGNIN_SECRET, else a fresh one in a new private file. */
function signinSecret(openSignin) {
  if (openSignin) return [null, null];
  const secret = secretFromEnv();
  if (secret !== null) return [secret, null];
  const fresh = newSecret();
  const folder = fs.mkdtempSync(path.join(os.tmpdir(), 'rtbench-secret-'));
  fs.chmodSync(folder, 0o700);
  const file = path.join(folder, 'secret');
  fs.writeFileSync(file, `${fresh}\n`, { mode: 0o600, flag: 'wx' });
  return [fresh, file];
}

function removeSecretFile(file) {
  if (file === null) return;
  try {
    fs.unlinkSync(file);
    fs.rmdirSync(path.dirname(file));
  } catch {
    // Already gone.
  }
}

// -- HTTP helpers --------------------------------------------------------------------------

function splitUrl(url) {
  const q = url.indexOf('?');
  return q < 0
    ? [url, new URLSearchParams()]
    : [url.slice(0, q), new URLSearchParams(url.slice(q + 1))];
}

function sendText(res, status, text, headers = {}) {
  const body = Buffer.from(text);
  res.writeHead(status, {
    'Content-Type': TEXT_CONTENT_TYPE,
    'Content-Length': body.length,
    ...headers,
  });
  res.end(body);
}

/** An HTTP response written on a bare socket (before a WebSocket handshake), then closed. */
function refuseUpgrade(socket, status, text) {
  const body = Buffer.from(text);
  socket.end(
    `HTTP/1.1 ${status} ${http.STATUS_CODES[status]}\r\nContent-Type: ${TEXT_CONTENT_TYPE}\r\n` +
      `Content-Length: ${body.length}\r\nConnection: close\r\n\r\n${text}`,
  );
}

// -- the server ----------------------------------------------------------------------------

class Server {
  constructor(opts, hub) {
    this.opts = opts;
    this.hub = hub;
    this.keepaliveMs = opts.keepaliveTimeoutS * 1000;
    this.bodyMs = opts.bodyTimeoutS * 1000;
    this.pingMs = opts.wsPingIntervalS * 1000;
    this.heartbeatMs = opts.sseHeartbeatS * 1000;
    this.stopping = false;
    this.sockets = new Set();
    this.streams = new Set();
    this.websockets = new Set();
    this.http = http.createServer({
      highWaterMark: HIGH_WATER,
      // Checks for half-sent headers often enough for short keep-alive timeouts.
      connectionsCheckingInterval: Math.max(50, Math.min(1000, this.keepaliveMs / 4)),
    });
    // Idle between requests, or still sending headers: closed after the keep-alive
    // timeout (nginx's keepalive_timeout). Bodies have their own timer (408).
    this.http.keepAliveTimeout = this.keepaliveMs;
    this.http.headersTimeout = this.keepaliveMs;
    this.http.requestTimeout = 0;
    this.wss = new WebSocketServer({
      noServer: true,
      clientTracking: false,
      perMessageDeflate: false,
      // Up to twice the limit a message is read and answered with too_large; past
      // that ws closes the connection with 1009 before buffering it.
      maxPayload: opts.maxMessageBytes * WS_HARD_LIMIT_FACTOR,
      // Text that is not UTF-8 reaches the hub and is answered malformed_json, as by
      // the Python servers, instead of closing the connection with 1007.
      skipUTF8Validation: true,
    });
    this.http.on('connection', (socket) => this.onConnection(socket));
    this.http.on('request', (req, res) => this.onRequest(req, res));
    this.http.on('upgrade', (req, socket, head) => this.onUpgrade(req, socket, head));
    this.http.on('clientError', (err, socket) => this.onClientError(err, socket));
  }

  listen(host, port, backlog) {
    return new Promise((resolve, reject) => {
      this.http.once('error', reject);
      this.http.listen({ host, port, backlog }, () => {
        this.http.off('error', reject);
        resolve(this.http.address().port);
      });
    });
  }

  onConnection(socket) {
    this.sockets.add(socket);
    // A connection that sends no complete request at all is closed too, silently.
    socket.rtbFirst = setTimeout(() => socket.destroy(), this.keepaliveMs);
    socket.on('close', () => {
      clearTimeout(socket.rtbFirst);
      this.sockets.delete(socket);
    });
  }

  onClientError(err, socket) {
    // Half-sent headers past the timeout are closed without an answer, as aiohttp does.
    if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT' || !socket.writable || err.code === 'ECONNRESET') {
      socket.destroy();
      return;
    }
    refuseUpgrade(socket, 400, '400: Bad Request');
  }

  onRequest(req, res) {
    const socket = req.socket;
    clearTimeout(socket.rtbFirst);
    socket.rtbActive = (socket.rtbActive || 0) + 1;
    // Idle after the last response: closed once the keep-alive timeout passes without
    // another complete request (node's own timer is coarser than short timeouts).
    res.once('close', () => {
      socket.rtbActive--;
      if (socket.rtbActive === 0 && !socket.destroyed) {
        clearTimeout(socket.rtbFirst);
        socket.rtbFirst = setTimeout(() => socket.destroy(), this.keepaliveMs);
      }
    });
    if (this.stopping) res.setHeader('Connection', 'close');
    const [where, query] = splitUrl(req.url);
    const method = req.method;
    switch (where) {
      case '/rpc':
        if (method === 'POST') return this.rpc(req, res);
        return this.notAllowed(res, 'POST');
      case '/inbox':
        if (method === 'GET' || method === 'HEAD') return this.inbox(req, res, query);
        return this.notAllowed(res, 'GET,HEAD');
      case '/events':
        if (method === 'GET' || method === 'HEAD') return this.events(req, res, query);
        return this.notAllowed(res, 'GET,HEAD');
      case '/ws':
        if (method !== 'GET') return this.notAllowed(res, 'GET,HEAD');
        // A plain GET: the token is checked first, as before a handshake.
        try {
          this.hub.authenticate(this.wsToken(req, query));
        } catch (err) {
          return sendText(res, 401, `${err.message}\n`);
        }
        return sendText(res, 400, 'No WebSocket UPGRADE hdr\n Can "Upgrade" only to "WebSocket".');
      default:
        return sendText(res, 404, '404: Not Found');
    }
  }

  notAllowed(res, allow) {
    sendText(res, 405, '405: Method Not Allowed', { Allow: allow });
  }

  reply(res, reply) {
    if (reply === null || res.writableEnded || res.destroyed) return;
    const body = Buffer.from(reply.body);
    res.writeHead(reply.status, {
      'Content-Type': JSON_CONTENT_TYPE,
      'Content-Length': body.length,
    });
    res.end(body);
  }

  /** The caller's context from the Authorization header; throws Unauthorized. */
  context(req) {
    const header = req.headers.authorization;
    const token = bearerToken(header);
    if (header !== undefined && token === null) {
      throw new protocol.Unauthorized("Authorization must be 'Bearer TOKEN'");
    }
    return this.hub.authenticate(token);
  }

  // POST /rpc
  rpc(req, res) {
    const limit = this.hub.maxMessageBytes;
    const declared = req.headers['content-length'];
    if (declared !== undefined && Number(declared) > limit) {
      // Answered without reading the body; node discards it to keep the connection.
      this.reply(res, this.hub.reject(protocol.messageTooLarge(Number(declared), limit)));
      this.discard(req, limit);
      return;
    }
    const chunks = [];
    let size = 0;
    let done = false;
    const timer = setTimeout(() => {
      if (done) return;
      done = true;
      const reply = this.hub.reject(
        new protocol.RequestTimeout(
          `the request body did not arrive within ${json.pyFloatRepr(this.opts.bodyTimeoutS)} s`,
        ),
      );
      // Closed now, as nginx does, rather than reading the slow body any further.
      const body = Buffer.from(reply.body);
      res.writeHead(reply.status, {
        'Content-Type': JSON_CONTENT_TYPE,
        'Content-Length': body.length,
        Connection: 'close',
      });
      res.end(body, () => req.socket.destroy());
    }, this.bodyMs);
    req.on('data', (chunk) => {
      if (done) return;
      size += chunk.length;
      if (size > limit) {
        done = true;
        clearTimeout(timer);
        this.reply(
          res,
          this.hub.reject(
            new protocol.MessageTooLarge(`message exceeds the limit of ${limit} bytes`),
          ),
        );
        this.discard(req, limit);
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      let ctx;
      try {
        ctx = this.context(req);
      } catch (err) {
        this.reply(res, this.hub.reject(err));
        return;
      }
      const body = chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, size);
      this.answer(res, ctx, this.hub.handle(body, ctx));
    });
    req.on('error', () => {
      done = true;
      clearTimeout(timer);
    });
  }

  /** Read and drop the rest of a refused body, up to a bound, so the client can read
   * the answer; past the bound the connection is closed. */
  discard(req, limit) {
    let dropped = 0;
    const bound = Math.max(16 * limit, 1 << 24);
    req.on('data', (chunk) => {
      dropped += chunk.length;
      if (dropped > bound) req.socket.destroy();
    });
    req.resume();
  }

  /** Send a reply that may still be pending (a long poll); a client that goes away
   * first ends the poll, which then answers nothing. */
  answer(res, ctx, reply) {
    if (!(reply instanceof Promise)) {
      this.reply(res, reply);
      return;
    }
    const gone = () => {
      if (!res.writableEnded) ctx.abort();
    };
    res.once('close', gone);
    reply.then((r) => {
      res.off('close', gone);
      this.reply(res, r);
    });
  }

  // GET /inbox
  inbox(req, res, query) {
    let ctx;
    let request;
    try {
      ctx = this.context(req);
      request = pollRequest(query);
    } catch (err) {
      this.reply(res, this.hub.reject(err));
      return;
    }
    this.answer(res, ctx, this.hub.dispatch(request, ctx));
  }

  // GET /events
  events(req, res, query) {
    let session;
    let after;
    try {
      const token = streamToken(req, query);
      after = resumeAfter(
        req.headers['last-event-id'],
        query.has('after') ? query.get('after') : null,
      );
      session = this.hub.openSession(token);
    } catch (err) {
      this.reply(res, this.hub.reject(err));
      return;
    }
    const reply = session.subscribe(after);
    if (reply.status !== 200) {
      session.close();
      this.reply(res, reply);
      return;
    }
    res.writeHead(200, {
      'Content-Type': 'text/event-stream',
      'Cache-Control': 'no-cache',
      'X-Accel-Buffering': 'no', // tells nginx-like proxies not to buffer
    });
    res.flushHeaders();
    const stream = {
      res,
      session,
      waiting: false,
      ended: false,
      heartbeat: null,
      scheduled: false,
    };
    this.streams.add(stream);
    res.on('close', () => {
      this.streams.delete(stream);
      stream.ended = true;
      clearTimeout(stream.heartbeat);
      session.close();
    });
    if (JSON.parse(reply.body).payload.gap) res.write(`event: gap\ndata: ${reply.body}\n\n`);
    session.wake = () => schedule(stream, () => this.pumpStream(stream));
    this.pumpStream(stream);
  }

  /** Write the session's pushes as events until it closes; then end the stream cleanly. */
  pumpStream(stream) {
    const { res, session } = stream;
    if (stream.waiting || stream.ended) return;
    for (;;) {
      const body = session.take();
      if (body === null) {
        this.armHeartbeat(stream);
        return;
      }
      if (body === CLOSE) {
        stream.ended = true;
        clearTimeout(stream.heartbeat);
        res.end();
        return;
      }
      const seq = protocol.pushSeq(body);
      const event = seq === null ? `data: ${body}\n\n` : `id: ${seq}\ndata: ${body}\n\n`;
      if (res.writableLength >= HIGH_WATER) {
        this.writeAndWait(stream, event);
        return;
      }
      res.write(event);
    }
  }

  /** Write `event`, then wait until it has left before sending more; a client that
   * stops reading for SEND_TIMEOUT is disconnected as a slow consumer. */
  writeAndWait(stream, event) {
    stream.waiting = true;
    const timer = setTimeout(() => {
      stream.session.stalled();
      stream.res.destroy();
    }, SEND_TIMEOUT_MS);
    stream.res.write(event, (err) => {
      clearTimeout(timer);
      stream.waiting = false;
      if (!err) this.pumpStream(stream);
    });
  }

  armHeartbeat(stream) {
    if (!this.heartbeatMs) return;
    clearTimeout(stream.heartbeat);
    stream.heartbeat = setTimeout(() => {
      if (stream.ended || stream.waiting) return;
      if (stream.res.writableLength >= HIGH_WATER) this.writeAndWait(stream, SSE_PING);
      else {
        stream.res.write(SSE_PING);
        this.armHeartbeat(stream);
      }
    }, this.heartbeatMs);
  }

  // GET /ws
  // A malformed Authorization header is refused (401), never passed over for ?token=.
  wsToken(req, query) {
    const header = req.headers.authorization;
    if (header !== undefined) {
      const token = bearerToken(header);
      if (token === null) throw new protocol.Unauthorized("Authorization must be 'Bearer TOKEN'");
      return token;
    }
    return query.has('token') ? query.get('token') || null : null;
  }

  onUpgrade(req, socket, head) {
    clearTimeout(socket.rtbFirst);
    const [where, query] = splitUrl(req.url);
    if (where !== '/ws') {
      refuseUpgrade(socket, 404, '404: Not Found');
      return;
    }
    if (this.stopping) {
      refuseUpgrade(socket, 503, '503: Service Unavailable');
      return;
    }
    let token;
    try {
      token = this.wsToken(req, query);
      this.hub.authenticate(token);
    } catch (err) {
      refuseUpgrade(socket, 401, `${err.message}\n`);
      return;
    }
    // A failed handshake is answered by ws (400): no session is open yet to leak.
    this.wss.handleUpgrade(req, socket, head, (ws) => this.onWebSocket(ws, token));
  }

  onWebSocket(ws, token) {
    let session;
    try {
      session = this.hub.openSession(token);
    } catch (err) {
      // The token expired between the check and now.
      ws.close(1008, err.message.slice(0, 120));
      return;
    }
    const conn = {
      ws,
      session,
      pending: [],
      busy: false,
      waiting: false,
      ended: false,
      scheduled: false,
      unanswered: false,
      pinger: null,
      closer: null,
    };
    this.websockets.add(conn);
    session.wake = () => schedule(conn, () => this.pumpSocket(conn));
    ws.on('message', (data) => this.onMessage(conn, data));
    ws.on('pong', () => {
      conn.unanswered = false;
    });
    ws.on('error', () => {
      // 'close' follows; the session is closed there.
    });
    ws.on('close', () => {
      this.websockets.delete(conn);
      conn.ended = true;
      clearInterval(conn.pinger);
      clearTimeout(conn.closer);
      session.close();
    });
    if (this.pingMs > 0) {
      // A client that has not answered the previous ping when the next one is due
      // is disconnected, which ends its presence.
      conn.pinger = setInterval(() => {
        if (conn.unanswered) {
          ws.terminate();
          return;
        }
        conn.unanswered = true;
        ws.ping();
      }, this.pingMs);
    }
  }

  onMessage(conn, data) {
    conn.unanswered = false;
    if (conn.session.closeCode !== null || conn.ended) return;
    if (conn.busy) {
      conn.pending.push(data);
      return;
    }
    this.runMessage(conn, data);
  }

  /** Messages are handled one at a time, in order: one waiting for its reply (a long
   * poll) holds the ones after it, and reading pauses meanwhile. */
  runMessage(conn, data) {
    const waiting = conn.session.handle(data);
    if (!waiting) return;
    conn.busy = true;
    conn.ws.pause();
    waiting.then(() => {
      conn.busy = false;
      if (conn.ended) return;
      conn.ws.resume();
      while (!conn.busy && conn.pending.length && conn.session.closeCode === null) {
        this.runMessage(conn, conn.pending.shift());
      }
    });
  }

  /** Send the session's replies and pushes in order; close when it asks to. */
  pumpSocket(conn) {
    const { ws, session } = conn;
    if (conn.waiting || conn.ended || ws.readyState !== WebSocket.OPEN) return;
    for (;;) {
      const body = session.take();
      if (body === null) return;
      if (body === CLOSE) {
        conn.ended = true;
        ws.close(session.closeCode || 1000, session.closeReason);
        // A client that never answers the close is cut off, so it goes offline.
        conn.closer = setTimeout(() => ws.terminate(), SEND_TIMEOUT_MS);
        return;
      }
      if (ws.bufferedAmount >= HIGH_WATER) {
        // Wait for this frame to leave; a client that stopped reading is cut off.
        conn.waiting = true;
        const timer = setTimeout(() => {
          session.stalled();
          ws.terminate();
        }, SEND_TIMEOUT_MS);
        ws.send(body, (err) => {
          clearTimeout(timer);
          conn.waiting = false;
          if (!err) this.pumpSocket(conn);
        });
        return;
      }
      ws.send(body);
    }
  }

  /** Stop accepting, end streams and WebSockets, wait for connections to finish. */
  shutdown() {
    this.stopping = true;
    return new Promise((resolve) => {
      this.http.close();
      for (const stream of this.streams) {
        // Each stream sends what it has queued, then its last chunk.
        stream.session.requestClose(CLOSE_GOING_AWAY, 'server shutdown', true);
      }
      for (const conn of this.websockets) {
        conn.ended = true;
        conn.ws.close(CLOSE_GOING_AWAY, 'server shutdown');
      }
      this.http.closeIdleConnections();
      const deadline = Date.now() + SHUTDOWN_TIMEOUT_MS;
      const check = () => {
        if (this.sockets.size === 0 || Date.now() >= deadline) {
          for (const conn of this.websockets) conn.ws.terminate();
          for (const socket of this.sockets) socket.destroy();
          resolve();
          return;
        }
        this.http.closeIdleConnections();
        setTimeout(check, 20);
      };
      check();
    });
  }
}

/** Run `pump` once after the current turn, however many times it is asked for. */
function schedule(state, pump) {
  if (state.scheduled) return;
  state.scheduled = true;
  queueMicrotask(() => {
    state.scheduled = false;
    pump();
  });
}

const QUERY_INTS = ['after', 'wait_ms', 'limit'];

/** The poll request a GET /inbox query stands for; throws InvalidEnvelope. */
function pollRequest(query) {
  const payload = new Map();
  for (const name of QUERY_INTS) {
    if (query.has(name)) payload.set(name, protocol.parseIntText(name, query.get(name)));
  }
  const id = protocol.parseIntText('id', query.has('id') ? query.get('id') : '0');
  const ts = protocol.parseIntText('ts', query.has('ts') ? query.get('ts') : '0');
  return { op: 'poll', id, ts, payload };
}

/** The token of a GET /events: the Authorization header, else ?token=. */
function streamToken(req, query) {
  const header = req.headers.authorization;
  let token = bearerToken(header);
  if (header !== undefined && token === null) {
    throw new protocol.Unauthorized("Authorization must be 'Bearer TOKEN'");
  }
  token = token || query.get('token');
  if (!token) {
    throw new protocol.Unauthorized(
      "GET /events needs a token: 'Authorization: Bearer TOKEN' or ?token=TOKEN",
    );
  }
  return token;
}

/** Where a stream starts: after Last-Event-ID, else ?after=, else 0. */
function resumeAfter(lastEventId, after) {
  const text = (lastEventId || '').trim();
  if (text) return protocol.parseIntText('Last-Event-ID', text);
  return protocol.parseIntText('after', after === null ? '0' : after);
}

// -- main ----------------------------------------------------------------------------------

function fail(message, code) {
  process.stderr.write(`${USAGE.split('\n')[0]}\n${PROG}: error: ${message}\n`);
  process.exit(code);
}

async function main(argv) {
  let opts;
  try {
    opts = parseArgs(argv);
  } catch (err) {
    if (err instanceof UsageError) fail(err.message, EXIT_REFUSED);
    throw err;
  }
  if (!hostAllowed(opts.host)) {
    const note = inBlock(LINK_SUBNET, opts.host)
      ? `; ${opts.host} belongs to the kernel link (10.77.0.0/30) and is only accepted ` +
        'inside a network namespace rtbench created (ip netns exec rtbench-...)'
      : '';
    process.stderr.write(
      `${PROG}: error: refusing to bind non-loopback host ${json.pyRepr(opts.host)} ` +
        `(use 127.0.0.0/8, ::1 or localhost)${note}\n`,
    );
    process.exit(EXIT_REFUSED);
  }
  let secret;
  let secretFile;
  try {
    [secret, secretFile] = signinSecret(opts.openSignin);
  } catch (err) {
    fail(`$${SECRET_ENV}: ${err.message}`, EXIT_REFUSED);
  }
  process.on('exit', () => removeSecretFile(secretFile));
  let hub;
  try {
    hub = new Hub({
      maxMessageBytes: opts.maxMessageBytes,
      sendQueue: opts.sendQueue,
      echoDelayS: opts.delayMs / 1000,
      realtime: {
        signinSecret: secret,
        openSignin: opts.openSignin,
        presenceTimeoutS: opts.presenceTimeoutS,
        idleTimeoutS: opts.idleTimeoutS,
        inboxRetention: opts.inboxRetention,
        tokenTtlS: opts.tokenTtlS,
        maxUsers: opts.maxUsers,
        inboxMaxBytes: opts.inboxMaxBytes,
        inboxTotalBytes: opts.inboxTotalBytes,
      },
    });
  } catch (err) {
    fail(err.message, EXIT_REFUSED);
  }
  if (opts.delayMs)
    process.stderr.write(`${PROG}: test slowdown: every echo sleeps ${opts.delayMs} ms\n`);
  if (opts.openSignin)
    process.stderr.write(`${PROG}: open sign-in: anyone may sign in as anyone\n`);
  else if (secretFile !== null) {
    process.stderr.write(
      `${PROG}: no $${SECRET_ENV}: made a sign-in secret in ${secretFile} (removed on exit); ` +
        "a user's signin payload: python -m servers.realtime.credentials USER " +
        `--secret-file ${secretFile}\n`,
    );
  }
  if (opts.connections > 0) {
    // node cannot raise its own open-files limit: refuse now rather than fail mid-run.
    const limit = fdLimit(opts.maxUsers, opts.connections);
    if (limit.soft_after !== null && limit.soft_after < limit.needed) {
      fail(
        `--connections ${opts.connections} needs ${limit.needed} open files but the ` +
          `open-files limit is ${limit.soft_after} (ulimit -n); raise it before starting node`,
        1,
      );
    }
  }
  const host = bindHost(opts.host);
  const server = new Server(opts, hub);
  let port;
  try {
    port = await server.listen(host, opts.port, opts.backlog);
  } catch (err) {
    process.stderr.write(
      `${PROG}: error: cannot serve on ${opts.host}:${opts.port}: ${err.message}\n`,
    );
    process.exit(1);
  }
  hub.start();
  const { PyFloat } = json;
  const info = {
    kind: 'node',
    host,
    port,
    pid: process.pid,
    path: '/rpc',
    loop: 'node',
    max_message_bytes: opts.maxMessageBytes,
    tls: null,
    liveness: {
      keepalive_timeout_s: new PyFloat(opts.keepaliveTimeoutS),
      body_timeout_s: new PyFloat(opts.bodyTimeoutS),
      ws_ping_interval_s: new PyFloat(opts.wsPingIntervalS),
    },
    gc: {
      freeze: false,
      policy: 'off',
      enabled: true,
      collector: 'v8',
      heap_size_limit: v8.getHeapStatistics().heap_size_limit,
    },
    loop_watch: hub.watchLoop,
    signin: opts.openSignin ? 'open' : 'key',
    secret_file: secretFile,
    backlog: opts.backlog,
    fd_limit: fdLimit(opts.maxUsers, opts.connections),
    endpoints: { rpc: '/rpc', inbox: '/inbox', events: '/events', ws: '/ws' },
    node_version: process.version,
    ws_version: wsVersion(),
  };
  process.stdout.write(`${READY_PREFIX}${json.pyDumps(info)}\n`);

  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    await server.shutdown();
    hub.stop();
    // What it refused or could not deliver, for the run's record.
    process.stdout.write(`${STATS_PREFIX}${json.pyDumps(hub.realtime.counters)}\n`, () =>
      process.exit(0),
    );
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

if (require.main === module) {
  main(process.argv.slice(2)).catch((err) => {
    process.stderr.write(`${PROG}: error: ${err && err.stack ? err.stack : err}\n`);
    process.exit(1);
  });
}

module.exports = { Server, main, parseArgs, pollRequest, resumeAfter, streamToken };
