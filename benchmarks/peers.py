"""rtbench's load generator against native peers (wrk, node's ws), side by side in one run.

::

    make perf-peers                    # installs wrk and ws when missing, then runs this
    .venv/bin/python benchmarks/peers.py [--duration 4] [--warmup 1] [--rounds 2] [--out DIR]

Every point starts a fresh rtbench server (``python -m servers KIND``, pinned to the
first CPU by :func:`loadgen.procs.start_server`) and one load generator pinned to the
second: wrk or ``benchmarks/peers/ws_echo.mjs`` (node's ``ws``) as the peer, or
rtbench's own engine (``python -m loadgen.worker``, :func:`loadgen.procs.start_worker`)
with each of its clients. Points are interleaved (peer, client, client, ..., peer, ...)
and the whole list is repeated ``--rounds`` times. Measured for each point: p50/p99,
requests or messages per second, and the server's and the load generator's CPU % over
the measured window.

Writes ``peers.json`` (settings, pinning, versions, git commit, every point, the ratio
rows) and ``peers.md`` (the ratio table) to the results folder and prints the table.
Exits 0 when every point ran, 1 when one failed to run (results are still written),
2 when a peer is missing or an argument is bad; never on a slow figure. A client that
:func:`loadgen.clients.base.make_client` refuses is skipped with a note.

The work is done by the ``peerbench`` package beside this script (one module a job).
"""

from peerbench.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
