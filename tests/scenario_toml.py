"""TOML text for the ``[[cells]]`` of the small scenarios tests write.

::

    SCENARIO = '''
    [scenario]
    name = "tiny"
    ...
    ''' + cells_toml("http/aiohttp/keep-alive", "ws-aiohttp/aiohttp")
"""

from __future__ import annotations


def cells_toml(*cells: str) -> str:
    """One ``[[cells]]`` table per ``transport/client[/conn_mode]``, a blank line between."""
    tables = []
    for cell in cells:
        transport, client, *conn_mode = cell.split("/")
        lines = ["[[cells]]", f'transport = "{transport}"', f'client = "{client}"']
        lines += [f'conn_mode = "{mode}"' for mode in conn_mode]
        tables.append("\n".join(lines) + "\n")
    return "\n".join(tables)
