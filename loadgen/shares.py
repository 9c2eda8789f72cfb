"""How one cell's load is shared out between its load-generator processes.

The orchestrator gives each of ``client_processes`` workers its own spec::

    specs = process_specs(spec, 2)      # CellRun per process, process_index 0 and 1

and each worker takes its share of the cell from its spec::

    my_connections(spec)                # echo: connection numbers, e.g. range(1, 8, 2)
    my_groups(n_groups, spec)           # real time: indices of the groups it runs
    id_counter(spec)                    # message and notification ids, unique across processes

Echo connections are dealt out round robin and keep their number in the whole
cell, so ``conn`` stays unique and each connection keeps its own slot of the
cell's open-loop schedule (:func:`loadgen.pacer.split_rate` over all of them):
the processes together offer exactly the cell's rate. Real-time users go by
whole groups, so everyone who can receive an item from a user runs in that
user's process and each process's tracker accounts for every delivery it owes.
"""

from __future__ import annotations

import dataclasses
import itertools

from loadgen.cellspec import CellRun


def process_specs(spec: CellRun, processes: int) -> list[CellRun]:
    """``spec`` once per process, with ``processes``, ``process_index`` and a share of
    ``max_requests`` (the whole budget is spent across them, never more)."""
    if processes < 1:
        raise ValueError(f"processes must be >= 1, not {processes}")
    share, extra = divmod(spec.max_requests, processes)
    return [
        dataclasses.replace(
            spec,
            processes=processes,
            process_index=i,
            max_requests=max(1, share + (1 if i < extra else 0)),
        )
        for i in range(processes)
    ]


def my_connections(spec: CellRun) -> range:
    """The numbers of the echo connections this process runs (every ``processes``-th)."""
    return range(spec.process_index, spec.connections, spec.processes)


def my_groups(n_groups: int, spec: CellRun) -> list[int]:
    """The indices of the real-time groups this process runs (every ``processes``-th)."""
    return list(range(spec.process_index, n_groups, spec.processes))


def id_counter(spec: CellRun) -> itertools.count[int]:
    """Item ids from 1 up, strided so no two processes of a cell use the same one."""
    return itertools.count(spec.processes + spec.process_index, spec.processes)


def tag(spec: CellRun) -> str:
    """A prefix for names this process makes up (topics, publishers); empty for one process."""
    return f"p{spec.process_index}-" if spec.processes > 1 else ""
