"""TLS for the listening socket: the server's ``ssl.SSLContext`` built from PEM files.

A TLS handshake runs before a connection reaches roost's HTTP layer: it is bounded by the
server's ``handshake_timeout``, and one that fails (plain HTTP sent to the TLS port, a
client certificate that does not verify, garbage) closes the TCP connection and leaves
nothing behind. Connection limits count a connection once its handshake has finished.
"""

from __future__ import annotations

import ssl

__all__ = ["TLSConfigError", "server_context"]


class TLSConfigError(ValueError):
    """The certificate, key or CA file cannot be used; the message names the file and why."""


def server_context(
    certfile: str,
    keyfile: str | None = None,
    *,
    ca_certs: str | None = None,
) -> ssl.SSLContext:
    """A server-side TLS context: TLS 1.2 or later, ALPN ``http/1.1``.

    ``certfile``: the PEM certificate chain (leaf first); ``keyfile``: its PEM private key
    (None: in ``certfile``). ``ca_certs``: PEM CA certificates; when given, every client must
    present a certificate one of them signed (mutual TLS), and a handshake without one fails.
    Raises TLSConfigError for a file that is missing, unreadable or does not match.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_alpn_protocols(["http/1.1"])
    try:
        context.load_cert_chain(certfile, keyfile)
    except (OSError, ssl.SSLError) as exc:
        files = certfile if keyfile is None else f"{certfile} with key {keyfile}"
        raise TLSConfigError(f"cannot load the certificate {files}: {_why(exc)}") from None
    if ca_certs is not None:
        try:
            context.load_verify_locations(cafile=ca_certs)
        except (OSError, ssl.SSLError) as exc:
            raise TLSConfigError(
                f"cannot load the CA certificates {ca_certs}: {_why(exc)}"
            ) from None
        context.verify_mode = ssl.CERT_REQUIRED
    return context


#: OpenSSL's reasons, in words.
_REASONS = {
    "KEY_VALUES_MISMATCH": "the private key does not match the certificate",
    "NO_START_LINE": "no PEM data found",
    "NO_CERTIFICATE_OR_CRL_FOUND": "no certificate found",
}


def _why(exc: OSError | ssl.SSLError) -> str:
    if isinstance(exc, ssl.SSLError):
        if exc.reason is None:  # OpenSSL's PEM reader said no more than that
            return "not a PEM certificate and key"
        return _REASONS.get(exc.reason, exc.reason)
    return exc.strerror or str(exc)
