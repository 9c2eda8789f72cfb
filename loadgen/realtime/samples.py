"""One :class:`~loadgen.recorder.Sample` row per request or connect, for both engines.

::

    # a real-time operation or a connect: not paced, so intended = sent
    build_sample(spec, "send", sent, received, warmup_end_ns, bytes_sent=120, bytes_received=80)
    # an echo request: paced, and charged from ``origin`` (coordinated omission)
    build_sample(spec, "request", sent, received, warmup_end_ns, conn=3,
                 intended=intended, origin=origin, items=1, error=None)

A row is warm-up when it was due before ``warmup_end_ns``, or when the clock
has not started yet (``warmup_end_ns == 0``: set-up).
"""

from __future__ import annotations

from loadgen.cellspec import CellRun
from loadgen.recorder import Sample


def build_sample(
    spec: CellRun,
    kind: str,
    sent: int,
    received: int,
    warmup_end_ns: int,
    *,
    conn: int = 0,
    intended: int | None = None,
    origin: int | None = None,
    bytes_sent: int = 0,
    bytes_received: int = 0,
    items: int = 0,
    error: str | None = None,
) -> Sample:
    """The row of one ``kind`` request of ``spec`` sent at ``sent`` and answered at ``received``.

    ``intended`` defaults to ``sent`` and ``origin`` (where latency counts
    from) to ``intended``; ``error`` None means it succeeded.
    """
    intended = sent if intended is None else intended
    origin = intended if origin is None else origin
    return Sample(
        spec.cell,
        spec.transport,
        spec.client,
        spec.conn_mode,
        spec.repeat,
        conn,
        kind,
        intended,
        sent,
        received,
        received - origin,
        received - sent,
        bytes_sent,
        bytes_received,
        items,
        error is None,
        error,
        intended < warmup_end_ns or warmup_end_ns == 0,
    )


def echo_sample(
    spec: CellRun,
    kind: str,
    conn: int,
    intended: int,
    sent: int,
    received: int,
    warmup_end_ns: int,
    delta: tuple[int, int],
    error: str | None,
    origin: int | None = None,
) -> Sample:
    """An echo ``request`` or WebSocket ``connect`` row; ``delta`` is (bytes sent, received).

    A successful echo request carries one item (its echoed payload); a connect none.
    """
    return build_sample(
        spec,
        kind,
        sent,
        received,
        warmup_end_ns,
        conn=conn,
        intended=intended,
        origin=origin,
        bytes_sent=delta[0],
        bytes_received=delta[1],
        items=1 if error is None and kind == "request" else 0,
        error=error,
    )
