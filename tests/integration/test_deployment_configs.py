"""Every configuration file docs/*.md shows is checked: nginx blocks with ``nginx -t``
(Debian's nginx), Kubernetes manifests parsed as YAML and held against roost itself (the
container's command parses with roost's flags, the probes hit roost's health paths, the
grace period covers the drain)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from roost.cli import parser
from roost.server.options import ServerOptions
from tests.integration.guide_runner import ROOT
from tests.timing import seconds
from tests.tls_certs import make_certs

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def blocks(language: str) -> list[tuple[str, str]]:
    """(where, text) of every fenced block of ``language``."""
    found = []
    for doc in DOCS:
        text = doc.read_text()
        for match in re.finditer(rf"^```{language}\n(.*?)^```", text, re.S | re.M):
            line = text[: match.start()].count("\n") + 1
            found.append((f"{doc.relative_to(ROOT)}:{line}", match.group(1)))
    return found


NGINX = blocks("nginx")
YAML = blocks("yaml")


def test_the_docs_show_both() -> None:
    assert NGINX and YAML


@pytest.mark.skipif(shutil.which("nginx") is None, reason="nginx is not installed")
@pytest.mark.parametrize(("where", "config"), NGINX, ids=[w for w, _ in NGINX])
def test_nginx_accepts_the_config(where: str, config: str, tmp_path: Path) -> None:
    """The block is an ``http`` context file (conf.d/); nginx -t reads it whole, certificate
    files included (the test's own, at the paths the block names)."""
    certs = make_certs(tmp_path)
    for path in re.findall(r"ssl_certificate(?:_key)?\s+(\S+);", config):
        made = certs.server_key if "key" in path or "priv" in path else certs.server_cert
        config = config.replace(path, str(made))
    (tmp_path / "site.conf").write_text(config)
    (tmp_path / "nginx.conf").write_text(
        f"pid {tmp_path}/nginx.pid;\n"
        "error_log stderr;\n"
        "events {}\n"
        f"http {{\n  access_log off;\n  include {tmp_path}/site.conf;\n}}\n"
    )
    done = subprocess.run(
        [
            shutil.which("nginx") or "nginx",
            "-t",
            "-p",
            str(tmp_path),
            "-c",
            str(tmp_path / "nginx.conf"),
        ],
        capture_output=True,
        timeout=seconds(30),
        check=False,
    )
    assert done.returncode == 0, f"{where}: {done.stderr.decode()}"
    assert b"syntax is ok" in done.stderr


def roost_args(container: dict[str, object]) -> list[str]:
    command = [str(word) for word in [*container.get("command", []), *container.get("args", [])]]  # type: ignore[misc]
    assert command[0] == "roost", command
    return command[1:]


@pytest.mark.parametrize(("where", "text"), YAML, ids=[w for w, _ in YAML])
def test_kubernetes_manifest_matches_roost(where: str, text: str) -> None:
    documents = [doc for doc in yaml.safe_load_all(text) if doc]
    kinds = {doc["kind"]: doc for doc in documents}
    for doc in documents:
        assert {"apiVersion", "kind", "metadata"} <= doc.keys(), where
    deployment = kinds["Deployment"]
    spec = deployment["spec"]
    pod = spec["template"]["spec"]
    assert spec["selector"]["matchLabels"].items() <= spec["template"]["metadata"]["labels"].items()
    defaults = ServerOptions()
    for container in pod["containers"]:
        args = parser().parse_args(roost_args(container))  # exits on a flag roost lacks
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert args.port in ports.values(), (args.port, ports)
        assert args.host == "0.0.0.0", "a pod must listen beyond its loopback interface"
        probes = {
            "readinessProbe": defaults.readiness_path,
            "livenessProbe": defaults.liveness_path,
        }
        for probe, path in probes.items():
            get = container[probe]["httpGet"]
            assert get["path"] == path, (probe, get)
            assert ports.get(get["port"], get["port"]) == args.port
        drain = args.drain_delay or 0.0
        grace = pod["terminationGracePeriodSeconds"]
        assert grace > drain + defaults.shutdown_timeout + 5, (grace, drain)
        # The readiness probe notices a drain within the delay.
        ready = container["readinessProbe"]
        assert ready["periodSeconds"] * ready.get("failureThreshold", 3) <= drain
    if "Service" in kinds:
        service = kinds["Service"]["spec"]
        assert service["selector"].items() <= spec["template"]["metadata"]["labels"].items()
        names = {p["name"] for c in pod["containers"] for p in c["ports"]}
        for port in service["ports"]:
            assert port["targetPort"] in names, port
