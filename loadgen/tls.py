"""TLS for runs: a throwaway CA and server certificate, and the clients' context.

The orchestrator makes the certificates once per run::

    paths = make_certificates(out_dir / "tls")      # CA, cert and key PEM files

and a load-generator process that talks to https/wss configures its clients::

    configure_client(paths.ca, version="1.3")
    ctx = client_ssl()          # what every client passes as its ssl context
    ctx = client_ssl(("h2",))   # the same, offering those ALPN protocols
    config = client_quic(("h3",), "127.0.0.1")   # a QUIC client configuration, same CA

Nothing is trusted but that CA. Clients never resume TLS sessions: every new
connection pays a full handshake, as a first visit does.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from loadgen.link.kernel import SERVER_ADDR

if TYPE_CHECKING:
    from aioquic.quic.configuration import QuicConfiguration

_client: ssl.SSLContext | None = None
_client_settings: tuple[str, str] | None = None
#: Contexts offering ALPN protocols, one per protocol list, made from the same settings.
_alpn_clients: dict[tuple[str, ...], ssl.SSLContext] = {}


@dataclass(frozen=True, slots=True)
class CertPaths:
    """PEM files of the throwaway CA and the server's certificate and key."""

    ca: str
    cert: str
    key: str


def make_certificates(folder: Path) -> CertPaths:
    """Issue a CA and a certificate into ``folder``.

    The certificate names 127.0.0.1, localhost, ::1 and the kernel link's server
    address (10.77.0.2, :data:`loadgen.link.kernel.SERVER_ADDR`), so TLS cells
    run over loopback, the userspace relay and the kernel link alike.
    """
    import trustme

    folder.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1", "localhost", "::1", SERVER_ADDR)
    paths = CertPaths(str(folder / "ca.pem"), str(folder / "cert.pem"), str(folder / "key.pem"))
    ca.cert_pem.write_to_path(paths.ca)
    server.cert_chain_pems[0].write_to_path(paths.cert)
    for extra in server.cert_chain_pems[1:]:
        extra.write_to_path(paths.cert, append=True)
    server.private_key_pem.write_to_path(paths.key)
    return paths


def client_context(ca_file: str, version: str = "1.3") -> ssl.SSLContext:
    """A client context trusting only ``ca_file``, capped at TLS ``version``."""
    if version not in ("1.2", "1.3"):
        raise ValueError(f"TLS version must be 1.2 or 1.3, got {version!r}")
    ctx = ssl.create_default_context(cafile=ca_file)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.maximum_version = ssl.TLSVersion.TLSv1_3 if version == "1.3" else ssl.TLSVersion.TLSv1_2
    return ctx


def configure_client(ca_file: str | None, version: str = "1.3") -> None:
    """Set (or clear, with None) the context this process's clients use for https/wss."""
    global _client, _client_settings
    _client = client_context(ca_file, version) if ca_file else None
    _client_settings = (ca_file, version) if ca_file else None
    _alpn_clients.clear()


def client_ssl(alpn: tuple[str, ...] = ()) -> ssl.SSLContext:
    """The configured client context; raises when https/wss is used without one.

    With ``alpn`` (``("h2",)``), a context of its own that offers those protocols,
    so that setting them never changes what the other clients offer.
    """
    if _client is None:
        raise RuntimeError("TLS target but no CA configured; call configure_client() first")
    if not alpn:
        return _client
    ctx = _alpn_clients.get(alpn)
    if ctx is None:
        if _client_settings is None:
            raise RuntimeError("ALPN needs a CA configured with configure_client()")
        ctx = client_context(*_client_settings)
        ctx.set_alpn_protocols(list(alpn))
        _alpn_clients[alpn] = ctx
    return ctx


def client_quic(alpn: tuple[str, ...], server_name: str) -> QuicConfiguration:
    """A QUIC client configuration trusting only the configured CA and offering ``alpn``.

    A new one per connection, holding no session ticket: every QUIC connection pays
    a full handshake, as a first visit does. QUIC is TLS 1.3 only, so a client
    configured for TLS 1.2 cannot have one (RuntimeError).
    """
    from aioquic.quic.configuration import QuicConfiguration

    if _client_settings is None:
        raise RuntimeError("QUIC target but no CA configured; call configure_client() first")
    ca_file, version = _client_settings
    if version != "1.3":
        raise RuntimeError(f"QUIC needs TLS 1.3; the clients are configured for TLS {version}")
    config = QuicConfiguration(is_client=True, alpn_protocols=list(alpn), server_name=server_name)
    config.load_verify_locations(cafile=ca_file)
    return config


def is_secure(url: str) -> bool:
    """True for https:// and wss:// URLs."""
    return url.startswith(("https://", "wss://"))
