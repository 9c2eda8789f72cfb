'use strict';
// The real-time application (servers/realtime/*.py): inboxes, presence, activity,
// sign-in and tokens, and every operation on them. No I/O: transports call the
// operations through the hub (hub.js) and send what they return.
//
// Times are process.hrtime.bigint() nanoseconds: CLOCK_MONOTONIC on Linux, the
// clock of Python's time.perf_counter_ns(), so presence and activity times can be
// laid over a load generator's. They stay BigInt so that they are exact
// whatever the machine's uptime.

const crypto = require('node:crypto');
const json = require('./json');
const {
  Forbidden,
  InvalidEnvelope,
  LimitReached,
  Unauthorized,
  UnknownUser,
  INT64_MIN,
  INT64_MAX,
  isInt,
} = require('./protocol');

const { PyFloat, Raw, pyRepr } = json;

const clock = () => process.hrtime.bigint();
const nothing = () => {};

// servers/realtime/config.py
const MAX_WAIT_MS = 60000;
const MAX_PAGE = 1000;
const NAME_MAX = 64;
const PAGE_MAX = 256;

// servers/realtime/auth.py
const USER_RE = /^[A-Za-z0-9_.-]{1,64}$/;
const DEFAULT_TOKEN_TTL_S = 3600;
const MAX_TOKENS_PER_USER = 16;
const EXPIRED = 'expired';
const REVOKED = 'revoked';

// servers/realtime/credentials.py
const SECRET_ENV = 'RTBENCH_SIGNIN_SECRET';
const MIN_SECRET_CHARS = 16;

/** RealtimeConfig's defaults; every bound is refused past with limit_reached (429). */
const DEFAULT_CONFIG = Object.freeze({
  presenceTimeoutS: 5.0,
  idleTimeoutS: 30.0,
  inboxRetention: 10000,
  maxRoomMembers: 1000,
  signinSecret: null,
  openSignin: false,
  tokenTtlS: DEFAULT_TOKEN_TTL_S,
  maxUsers: 100000,
  inboxMaxBytes: 8 * 2 ** 20,
  inboxTotalBytes: 256 * 2 ** 20,
  maxWatch: 1000,
  maxRooms: 10000,
  maxTopics: 10000,
  maxPages: 1000,
});

/** Thrown into a held long poll whose client went away: nothing is answered. */
const CANCELLED = Symbol('cancelled');

// -- credentials ---------------------------------------------------------------------------

/** `secret` stripped of surrounding white space; throws when it is too short. */
function checkSecret(secret) {
  const text = secret.trim();
  if (json.pyLen(text) < MIN_SECRET_CHARS) {
    throw new Error(
      `the sign-in secret must be at least ${MIN_SECRET_CHARS} characters, got ${json.pyLen(text)}`,
    );
  }
  return text;
}

/** The secret in $RTBENCH_SIGNIN_SECRET (checked), or null when unset or blank. */
function secretFromEnv(env = process.env) {
  const value = env[SECRET_ENV] || '';
  return value.trim() ? checkSecret(value) : null;
}

function newSecret() {
  return crypto.randomBytes(32).toString('hex');
}

/** A user's sign-in key: HMAC-SHA256(secret, user), hex. */
function userKey(secret, user) {
  return crypto.createHmac('sha256', secret).update(user).digest('hex');
}

function keyMatches(secret, user, key) {
  // eslint-disable-next-line no-control-regex
  if (typeof key !== 'string' || !/^[\x00-\x7f]*$/.test(key)) return false;
  const want = Buffer.from(userKey(secret, user));
  const got = Buffer.from(key);
  return want.length === got.length && crypto.timingSafeEqual(want, got);
}

// -- payload fields ------------------------------------------------------------------------

const KIND_CHECK = {
  int: isInt,
  str: (v) => typeof v === 'string',
  list: Array.isArray,
};

/**
 * payload[key] checked to be of `kind` ('int', 'str', 'list'); undefined when optional
 * and absent. An 'int' must also lie from `low` to `high` (by default the signed 64-bit
 * range: json.js reads integers up to 2**64-1), as servers/realtime/payload.py checks.
 */
