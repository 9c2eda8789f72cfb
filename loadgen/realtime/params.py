"""Parameters of a real-time workload, as the ``[realtime]`` table of a scenario.

::

    [realtime]
    users = 40              # virtual users, in groups (rooms) of group_size
    group_size = 4
    message_rate = 0.5      # messages per user per second (0: no messaging)
    direct_ratio = 0.5      # share of messages sent to one member rather than the room
    poll_interval_ms = 500  # short polling
    long_poll_timeout_ms = 10000
    churn_fraction = 0.0    # share of each group that goes offline and back (presence)
    online_s = 3.0          # how long a churner stays online, then offline
    offline_s = 4.0
    presence_timeout_s = 2.0
    notification_rate = 0.0 # notifications per second in total
    fanout = 10             # subscribers per topic
    publishers = 1          # system publishers sharing the rate, each on its own connection
                            # (the locust engine runs one per process)
    activity_rate = 0.0     # page views per user per second while visiting
    visit_s = 3.0
    idle_timeout_s = 1.0    # server-side session idle timeout
    drain_s = 3.0           # after the load stops, how long receivers may catch up
    send_queue = 1000       # server's per-connection push queue bound
    connect_rate = 500.0    # set-up: new users connected per second, in all processes
    seed = 1
"""

from __future__ import annotations

from typing import Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

#: The lowest non-zero per-second rate a real-time setting may have (one event in 1000 s).
MIN_RATE = 0.001


class RealtimeParams(BaseModel):
    """What the virtual users do; see the module docstring for the TOML form."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    users: int = Field(default=20, ge=2, le=20_000)
    group_size: int = Field(default=4, ge=2, le=1_000)
    message_rate: float = Field(default=0.0, ge=0, le=1_000)
    direct_ratio: float = Field(default=0.5, ge=0, le=1)
    message_bytes: int = Field(default=64, ge=0, le=1_000_000)
    poll_interval_ms: int = Field(default=500, ge=10, le=60_000)
    long_poll_timeout_ms: int = Field(default=10_000, ge=100, le=60_000)
    churn_fraction: float = Field(default=0.0, ge=0, le=0.9)
    online_s: float = Field(default=3.0, gt=0, le=3600)
    offline_s: float = Field(default=4.0, gt=0, le=3600)
    presence_timeout_s: float = Field(default=2.0, gt=0, le=600)
    notification_rate: float = Field(default=0.0, ge=0, le=100_000)
    fanout: int = Field(default=10, ge=1, le=20_000)
    #: Publishers share notification_rate, so one slow publish does not delay the others.
    publishers: int = Field(default=1, ge=1, le=1_000)
    activity_rate: float = Field(default=0.0, ge=0, le=1_000)
    visit_s: float = Field(default=3.0, gt=0, le=3600)
    idle_timeout_s: float = Field(default=1.0, gt=0, le=3600)
    drain_s: float = Field(default=3.0, ge=0, le=600)
    send_queue: int = Field(default=1000, ge=1, le=1_000_000)
    inbox_retention: int = Field(default=100_000, ge=10, le=10_000_000)
    #: Set-up opens this many users' connections a second, shared by the cell's load
    #: generators, so thousands of users do not arrive as one burst of SYNs.
    connect_rate: float = Field(default=500.0, ge=1, le=100_000)
    seed: int = 1

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.group_size > self.users:
            raise ValueError("group_size cannot exceed users")
        if self.churn_fraction and self.churners_per_group == 0:
            # Nobody would go offline: the presence schedule would have no one to run.
            raise ValueError(
                f"churn_fraction = {self.churn_fraction:g} with group_size = "
                f"{self.group_size} makes no churner in a group ({self.group_size} x "
                f"{self.churn_fraction:g} rounds to 0): give churn_fraction >= "
                f"{0.5 / self.group_size:.3g}, or 0 for no churn"
            )
        if self.churn_fraction and self.offline_s <= self.presence_timeout_s + 1.0:
            raise ValueError(
                "offline_s must exceed presence_timeout_s + 1 s, or an HTTP user's absence "
                "is never seen by the server"
            )
        for key in ("message_rate", "notification_rate"):
            rate = getattr(self, key)
            if 0 < rate < MIN_RATE:
                # 1 / rate seconds between events would not fit a nanosecond clock.
                raise ValueError(f"{key} = {rate:g}: give 0 (off) or at least {MIN_RATE:g} per s")
        if self.activity_rate and self.activity_rate * self.idle_timeout_s < 1.0:
            raise ValueError(
                "activity_rate * idle_timeout_s must be >= 1: events must come more often "
                "than the idle timeout, or every event starts a new session"
            )
        return self

    @property
    def churners_per_group(self) -> int:
        return int(self.group_size * self.churn_fraction + 0.5) if self.churn_fraction else 0
