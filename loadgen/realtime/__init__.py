"""Real-time workloads: virtual users that message, watch presence, get notified, browse.

:func:`loadgen.realtime.engine.run_realtime` runs one repeat of one cell;
deliveries are tracked end to end by :class:`loadgen.realtime.tracker.Tracker`.

Modules: :mod:`.engine` (one repeat under asyncio), :mod:`.users` (a virtual
user), :mod:`.conns` (its connections), :mod:`.params` (the ``[realtime]``
table), :mod:`.tracker` (delivery accounting). Without I/O, and shared with
the locust engine (:mod:`loadgen.locust_engine`): :mod:`.schedule` (what each
user does and when), :mod:`.groups` (groups, churners, topics),
:mod:`.samples` (a Sample row per request), :mod:`.receive` (items and gaps
a reader receives), :mod:`.replies` (reading a reply envelope), :mod:`.sse`
(the event stream format), :mod:`.visits` (time on site).
"""
