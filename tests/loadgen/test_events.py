"""EventHook: listeners are called in the order added, with the fired arguments."""

from __future__ import annotations

from typing import Any

import pytest

from loadgen.events import EventHook


def test_fire_without_listeners_does_nothing() -> None:
    EventHook().fire(1, two=2)


def test_listeners_called_in_order_with_arguments() -> None:
    hook = EventHook()
    calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []
    for name in ("a", "b", "c"):
        hook.add_listener(lambda *args, _n=name, **kw: calls.append((_n, args, kw)))
    hook.fire(1, "x", key=3)
    assert calls == [
        ("a", (1, "x"), {"key": 3}),
        ("b", (1, "x"), {"key": 3}),
        ("c", (1, "x"), {"key": 3}),
    ]


def test_every_fire_reaches_every_listener() -> None:
    hook = EventHook()
    seen: list[tuple[str, int]] = []
    hook.add_listener(lambda v: seen.append(("first", v)))
    hook.add_listener(lambda v: seen.append(("second", v)))
    for v in range(3):
        hook.fire(v)
    assert seen == [(name, v) for v in range(3) for name in ("first", "second")]


def test_add_listener_works_as_decorator() -> None:
    hook = EventHook()
    seen: list[int] = []

    @hook.add_listener
    def listener(value: int) -> None:
        seen.append(value)

    assert callable(listener)
    listener(0)  # still the plain function
    hook.fire(1)
    assert seen == [0, 1]


def test_remove_listener_stops_calls_and_keeps_order_of_the_rest() -> None:
    hook = EventHook()
    calls: list[str] = []

    def a() -> None:
        calls.append("a")

    def b() -> None:
        calls.append("b")

    def c() -> None:
        calls.append("c")

    for listener in (a, b, c):
        hook.add_listener(listener)
    hook.remove_listener(b)
    hook.fire()
    assert calls == ["a", "c"]
    hook.add_listener(b)  # re-adding puts it at the end
    calls.clear()
    hook.fire()
    assert calls == ["a", "c", "b"]


def test_listener_added_twice_is_called_twice_and_removed_once() -> None:
    hook = EventHook()
    calls: list[int] = []

    def listener(v: int) -> None:
        calls.append(v)

    hook.add_listener(listener)
    hook.add_listener(listener)
    hook.fire(1)
    assert calls == [1, 1]
    hook.remove_listener(listener)
    hook.fire(2)
    assert calls == [1, 1, 2]


def test_remove_unknown_listener_raises() -> None:
    hook = EventHook()
    hook.add_listener(print)
    with pytest.raises(ValueError):
        hook.remove_listener(len)


def test_listener_exception_propagates_and_stops_later_listeners() -> None:
    hook = EventHook()
    calls: list[str] = []

    def boom() -> None:
        raise RuntimeError("listener failed")

    hook.add_listener(lambda: calls.append("before"))
    hook.add_listener(boom)
    hook.add_listener(lambda: calls.append("after"))
    with pytest.raises(RuntimeError, match="listener failed"):
        hook.fire()
    assert calls == ["before"]
