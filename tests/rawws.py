"""A WebSocket client on a bare socket, for what real clients never do (unmasked frames, silence).

::

    reader, writer = await handshake(port, "/ws?token=T")
    writer.write(frame(b"...", masked=False))
    opcode, payload = await read_frame(reader)      # (8, b"\\x03\\xea...") for a 1002 close
"""

from __future__ import annotations

import asyncio
import base64
import os
import struct

from websockets.frames import Frame, Opcode

HOST = "127.0.0.1"


async def handshake(
    port: int, path: str = "/ws"
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Open a connection and complete the upgrade; fails unless the server answers 101."""
    reader, writer = await asyncio.open_connection(HOST, port)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        (
            f"GET {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101"), head
    return reader, writer


def frame(payload: bytes, masked: bool = True, opcode: Opcode = Opcode.TEXT) -> bytes:
    """One client frame; ``masked=False`` breaks RFC 6455 section 5.1."""
    return Frame(opcode, payload).serialize(mask=masked, extensions=None)


async def read_frame(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """The next server frame (unmasked, unfragmented): ``(opcode, payload)``."""
    first, second = await reader.readexactly(2)
    size = second & 0x7F
    if size == 126:
        (size,) = struct.unpack("!H", await reader.readexactly(2))
    elif size == 127:
        (size,) = struct.unpack("!Q", await reader.readexactly(8))
    return first & 0x0F, await reader.readexactly(size)


def close_code(payload: bytes) -> int:
    """The status code of a close frame's payload."""
    return int(struct.unpack("!H", payload[:2])[0])
