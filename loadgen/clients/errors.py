"""The one error a load-generator client raises: a transport-level failure with a code.

::

    raise ClientError("timeout", "no reply within 5s")
    except ClientError as exc: row.error = exc.code
"""

from __future__ import annotations


class ClientError(Exception):
    """A transport-level failure; ``code`` is what goes in the ``error`` column."""

    def __init__(self, code: str, detail: str = "") -> None:
        super().__init__(f"{code}: {detail}" if detail else code)
        self.code = code
        self.detail = detail