function field(payload, key, kind, required = true, low = INT64_MIN, high = INT64_MAX) {
  if (!(payload instanceof Map)) throw new InvalidEnvelope('payload must be a JSON object');
  if (!payload.has(key)) {
    if (required) throw new InvalidEnvelope(`payload field ${pyRepr(key)} is required`);
    return undefined;
  }
  const value = payload.get(key);
  if (!KIND_CHECK[kind](value)) {
    throw new InvalidEnvelope(`payload field ${pyRepr(key)} has the wrong type`);
  }
  if (kind === 'int' && (value < low || value > high)) {
    throw new InvalidEnvelope(
      `payload field ${pyRepr(key)} must be an integer from ${low} to ${high}, got ${value}`,
    );
  }
  return value;
}

/** payload[key] as a user, room or topic name. */
function nameField(payload, key) {
  const value = field(payload, key, 'str');
  if (!USER_RE.test(value)) {
    throw new InvalidEnvelope(
      `${pyRepr(key)} must be 1-${NAME_MAX} letters, digits, '_', '.', '-'`,
    );
  }
  return value;
}

/** A decoded integer as a Number, clamped into the safe range (cursors, waits, limits). */
function small(value) {
  if (typeof value === 'number') return value;
  if (value > 9007199254740991n) return Number.MAX_SAFE_INTEGER;
  if (value < -9007199254740991n) return -Number.MAX_SAFE_INTEGER;
  return Number(value);
}

// -- inbox ---------------------------------------------------------------------------------

/** One user's delivery stream: sequence-numbered items, the newest `retention` kept. */
class Inbox {
  constructor(retention = 10000, maxBytes = 8 * 2 ** 20) {
    this.retention = retention;
    this.maxBytes = maxBytes;
    this.nbytes = 0;
    // A queue as an array and the index of its head: items are [seq, text, bytes].
    this.items = [];
    this.head = 0;
    this.lastSeq = 0;
    this.dropped = 0;
    this.waiters = new Set();
    this.listeners = [];
  }

  get size() {
    return this.items.length - this.head;
  }

  /** Add an encoded item of `nbytes` bytes; returns its sequence number. */
  append(text, nbytes) {
    const seq = ++this.lastSeq;
    this.items.push([seq, text, nbytes]);
    this.nbytes += nbytes;
    while (this.size > this.retention || (this.nbytes > this.maxBytes && this.size > 1)) {
      this.nbytes -= this.items[this.head][2];
      this.items[this.head] = undefined;
      this.head++;
      this.dropped++;
    }
    if (this.head > 64 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    if (this.listeners.length) {
      for (const listener of this.listeners.slice()) listener(seq, text);
    }
    if (this.waiters.size) {
      const waiters = this.waiters;
      this.waiters = new Set();
      for (const wake of waiters) wake();
    }
    return seq;
  }

  /** Sequence number of the oldest item kept (last+1 when empty). */
  get firstKept() {
    return this.size ? this.items[this.head][0] : this.lastSeq + 1;
  }

  /** Items with seq > after, oldest first, at most `limit`: {items, last, gap, first}. */
  read(after, limit = MAX_PAGE) {
    const first = this.firstKept;
    const gap = after + 1 < first;
    if (!this.size || after >= this.lastSeq) return { items: [], last: this.lastSeq, gap, first };
    // Sequence numbers are contiguous, so the cursor's index is arithmetic.
    const start = this.head + Math.max(0, after + 1 - first);
    const end = Math.min(this.items.length, start + limit);
    return { items: this.items.slice(start, end), last: this.lastSeq, gap, first };
  }

  subscribe(listener) {
    this.listeners.push(listener);
  }

  unsubscribe(listener) {
    const at = this.listeners.indexOf(listener);
    if (at >= 0) this.listeners.splice(at, 1);
  }

  /** Long polls held on this inbox. */
  get waiting() {
    return this.waiters.size;
  }
}

/** An inbox page as a poll's reply, items spliced in as their encoded JSON. */
function pageJson(page) {
  let items = '';
  for (const [seq, text] of page.items) {
    items += `${items ? ',' : ''}{"seq":${seq},"item":${text}}`;
  }
  return new Raw(
    `{"items":[${items}],"last":${page.last},"gap":${page.gap},"first":${page.first}}`,
  );
}

// -- presence ------------------------------------------------------------------------------

function opened(counts, user) {
  counts.set(user, (counts.get(user) || 0) + 1);
}

function closed(counts, user) {
  const left = (counts.get(user) || 0) - 1;
  if (left > 0) {
    counts.set(user, left);
    return left;
  }
  counts.delete(user);
  return 0;
}

/** Online/offline with last-seen; watchers are told of changes through `notify`. */
class Presence {
  constructor(timeoutS, notify) {
    this.timeoutNs = BigInt(Math.trunc(timeoutS * 1e9));
    this.notify = notify;
    this.watchers = new Map();
    this.watching = new Map();
    this.conns = new Map();
    this.holds = new Map();
    this.lastSeen = new Map();
    this.online = new Set();
    this.changes = 0;
  }

