"""When the chunks of one direction of an emulated link leave it: pure arithmetic, no I/O.

::

    line = LinkTimeline(delay_s=0.025, jitter_s=0.002, rate_bytes_per_s=1e6, gate=accepted)
    for release_at, size in line.schedule(time.monotonic(), len(chunk)):
        ...                                   # write ``size`` bytes at ``release_at``
    fin_at = line.schedule_eof(time.monotonic())
    release_at = line.schedule_datagram(time.monotonic(), len(datagram))   # UDP: never cut

Release times are absolute (the same clock as ``arrival``), never earlier than
the previous release (nothing is reordered), and a rate-limited chunk is cut
into pieces of at most one MSS or 1 ms of transmission, whichever is larger.
A datagram is not cut: it crosses the token bucket whole and leaves at once.
"""

from __future__ import annotations

import math
import random

#: Smallest piece a rate-limited chunk is cut into (a typical TCP MSS).
MSS_BYTES = 1448


class LinkTimeline:
    """When the chunks of one direction leave the emulated link (pure arithmetic).

    ``schedule(arrival, nbytes)`` returns ``[(release_time, piece_bytes), ...]``:
    the chunk cut into pieces (one piece unless rate-limited), each released no
    earlier than ``gate``, after crossing the token bucket, plus ``delay ±
    jitter``, and never before the previous release.
    """

    def __init__(
        self,
        delay_s: float,
        jitter_s: float = 0.0,
        rate_bytes_per_s: float | None = None,
        *,
        gate: float = -math.inf,
        burst_bytes: int = 0,
        rng: random.Random | None = None,
    ) -> None:
        self.delay_s = delay_s
        self.jitter_s = jitter_s
        self.rate = rate_bytes_per_s
        self.gate = gate
        self.burst = float(burst_bytes)
        self.rng = rng or random.Random()
        self.last_release = -math.inf
        self._tokens = float(burst_bytes)
        self._tokens_at: float | None = None
        self.piece_bytes = (
            0 if rate_bytes_per_s is None else max(MSS_BYTES, int(rate_bytes_per_s / 1000))
        )

    def _delay(self) -> float:
        if self.jitter_s:
            return self.delay_s + self.rng.uniform(-self.jitter_s, self.jitter_s)
        return self.delay_s

    def _release(self, sent: float) -> float:
        release = max(self.last_release, sent + self._delay())
        self.last_release = release
        return release

    def _transmitted(self, start: float, nbytes: int) -> float:
        """When ``nbytes`` offered at ``start`` have crossed the token bucket."""
        assert self.rate is not None
        if self._tokens_at is not None:
            self._tokens = min(self.burst, self._tokens + (start - self._tokens_at) * self.rate)
        self._tokens_at = start
        self._tokens -= nbytes
        return start if self._tokens >= 0 else start - self._tokens / self.rate

    def schedule(self, arrival: float, nbytes: int) -> list[tuple[float, int]]:
        start = max(arrival, self.gate)
        if self.rate is None or nbytes == 0:
            return [(self._release(start), nbytes)]
        out = []
        step = self.piece_bytes
        for offset in range(0, nbytes, step):
            size = min(step, nbytes - offset)
            out.append((self._release(self._transmitted(start, size)), size))
        return out

    def schedule_datagram(self, arrival: float, nbytes: int) -> float:
        """When a datagram of ``nbytes`` arriving at ``arrival`` leaves, whole.

        The same arithmetic as :meth:`schedule` with one piece of ``nbytes``: the
        gate, the token bucket (a datagram is serialised by its full size), one
        ``delay ± jitter`` draw, and never before the previous release.
        """
        start = max(arrival, self.gate)
        if self.rate is not None and nbytes > 0:
            start = self._transmitted(start, nbytes)
        return self._release(start)

    def schedule_eof(self, arrival: float) -> float:
        """When a FIN (or reset) arriving at ``arrival`` is released, after all data."""
        return max(self.last_release, max(arrival, self.gate) + self.delay_s)
