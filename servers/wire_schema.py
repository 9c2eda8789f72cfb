"""The wire protocol's JSON Schemas (``servers/schema/``, draft 2020-12), checked from Python.

Every function takes an already-decoded JSON value and returns the problems
found, one human-readable line each naming where in the message it is; an
empty list means valid::

    from servers import wire_schema

    wire_schema.request_problems({"op": "poll", "id": 1, "ts": 2, "payload": {"after": -1}})
    # ["payload.after: -1 is less than the minimum of 0"]
    wire_schema.reply_problems("poll", orjson.loads(reply.body))  # envelope, then payload
    wire_schema.push_problems(message)  # {"op": "push", "seq": N, "item": {...}}
    wire_schema.item_problems(item)  # one inbox item
    wire_schema.ready_problems(parse_ready_line(line))  # the RTBENCH-READY object
    wire_schema.OPS  # the operations with schemas

The files are the reference (docs/protocol.md) and this module only applies
them: their relative ``$ref``s resolve inside one local registry, so nothing
is ever fetched. Two readings follow rtbench's servers rather than a generic
validator: an integer is a JSON number without a fraction or exponent (Python
decodes ``1.0`` as a float, which the servers refuse where they want an
integer), and ``$`` in a pattern matches only at the very end of the text, as
in ECMA-262 (Python's ``$`` would also accept a trailing newline).
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator, ValidationError, validators
from jsonschema.protocols import Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

#: The folder of the schema files.
SCHEMA_DIR = Path(__file__).with_name("schema")

#: The base URI the files are registered under (local only: the registry never retrieves).
_BASE = SCHEMA_DIR.as_uri() + "/"

#: A problem line longer than this is cut: messages quote the offending value.
_MAX_PROBLEM_CHARS = 300

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _schema_ops() -> tuple[str, ...]:
    requests = {p.name.removesuffix(".request.schema.json") for p in _op_files("request")}
    replies = {p.name.removesuffix(".reply.schema.json") for p in _op_files("reply")}
    return tuple(sorted(requests & replies))


def _op_files(kind: str) -> Iterator[Path]:
    return (SCHEMA_DIR / "ops").glob(f"*.{kind}.schema.json")


#: The operations that have a request and a reply schema (``ops/OP.request.schema.json``...).
OPS: tuple[str, ...] = _schema_ops()


def _is_integer(checker: Any, instance: Any) -> bool:
    # The servers' decoder yields a float for 1.0 or 1e3 and refuses it as an integer.
    return isinstance(instance, int) and not isinstance(instance, bool)


@functools.cache
def _ecma_regex(pattern: str) -> re.Pattern[str]:
    """``pattern`` compiled so that ``$`` outside a character class means end of text."""
    out: list[str] = []
    i, in_class = 0, False
    while i < len(pattern):
        char = pattern[i]
        if char == "\\":
            out.append(pattern[i : i + 2])
            i += 2
            continue
        if in_class:
            in_class = char != "]"
        elif char == "[":
            in_class = True
        elif char == "$":
            char = r"\Z"
        out.append(char)
        i += 1
    return re.compile("".join(out))


def _pattern(validator: Any, pattern: str, instance: Any, schema: Any) -> Iterator[ValidationError]:
    if validator.is_type(instance, "string") and not _ecma_regex(pattern).search(instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


_WireValidator = validators.extend(
    Draft202012Validator,
    validators={"pattern": _pattern},
    type_checker=Draft202012Validator.TYPE_CHECKER.redefine("integer", _is_integer),
)


@functools.cache
def _schemas() -> tuple[Registry, dict[str, Any]]:
    """Every schema file by its path under :data:`SCHEMA_DIR`, and the registry of them all."""
    contents: dict[str, Any] = {}
    for path in sorted(SCHEMA_DIR.rglob("*.schema.json")):
        rel = path.relative_to(SCHEMA_DIR).as_posix()
        # The file's own URI as its id, so its relative $refs resolve within the registry.
        contents[rel] = {**json.loads(path.read_text(encoding="utf-8")), "$id": _BASE + rel}
    registry: Registry = Registry().with_resources(
        (doc["$id"], Resource.from_contents(doc, default_specification=DRAFT202012))
        for doc in contents.values()
    )
    return registry, contents


@functools.cache
def _validator(rel: str) -> Validator:
    registry, contents = _schemas()
    return _WireValidator(contents[rel], registry=registry)


def _where(path: Iterable[str | int], root: str) -> str:
    """``payload.items[0].seq`` for a path; ``root`` for the message itself."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        elif _IDENTIFIER.fullmatch(part):
            text += f".{part}" if text else part
        else:
            text += f"[{part!r}]"
    return text or root


