"""TLS to https upstreams with each server's own `verify_tls` and `ca_file`.

mitmproxy's TlsConfig addon builds one kind of upstream TLS connection for every server
(`tls_start_server`, verifying against the public CAs of certifi). For a registered https
server that trusts its own CA (`ca_file`) or turns verification off (`verify_tls = false`),
this addon builds the connection the same way with that server's trust instead. It may run
before TlsConfig (the launcher's chain) or after it (`mitmdump -s`): either way its
connection is the one used.

mitmproxy opens connections per address, not per registered server, so servers that share
one https host:port share one TLS setting: verification stays on unless every one of them
turns it off, and when they name different `ca_file`s mitmproxy's default (the public CAs)
is kept and the conflict logged. See docs/configuration.md, "TLS".
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Iterable

from mitmproxy import connection, ctx, tls
from mitmproxy.addons.tlsconfig import DEFAULT_HOSTFLAGS, _default_ciphers
from mitmproxy.net import tls as net_tls
from OpenSSL import SSL

from mcp_gateway.config import ServerConfig

from .runtime import Runtime

log = logging.getLogger(__name__)


def tls_settings(servers: Iterable[ServerConfig], address: tuple[str, int]) -> tuple[bool, str] | None:
    """(verify, ca_file) for the https servers at `address`; None when mitmproxy's default applies."""
    host, port = address[0].lower(), address[1]
    matching = [s for s in servers if s.scheme == "https" and s.host.lower() == host and s.port == port]
    if not matching:
        return None
    verify = any(s.verify_tls for s in matching)
    ca_files = {s.ca_file for s in matching if s.ca_file}
    if len(ca_files) > 1:
        log.error("servers %s share %s:%d but name different ca_files; trusting the public CAs only",
                  ", ".join(s.name for s in matching), host, port)
        return None
    ca_file = ca_files.pop() if ca_files else ""
    if verify and not ca_file:
        return None
    return verify, ca_file


class UpstreamTls:
    def __init__(self, runtime: Runtime):
        self.runtime = runtime

    def tls_start_server(self, tls_start: tls.TlsData) -> None:
        server = tls_start.conn
        registry = self.runtime.registry
        if registry is None or tls_start.is_dtls or not isinstance(server, connection.Server) or not server.address:
            return
        settings = tls_settings(registry.all(), server.address)
        if settings is None:
            return
        verify, ca_file = settings
        try:
            ssl_ctx = net_tls.create_proxy_server_context(
                method=net_tls.Method.TLS_CLIENT_METHOD,
                min_version=net_tls.Version[ctx.options.tls_version_server_min],
                max_version=net_tls.Version[ctx.options.tls_version_server_max],
                cipher_list=tuple(server.cipher_list or _default_ciphers(
                    net_tls.Version[ctx.options.tls_version_server_min])),
                ecdh_curve=net_tls.get_curve(ctx.options.tls_ecdh_curve_server),
                verify=net_tls.Verify.VERIFY_PEER if verify else net_tls.Verify.VERIFY_NONE,
                ca_path=None,
                ca_pemfile=ca_file or None,
                client_cert=None,
                legacy_server_connect=False,
            )
        except RuntimeError as e:
            # Leave the default connection (public CAs): a private-CA upstream then fails, closed.
            log.error("upstream %s:%d: cannot use ca_file %s: %s", *server.address, ca_file, e)
            return
        if server.sni is None:
            server.sni = tls_start.context.client.sni or server.address[0]
        if not server.alpn_offers:
            offers = tls_start.context.client.alpn_offers or ()
            server.alpn_offers = tuple(x for x in offers if ctx.options.http2 or x != b"h2")
        ssl_conn = SSL.Connection(ssl_ctx)
        _check_hostname(ssl_conn, server.sni, verify)
        if server.alpn_offers:
            ssl_conn.set_alpn_protos(list(server.alpn_offers))
        ssl_conn.set_connect_state()
        tls_start.ssl_conn = ssl_conn


def _check_hostname(ssl_conn: SSL.Connection, sni: str, verify: bool) -> None:
    """SNI, and hostname (or IP) verification as mitmproxy's TlsConfig sets them up."""
    try:
        ip: bytes | None = ipaddress.ip_address(sni).packed
    except ValueError:
        ip = None
        ssl_conn.set_tlsext_host_name(sni.encode("idna"))
    if not verify:
        return
    param = SSL._lib.SSL_get0_param(ssl_conn._ssl)  # type: ignore[attr-defined]
    SSL._lib.X509_VERIFY_PARAM_set_hostflags(param, DEFAULT_HOSTFLAGS)  # type: ignore[attr-defined]
    if ip is None:
        name = sni.encode("idna")
        ok = SSL._lib.X509_VERIFY_PARAM_set1_host(param, name, len(name))  # type: ignore[attr-defined]
    else:
        ok = SSL._lib.X509_VERIFY_PARAM_set1_ip(param, ip, len(ip))  # type: ignore[attr-defined]
    SSL._openssl_assert(ok == 1)  # type: ignore[attr-defined]