  watch(watcher, users) {
    for (const user of users) {
      let set = this.watchers.get(user);
      if (!set) this.watchers.set(user, (set = new Set()));
      set.add(watcher);
    }
    let mine = this.watching.get(watcher);
    if (!mine) this.watching.set(watcher, (mine = new Set()));
    for (const user of users) mine.add(user);
  }

  watchedBy(watcher) {
    return new Set(this.watching.get(watcher) || []);
  }

  status(user) {
    return {
      status: this.online.has(user) ? 'online' : 'offline',
      last_seen: this.lastSeen.has(user) ? this.lastSeen.get(user) : null,
    };
  }

  isOnline(user) {
    return this.online.has(user);
  }

  set(user, online, ts) {
    if (online === this.online.has(user)) return;
    if (online) this.online.add(user);
    else this.online.delete(user);
    this.changes++;
    const item = {
      type: 'presence',
      user,
      status: online ? 'online' : 'offline',
      last_seen: this.lastSeen.has(user) ? this.lastSeen.get(user) : null,
      ts,
    };
    const watchers = this.watchers.get(user);
    if (!watchers) return;
    for (const watcher of [...watchers].sort()) {
      if (watcher !== user) this.notify(watcher, item);
    }
  }

  /** An HTTP request by `user`: last seen now, online if not already. */
  touch(user, now) {
    this.lastSeen.set(user, now);
    this.set(user, true, now);
  }

  connected(user, now) {
    opened(this.conns, user);
    this.touch(user, now);
  }

  disconnected(user, now) {
    if (closed(this.conns, user)) return;
    this.lastSeen.set(user, now);
    this.set(user, false, now);
  }

  hold(user, now) {
    opened(this.holds, user);
    this.touch(user, now);
  }

  release(user, now) {
    closed(this.holds, user);
    this.lastSeen.set(user, now);
  }

  leave(user, now) {
    if (this.conns.get(user)) return;
    this.lastSeen.set(user, now);
    this.set(user, false, now);
  }

  /** Mark offline the users without a push connection or held poll, silent for the timeout. */
  sweep(now) {
    const expired = [];
    for (const user of this.online) {
      if (this.conns.get(user) || this.holds.get(user)) continue;
      if (now - (this.lastSeen.get(user) || 0n) >= this.timeoutNs) expired.push(user);
    }
    for (const user of expired.sort()) {
      // The user went quiet at last_seen; the change is due one timeout later.
      this.set(user, false, this.lastSeen.get(user) + this.timeoutNs);
    }
    return expired.length;
  }
}

// -- activity ------------------------------------------------------------------------------

/** Sessions and time on site per user, from activity events. */
class Activity {
  constructor(idleTimeoutS, maxPages = 1000) {
    this.maxPages = maxPages;
    this.idleNs = BigInt(Math.trunc(idleTimeoutS * 1e9));
    this.tracks = new Map();
    this.events = 0;
  }

