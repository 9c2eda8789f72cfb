"""TOML text for the small scenarios tests write.

::

    SCENARIO = '''
    [scenario]
    name = "tiny"
    ...
    ''' + cells_toml("http/aiohttp/keep-alive", "ws-aiohttp/aiohttp")

    toml_text({"scenario": {"name": "two"}, "parts": [part_table("echo", "ws-aiohttp/aiohttp")]})
    one_repeat_toml("net", 20, "http/aiohttp", network={"profiles": ["wan"]})
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: A cell: ``transport/client[/conn_mode]``, or its ``[[cells]]`` keys as they are.
Cell = str | Mapping[str, Any]


def cells_toml(*cells: str) -> str:
    """One ``[[cells]]`` table per ``transport/client[/conn_mode]``, a blank line between."""
    tables = []
    for cell in cells:
        transport, client, *conn_mode = cell.split("/")
        lines = ["[[cells]]", f'transport = "{transport}"', f'client = "{client}"']
        lines += [f'conn_mode = "{mode}"' for mode in conn_mode]
        tables.append("\n".join(lines) + "\n")
    return "\n".join(tables)


def toml_value(value: object) -> str:
    """``value`` (string, number, boolean, list or dict) as an inline TOML value."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + "}"
    return repr(value)


def _is_tables(value: object) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, Mapping) for v in value)


def _table_lines(path: str, table: Mapping[str, Any]) -> list[str]:
    """The keys of ``table``, then its sub-tables, their headers prefixed by ``path.``."""
    lines = [
        f"{k} = {toml_value(v)}"
        for k, v in table.items()
        if not isinstance(v, Mapping) and not _is_tables(v)
    ]
    for key, value in table.items():
        name = f"{path}.{key}" if path else key
        if isinstance(value, Mapping):
            lines += ["", f"[{name}]", *_table_lines(name, value)]
        elif _is_tables(value):
            for item in value:
                lines += ["", f"[[{name}]]", *_table_lines(name, item)]
    return lines


def toml_text(data: Mapping[str, Any]) -> str:
    """TOML for a scenario dict: a dict is a ``[table]``, a list of dicts an array of tables
    (``[[cells]]``, ``[[parts]]``, ``[[parts.cells]]``), at any depth."""
    return "\n".join(_table_lines("", data)).lstrip("\n") + "\n"


def cell_table(spec: Cell, **keys: Any) -> dict[str, Any]:
    """The ``[[cells]]`` keys of ``transport/client[/conn_mode]`` and ``keys`` (tls, delivery)."""
    if isinstance(spec, Mapping):
        return {**spec, **keys}
    transport, client, *conn_mode = spec.split("/")
    mode = {"conn_mode": conn_mode[0]} if conn_mode else {}
    return {"transport": transport, "client": client, **mode, **keys}


def part_table(name: str, *cells: Cell, **keys: Any) -> dict[str, Any]:
    """A ``[[parts]]`` dict: ``name``, ``keys`` (``workload``, ``load={...}``,
    ``realtime={...}``...) and ``cells``."""
    return {"name": name, **keys, "cells": [cell_table(c) for c in cells]}


def open_load(rate: float, connections: int = 2) -> dict[str, Any]:
    """An open-loop ``[load]``: ``rate`` requests/s over ``connections``."""
    return {"model": "open", "rate": rate, "connections": connections}


def one_repeat_toml(
    name: str, rate: float, *cells: Cell, duration_s: float = 0.6, **tables: Any
) -> str:
    """A scenario of ``cells``: one repeat, 0.2 s of warm-up then ``duration_s`` at ``rate``
    requests/s over 2 connections; ``tables`` (``network={...}``) go in as they are."""
    scenario = {"name": name, "repeats": 1, "duration_s": duration_s, "warmup_s": 0.2}
    data = {"scenario": scenario, "load": open_load(rate), **tables}
    return toml_text({**data, "cells": [cell_table(c) for c in cells]})
