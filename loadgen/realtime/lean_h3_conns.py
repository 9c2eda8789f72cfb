"""A user's HTTP side and event stream over HTTP/3 on the lean client.

:class:`LeanH3HttpConn` and :class:`LeanH3SseConn` are the HTTP/2 classes
(:mod:`loadgen.realtime.lean_h2_conns`) on QUIC: the same constructors, the
same one connection per user shared by actions, polls and (once
:meth:`~loadgen.realtime.lean_h2_conns.LeanH2SseConn.share` d) the event
stream, the same keep-alive and new-connection rules::

    http = LeanH3HttpConn("https://127.0.0.1:8443", keep_alive=True, timeout_s=5,
                          on_request=on_request)
    sse = LeanH3SseConn("https://127.0.0.1:8443", timeout_s, on_item, on_connect)
    sse.share(http)

HTTP/3 always runs over TLS 1.3, so the base URL is ``https``; the server's
UDP port is numbered like its TCP port. Bytes per role are attributed, not
observed: each QUIC datagram's UDP payload is split among the roles whose
streams it carried, in proportion to their stream frame bytes, and the
connection's own datagrams (handshake, ACKs, control and QPACK streams) count
into the actions' counter (:mod:`loadgen.lean.quicbytes`). The roles' counters
add up exactly to the UDP bytes sent and received.
"""

from __future__ import annotations

from typing import Any, ClassVar

from loadgen.lean.h3 import H3Connection
from loadgen.lean.reuse import ReusedH2Connection, ReusedH3Connection
from loadgen.realtime.lean_h2_conns import LeanH2HttpConn, LeanH2SseConn

__all__ = ["LeanH3HttpConn", "LeanH3SseConn"]


class LeanH3HttpConn(LeanH2HttpConn):
    """A user's HTTP side over HTTP/3: actions and polls as streams of one connection."""

    link_class: ClassVar[type[ReusedH2Connection]] = ReusedH3Connection


class LeanH3SseConn(LeanH2SseConn):
    """A user's Server-Sent Events stream over HTTP/3: ``GET /events`` held open."""

    conn_class: ClassVar[Any] = H3Connection
