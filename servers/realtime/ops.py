"""The real-time application as hub operations: messaging, presence, notifications, activity.

:class:`Realtime` owns the state and lists its operations for a hub to register::

    rt = Realtime(RealtimeConfig(presence_timeout_s=5.0))
    for op, handler, needs_user in rt.operations():
        hub.register(op, handler, auth=needs_user)

Operations (payload fields in brackets; all but ``signin`` act as the
signed-in user and answer 401 without a valid token):

- ``signin`` {user, key} -> {user, token}: ``key`` is the user's credential
  (:mod:`servers.realtime.credentials`; 401 without it unless the server runs
  with ``open_signin``). The token expires after ``token_ttl_s``. On a push
  connection signin also binds the connection to the user.
- ``send`` {to | room, mid, ts, body} -> {mid, recipients}: a direct or room message.
- ``join`` {room} -> {room, members}
- ``subscribe`` {topic} -> {topic, subscribers} / ``publish`` {topic, nid, ts, body}
  -> {nid, recipients}
- ``watch`` {users} / ``presence`` {users} -> {status: {user: {...}}}: a user
  is only visible to people who share a room with them (others read
  ``"unknown"``), and watchers are told of changes under the same rule.
- ``heartbeat`` {} / ``bye`` {}: HTTP presence without polling / explicit
  sign-out, which revokes the token used (on a push connection it also
  unbinds the connection).
- ``activity`` {event, page} and ``time_on_site`` {} (own figures only).
- ``poll`` {after, wait_ms, limit} -> {items: [{seq, item}], last, gap, first}:
  short poll when wait_ms is 0, long poll otherwise.
- ``subscribe_inbox`` {after} (push connections): replay after the cursor,
  then push every new item as ``{"op": "push", "seq": N, "item": {...}}``.
- ``stats`` {} -> server counters (including ``limit_refusals``).

Every integer field is a signed 64-bit integer; cursors and ``wait_ms`` go
from 0 and ``limit`` from 1 (:func:`~servers.realtime.payload.field` refuses
anything else with ``invalid_envelope``).

Memory is bounded (:class:`RealtimeConfig`): users, rooms, topics, watched
names, pages per user, and inboxes (items and bytes per user: the oldest
items are dropped and readers see a gap; bytes in total: a send that would
pass it is refused). A refused request changes nothing and answers
``limit_reached`` (HTTP 429); a ``send`` to someone who never signed in
answers ``unknown_user`` (404).

Every delivery (message, presence change, notification) is one item in the
recipient's :class:`~servers.realtime.inbox.Inbox`, encoded once and carried
byte-for-byte the same by polls and pushes.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import orjson

from servers.context import Context, Handler
from servers.protocol import (
    Forbidden,
    InvalidEnvelope,
    LimitReached,
    Request,
    Unauthorized,
    UnknownUser,
)
from servers.realtime.activity import Activity
from servers.realtime.auth import USER_RE, Auth
from servers.realtime.config import MAX_PAGE, MAX_WAIT_MS, NAME_MAX, PAGE_MAX, RealtimeConfig
from servers.realtime.inbox import Inbox
from servers.realtime.payload import field, name_field, page_json
from servers.realtime.presence import Presence

clock = time.perf_counter_ns


class Realtime:
    """State and operations of the real-time application."""

    def __init__(self, config: RealtimeConfig | None = None) -> None:
        self.config = config or RealtimeConfig()
        cfg = self.config
        self.auth = Auth(cfg.signin_secret, cfg.open_signin, cfg.token_ttl_s)
        #: One inbox per user who ever signed in: the users this server knows.
        self.inboxes: dict[str, Inbox] = {}
        self.rooms: dict[str, set[str]] = {}
        self.rooms_of: dict[str, set[str]] = {}
        self.topics: dict[str, set[str]] = {}
        self.presence = Presence(cfg.presence_timeout_s, self._notify_presence)
        self.activity = Activity(cfg.idle_timeout_s, cfg.max_pages)
        #: Bytes held by every inbox together.
        self.inbox_bytes = 0
        self.counters: dict[str, int] = {
            "messages": 0,
            "notifications": 0,
            "deliveries": 0,
            "polls": 0,
            "empty_polls": 0,
            "slow_consumer_closes": 0,
            "gaps": 0,
            "signin_refused": 0,
            "limit_refusals": 0,
            "unknown_recipients": 0,
        }

    # -- state ---------------------------------------------------------------

    def _refuse(self, what: str) -> LimitReached:
        self.counters["limit_refusals"] += 1
        return LimitReached(what)

    def sign_in(self, user: str) -> str:
        """Register ``user`` (bounded by ``max_users``) and issue a token; no key check."""
        if user not in self.inboxes:
            if len(self.inboxes) >= self.config.max_users:
                raise self._refuse(
                    f"this server already has {self.config.max_users} users (max_users)"
                )
            self.inboxes[user] = Inbox(self.config.inbox_retention, self.config.inbox_max_bytes)
        return self.auth.issue(user, clock())

    def inbox(self, user: str) -> Inbox:
        """``user``'s inbox; UnknownUser unless they signed in."""
        box = self.inboxes.get(user)
        if box is None:
            raise UnknownUser(f"no user {user!r} has signed in on this server")
        return box

    def join(self, user: str, room: str) -> int:
        """Add ``user`` to ``room`` (made on first use, bounded); returns its member count."""
        members = self.rooms.get(room)
        if members is None:
            if len(self.rooms) >= self.config.max_rooms:
                raise self._refuse(f"this server already has {self.config.max_rooms} rooms")
            members = self.rooms[room] = set()
        if user not in members and len(members) >= self.config.max_room_members:
            raise Forbidden(f"room {room!r} is full")
        members.add(user)
        self.rooms_of.setdefault(user, set()).add(room)
        return len(members)

    def shares_room(self, a: str, b: str) -> bool:
        """Whether ``a`` and ``b`` are the same user or members of a common room."""
        if a == b:
            return True
        mine = self.rooms_of.get(a)
        theirs = self.rooms_of.get(b)
        return bool(mine and theirs and not mine.isdisjoint(theirs))

    def _check_room_for(self, recipients: list[str], size: int) -> None:
        need = size * len(recipients)
        if self.inbox_bytes + need > self.config.inbox_total_bytes:
            raise self._refuse(
                f"the inboxes hold {self.inbox_bytes} bytes; {need} more would pass "
                f"the server's total of {self.config.inbox_total_bytes} (inbox_total_bytes)"
            )

    def deliver(self, users: list[str], item: dict[str, Any], checked: bool = True) -> int:
        """Append ``item`` (encoded once) to each user's inbox; returns how many.

        With ``checked`` the whole delivery is refused (LimitReached) when it would
        pass ``inbox_total_bytes``; server-made items (presence) are bounded by each
        inbox's own item and byte limits only.
        """
        data = orjson.dumps(item)
        if checked:
            self._check_room_for(users, len(data))
        for user in users:
            box = self.inbox(user)
            before = box.nbytes
            box.append(data)
            self.inbox_bytes += box.nbytes - before
        self.counters["deliveries"] += len(users)
        return len(users)

    def _notify_presence(self, watcher: str, item: dict[str, Any]) -> None:
        # Only people who share a room see each other's presence.
        if watcher in self.inboxes and self.shares_room(watcher, item["user"]):
            self.deliver([watcher], item, checked=False)

    def sweep(self) -> int:
        """Mark silent HTTP users offline and drop expired tokens; called periodically."""
        now = clock()
        self.auth.expire(now)
        return self.presence.sweep(now)

    # -- wiring --------------------------------------------------------------

    def operations(self) -> list[tuple[str, Handler, bool]]:
        """Every operation as ``(name, handler, needs a signed-in user)``, for the hub."""
        ops: list[tuple[str, Handler, bool]] = [("signin", self.op_signin, False)]
        ops += [
            (op, handler, True)
            for op, handler in (
                ("stats", self.op_stats),
                ("send", self.op_send),
                ("join", self.op_join),
                ("subscribe", self.op_subscribe),
                ("publish", self.op_publish),
                ("watch", self.op_watch),
                ("presence", self.op_presence),
                ("heartbeat", self.op_heartbeat),
                ("bye", self.op_bye),
                ("activity", self.op_activity),
                ("time_on_site", self.op_time_on_site),
                ("poll", self.op_poll),
                ("subscribe_inbox", self.op_subscribe_inbox),
            )
        ]
        return ops

    @staticmethod
    def check_self(payload: Any, ctx: Context) -> None:
        """Refuse a request that names a user other than the caller (the hub calls this
        before every operation that acts as a user)."""
        if isinstance(payload, dict) and "user" in payload and payload["user"] != ctx.user:
            raise Forbidden("a user can only act as themselves")

    def _visible_status(self, caller: str, user: str) -> dict[str, Any]:
        """``user``'s presence as ``caller`` may see it: hidden outside shared rooms."""
        if user in self.inboxes and self.shares_room(caller, user):
            return self.presence.status(user)
        # The same answer whether the user exists, is online or not: nothing leaks.
        return {"status": "unknown", "last_seen": None}

    @staticmethod
    def _user_list(payload: Any) -> list[str]:
        users = field(payload, "users", list)
        if not all(isinstance(u, str) and USER_RE.match(u) for u in users):
            raise InvalidEnvelope("'users' must be a list of user names")
        return users

    # -- operations ----------------------------------------------------------

    async def op_signin(self, req: Request, ctx: Context) -> Any:
        user = name_field(req.payload, "user")
        if not self.auth.key_ok(user, req.payload.get("key")):
            self.counters["signin_refused"] += 1
            raise Unauthorized(
                f"signin as {user!r} needs the user's key derived from this server's secret "
                "(payload {'user', 'key'}; see servers.realtime.credentials)"
            )
        token = self.sign_in(user)
        if ctx.session is not None:
            ctx.session.bind(user, token)
        return {"user": user, "token": token}

    async def op_stats(self, req: Request, ctx: Context) -> Any:
        return {
            **self.counters,
            "users": len(self.inboxes),
            "online": sum(1 for u in self.inboxes if self.presence.is_online(u)),
            "long_polls_waiting": sum(box.waiting for box in self.inboxes.values()),
            "presence_changes": self.presence.changes,
            "activity_events": self.activity.events,
            "inbox_bytes": self.inbox_bytes,
            "tokens": self.auth.tokens,
        }

    async def op_send(self, req: Request, ctx: Context) -> Any:
        assert ctx.user is not None
        mid = field(req.payload, "mid", int)
        ts = field(req.payload, "ts", int)
        to = field(req.payload, "to", str, required=False)
        room = field(req.payload, "room", str, required=False)
        if (to is None) == (room is None):
            raise InvalidEnvelope("a message needs exactly one of 'to' or 'room'")
        if room is not None:
            if not USER_RE.match(room):
                raise InvalidEnvelope("'room' is not a valid room name")
            members = self.rooms.get(room)
            if members is None or ctx.user not in members:
                raise Forbidden(f"not a member of room {room!r}")
            recipients = sorted(members - {ctx.user})
        else:
            if not USER_RE.match(to):
                raise InvalidEnvelope("'to' is not a valid user name")
            if to not in self.inboxes:
                self.counters["unknown_recipients"] += 1
                raise UnknownUser(f"no user {to!r} has signed in on this server")
            recipients = [to]
        item = {
            "type": "message",
            "from": ctx.user,
            "to": to,
            "room": room,
            "mid": mid,
            "ts": ts,
            "body": req.payload.get("body"),
        }
        self.deliver(recipients, item)
        self.counters["messages"] += 1
        return {"mid": mid, "recipients": len(recipients)}

    async def op_join(self, req: Request, ctx: Context) -> Any:
        assert ctx.user is not None
        room = name_field(req.payload, "room")
        return {"room": room, "members": self.join(ctx.user, room)}

    async def op_subscribe(self, req: Request, ctx: Context) -> Any:
        assert ctx.user is not None
        topic = name_field(req.payload, "topic")
        subs = self.topics.get(topic)
        if subs is None:
            if len(self.topics) >= self.config.max_topics:
                raise self._refuse(f"this server already has {self.config.max_topics} topics")
            subs = self.topics[topic] = set()
        subs.add(ctx.user)
        return {"topic": topic, "subscribers": len(subs)}

    async def op_publish(self, req: Request, ctx: Context) -> Any:
        assert ctx.user is not None
        topic = name_field(req.payload, "topic")
        nid = field(req.payload, "nid", int)
        ts = field(req.payload, "ts", int)
        subs = sorted(self.topics.get(topic, ()))
        item = {
            "type": "notification",
            "topic": topic,
            "nid": nid,
            "ts": ts,
            "body": req.payload.get("body"),
        }
        self.deliver(subs, item)
        self.counters["notifications"] += 1
        return {"nid": nid, "recipients": len(subs)}

    async def op_watch(self, req: Request, ctx: Context) -> Any:
        assert ctx.user is not None
        users = self._user_list(req.payload)
        # Only users who signed in are recorded; changes reach the watcher only
        # while the two share a room (checked when each change happens).
        known = [u for u in users if u in self.inboxes]
        total = len(self.presence.watched_by(ctx.user) | set(known))
        if total > self.config.max_watch:
            raise self._refuse(
                f"watching {total} users would pass the limit of {self.config.max_watch}"
            )
        self.presence.watch(ctx.user, known)
        return {"status": {u: self._visible_status(ctx.user, u) for u in users}}

    async def op_presence(self, req: Request, ctx: Context) -> Any:
        assert ctx.user is not None
        users = self._user_list(req.payload)
        if len(users) > self.config.max_watch:
            raise self._refuse(f"at most {self.config.max_watch} users per presence request")
        return {"status": {u: self._visible_status(ctx.user, u) for u in users}}

    async def op_heartbeat(self, req: Request, ctx: Context) -> Any:
        return {"status": "online"}

    async def op_bye(self, req: Request, ctx: Context) -> Any:
        assert ctx.user is not None
        user = ctx.user
        # The token used is revoked: it cannot be used again, here or on another connection,
        # and every other stream opened with it ends. This connection stays open, signed
        # out, so it is unbound first.
        token = ctx.token
        if ctx.session is not None:
            ctx.session.unbind()
        self.auth.revoke(token)
        self.presence.leave(user, clock())
        return {"status": self.presence.status(user)["status"]}

    async def op_activity(self, req: Request, ctx: Context) -> Any:
        assert ctx.user is not None
        event = field(req.payload, "event", str)
        page = field(req.payload, "page", str, required=False)
        if len(event) > NAME_MAX or (page is not None and len(page) > PAGE_MAX):
            raise InvalidEnvelope(
                f"'event' is at most {NAME_MAX} characters and 'page' at most {PAGE_MAX}"
            )
        try:
            return self.activity.record(ctx.user, event, page, clock())
        except LimitReached as exc:
            raise self._refuse(str(exc)) from None

    async def op_time_on_site(self, req: Request, ctx: Context) -> Any:
        assert ctx.user is not None
        return self.activity.report(ctx.user, clock())

    async def op_poll(self, req: Request, ctx: Context) -> Any:
        assert ctx.user is not None
        payload = req.payload if req.payload is not None else {}
        after = field(payload, "after", int, required=False, low=0)
        after = 0 if after is None else after
        wait_ms = field(payload, "wait_ms", int, required=False, low=0)
        wait_ms = 0 if wait_ms is None else wait_ms
        limit = field(payload, "limit", int, required=False, low=1)
        limit = MAX_PAGE if limit is None else limit
        box = self.inbox(ctx.user)
        wait_s = min(wait_ms, MAX_WAIT_MS) / 1000.0
        if wait_s > 0 and box.last_seq <= after:
            # While a long poll is held its user is online; when it ends (answered,
            # or abandoned by the client) the presence timeout starts counting.
            self.presence.hold(ctx.user, clock())
            # The poll ends early if its token does (expiry, bye): it then answers 401.
            ended: asyncio.Future[str] = asyncio.get_running_loop().create_future()
            stop = self.auth.watch(ctx.token, _settle(ended)) if ctx.token else _nothing
            try:
                page = await box.wait(after, wait_s, min(limit, MAX_PAGE), abort=ended)
            finally:
                stop()
                self.presence.release(ctx.user, clock())
            if ended.done():
                raise Unauthorized(
                    f"the token {ended.result()} while the poll was held; sign in again"
                )
        else:
            page = box.read(after, min(limit, MAX_PAGE))
        self.counters["polls"] += 1
        if not page.items:
            self.counters["empty_polls"] += 1
        if page.gap:
            self.counters["gaps"] += 1
        return page_json(page)

    async def op_subscribe_inbox(self, req: Request, ctx: Context) -> Any:
        assert ctx.user is not None
        if ctx.session is None:
            raise InvalidEnvelope("subscribe_inbox needs a push connection; poll instead")
        after = field(req.payload, "after", int, required=False, low=0) or 0
        box = self.inbox(ctx.user)
        page = box.read(after, limit=1)
        if page.gap:
            self.counters["gaps"] += 1
        # The reply is queued by the session after this returns; the replay and
        # live pushes are queued behind it, in sequence order.
        ctx.session.follow(box, after)
        return {"last": page.last, "gap": page.gap, "first": page.first}


def _settle(future: asyncio.Future[str]) -> Callable[[str], None]:
    """A token watcher that resolves ``future`` with the reason the token ended."""

    def on_end(reason: str) -> None:
        if not future.done():
            future.set_result(reason)

    return on_end


def _nothing() -> None:
    return None
