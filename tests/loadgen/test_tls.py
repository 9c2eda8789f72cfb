"""TLS: throwaway certificates, https/wss servers, TLS wire bytes, and runs with tls cells."""

from __future__ import annotations

import asyncio
import importlib
import json
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from cli_runs import run_toml
from client_modes import EVERY_MODE
from scenario_toml import cell_table, one_repeat_toml

from loadgen import tls
from loadgen.clients.base import make_client
from loadgen.clients.errors import ClientError
from loadgen.wire import WireCounter, counting, new_event_loop
from servers import protocol
from servers.__main__ import MODULES
from servers.common import ServerConfig
from servers.hub import Hub

HOST = "127.0.0.1"


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> tls.CertPaths:
    return tls.make_certificates(tmp_path_factory.mktemp("tls"))


@asynccontextmanager
async def tls_server(kind: str, certs: tls.CertPaths, version: str = "1.3") -> AsyncIterator[int]:
    module = importlib.import_module(MODULES[kind])
    stop = asyncio.Event()
    ready: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    config = ServerConfig(HOST, 0, tls_cert=certs.cert, tls_key=certs.key, tls_version=version)
    task = asyncio.create_task(module.serve(config, Hub(), ready.set_result, stop))
    try:
        yield await asyncio.wait_for(ready, 10)
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)


def test_certificates_are_written(certs: tls.CertPaths) -> None:
    for path in (certs.ca, certs.cert, certs.key):
        assert Path(path).read_text().startswith("-----BEGIN")


def test_certificate_names_loopback_and_the_kernel_links_server(certs: tls.CertPaths) -> None:
    import ipaddress

    from cryptography import x509

    from loadgen.link.kernel import SERVER_ADDR

    cert = x509.load_pem_x509_certificate(Path(certs.cert).read_bytes())
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    ips = set(names.get_values_for_type(x509.IPAddress))
    assert ips == {ipaddress.ip_address(a) for a in ("127.0.0.1", "::1", SERVER_ADDR)}
    assert names.get_values_for_type(x509.DNSName) == ["localhost"]


def test_server_config_needs_cert_and_key(certs: tls.CertPaths) -> None:
    with pytest.raises(ValueError, match="both"):
        ServerConfig(HOST, 0, tls_cert=certs.cert)
    with pytest.raises(ValueError, match=r"1\.2 or 1\.3"):
        ServerConfig(HOST, 0, tls_cert=certs.cert, tls_key=certs.key, tls_version="1.1")


def _echo(n: int) -> bytes:
    return protocol.encode_request(protocol.Request(op="echo", id=n, ts=n, payload="x" * 32))


#: Every client and connection mode but httpx's new-connection one.
CELLS = [m for m in EVERY_MODE if m != ("http", "httpx", "new-connection")]


@pytest.mark.parametrize(("kind", "client", "mode"), CELLS)
def test_tls_echo_with_the_test_ca_only(
    certs: tls.CertPaths, kind: str, client: str, mode: str
) -> None:
    async def main() -> None:
        async with tls_server(kind, certs) as port:
            url = f"https://{HOST}:{port}"
            # Trusting only the system CAs: the throwaway certificate is refused.
            tls._client = ssl.create_default_context()
            refused = make_client(kind, client, mode, url, 5.0)
            with pytest.raises(ClientError):
                await refused.connect()
                await refused.request(_echo(1))
            await refused.close()
            # Trusting the test CA: every request is answered, and the TLS records
            # (handshake included) are counted, more than the plaintext.
            tls.configure_client(certs.ca, "1.3")
            counter = WireCounter()
            good = make_client(kind, client, mode, url, 5.0)
            with counting(counter):
                await good.connect()
                for i in range(3):
                    status, body = await good.request(_echo(i + 2))
                    assert status == 200
                    assert protocol.decode_response(body).ok
                await good.close()
            plain = 3 * len(_echo(2))
            assert counter.sent > plain
            assert counter.received > 0

    loop = new_event_loop(True)
    try:
        loop.run_until_complete(main())
    finally:
        tls.configure_client(None)
        loop.close()


def test_new_connections_pay_the_handshake_in_bytes(certs: tls.CertPaths) -> None:
    async def per_request(mode: str) -> float:
        async with tls_server("http", certs) as port:
            tls.configure_client(certs.ca, "1.3")
            counter = WireCounter()
            client = make_client("http", "aiohttp", mode, f"https://{HOST}:{port}", 5.0)
            with counting(counter):
                await client.connect()
                for i in range(4):
                    await client.request(_echo(i + 1))
                await client.close()
            return counter.received / 4

    loop = new_event_loop(True)
    try:
        fresh = loop.run_until_complete(per_request("new-connection"))
        reused = loop.run_until_complete(per_request("keep-alive"))
    finally:
        tls.configure_client(None)
        loop.close()
    # The server's certificate and handshake travel once per connection.
    assert fresh > reused + 500


def test_tls_12_is_selectable(certs: tls.CertPaths) -> None:
    async def main() -> str:
        async with tls_server("http", certs, version="1.2") as port:
            ctx = tls.client_context(certs.ca, "1.3")
            _reader, writer = await asyncio.open_connection(HOST, port, ssl=ctx)
            version = writer.get_extra_info("ssl_object").version()
            writer.close()
            await writer.wait_closed()
            return str(version)

    assert asyncio.run(main()) == "TLSv1.2"


def test_run_with_tls_cells(tmp_path: Path) -> None:
    text = one_repeat_toml(
        "tls",
        100,
        cell_table("http/aiohttp/new-connection", tls=True),
        cell_table("ws-websockets/websockets", tls=True),
    )
    result, out = run_toml(tmp_path, "tls", text)
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    cells = {c["cell"]: c for c in summary["cells"]}
    assert set(cells) == {
        "http/aiohttp/new-connection+tls",
        "ws-websockets/websockets/persistent+tls",
    }
    for cell in cells.values():
        assert cell["tls"] == "1.3"
        assert cell["errors"] == 0
        assert cell["count"] > 0
    assert (out / "tls" / "ca.pem").exists()
