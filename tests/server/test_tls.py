"""roost.server.tls: the server context from PEM files, and clear errors for files it cannot
use."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from roost.server.tls import TLSConfigError, server_context
from tests.tls_certs import Certs, make_certs


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    return make_certs(tmp_path_factory.mktemp("certs"))


def test_the_context(certs: Certs) -> None:
    context = server_context(str(certs.server_cert), str(certs.server_key))
    assert context.minimum_version is ssl.TLSVersion.TLSv1_2
    assert context.verify_mode is ssl.CERT_NONE
    mutual = server_context(str(certs.server_cert), str(certs.server_key), ca_certs=str(certs.ca))
    assert mutual.verify_mode is ssl.CERT_REQUIRED


def test_key_and_certificate_in_one_file(certs: Certs, tmp_path: Path) -> None:
    both = tmp_path / "both.pem"
    both.write_bytes(certs.server_cert.read_bytes() + certs.server_key.read_bytes())
    server_context(str(both))


def test_unusable_files_are_clear_errors(certs: Certs, tmp_path: Path) -> None:
    with pytest.raises(TLSConfigError, match=r"missing\.pem: No such file or directory"):
        server_context(str(tmp_path / "missing.pem"))
    with pytest.raises(TLSConfigError, match="the private key does not match the certificate"):
        server_context(str(certs.server_cert), str(certs.client_key))
    (tmp_path / "junk.pem").write_text("not a certificate")
    with pytest.raises(
        TLSConfigError, match=r"junk.pem with key .*: not a PEM certificate and key"
    ):
        server_context(str(tmp_path / "junk.pem"), str(certs.server_key))
    with pytest.raises(TLSConfigError, match=r"CA certificates .*: no certificate found"):
        server_context(
            str(certs.server_cert), str(certs.server_key), ca_certs=str(certs.client_key)
        )