  record(user, event, page, now) {
    let track = this.tracks.get(user);
    if (!track) {
      track = { sessions: 0, closedNs: 0n, startNs: 0n, lastNs: 0n, events: 0, pages: new Map() };
      this.tracks.set(user, track);
    }
    if (page && !track.pages.has(page) && track.pages.size >= this.maxPages) {
      throw new LimitReached(`${pyRepr(user)} already has ${this.maxPages} distinct pages`);
    }
    if (track.sessions === 0 || now - track.lastNs > this.idleNs) {
      if (track.sessions) track.closedNs += track.lastNs - track.startNs;
      track.sessions++;
      track.startNs = now;
    }
    track.lastNs = now;
    track.events++;
    this.events++;
    if (page) track.pages.set(page, (track.pages.get(page) || 0) + 1);
    return { session: track.sessions, session_start: track.startNs };
  }

  report(user, now) {
    const track = this.tracks.get(user);
    if (!track) return { sessions: 0, events: 0, time_on_site_ms: new PyFloat(0), active: false };
    const total = track.closedNs + (track.lastNs - track.startNs);
    return {
      sessions: track.sessions,
      events: track.events,
      time_on_site_ms: new PyFloat(Number(total) / 1e6),
      session_start: track.startNs,
      last_activity: track.lastNs,
      active: now - track.lastNs <= this.idleNs,
      pages: new Map(track.pages),
    };
  }
}

// -- sign-in and tokens --------------------------------------------------------------------

/** Checks credentials, issues random bearer tokens and maps them back to users. */
class Auth {
  constructor(secret, openSignin = false, tokenTtlS = DEFAULT_TOKEN_TTL_S) {
    this.openSignin = openSignin;
    if (secret !== null && secret !== undefined) this.secret = checkSecret(secret);
    else if (openSignin) this.secret = null;
    else this.secret = secretFromEnv() || newSecret();
    this.ttlNs = BigInt(Math.trunc(tokenTtlS * 1e9));
    this.maxTokensPerUser = MAX_TOKENS_PER_USER;
    // Issue order is expiry order (one TTL for all): expired tokens are at the front.
    this.grants = new Map();
    this.byUser = new Map();
    this.watchers = new Map();
  }

  keyOk(user, key) {
    return this.openSignin || keyMatches(this.secret, user, key);
  }

  issue(user, now) {
    const token = crypto.randomBytes(24).toString('base64url');
    this.grants.set(token, { user, expiresNs: now + this.ttlNs });
    let mine = this.byUser.get(user);
    if (!mine) this.byUser.set(user, (mine = []));
    mine.push(token);
    while (mine.length > this.maxTokensPerUser) this.revoke(mine[0]);
    return token;
  }

  /** The user a token was issued to; null when unknown, revoked or expired. */
  userFor(token, now) {
    if (!token) return null;
    const grant = this.grants.get(token);
    if (!grant) return null;
    if (now >= grant.expiresNs) {
      this.revoke(token, EXPIRED);
      return null;
    }
    return grant.user;
  }

  /** Call onEnd(reason) once when `token` ends; returns a function that stops watching. */
  watch(token, onEnd) {
    if (!this.grants.has(token)) {
      onEnd(REVOKED);
      return nothing;
    }
    let list = this.watchers.get(token);
    if (!list) this.watchers.set(token, (list = []));
    list.push(onEnd);
    return () => {
      const at = list.indexOf(onEnd);
      if (at < 0) return;
      list.splice(at, 1);
      if (!list.length && this.watchers.get(token) === list) this.watchers.delete(token);
    };
  }

  revoke(token, reason = REVOKED) {
    const grant = token ? this.grants.get(token) : undefined;
    if (!grant) return;
    this.grants.delete(token);
    const mine = this.byUser.get(grant.user);
    if (mine) {
      mine.splice(mine.indexOf(token), 1);
      if (!mine.length) this.byUser.delete(grant.user);
    }
    const list = this.watchers.get(token);
    if (list) {
      this.watchers.delete(token);
      for (const onEnd of list) onEnd(reason);
    }
  }

