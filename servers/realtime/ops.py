"""The real-time application as hub operations: messaging, presence, notifications, activity.

:class:`Realtime` owns the state and registers its operations on a hub::

    rt = Realtime(RealtimeConfig(presence_timeout_s=5.0))
    rt.install(hub)

Operations (payload fields in brackets; all but ``signin`` and ``stats``
act as the signed-in user and answer 401 without a valid token):

- ``signin`` {user} -> {user, token}; on a push connection it also binds it.
- ``send`` {to | room, mid, ts, body} -> {mid, recipients}: a direct or room message.
- ``join`` {room} -> {room, members}
- ``subscribe`` {topic} / ``publish`` {topic, nid, ts, body} -> {recipients}
- ``watch`` {users} / ``presence`` {users} -> {status: {user: {...}}}
- ``heartbeat`` {} / ``bye`` {}: HTTP presence without polling / explicit sign-out.
- ``activity`` {event, page} and ``time_on_site`` {} (own figures only).
- ``poll`` {after, wait_ms, limit} -> {items: [{seq, item}], last, gap, first}:
  short poll when wait_ms is 0, long poll otherwise.
- ``subscribe_inbox`` {after} (push connections): replay after the cursor,
  then push every new item as ``{"op": "push", "seq": N, "item": {...}}``.
- ``stats`` {} -> server counters.

Every delivery (message, presence change, notification) is one item in the
recipient's :class:`~servers.realtime.inbox.Inbox`, encoded once and carried
byte-for-byte the same by polls and pushes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from servers.protocol import Forbidden, InvalidEnvelope, Request
from servers.realtime.activity import Activity
from servers.realtime.auth import USER_RE, Auth
from servers.realtime.inbox import Inbox, Page
from servers.realtime.presence import Presence

if TYPE_CHECKING:
    from servers.hub import Context, Hub

clock = time.perf_counter_ns

#: Upper bound on a long poll's hold, whatever the client asks for.
MAX_WAIT_MS = 60_000
MAX_PAGE = 1000
NAME_MAX = 64


@dataclass(frozen=True, slots=True)
class RealtimeConfig:
    """Server-side knobs of the real-time application."""

    presence_timeout_s: float = 5.0
    idle_timeout_s: float = 30.0
    inbox_retention: int = 10_000
    max_room_members: int = 1_000


def _field(payload: Any, name: str, kind: type | tuple[type, ...], required: bool = True) -> Any:
    if not isinstance(payload, dict):
        raise InvalidEnvelope("payload must be a JSON object")
    if name not in payload:
        if required:
            raise InvalidEnvelope(f"payload field {name!r} is required")
        return None
    value = payload[name]
    if isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,)):
        raise InvalidEnvelope(f"payload field {name!r} has the wrong type")
    if not isinstance(value, kind):
        raise InvalidEnvelope(f"payload field {name!r} has the wrong type")
    return value


def _name(payload: Any, field: str) -> str:
    value = _field(payload, field, str)
    if not USER_RE.match(value):
        raise InvalidEnvelope(f"{field!r} must be 1-{NAME_MAX} letters, digits, '_', '.', '-'")
    return value


def _page_json(page: Page) -> dict[str, Any]:
    return {
        "items": [{"seq": seq, "item": orjson.Fragment(item)} for seq, item in page.items],
        "last": page.last,
        "gap": page.gap,
        "first": page.first,
    }


class Realtime:
    """State and operations of the real-time application."""

    def __init__(self, config: RealtimeConfig | None = None) -> None:
        self.config = config or RealtimeConfig()
        self.auth = Auth()
        self.inboxes: dict[str, Inbox] = {}
        self.rooms: dict[str, set[str]] = {}
        self.topics: dict[str, set[str]] = {}
        self.presence = Presence(self.config.presence_timeout_s, self._notify_presence)
        self.activity = Activity(self.config.idle_timeout_s)
        self.counters: dict[str, int] = {
            "messages": 0,
            "notifications": 0,
            "deliveries": 0,
            "polls": 0,
            "empty_polls": 0,
            "slow_consumer_closes": 0,
            "gaps": 0,
        }

    # -- state ---------------------------------------------------------------

    def inbox(self, user: str) -> Inbox:
        """``user``'s inbox, created on first use."""
        box = self.inboxes.get(user)
        if box is None:
            box = self.inboxes[user] = Inbox(self.config.inbox_retention)
        return box

    def deliver(self, users: list[str], item: dict[str, Any]) -> int:
        """Append ``item`` (encoded once) to each user's inbox; returns how many."""
        data = orjson.dumps(item)
        for user in users:
            self.inbox(user).append(data)
        self.counters["deliveries"] += len(users)
        return len(users)

    def _notify_presence(self, watcher: str, item: dict[str, Any]) -> None:
        self.deliver([watcher], item)

    def sweep(self) -> int:
        """Mark silent HTTP users offline; called periodically by the hub."""
        return self.presence.sweep(clock())

    # -- wiring --------------------------------------------------------------

    def install(self, hub: Hub) -> None:
        """Register every operation on ``hub``."""
        hub.register("signin", self.op_signin, auth=False)
        hub.register("stats", self.op_stats, auth=False)
        for op, handler in (
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
        ):
            hub.register(op, handler, auth=True)

    @staticmethod
    def _check_self(payload: Any, ctx: Context) -> None:
        """Refuse a request that names a user other than the caller."""
        if isinstance(payload, dict) and "user" in payload and payload["user"] != ctx.user:
            raise Forbidden("a user can only act as themselves")

    # -- operations ----------------------------------------------------------

    async def op_signin(self, req: Request, ctx: Context) -> Any:
        user = _name(req.payload, "user")
        token = self.auth.sign_in(user)
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
        }

    async def op_send(self, req: Request, ctx: Context) -> Any:
        assert ctx.user is not None
        self._check_self(req.payload, ctx)
        mid = _field(req.payload, "mid", int)
        ts = _field(req.payload, "ts", int)
        to = _field(req.payload, "to", str, required=False)
        room = _field(req.payload, "room", str, required=False)
        if (to is None) == (room is None):
            raise InvalidEnvelope("a message needs exactly one of 'to' or 'room'")
        if room is not None:
            members = self.rooms.get(room)
            if members is None or ctx.user not in members:
                raise Forbidden(f"not a member of room {room!r}")
            recipients = sorted(members - {ctx.user})
        else:
            if not USER_RE.match(to):
                raise InvalidEnvelope("'to' is not a valid user name")
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
        self.counters["messages"] += 1
        self.deliver(recipients, item)
        return {"mid": mid, "recipients": len(recipients)}

    async def op_join(self, req: Request, ctx: Context) -> Any:
        assert ctx.user is not None
        self._check_self(req.payload, ctx)
        room = _name(req.payload, "room")
        members = self.rooms.setdefault(room, set())
        if ctx.user not in members and len(members) >= self.config.max_room_members:
            raise Forbidden(f"room {room!r} is full")
        members.add(ctx.user)
        return {"room": room, "members": len(members)}

    async def op_subscribe(self, req: Request, ctx: Context) -> Any:
        assert ctx.user is not None
        self._check_self(req.payload, ctx)
        topic = _name(req.payload, "topic")
        subs = self.topics.setdefault(topic, set())
        subs.add(ctx.user)
        return {"topic": topic, "subscribers": len(subs)}

    async def op_publish(self, req: Request, ctx: Context) -> Any:
        assert ctx.user is not None
        topic = _name(req.payload, "topic")
        nid = _field(req.payload, "nid", int)
        ts = _field(req.payload, "ts", int)
        subs = sorted(self.topics.get(topic, ()))
        item = {
            "type": "notification",
            "topic": topic,
            "nid": nid,
            "ts": ts,
            "body": req.payload.get("body"),
        }
        self.counters["notifications"] += 1
        self.deliver(subs, item)
        return {"nid": nid, "recipients": len(subs)}

    async def op_watch(self, req: Request, ctx: Context) -> Any:
        assert ctx.user is not None
        users = _field(req.payload, "users", list)
        if not all(isinstance(u, str) and USER_RE.match(u) for u in users):
            raise InvalidEnvelope("'users' must be a list of user names")
        return {"status": self.presence.watch(ctx.user, users)}

    async def op_presence(self, req: Request, ctx: Context) -> Any:
        users = _field(req.payload, "users", list)
        if not all(isinstance(u, str) for u in users):
            raise InvalidEnvelope("'users' must be a list of user names")
        return {"status": {u: self.presence.status(u) for u in users}}

    async def op_heartbeat(self, req: Request, ctx: Context) -> Any:
        return {"status": "online"}

    async def op_bye(self, req: Request, ctx: Context) -> Any:
        assert ctx.user is not None
        self.presence.leave(ctx.user, clock())
        return {"status": self.presence.status(ctx.user)["status"]}

    async def op_activity(self, req: Request, ctx: Context) -> Any:
        assert ctx.user is not None
        self._check_self(req.payload, ctx)
        event = _field(req.payload, "event", str)
        page = _field(req.payload, "page", str, required=False)
        return self.activity.record(ctx.user, event, page, clock())

    async def op_time_on_site(self, req: Request, ctx: Context) -> Any:
        assert ctx.user is not None
        self._check_self(req.payload, ctx)
        return self.activity.report(ctx.user, clock())

    async def op_poll(self, req: Request, ctx: Context) -> Any:
        assert ctx.user is not None
        self._check_self(req.payload, ctx)
        payload = req.payload if req.payload is not None else {}
        after = _field(payload, "after", int, required=False)
        after = 0 if after is None else after
        wait_ms = _field(payload, "wait_ms", int, required=False)
        wait_ms = 0 if wait_ms is None else wait_ms
        limit = _field(payload, "limit", int, required=False)
        limit = MAX_PAGE if limit is None else limit
        if after < 0 or wait_ms < 0 or limit < 1:
            raise InvalidEnvelope("'after' and 'wait_ms' must be >= 0 and 'limit' >= 1")
        box = self.inbox(ctx.user)
        wait_s = min(wait_ms, MAX_WAIT_MS) / 1000.0
        if wait_s > 0 and box.last_seq <= after:
            # While a long poll is held its user is online; when it ends (answered,
            # or abandoned by the client) the presence timeout starts counting.
            self.presence.hold(ctx.user, clock())
            try:
                page = await box.wait(after, wait_s, min(limit, MAX_PAGE))
            finally:
                self.presence.release(ctx.user, clock())
        else:
            page = box.read(after, min(limit, MAX_PAGE))
        self.counters["polls"] += 1
        if not page.items:
            self.counters["empty_polls"] += 1
        if page.gap:
            self.counters["gaps"] += 1
        return _page_json(page)

    async def op_subscribe_inbox(self, req: Request, ctx: Context) -> Any:
        assert ctx.user is not None
        if ctx.session is None:
            raise InvalidEnvelope("subscribe_inbox needs a push connection; poll instead")
        after = _field(req.payload, "after", int, required=False) or 0
        if after < 0:
            raise InvalidEnvelope("'after' must not be negative")
        box = self.inbox(ctx.user)
        page = box.read(after, limit=1)
        if page.gap:
            self.counters["gaps"] += 1
        # The reply is queued by the session after this returns; the replay and
        # live pushes are queued behind it, in sequence order.
        ctx.session.follow(box, after)
        return {"last": page.last, "gap": page.gap, "first": page.first}
