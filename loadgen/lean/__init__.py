"""The lean client: asyncio Protocols on uvloop with sans-I/O parsers, for every transport.

What it is for: measuring the protocols rather than a client library. Each
connection is one :class:`asyncio.Protocol`; HTTP/1.1 responses are parsed by
httptools (llhttp), HTTP/2 frames by the sans-I/O ``h2``, WebSocket frames by
websockets' sans-I/O :class:`~websockets.client.ClientProtocol`. Requests are
written with one ``transport.write`` each, heads pre-encoded, and every
exchange is timestamped at the socket boundary (just before the write, and
when the parser completes the reply), as wrk and h2load do.

- :mod:`loadgen.lean.connect`: open a TCP (or TLS) connection with byte counting.
- :mod:`loadgen.lean.http`: one HTTP/1.1 connection: request/response and streamed bodies.
- :mod:`loadgen.lean.h2`: one HTTP/2 connection: concurrent streams, streamed bodies.
- :mod:`loadgen.lean.h2bytes`: header bytes counted from an HTTP/2 frame stream, and
  each stream's bytes moved to its own counter.
- :mod:`loadgen.lean.reuse`: an HTTP/1.1 or HTTP/2 connection kept across requests,
  reopened when closed.
- :mod:`loadgen.lean.ws`: one WebSocket connection: handshake, text messages, close.
- :mod:`loadgen.lean.ws_h2`: one WebSocket over HTTP/2 (RFC 8441): an extended CONNECT
  stream on an HTTP/2 connection of its own, the same interface.

The engines use them through :mod:`loadgen.clients.lean_client` (echo cells)
and :mod:`loadgen.realtime.lean_conns` (real-time cells; over HTTP/2
:mod:`loadgen.realtime.lean_h2_conns`).
"""