  /** End every expired token, telling its watchers (the periodic sweep). */
  expire(now) {
    let dropped = 0;
    for (const [token, grant] of this.grants) {
      if (grant.expiresNs > now) break;
      this.revoke(token, EXPIRED);
      dropped++;
    }
    return dropped;
  }

  get tokens() {
    return this.grants.size;
  }
}

/** The token of an "Authorization: Bearer TOKEN" header value, or null. */
function bearerToken(header) {
  if (!header) return null;
  const space = header.indexOf(' ');
  const scheme = space < 0 ? header : header.slice(0, space);
  const value = space < 0 ? '' : header.slice(space + 1).trim();
  if (scheme.toLowerCase() !== 'bearer' || !value) return null;
  return value;
}

// -- the application -----------------------------------------------------------------------

/** State and operations of the real-time application (servers/realtime/ops.py). */
class Realtime {
  constructor(config = {}) {
    const cfg = { ...DEFAULT_CONFIG, ...config };
    for (const name of [
      'inboxRetention',
      'maxRoomMembers',
      'maxUsers',
      'inboxMaxBytes',
      'inboxTotalBytes',
      'maxWatch',
      'maxRooms',
      'maxTopics',
      'maxPages',
    ]) {
      if (!(cfg[name] >= 1)) throw new Error(`${name} must be >= 1, got ${cfg[name]}`);
    }
    for (const name of ['tokenTtlS', 'presenceTimeoutS', 'idleTimeoutS']) {
      if (!(cfg[name] > 0)) throw new Error(`${name} must be > 0, got ${cfg[name]}`);
    }
    this.config = cfg;
    this.auth = new Auth(cfg.signinSecret, cfg.openSignin, cfg.tokenTtlS);
    // One inbox per user who ever signed in: the users this server knows.
    this.inboxes = new Map();
    this.rooms = new Map();
    this.roomsOf = new Map();
    this.topics = new Map();
    this.presence = new Presence(cfg.presenceTimeoutS, (watcher, item) =>
      this.notifyPresence(watcher, item),
    );
    this.activity = new Activity(cfg.idleTimeoutS, cfg.maxPages);
    this.inboxBytes = 0;
    this.counters = {
      messages: 0,
      notifications: 0,
      deliveries: 0,
      polls: 0,
      empty_polls: 0,
      slow_consumer_closes: 0,
      gaps: 0,
      signin_refused: 0,
      limit_refusals: 0,
      unknown_recipients: 0,
    };
  }

  // -- state -------------------------------------------------------------------------------

  refuse(what) {
    this.counters.limit_refusals++;
    return new LimitReached(what);
  }

  signIn(user) {
    if (!this.inboxes.has(user)) {
      if (this.inboxes.size >= this.config.maxUsers) {
        throw this.refuse(`this server already has ${this.config.maxUsers} users (max_users)`);
      }
      this.inboxes.set(user, new Inbox(this.config.inboxRetention, this.config.inboxMaxBytes));
    }
    return this.auth.issue(user, clock());
  }

  inbox(user) {
    const box = this.inboxes.get(user);
    if (!box) throw new UnknownUser(`no user ${pyRepr(user)} has signed in on this server`);
    return box;
  }

  join(user, room) {
    let members = this.rooms.get(room);
    if (!members) {
      if (this.rooms.size >= this.config.maxRooms) {
        throw this.refuse(`this server already has ${this.config.maxRooms} rooms`);
      }
      this.rooms.set(room, (members = new Set()));
    }
    if (!members.has(user) && members.size >= this.config.maxRoomMembers) {
      throw new Forbidden(`room ${pyRepr(room)} is full`);
    }
    members.add(user);
    let mine = this.roomsOf.get(user);
    if (!mine) this.roomsOf.set(user, (mine = new Set()));
    mine.add(room);
    return members.size;
  }