def _message(error: ValidationError) -> str:
    if error.validator in ("anyOf", "oneOf") and error.context:
        # jsonschema's own message quotes the whole value; the alternatives say more.
        options: list[str] = []
        for sub in error.context:
            where = _where(sub.relative_path, "")
            text = f"{where}: {sub.message}" if where else sub.message
            if text not in options:
                options.append(text)
        return "none of these holds: " + " | ".join(options)
    if error.validator == "not" and error.validator_value == {}:
        # ``{"not": {}}`` marks a field that may not be there (a ``false`` schema would do,
        # but jsonschema reports no path for it).
        return "not allowed here"
    return error.message


def _problems(rel: str, instance: Any, root: str, prefix: Sequence[str | int] = ()) -> list[str]:
    problems = []
    for error in _validator(rel).iter_errors(instance):
        line = f"{_where([*prefix, *error.absolute_path], root)}: {_message(error)}"
        if len(line) > _MAX_PROBLEM_CHARS:
            line = line[: _MAX_PROBLEM_CHARS - 3] + "..."
        problems.append(line)
    return problems


def request_problems(envelope: Any) -> list[str]:
    """Problems of a request envelope (``request.schema.json``) and, for an operation in
    :data:`OPS`, of its payload (``ops/OP.request.schema.json``; an absent payload is null).

    ``request_problems({"op": "echo", "id": 1, "ts": 0, "payload": "hi"})`` is ``[]``.
    """
    problems = _problems("request.schema.json", envelope, "envelope")
    op = envelope.get("op") if isinstance(envelope, dict) else None
    if isinstance(op, str) and op in OPS:
        payload = envelope.get("payload")
        problems += _problems(f"ops/{op}.request.schema.json", payload, "payload", ("payload",))
    return problems


def reply_problems(op: str, envelope: Any) -> list[str]:
    """Problems of the reply to a request for ``op``: the envelope (``reply.schema.json``,
    success or error) and, for a success reply to an operation in :data:`OPS`, its payload
    (``ops/OP.reply.schema.json``). Any other ``op`` (``""`` too) checks the envelope only;
    whether the envelope's ``op``, ``id`` and ``ts`` echo the request's is the caller's check.

    ``reply_problems("poll", orjson.loads(reply.body))``
    """
    problems = _problems("reply.schema.json", envelope, "envelope")
    if (
        op in OPS
        and isinstance(envelope, dict)
        and envelope.get("ok") is True
        and "payload" in envelope
    ):
        problems += _problems(
            f"ops/{op}.reply.schema.json", envelope["payload"], "payload", ("payload",)
        )
    return problems


def push_problems(message: Any) -> list[str]:
    """Problems of a push message, its item included (``push.schema.json``):
    ``push_problems(orjson.loads(body))``."""
    return _problems("push.schema.json", message, "push")


def item_problems(item: Any) -> list[str]:
    """Problems of one inbox item (``item.schema.json``): message, notification or presence.

    ``[p for entry in page["items"] for p in item_problems(entry["item"])]``
    """
    return _problems("item.schema.json", item, "item")


def ready_problems(ready: Any) -> list[str]:
    """Problems of the JSON object of an ``RTBENCH-READY`` line (``ready.schema.json``):
    ``ready_problems(parse_ready_line(line))``."""
    return _problems("ready.schema.json", ready, "ready")
