"""Which cells are compared: every HTTP cell against every WebSocket cell measured in
the same condition (run, workload, load, part, network profile, TLS), and that condition
in words. The verdict on each pair is :mod:`reports.verdict`'s (its docstring says how
cells pair).

::

    pairs = matched_pairs(run)                 # one row per pair: condition, cells, kind
    load_label(run.cells.iloc[0], run.meta)    # "open loop 400 req/s, 4 connections"
    condition_text("tls", "1.3")               # "TLS 1.3"
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from loadgen.schema import family
from reports.columns import HTTP_DELIVERY_MODES
from reports.fmt import float_or_nan
from reports.load import Run, cell_scenario
from reports.stats import realtime_mask

#: The client whose same-client pairs are the headline (see the module docstring).
HEADLINE_CLIENT = "lean"

#: Columns that describe the condition a pair was measured in, always present.
CONDITION_COLUMNS: tuple[str, ...] = ("run_id", "scenario", "workload", "mode", "pairing", "load")

#: Cell columns that become condition columns when ``run.cells`` has them with a value
#: (the ``[[parts]]`` entry of a multi-part scenario, network profile, TLS, the server a
#: cell's server_command started or its server_url names); cells differing in them are
#: never paired.
OPTIONAL_CONDITION_COLUMNS: tuple[str, ...] = ("part", "profile", "tls", "server")


def condition_extras(cells: pd.DataFrame) -> list[str]:
    """The :data:`OPTIONAL_CONDITION_COLUMNS` that ``cells`` has with at least one value."""
    return [c for c in OPTIONAL_CONDITION_COLUMNS if c in cells.columns and cells[c].notna().any()]


def matched_pairs(run: Run) -> pd.DataFrame:
    """Every HTTP cell against every WebSocket cell measured in the same condition.

    One row per pair: the condition columns (``run_id``, ``scenario``, ``workload``,
    ``mode`` — the HTTP cell's connection mode for echo, delivery mode for real-time,
    with its HTTP version when not 1.1 (``"keep-alive over HTTP/2"``) —,
    with the WebSocket cell's when it is not 1.1 either (``"keep-alive over HTTP/2 vs
    WebSocket over HTTP/2"``) —,
    ``pairing`` — the client library when both cells use the same one, else
    ``"<http client> vs <ws client>"`` —, ``load``, and ``part``/``profile``/``tls`` when
    the cells have them with a value), then ``same_client``, ``http_cell``, ``ws_cell``, ``kind``
    (``request`` or ``delivery``: which latency the pair compares). Same-client pairs come
    first (conditions in cell order, the lean client's pairs first within each), then the
    mixed pairs; otherwise the order is that of the cells in summary.json.

    HTTP versions: an HTTP cell pairs with the WebSocket cells of its own HTTP version
    when the condition has any (HTTP/2 against WebSocket over HTTP/2, RFC 8441; HTTP/1.1
    against WebSocket over HTTP/1.1), else with every WebSocket cell of the condition
    (HTTP/2 or HTTP/3 against WebSocket over HTTP/1.1 when that is the only one).
    """
    cells = run.cells
    extras = condition_extras(cells)
    columns = [*CONDITION_COLUMNS, *extras, "same_client", "http_cell", "ws_cell", "kind"]
    if cells.empty:
        return pd.DataFrame(columns=columns)
    fam = cells["family"].where(cells["family"].notna(), cells["transport"].map(_family))
    live = realtime_mask(cells)
    delivery = cells["delivery"] if "delivery" in cells.columns else pd.Series(None, cells.index)
    http_ok = (fam == "http") & (~live | delivery.isin(HTTP_DELIVERY_MODES))
    ws_ok = (fam == "ws") & (~live | delivery.eq("push") | delivery.isna())
    # users: a users sweep's cells pair at each count, as a rate sweep's at each rate.
    keys = ("run_id", "workload", "load_model", "target_rate", "users", "connections", *extras)
    group_keys = [k for k in keys if k in cells.columns]
    scenarios = {part.run_id: part.scenario_name for part in run.runs}
    metas = {part.run_id: part.meta for part in run.runs}
    rows = []
    keyed = cells.assign(_live=live, _rank=range(len(cells)))
    groups = keyed.groupby([*group_keys, "_live"], sort=False, dropna=False)
    for group_no, (_, group) in enumerate(groups):
        http = group[http_ok.loc[group.index]]
        ws = group[ws_ok.loc[group.index]]
        ws_versions = {_version(w) for _, w in ws.iterrows()}
        for _, h in http.iterrows():
            version = _version(h)
            for _, w in ws.iterrows():
                if version in ws_versions and _version(w) != version:
                    continue  # a WebSocket over its own HTTP version is its pair
                same = str(h["client"]) == str(w["client"])
                live_pair = bool(h["_live"])
                rows.append(
                    {
                        "run_id": str(h["run_id"]),
                        "scenario": scenarios.get(str(h["run_id"]), ""),
                        "workload": _text(h.get("workload")) or "echo",
                        "mode": _mode(h, live_pair, w),
                        "pairing": str(h["client"]) if same else f"{h['client']} vs {w['client']}",
                        "load": load_label(h, metas.get(str(h["run_id"]), {})),
                        **{k: h.get(k) for k in extras},
                        "same_client": same,
                        "http_cell": str(h["cell"]),
                        "ws_cell": str(w["cell"]),
                        "kind": "delivery" if live_pair else "request",
                        # Same-client pairs before every mixed one, the lean client's first.
                        "_order": (
                            not same,
                            group_no,
                            str(h["client"]) != HEADLINE_CLIENT,
                            h["_rank"],
                            w["_rank"],
                        ),
                    }
                )
    if not rows:
        return pd.DataFrame(columns=columns)
    # Conditions in cell order; same-client pairs first inside each.
    rows.sort(key=lambda r: r["_order"])
    return pd.DataFrame(rows, columns=columns)


def load_label(cell: Mapping[str, object] | pd.Series, meta: Mapping[str, object]) -> str:
    """How a cell was loaded, in words: ``"open loop 400 req/s, 4 connections"``,
    ``"closed loop, 8 connections"``, or for real-time workloads the users and their rates
    from meta.json (``"24 users, 1 msg/s each"``; the users count is the cell's own when
    summary.json has it), those of the cell's ``part`` in a multi-part run
    (:func:`reports.load.cell_scenario`).

    ``load_label(run.cells.iloc[0], run.meta)``."""
    workload = _text(cell.get("workload")) or "echo"
    if workload != "echo":
        scenario = cell_scenario(meta, cell.get("part"))
        rt = scenario.get("realtime") if isinstance(scenario.get("realtime"), Mapping) else {}
        parts = []
        # The cell's own count first: a users sweep's meta.json lists all of them.
        users = float_or_nan(cell.get("users"))
        if np.isfinite(users):
            parts.append(f"{users:,.0f} users")
        elif rt.get("users") is not None:
            parts.append(f"{rt['users']} users")
        if workload in ("messaging", "mix") and rt.get("message_rate"):
            parts.append(f"{rt['message_rate']:g} msg/s each")
        if workload in ("notifications", "mix") and rt.get("notification_rate"):
            parts.append(f"{rt['notification_rate']:g} notifications/s")
        if workload in ("presence", "mix") and rt.get("churn_fraction"):
            parts.append(f"{rt['churn_fraction']:.0%} churning")
        if workload in ("activity", "mix") and rt.get("activity_rate"):
            parts.append(f"{rt['activity_rate']:g} page views/s")
        return ", ".join(parts) or "real-time"
    conns = float_or_nan(cell.get("connections"))
    conn_text = f", {conns:,.0f} connections" if np.isfinite(conns) else ""
    rate = float_or_nan(cell.get("target_rate"))
    model = _text(cell.get("load_model"))
    if np.isfinite(rate):
        return f"open loop {rate:,.0f} req/s{conn_text}"
    return f"{model or 'closed'} loop{conn_text}"


def condition_text(column: str, value: object) -> str:
    """An optional condition in words: ``tls`` ``"1.3"`` -> ``"TLS 1.3"``, missing ->
    ``"no TLS"``; ``profile`` ``"wan"`` -> ``"wan link"``, missing -> ``"no link profile"``;
    ``part`` ``"messaging"`` -> ``"part messaging"``, missing -> ``"no part"``; ``server``
    ``"node"`` -> ``"node server"``, missing -> ``"rtbench's servers"``."""
    missing = value is None or (isinstance(value, float) and np.isnan(value))
    if column == "part":
        return "no part" if missing else f"part {value}"
    if column == "tls":
        if missing or value is False:
            return "no TLS"
        return "TLS" if value is True else f"TLS {value}"
    if column == "profile":
        return "no link profile" if missing else f"{value} link"
    if column == "server":
        return "rtbench's servers" if missing else f"{value} server"
    return f"{column} {'–' if missing else value}"


def _mode(cell: pd.Series, live: bool, ws: pd.Series | None = None) -> str:
    """The HTTP cell's mode: connection mode (echo) or delivery mode (real-time), with
    the HTTP version when it is not 1.1 (``"keep-alive over HTTP/2"``), and the
    WebSocket's when that is not 1.1 (``"keep-alive over HTTP/2 vs WebSocket over
    HTTP/2"``)."""
    mode = _text(cell.get("delivery" if live else "conn_mode"))
    version = _version(cell)
    text = f"{mode} over HTTP/{version}" if version != "1.1" else mode
    if ws is not None and (ws_version := _version(ws)) != "1.1":
        text += f" vs WebSocket over HTTP/{ws_version}"
    return text


def _version(cell: pd.Series) -> str:
    """A cell's HTTP version; "1.1" when summary.json has none (results written before
    HTTP/2 cells existed, and WebSockets over HTTP/1.1)."""
    return _text(cell.get("http_version")) or "1.1"


def _family(transport: object) -> str:
    return family(str(transport))


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""