  sharesRoom(a, b) {
    if (a === b) return true;
    const mine = this.roomsOf.get(a);
    const theirs = this.roomsOf.get(b);
    if (!mine || !theirs) return false;
    const [few, many] = mine.size <= theirs.size ? [mine, theirs] : [theirs, mine];
    for (const room of few) if (many.has(room)) return true;
    return false;
  }

  /** Append `item` (encoded once) to each user's inbox; `checked` bounds the total bytes. */
  deliver(users, item, checked = true) {
    const text = json.encode(item);
    const nbytes = Buffer.byteLength(text);
    if (checked) {
      const need = nbytes * users.length;
      if (this.inboxBytes + need > this.config.inboxTotalBytes) {
        throw this.refuse(
          `the inboxes hold ${this.inboxBytes} bytes; ${need} more would pass ` +
            `the server's total of ${this.config.inboxTotalBytes} (inbox_total_bytes)`,
        );
      }
    }
    for (const user of users) {
      const box = this.inbox(user);
      const before = box.nbytes;
      box.append(text, nbytes);
      this.inboxBytes += box.nbytes - before;
    }
    this.counters.deliveries += users.length;
    return users.length;
  }

  notifyPresence(watcher, item) {
    // Only people who share a room see each other's presence.
    if (this.inboxes.has(watcher) && this.sharesRoom(watcher, item.user)) {
      this.deliver([watcher], item, false);
    }
  }

  sweep() {
    const now = clock();
    this.auth.expire(now);
    return this.presence.sweep(now);
  }

  // -- wiring ------------------------------------------------------------------------------

  /** Every operation as [name, handler, needs a signed-in user]. */
  operations() {
    const ops = [['signin', (r, c) => this.opSignin(r, c), false]];
    for (const [op, handler] of [
      ['stats', this.opStats],
      ['send', this.opSend],
      ['join', this.opJoin],
      ['subscribe', this.opSubscribe],
      ['publish', this.opPublish],
      ['watch', this.opWatch],
      ['presence', this.opPresence],
      ['heartbeat', this.opHeartbeat],
      ['bye', this.opBye],
      ['activity', this.opActivity],
      ['time_on_site', this.opTimeOnSite],
      ['poll', this.opPoll],
      ['subscribe_inbox', this.opSubscribeInbox],
    ]) {
      ops.push([op, handler.bind(this), true]);
    }
    return ops;
  }

  static checkSelf(payload, ctx) {
    if (payload instanceof Map && payload.has('user') && payload.get('user') !== ctx.user) {
      throw new Forbidden('a user can only act as themselves');
    }
  }

  visibleStatus(caller, user) {
    if (this.inboxes.has(user) && this.sharesRoom(caller, user)) return this.presence.status(user);
    // The same answer whether the user exists, is online or not: nothing leaks.
    return { status: 'unknown', last_seen: null };
  }

  static userList(payload) {
    const users = field(payload, 'users', 'list');
    if (!users.every((u) => typeof u === 'string' && USER_RE.test(u))) {
      throw new InvalidEnvelope("'users' must be a list of user names");
    }
    return users;
  }

  statusMap(caller, users) {
    // A Map: user names such as "7" must keep their place, as in a Python dict.
    const out = new Map();
    for (const u of users) out.set(u, this.visibleStatus(caller, u));
    return { status: out };
  }

  // -- operations --------------------------------------------------------------------------

  opSignin(req, ctx) {
    const user = nameField(req.payload, 'user');
    if (!this.auth.keyOk(user, req.payload.get('key'))) {
      this.counters.signin_refused++;
      throw new Unauthorized(
        `signin as ${pyRepr(user)} needs the user's key derived from this server's secret ` +
          "(payload {'user', 'key'}; see servers.realtime.credentials)",
      );
    }
    const token = this.signIn(user);
    if (ctx.session) ctx.session.bind(user, token);
    return { user, token };
  }

