"""The CI gate: a run against a saved baseline, and against the scenario's absolute limits.

Every module reads results through :func:`reports.load.load` and bootstraps with
:mod:`reports.bootstrap`, like the verdict::

    from reports.gate.output import run_compare     # rtbench compare: prints, writes, exit 0/1/2
    from reports.gate.compare import compare_runs, load_run, parse_specs
    from reports.gate.baseline import save_baseline, resolve_run, list_baselines
    from reports.gate.slo import check_slo          # the scenario's [slo] table, after a run

``compare`` (the statistics of a comparison), ``output`` (its table, compare.md and
compare.json), ``baseline`` (baselines/NAME/), ``slo`` (absolute limits, slo.json).
"""
