"""A minimal event hook, so measurement does not know where results go.

::

    on_sample = EventHook()
    on_sample.add_listener(histograms.record)
    on_sample.fire(sample)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class EventHook:
    """Calls every listener, in the order added, with the fired arguments."""

    __slots__ = ("_listeners",)

    def __init__(self) -> None:
        self._listeners: list[Callable[..., Any]] = []

    def add_listener(self, listener: Callable[..., Any]) -> Callable[..., Any]:
        """Register ``listener``; returns it so this works as a decorator."""
        self._listeners.append(listener)
        return listener

    def remove_listener(self, listener: Callable[..., Any]) -> None:
        """Unregister ``listener``."""
        self._listeners.remove(listener)

    def fire(self, *args: Any, **kwargs: Any) -> None:
        """Call every listener with these arguments."""
        for listener in self._listeners:
            listener(*args, **kwargs)
