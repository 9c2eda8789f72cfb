"""Charts (matplotlib, Agg canvas, no pyplot state) for the report and the notebook: one
module per family (style, latency, over_time, verdict, sweep, users_sweep, costs), all named here.

::

    from reports import charts
    fig = charts.percentile_spectrum(run.samples)   # HdrHistogram-style, one line per cell
    fig.savefig("spectrum.png")
    uri = charts.fig_to_data_uri(charts.cdf(run.samples))   # "data:image/png;base64,..."
    png = charts.fig_to_png(fig)                    # bytes, e.g. for IPython.display.Image

    charts.verdict_chart(reports.verdict_table(run))   # ratio and 95 % CI per pair, vs 3x
    charts.latency_over_time(run.samples)           # p50/p99 per time bin, a panel per cell
    charts.sweep_chart(run.cells)                   # rate sweep: the hockey stick and its knee
    charts.users_sweep_chart(run.cells, "rss_mb_server")   # users sweep: memory, CPU, p99
    costs = reports.costs.cost_table(run.cells, {run.run_id: run.meta})
    charts.echo_bytes_chart(costs)                  # bytes per request: overhead vs payload
    charts.cpu_chart(costs)                         # CPU per message: server and client
    charts.memory_chart(costs)                      # server memory per connection (or user)

    charts.delivery_spectrum(run.deliveries)        # real-time: delivery latency by percentile
    charts.delivery_cdf(run.deliveries)
    charts.delivery_over_time(run.deliveries)
    charts.staleness_chart(run.deliveries, 500)     # short polling against its interval
    split = reports.costs.bytes_per_useful_split(run.samples, run.deliveries)
    charts.bytes_per_useful_chart(split)            # stacked bars: request/reply/push bytes

Colour follows the transport (HTTP blues, ws-aiohttp oranges, ws-websockets greens; the
shade tells the client apart), line style follows client and connection mode (solid:
reused connection with httpx/websockets, dash-dot: reused with aiohttp, dashed: new
connection per request with httpx, dotted: new connection with aiohttp). Only measured
samples count: warmup and failed requests are dropped (``reports.stats.measured_samples``).

Delivery charts keep the transport colours and give the line style to the delivery mode
(solid: WebSocket push, dash-dot: Server-Sent Events, dashed: long polling, dotted: short
polling); only measured deliveries count: warmup, deferred and duplicate rows are dropped
(``reports.stats.measured_deliveries``). The verdict chart is coloured by verdict instead.
"""

from __future__ import annotations

from reports.charts.costs import BYTES_PARTS as BYTES_PARTS
from reports.charts.costs import ECHO_BYTES_PARTS as ECHO_BYTES_PARTS
from reports.charts.costs import bytes_per_useful_chart as bytes_per_useful_chart
from reports.charts.costs import cpu_chart as cpu_chart
from reports.charts.costs import echo_bytes_chart as echo_bytes_chart
from reports.charts.costs import memory_chart as memory_chart
from reports.charts.costs import staleness_chart as staleness_chart
from reports.charts.latency import cdf as cdf
from reports.charts.latency import delivery_cdf as delivery_cdf
from reports.charts.latency import delivery_spectrum as delivery_spectrum
from reports.charts.latency import percentile_spectrum as percentile_spectrum
from reports.charts.over_time import delivery_over_time as delivery_over_time
from reports.charts.over_time import latency_over_time as latency_over_time
from reports.charts.style import CLIENT_SHADE as CLIENT_SHADE
from reports.charts.style import DELIVERY_LEGEND as DELIVERY_LEGEND
from reports.charts.style import DELIVERY_LINESTYLES as DELIVERY_LINESTYLES
from reports.charts.style import LINESTYLES as LINESTYLES
from reports.charts.style import SPECTRUM_TICKS as SPECTRUM_TICKS
from reports.charts.style import TRANSPORT_SHADES as TRANSPORT_SHADES
from reports.charts.style import cell_style as cell_style
from reports.charts.style import delivery_style as delivery_style
from reports.charts.style import fig_to_data_uri as fig_to_data_uri
from reports.charts.style import fig_to_png as fig_to_png
from reports.charts.style import finish as finish
from reports.charts.style import format_ms_axis as format_ms_axis
from reports.charts.style import latency_kind as latency_kind
from reports.charts.style import legend_or_empty as legend_or_empty
from reports.charts.style import n_label as n_label
from reports.charts.style import new_figure as new_figure
from reports.charts.style import row_name as row_name
from reports.charts.sweep import sweep_chart as sweep_chart
from reports.charts.users_sweep import USERS_SWEEP_METRICS as USERS_SWEEP_METRICS
from reports.charts.users_sweep import users_sweep_chart as users_sweep_chart
from reports.charts.verdict import VERDICT_COLOURS as VERDICT_COLOURS
from reports.charts.verdict import VERDICT_MARKERS as VERDICT_MARKERS
from reports.charts.verdict import verdict_chart as verdict_chart
