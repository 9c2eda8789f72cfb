"""The pieces :func:`loadgen.orchestrator.run_scenario` runs a scenario with.

``repeat`` runs one repeat of one cell (server, link, load generators), ``watch``
follows the load generators' events while it runs, ``stop`` turns SIGTERM and
Ctrl-C into a clean stop, ``cell`` derives a cell's server options, spec and
summary identity, ``network`` checks and prepares the link, ``files`` writes the
results folder, and ``interactive`` starts one cell's server for interactive tools.
"""