  opStats() {
    let online = 0;
    let waiting = 0;
    for (const [user, box] of this.inboxes) {
      if (this.presence.isOnline(user)) online++;
      waiting += box.waiting;
    }
    return {
      ...this.counters,
      users: this.inboxes.size,
      online,
      long_polls_waiting: waiting,
      presence_changes: this.presence.changes,
      activity_events: this.activity.events,
      inbox_bytes: this.inboxBytes,
      tokens: this.auth.tokens,
    };
  }

  opSend(req, ctx) {
    const mid = field(req.payload, 'mid', 'int');
    const ts = field(req.payload, 'ts', 'int');
    const to = field(req.payload, 'to', 'str', false);
    const room = field(req.payload, 'room', 'str', false);
    if ((to === undefined) === (room === undefined)) {
      throw new InvalidEnvelope("a message needs exactly one of 'to' or 'room'");
    }
    let recipients;
    if (room !== undefined) {
      if (!USER_RE.test(room)) throw new InvalidEnvelope("'room' is not a valid room name");
      const members = this.rooms.get(room);
      if (!members || !members.has(ctx.user)) {
        throw new Forbidden(`not a member of room ${pyRepr(room)}`);
      }
      recipients = [...members].filter((u) => u !== ctx.user).sort();
    } else {
      if (!USER_RE.test(to)) throw new InvalidEnvelope("'to' is not a valid user name");
      if (!this.inboxes.has(to)) {
        this.counters.unknown_recipients++;
        throw new UnknownUser(`no user ${pyRepr(to)} has signed in on this server`);
      }
      recipients = [to];
    }
    const item = {
      type: 'message',
      from: ctx.user,
      to: to === undefined ? null : to,
      room: room === undefined ? null : room,
      mid,
      ts,
      body: req.payload.get('body'),
    };
    this.deliver(recipients, item);
    this.counters.messages++;
    return { mid, recipients: recipients.length };
  }

  opJoin(req, ctx) {
    const room = nameField(req.payload, 'room');
    return { room, members: this.join(ctx.user, room) };
  }

  opSubscribe(req, ctx) {
    const topic = nameField(req.payload, 'topic');
    let subs = this.topics.get(topic);
    if (!subs) {
      if (this.topics.size >= this.config.maxTopics) {
        throw this.refuse(`this server already has ${this.config.maxTopics} topics`);
      }
      this.topics.set(topic, (subs = new Set()));
    }
    subs.add(ctx.user);
    return { topic, subscribers: subs.size };
  }

  opPublish(req) {
    const topic = nameField(req.payload, 'topic');
    const nid = field(req.payload, 'nid', 'int');
    const ts = field(req.payload, 'ts', 'int');
    const subs = [...(this.topics.get(topic) || [])].sort();
    const item = { type: 'notification', topic, nid, ts, body: req.payload.get('body') };
    this.deliver(subs, item);
    this.counters.notifications++;
    return { nid, recipients: subs.length };
  }

  opWatch(req, ctx) {
    const users = Realtime.userList(req.payload);
    // Only users who signed in are recorded; changes reach the watcher only while
    // the two share a room (checked when each change happens).
    const known = users.filter((u) => this.inboxes.has(u));
    const total = new Set([...this.presence.watchedBy(ctx.user), ...known]).size;
    if (total > this.config.maxWatch) {
      throw this.refuse(`watching ${total} users would pass the limit of ${this.config.maxWatch}`);
    }
    this.presence.watch(ctx.user, known);
    return this.statusMap(ctx.user, users);
  }

  opPresence(req, ctx) {
    const users = Realtime.userList(req.payload);
    if (users.length > this.config.maxWatch) {
      throw this.refuse(`at most ${this.config.maxWatch} users per presence request`);
    }
    return this.statusMap(ctx.user, users);
  }

  opHeartbeat() {
    return { status: 'online' };
  }

  opBye(req, ctx) {
    const user = ctx.user;
    // The token used is revoked everywhere; this connection stays open, signed
    // out, so it is unbound first (its own watch must not close it).
    const token = ctx.token;
    if (ctx.session) ctx.session.unbind();
    this.auth.revoke(token);
    this.presence.leave(user, clock());
    return { status: this.presence.status(user).status };
  }

