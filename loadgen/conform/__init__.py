"""``rtbench conform``: drive any server through the wire protocol and report each check.

::

    results = await run_checks(target)           # target: loadgen.conform.target.Target
    all(r.status != FAILED for r in results)

The protocol is docs/protocol.md with the JSON Schemas in ``servers/schema/``;
the checks are in :mod:`loadgen.conform.checks`.
"""
