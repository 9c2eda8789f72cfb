"""The charts of a scenario section of the HTML report, with their titles and captions::

    items = request_charts(part, cost_table(part.cells, {part.run_id: part.meta}))
    items = delivery_charts(part, costs)   # [{"title", "uri", "caption"}, ...]

Which chart a section shows depends on what its cells measured; the drawing itself is
:mod:`reports.charts`'.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

import reports.charts as charts
from reports.costs import bytes_per_useful_split
from reports.fmt import as_float
from reports.load import Run, cell_scenario
from reports.stats import completed_run, measured_delivery_mask, measured_samples
from reports.sweeps import sweep_cells
from reports.users_sweeps import users_sweep_cells, users_sweep_table


def chart(title: str, fig: Figure, caption: str) -> dict[str, str]:
    """One chart as the template shows it: a title, the figure as a PNG data URI, a caption."""
    return {"title": title, "uri": charts.fig_to_data_uri(fig), "caption": caption}


def request_charts(run: Run, costs: pd.DataFrame) -> list[dict[str, str]]:
    """The echo cells' charts: latency spectrum, CDF, over time, sweep, bytes, CPU, memory."""
    run = completed_run(run)  # a failed repeat's rows are no measurement of its cell
    echo_costs = costs[costs["per"] == "request"]
    out = [
        chart(
            "Latency by percentile",
            charts.percentile_spectrum(run.samples),
            "Each line is one cell; further right is rarer. Lines stop at the highest "
            "percentile the cell's sample count supports.",
        ),
        chart(
            "Cumulative distribution",
            charts.cdf(run.samples),
            "Share of requests completed within a given latency; further left is faster.",
        ),
    ]
    if not measured_samples(run.samples).empty:
        out.append(
            chart(
                "Latency over time",
                charts.latency_over_time(run.samples),
                "The median (thick) and 99th percentile (thin) of each time bin, repeats one "
                "after the other: a flat line means a steady run; spikes are stalls, a slope "
                "at the start a warm-up the warmup period did not absorb.",
            )
        )
    if not sweep_cells(run.cells).empty:
        out.append(
            chart(
                "Throughput against latency over the rate sweep",
                charts.sweep_chart(run.cells),
                "Each line is one cell run at rising open-loop rates; latency stays flat until "
                "the server (or client) saturates, then climbs steeply: the knee. The ringed "
                "point is the highest rate whose p99 met the objective (dashed line).",
            )
        )
    out += [
        chart(
            "Bytes per request",
            charts.echo_bytes_chart(echo_costs),
            "TCP payload bytes on the wire per echo request and its reply, split into the "
            "payload and everything around it: HTTP request and status lines and headers, or "
            "WebSocket frame headers, plus the JSON envelope.",
        ),
        chart(
            "CPU per request",
            charts.cpu_chart(echo_costs),
            "CPU time per request of the server (solid) and the load generator (hatched); "
            "the client figure is the Python client library's cost, not the protocol's.",
        ),
        chart(
            "Server memory per connection",
            charts.memory_chart(echo_costs),
            "The server's peak resident memory divided by the number of connections; it "
            "includes the interpreter's fixed baseline, so it only compares like with like.",
        ),
    ]
    return out


def delivery_charts(run: Run, costs: pd.DataFrame) -> list[dict[str, str]]:
    """Delivery latency charts (when any delivery was measured), a users sweep's charts
    and the cost charts."""
    run = completed_run(run)
    live_costs = costs[costs["per"] == "message"]
    out = []
    if measured_delivery_mask(run.deliveries).any():
        out += [
            chart(
                "Delivery latency by percentile",
                charts.delivery_spectrum(run.deliveries),
                "Time from an item's cause (a send, a publish, a user going on- or offline) "
                "to its receipt by each recipient, one line per cell; solid lines are "
                "WebSocket push, dash-dot Server-Sent Events, dashed long polling, dotted short "
                "polling. Warmup, duplicate "
                "and deferred (recipient offline) deliveries are left out.",
            ),
            chart(
                "Cumulative distribution of delivery latency",
                charts.delivery_cdf(run.deliveries),
                "Share of deliveries that arrived within a given latency; further left is faster.",
            ),
            chart(
                "Delivery latency over time",
                charts.delivery_over_time(run.deliveries),
                "The median (thick) and 99th percentile (thin) delivery latency of each time "
                "bin, repeats one after the other.",
            ),
        ]
        if run.deliveries["delivery"].eq("short-poll").any():
            interval = poll_interval_ms(run)
            out.append(
                chart(
                    "Short polling: staleness against the poll interval",
                    charts.staleness_chart(run.deliveries, interval),
                    "How old items were when a short poll fetched them. With items appearing "
                    "at random moments the wait is spread evenly between 0 and the poll "
                    "interval, averaging half of it: the price of polling that push avoids.",
                )
            )
    out += users_sweep_charts(run)
    out += [
        chart(
            "Bytes per useful message",
            charts.bytes_per_useful_chart(bytes_per_useful_split(run.samples, run.deliveries)),
            "TCP payload bytes on the wire per useful message (a delivery, or an accepted "
            "activity event), split into what clients sent (polls, sends), replies they "
            "received (poll replies carry the items) and frames the server pushed.",
        ),
        chart(
            "CPU per useful message",
            charts.cpu_chart(live_costs),
            "CPU time per useful message of the server (solid) and the load generator "
            "(hatched); empty polls cost CPU without delivering anything.",
        ),
        chart(
            "Server memory per user",
            charts.memory_chart(live_costs),
            "The server's peak resident memory divided by the number of virtual users; it "
            "includes the interpreter's fixed baseline.",
        ),
    ]
    return out


#: The users sweep's charts: column, title and caption.
USERS_SWEEP_CHARTS: tuple[tuple[str, str, str], ...] = (
    (
        "rss_mb_server",
        "Server memory against connected users",
        "The server's peak resident memory at each user count, one line per cell; the "
        "slope is the memory each further connected user costs, the intercept the "
        "interpreter's baseline.",
    ),
    (
        "cpu_util_server",
        "Server CPU against connected users",
        "The server's CPU time over the measured window at each user count (1.0: one CPU "
        "busy the whole time); polling pays for every request, push for every item.",
    ),
    (
        "delivery_p99_ms",
        "Delivery p99 against connected users",
        "The 99th percentile delivery latency at each user count; the dashed line is the "
        "objective, the ringed point each cell's largest count that met it.",
    ),
)


def users_sweep_charts(run: Run) -> list[dict[str, str]]:
    """A users sweep's charts (memory, CPU, delivery p99 against users); none without one."""
    if users_sweep_cells(run.cells).empty:
        return []
    sweeps = users_sweep_table(run.cells)
    return [
        chart(title, charts.users_sweep_chart(run.cells, metric, sweeps), caption)
        for metric, title, caption in USERS_SWEEP_CHARTS
    ]


def poll_interval_ms(run: Run) -> float | None:
    """meta.json ``scenario.realtime.poll_interval_ms`` (of the part, for a part's Run)."""
    realtime = cell_scenario(run.meta, run.part_name).get("realtime")
    value = realtime.get("poll_interval_ms") if isinstance(realtime, dict) else None
    number = as_float(value)
    return number if number and np.isfinite(number) else None
