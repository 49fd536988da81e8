"""Private networks of Linux network namespaces for the cluster tests.

A ``Network`` owns every namespace it creates, all named ``roostc-<pid>-<name>``: one "switch"
namespace holding two bridges, ``brf`` (the front network: clients, balancer, nodes) and ``brb``
(the back network: nodes and Redis), and one namespace per host, each joined to a bridge by a
veth pair whose inner end is ``eth-f`` or ``eth-b``. Addresses are 10.77.1.0/24 (front) and
10.77.0.0/24 (back), and exist only inside these namespaces: nothing is added to the namespace
the tests run in, and no traffic leaves the namespaces.

``remove()`` kills whatever still runs in them and deletes them; ``remove_leftovers()`` does the
same for namespaces of earlier runs whose process is gone, so a failed run leaves nothing behind.

Test code talks to the hosts from its own process: ``socket_in(ns)`` makes a socket inside a
namespace (the thread enters it for the ``socket()`` call only; a socket stays in the namespace
it was created in).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
from pathlib import Path

PREFIX = "roostc-"
NETS = {"f": "10.77.1", "b": "10.77.0"}
CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def ip(*args: str, check: bool = True) -> str:
    """Run ``ip args...``; its stdout."""
    done = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if check and done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout


def available() -> str | None:
    """Why namespaces cannot be used here, or None when they can."""
    if os.geteuid() != 0:
        return "creating network namespaces needs root"
    try:
        ip("netns", "list")
    except (OSError, RuntimeError) as exc:
        return f"iproute2's ip is not usable: {exc}"
    return None


def _kill_all_in(ns: str) -> None:
    for pid in ip("netns", "pids", ns, check=False).split():
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid), signal.SIGKILL)


def _delete(ns: str) -> None:
    _kill_all_in(ns)
    ip("netns", "delete", ns, check=False)


def remove_leftovers() -> list[str]:
    """Delete the namespaces of earlier runs whose process has exited; their names."""
    removed = []
    for line in ip("netns", "list").splitlines():
        name = line.split()[0] if line.split() else ""
        if not name.startswith(PREFIX):
            continue
        owner = name[len(PREFIX) :].split("-", 1)[0]
        if owner.isdigit() and Path(f"/proc/{owner}").exists():
            continue  # a run in progress
        _delete(name)
        removed.append(name)
    return removed


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, os.strerror(errno))


def socket_in(ns: str, *, blocking: bool = False) -> socket.socket:
    """A TCP socket inside namespace ``ns`` (non-blocking unless ``blocking``)."""
    with open(f"/var/run/netns/{ns}") as target, open("/proc/thread-self/ns/net") as home:
        _setns(target.fileno())
        try:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        finally:
            _setns(home.fileno())
    sock.setblocking(blocking)
    return sock


class Network:
    """The namespaces of one test: ``host(name, f=11, b=11)`` adds one with the addresses
    10.77.1.11 (front) and 10.77.0.11 (back)."""

    def __init__(self) -> None:
        self.tag = f"{PREFIX}{os.getpid()}-"
        self.switch = self.tag + "sw"
        self.namespaces: list[str] = []
        self.addresses: dict[str, dict[str, str]] = {}

    def ns(self, name: str) -> str:
        return self.tag + name

    def create(self) -> Network:
        remove_leftovers()
        for name in [n for n in ip("netns", "list").split() if n.startswith(self.tag)]:
            _delete(name)  # from an earlier test of this run that failed to clean up
        self._add_ns(self.switch)
        for net in NETS:
            ip("-n", self.switch, "link", "add", f"br{net}", "type", "bridge")
            ip("-n", self.switch, "link", "set", f"br{net}", "up")
        return self

    def _add_ns(self, ns: str) -> None:
        ip("netns", "add", ns)
        self.namespaces.append(ns)
        ip("-n", ns, "link", "set", "lo", "up")

    def host(self, name: str, **octets: int) -> str:
        """Add namespace ``name`` with a link to each network named in ``octets`` (``f``,
        ``b``), at the address ending with that octet; the namespace's full name."""
        ns = self.ns(name)
        self._add_ns(ns)
        self.addresses[name] = {}
        for net, octet in octets.items():
            outer = f"{name}{net}"
            ip("-n", self.switch, "link", "add", outer, "type", "veth", "peer", "name",
               f"eth-{net}", "netns", ns)  # fmt: skip
            ip("-n", self.switch, "link", "set", outer, "master", f"br{net}", "up")
            address = f"{NETS[net]}.{octet}"
            ip("-n", ns, "addr", "add", f"{address}/24", "dev", f"eth-{net}")
            ip("-n", ns, "link", "set", f"eth-{net}", "up")
            self.addresses[name][net] = address
        return ns

    def address(self, name: str, net: str) -> str:
        return self.addresses[name][net]

    def link(self, name: str, net: str, up: bool) -> None:
        """Take host ``name``'s link to network ``net`` down or bring it up again."""
        ip("-n", self.ns(name), "link", "set", f"eth-{net}", "up" if up else "down")

    def established(self, name: str, port: int) -> int:
        """TCP connections established to ``port`` in host ``name``'s namespace."""
        out = subprocess.run(
            ["ip", "netns", "exec", self.ns(name), "ss", "-Htn", "state", "established",
             f"( sport = :{port} )"],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        return len([line for line in out.splitlines() if line.strip()])

    def remove(self) -> None:
        """Kill what runs in the namespaces and delete them (the veth pairs go with them)."""
        for ns in reversed(self.namespaces):
            _delete(ns)
        self.namespaces.clear()
