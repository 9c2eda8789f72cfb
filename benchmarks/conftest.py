"""Micro-benchmarks of rtbench's hot paths (pytest-benchmark); not part of ``make test``.

Run them with ``make perf``: each run is saved under ``.benchmarks/`` and
compared with the previous one, failing when a benchmark's mean got more than
25 % slower. They live outside ``tests/`` so the normal test run never
collects them (``testpaths = ["tests"]``).

``peers.py`` is a script, not a test module (``make perf-peers`` runs it): it
measures rtbench's clients against wrk and node's ``ws`` (``peers/``); its work
is in the ``peerbench`` package. ``cells.py`` holds the cell the benchmarks share.
"""