  opActivity(req, ctx) {
    const event = field(req.payload, 'event', 'str');
    const page = field(req.payload, 'page', 'str', false);
    if (json.pyLen(event) > NAME_MAX || (page !== undefined && json.pyLen(page) > PAGE_MAX)) {
      throw new InvalidEnvelope(
        `'event' is at most ${NAME_MAX} characters and 'page' at most ${PAGE_MAX}`,
      );
    }
    try {
      return this.activity.record(ctx.user, event, page, clock());
    } catch (err) {
      if (err instanceof LimitReached) throw this.refuse(err.message);
      throw err;
    }
  }

  opTimeOnSite(req, ctx) {
    return this.activity.report(ctx.user, clock());
  }

  opPoll(req, ctx) {
    const payload = req.payload === null ? new Map() : req.payload;
    const after = small(field(payload, 'after', 'int', false, 0) ?? 0);
    const waitMs = small(field(payload, 'wait_ms', 'int', false, 0) ?? 0);
    const limit = small(field(payload, 'limit', 'int', false, 1) ?? MAX_PAGE);
    const box = this.inbox(ctx.user);
    const wait = Math.min(waitMs, MAX_WAIT_MS);
    const pageLimit = Math.min(limit, MAX_PAGE);
    if (wait > 0 && box.lastSeq <= after) {
      return this.holdPoll(ctx, box, after, wait, pageLimit).then((page) => this.polled(page));
    }
    return this.polled(box.read(after, pageLimit));
  }

  /** Hold a long poll until an item arrives, `waitMs` passes, its token ends
   * (Unauthorized) or its client goes away (CANCELLED). */
  holdPoll(ctx, box, after, waitMs, limit) {
    const user = ctx.user;
    // While a long poll is held its user is online; when it ends the presence
    // timeout starts counting.
    this.presence.hold(user, clock());
    return new Promise((resolve, reject) => {
      let settled = false;
      let ended = null;
      let timer = null;
      let stop = nothing;
      const finish = (cancelled) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        box.waiters.delete(wake);
        stop();
        ctx.onAbort = null;
        this.presence.release(user, clock());
        if (cancelled) reject(CANCELLED);
        else if (ended !== null) {
          reject(new Unauthorized(`the token ${ended} while the poll was held; sign in again`));
        } else resolve(box.read(after, limit));
      };
      const wake = () => finish(false);
      if (ctx.token) {
        stop = this.auth.watch(ctx.token, (reason) => {
          ended = reason;
          finish(false);
        });
      }
      if (settled) return;
      box.waiters.add(wake);
      timer = setTimeout(wake, waitMs);
      ctx.onAbort = () => finish(true);
    });
  }

  polled(page) {
    this.counters.polls++;
    if (!page.items.length) this.counters.empty_polls++;
    if (page.gap) this.counters.gaps++;
    return pageJson(page);
  }

  opSubscribeInbox(req, ctx) {
    if (!ctx.session) {
      throw new InvalidEnvelope('subscribe_inbox needs a push connection; poll instead');
    }
    const after = small(field(req.payload, 'after', 'int', false, 0) || 0);
    const box = this.inbox(ctx.user);
    const page = box.read(after, 1);
    if (page.gap) this.counters.gaps++;
    // The session queues the reply after this returns; the replay and live pushes
    // are queued behind it, in sequence order.
    ctx.session.follow(box, after);
    return { last: page.last, gap: page.gap, first: page.first };
  }
}

module.exports = {
  CANCELLED,
  DEFAULT_CONFIG,
  DEFAULT_TOKEN_TTL_S,
  EXPIRED,
  REVOKED,
  SECRET_ENV,
  USER_RE,
  Activity,
  Auth,
  Inbox,
  Presence,
  Realtime,
  bearerToken,
  checkSecret,
  clock,
  field,
  keyMatches,
  newSecret,
  secretFromEnv,
  userKey,
};
