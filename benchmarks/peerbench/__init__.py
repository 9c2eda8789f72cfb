"""rtbench's load generator against native peers (wrk, node's ws): ``benchmarks/peers.py``
runs :func:`peerbench.cli.main`.

One module a job: :mod:`.groups` (what is compared, in which order), :mod:`.tools`
(the peers' files, versions, what is missing), :mod:`.runner` (measuring one point),
:mod:`.sampling` (reading a load generator while sampling CPU), :mod:`.output` (wrk's
and node's output), :mod:`.ratios` (client against peer), :mod:`.tables` and
:mod:`.report` (the results).
"""
