"""Real-time workloads: virtual users that message, watch presence, get notified, browse.

:func:`loadgen.realtime.engine.run_realtime` runs one repeat of one cell;
deliveries are tracked end to end by :class:`loadgen.realtime.tracker.Tracker`.
"""
