"""The CI gate: a run against a saved baseline, and against the scenario's absolute limits.

Every module reads results through :func:`reports.load.load` and bootstraps with
:mod:`reports.bootstrap`, like the verdict::

    from reports.gate.output import run_compare     # rtbench compare: prints, writes, exit 0/1/2
    from reports.gate.compare import compare_runs   # compare_runs(load_run(a), load_run(b), specs)
    from reports.gate.runs import load_run
    from reports.gate.limits import parse_specs
    from reports.gate.baseline import save_baseline, resolve_run, list_baselines
    from reports.gate.slo import check_slo          # the scenario's [slo] table, after a run

``compare`` (matching the runs' cells and limits) over ``runs`` (loading a run),
``mismatch`` (refusing runs from another machine or load), ``metrics``, ``limits``
(``--max-regression`` specs), ``change`` (the statistics of one change) and ``result``
(rows, verdict, exit code); ``output`` (its table, compare.md and
compare.json), ``baseline`` (baselines/NAME/), ``slo`` (absolute limits, slo.json).
"""
