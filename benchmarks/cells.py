"""The cell the micro-benchmarks measure: one HTTP keep-alive cell of the lean client.

::

    spec = CellRun(**HTTP_CELL, base_url=..., duration_s=...)
    sample = Sample(**HTTP_CELL, repeat=0, ...)
"""

HTTP_CELL = {
    "cell": "http/lean/keep-alive",
    "transport": "http",
    "client": "lean",
    "conn_mode": "keep-alive",
}
