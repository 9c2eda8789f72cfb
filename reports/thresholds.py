"""The limits the report's checks and charts judge cells by, in one place.

::

    from reports.thresholds import RATE_REACHED
    achieved < RATE_REACHED * offered     # the cell did not get its load
"""

from __future__ import annotations

#: Client CPU utilisation above which the load generator, not the server, may be measured.
SATURATION_THRESHOLD = 0.9

#: Fraction of the offered open-loop rate below which a cell did not get its load.
RATE_REACHED = 0.95

#: Coefficient of variation of the per-repeat p50 above which repeats disagree too much.
SPREAD_CV = 0.2

#: The same for the per-repeat p99, which is noisier by nature.
SPREAD_CV_P99 = 0.5
