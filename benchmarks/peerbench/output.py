"""Reading the peers' output: wrk's ``--latency`` report, h2load's summary and per-request
log, and ``ws_echo.mjs``'s events.

::

    figures = parse_wrk(text)            # p50_us, p99_us, requests, rate_per_s, errors
    figures = parse_h2load(text, log, 4) # the same, from h2load's summary and --log-file
    done = parse_node_events(lines)      # the node script's ``done`` event
    script = wrk_script(body)            # the Lua script that makes wrk POST ``body``
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

import numpy as np

_TIME_UNITS = {"us": 1.0, "ms": 1e3, "s": 1e6, "m": 60e6, "h": 3600e6}


def wrk_time_us(text: str) -> float:
    """A wrk time such as ``148.00us``, ``2.20ms`` or ``4.00s`` in microseconds."""
    for unit in sorted(_TIME_UNITS, key=len, reverse=True):
        if text.endswith(unit):
            try:
                return float(text[: -len(unit)]) * _TIME_UNITS[unit]
            except ValueError:
                break
    raise ValueError(f"not a wrk time: {text!r}")


def parse_wrk(output: str) -> dict[str, Any]:
    """The figures of ``wrk --latency`` output: p50/p99 (us), requests, seconds, rate, errors.

    Raises ValueError naming what is missing when the output is not a finished run.
    """
    found: dict[str, Any] = {"socket_errors": 0, "non_2xx": 0}
    for raw in output.splitlines():
        words = raw.split()
        if len(words) == 2 and words[0] in ("50%", "99%"):
            found[f"p{words[0][:-1]}_us"] = wrk_time_us(words[1])
        elif len(words) >= 4 and words[1:3] == ["requests", "in"]:
            found["requests"] = int(words[0])
            found["seconds"] = wrk_time_us(words[3].rstrip(",")) / 1e6
        elif raw.strip().startswith("Requests/sec:"):
            found["rate_per_s"] = float(words[-1])
        elif raw.strip().startswith("Socket errors:"):
            # "Socket errors: connect 0, read 0, write 0, timeout 0"
            counts = raw.split(":", 1)[1].split(",")
            found["socket_errors"] = sum(int(part.split()[-1]) for part in counts)
        elif raw.strip().startswith("Non-2xx or 3xx responses:"):
            found["non_2xx"] = int(words[-1])
    missing = [k for k in ("p50_us", "p99_us", "requests", "rate_per_s") if k not in found]
    if missing:
        raise ValueError(f"wrk output has no {', '.join(missing)} (was --latency given?)")
    found["errors"] = found["socket_errors"] + found["non_2xx"]
    return found


_H2LOAD_REQUESTS = re.compile(
    r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, "
    r"(\d+) errored, (\d+) timeout"
)
_H2LOAD_STATUS = re.compile(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx")


def parse_h2load(output: str, log: str, duration_s: float) -> dict[str, Any]:
    """The figures of an ``h2load -D duration --log-file LOG`` run: p50/p99 (us) of the
    2xx requests in ``log`` (h2load prints no percentiles; its log has one line per
    request: start time, status, microseconds to the end of the response), requests,
    rate over the measured ``duration_s``, errors (failed requests and non-2xx replies).

    Raises ValueError naming what is missing when the output is not a finished run.
    """
    found = _H2LOAD_REQUESTS.search(output)
    codes = _H2LOAD_STATUS.search(output)
    if found is None or codes is None:
        raise ValueError("h2load output has no requests/status codes summary (did it finish?)")
    failed = int(found.group(5))
    non_2xx = sum(int(codes.group(k)) for k in (2, 3, 4))
    elapsed = []
    for line in log.splitlines():
        fields = line.split("\t")
        if len(fields) >= 3 and fields[1].startswith("2"):
            elapsed.append(int(fields[2]))
    if not elapsed:
        raise ValueError("h2load's log has no successful request")
    values = np.asarray(elapsed, dtype=np.float64)
    p50, p99 = np.percentile(values, [50.0, 99.0])
    return {
        "p50_us": float(p50),
        "p99_us": float(p99),
        "requests": len(elapsed),
        "seconds": duration_s,
        "rate_per_s": len(elapsed) / duration_s,
        "errors": failed + non_2xx,
    }


def parse_node_events(lines: Iterable[str]) -> dict[str, Any]:
    """The ``done`` event of ``ws_echo.mjs``'s output lines; other lines are skipped.

    Raises ValueError when no line is a done event with the figures.
    """
    done: dict[str, Any] | None = None
    for line in lines:
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, dict) and event.get("event") == "done":
            done = event
    if done is None:
        raise ValueError("node printed no done event")
    missing = [k for k in ("count", "errors", "p50_us", "p99_us", "rate_per_s") if k not in done]
    if missing:
        raise ValueError(f"node's done event has no {', '.join(missing)}")
    return done


def lua_string(data: bytes) -> str:
    """``data`` as a Lua string literal: every byte a decimal escape, so nothing needs quoting."""
    return '"' + "".join(f"\\{b}" for b in data) + '"'


def wrk_script(body: bytes) -> str:
    """The wrk Lua script that POSTs ``body`` as JSON on every request."""
    return (
        "-- POST rtbench's echo envelope (written by benchmarks/peers.py).\n"
        'wrk.method = "POST"\n'
        'wrk.headers["Content-Type"] = "application/json"\n'
        f"wrk.body = {lua_string(body)}\n"
    )
