"""End-to-end delivery accounting: expected, delivered, lost, duplicated, out of order.

The load generator registers what it expects *before* it acts, then every
receiver reports what arrived::

    tracker = Tracker(warmup_end_ns)
    tracker.expect(("message", 17), origin_ns, ["bob", "carol"])
    ...
    tracker.received("bob", seq=4, key=("message", 17), received_ns=now, via="push")
    key = tracker.key_of("carol", item)   # the key an inbox item answers to, or None
    tracker.gap("carol", "poll")          # carol's reader fell behind inbox retention
    counts = tracker.counts()   # {"expected": 2, "delivered": 1, "lost": 1, ..., "gaps": 1}

Keys are ``(type, id)``; presence changes are matched by ``(user, status)``
in the order they were caused. Latency is ``received_ns - origin_ns`` on
the host's shared monotonic clock. A gap is the server saying a reader's
cursor fell behind what its inbox keeps: the items skipped stay owed, so
they count as lost, and ``gaps`` counts the reports.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

Key = tuple[Any, ...]


@dataclass(slots=True)
class Delivery:
    """One item that reached one recipient; one row of deliveries.parquet."""

    type: str
    item_id: int
    sender: str
    recipient: str
    seq: int
    origin_ns: int
    received_ns: int
    latency_ns: int
    via: str
    duplicate: bool
    out_of_order: bool
    warmup: bool
    deferred: bool
    bytes: int


@dataclass(slots=True)
class _Expect:
    type: str
    item_id: int
    sender: str
    origin_ns: int
    pending: set[str]
    deferred: frozenset[str] = frozenset()
    seen: set[str] = field(default_factory=set)
    #: Its rows in :attr:`Tracker.rows`, duplicates included, so a cancel can take them back.
    rows: list[Delivery] = field(default_factory=list)


class Tracker:
    """What should arrive where, and what did."""

    def __init__(self, warmup_end_ns: int) -> None:
        self.warmup_end_ns = warmup_end_ns
        self._expect: dict[Key, _Expect] = {}
        self._presence: dict[tuple[str, str, str], deque[Key]] = {}
        self._last_seq: dict[str, int] = {}
        self.rows: list[Delivery] = []
        self.expected = 0
        self.delivered = 0
        self.duplicated = 0
        self.out_of_order = 0
        self.unexpected = 0
        self.cancelled = 0
        self.gaps = 0
        self.gaps_by_via: dict[str, int] = {}
        self.gapped: set[str] = set()

    def expect(
        self,
        key: Key,
        origin_ns: int,
        recipients: list[str],
        sender: str = "",
        item_id: int = 0,
        deferred: list[str] | None = None,
    ) -> None:
        """Register that ``key`` must reach every one of ``recipients`` once.

        ``deferred`` names recipients who were offline when it happened: their
        deliveries count, but their latency includes the absence, so latency
        statistics leave them out.
        """
        if not recipients:
            return
        type_ = str(key[0]) if key[0] != "presence" else f"presence-{key[2]}"
        self._expect[key] = _Expect(
            type_, item_id, sender, origin_ns, set(recipients), frozenset(deferred or ())
        )
        self.expected += len(recipients)
        if key[0] == "presence":
            _, user, status, _n = key
            for r in recipients:
                self._presence.setdefault((r, user, status), deque()).append(key)

    def cancel(self, key: Key) -> None:
        """The action behind ``key`` failed: nothing is owed for it.

        What already arrived of it (a send whose reply was lost, say) leaves the counts
        and the rows alike, so ``rows`` always match ``delivered`` and ``duplicated``.
        """
        exp = self._expect.pop(key, None)
        if exp is None:
            return
        self.expected -= len(exp.pending) + len(exp.seen)
        self.delivered -= len(exp.seen)
        self.cancelled += 1
        if exp.rows:
            self.duplicated -= sum(r.duplicate for r in exp.rows)
            taken = {id(r) for r in exp.rows}
            self.rows[:] = [r for r in self.rows if id(r) not in taken]

    def presence_key(self, recipient: str, user: str, status: str) -> Key | None:
        """The oldest unmatched presence change ``user -> status`` owed to ``recipient``."""
        queue = self._presence.get((recipient, user, status))
        while queue:
            key = queue.popleft()
            exp = self._expect.get(key)
            if exp is not None and recipient in exp.pending:
                return key
        return None

    def key_of(self, recipient: str, item: Any) -> Key | None:
        """The key an inbox item reaching ``recipient`` answers to; None when unknown."""
        if not isinstance(item, dict):
            return None
        kind = item.get("type")
        if kind == "message":
            return ("message", item.get("mid"))
        if kind == "notification":
            return ("notification", item.get("nid"))
        if kind == "presence":
            return self.presence_key(recipient, str(item.get("user")), str(item.get("status")))
        return None

    def gap(self, recipient: str, via: str) -> None:
        """``recipient``'s reader (``via`` poll, push or sse) was told it missed items.

        Counted in :attr:`gaps`, :attr:`gaps_by_via`; :attr:`gapped` names who.
        """
        self.gaps += 1
        self.gaps_by_via[via] = self.gaps_by_via.get(via, 0) + 1
        self.gapped.add(recipient)

    def check_seq(self, recipient: str, seq: int) -> bool:
        """Record ``seq`` for ``recipient``; False when it is not the next one."""
        last = self._last_seq.get(recipient, 0)
        in_order = seq == last + 1
        if seq > last:
            self._last_seq[recipient] = seq
        return in_order

    def received(
        self,
        recipient: str,
        seq: int,
        key: Key | None,
        received_ns: int,
        via: str,
        nbytes: int = 0,
        type_: str = "",
    ) -> Delivery | None:
        """Account for one item that reached ``recipient``; returns its row."""
        in_order = self.check_seq(recipient, seq)
        if not in_order:
            self.out_of_order += 1
        exp = self._expect.get(key) if key is not None else None
        if exp is None:
            self.unexpected += 1
            return None
        duplicate = recipient in exp.seen
        if duplicate:
            self.duplicated += 1
        elif recipient in exp.pending:
            exp.pending.discard(recipient)
            exp.seen.add(recipient)
            self.delivered += 1
        else:
            self.unexpected += 1
            return None
        row = Delivery(
            type=exp.type or type_,
            item_id=exp.item_id,
            sender=exp.sender,
            recipient=recipient,
            seq=seq,
            origin_ns=exp.origin_ns,
            received_ns=received_ns,
            latency_ns=received_ns - exp.origin_ns,
            via=via,
            duplicate=duplicate,
            out_of_order=not in_order,
            warmup=exp.origin_ns < self.warmup_end_ns,
            deferred=recipient in exp.deferred,
            bytes=nbytes,
        )
        self.rows.append(row)
        exp.rows.append(row)
        return row

    def counts(self) -> dict[str, int]:
        """The delivery counts; ``lost`` is what is still owed."""
        return {
            "expected": self.expected,
            "delivered": self.delivered,
            "lost": self.expected - self.delivered,
            "duplicated": self.duplicated,
            "out_of_order": self.out_of_order,
            "unexpected": self.unexpected,
            "gaps": self.gaps,
        }

    def owed(self, key: Key) -> int:
        """Recipients still waiting for ``key``."""
        exp = self._expect.get(key)
        return len(exp.pending) if exp is not None else 0

    def outstanding(self) -> int:
        """Deliveries still owed."""
        return self.expected - self.delivered
