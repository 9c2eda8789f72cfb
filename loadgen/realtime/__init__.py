"""Real-time workloads: virtual users that message, watch presence, get notified, browse.

:func:`loadgen.realtime.engine.run_realtime` runs one repeat of one cell;
deliveries are tracked end to end by :class:`loadgen.realtime.tracker.Tracker`.

The asyncio driver: :mod:`.engine` (one repeat: behaviours as tasks),
:mod:`.users` (a virtual user), :mod:`.conns` (its connections; the lean
client's in :mod:`.lean_conns`, over HTTP/2 in :mod:`.lean_h2_conns`). The
gevent driver of the locust engine has the same module names under
:mod:`loadgen.locust_engine`. Without I/O, and shared
by both drivers: :mod:`.stage` (what behaviours share, settling their steps,
lateness, publisher lanes), :mod:`.schedule` (what each user does and when),
:mod:`.user_state` (a user's state and connections), :mod:`.stats` (a repeat's
counters), :mod:`.part` (the part record's deliveries), :mod:`.tracker`
(delivery accounting), :mod:`.groups` (groups, churners, topics),
:mod:`.samples` (a Sample row per request), :mod:`.receive` (items and gaps a
reader receives), :mod:`.replies` (reading and measuring a reply), :mod:`.sse`
(the event stream format), :mod:`.visits` (time on site), :mod:`.params` (the
``[realtime]`` table).
"""
