"""Fixtures for the Python client's tests: the attnd binary (--attnd-binary, $ATTND_BINARY or a
build under the checkout), a shared live server, and a factory for tests that need their own."""

from __future__ import annotations

import os
import pathlib

import numpy as np
import pytest

import attnd
from live_server import AttndServer

REPO = pathlib.Path(__file__).resolve().parents[2]


def pytest_addoption(parser):
    parser.addoption("--attnd-binary", default=os.environ.get("ATTND_BINARY", ""),
                     help="path of the attnd server binary to test against")


@pytest.fixture(scope="session")
def attnd_binary(request) -> str:
    given = request.config.getoption("--attnd-binary")
    if given:
        if not os.access(given, os.X_OK):
            pytest.fail(f"--attnd-binary {given} is not an executable")
        return given
    for candidate in sorted(REPO.glob("build*/server/attnd")):
        if os.access(candidate, os.X_OK):
            return str(candidate)
    pytest.skip("no attnd binary: build it (scripts/build.sh) or pass --attnd-binary")


@pytest.fixture
def start_server(attnd_binary):
    """start_server(extra_yaml="") -> AttndServer, killed when the test ends."""
    servers: list[AttndServer] = []

    def start(extra_yaml: str = "") -> AttndServer:
        servers.append(AttndServer(attnd_binary, extra_yaml))
        return servers[-1]

    yield start
    for server in servers:
        server.kill()


@pytest.fixture(scope="session")
def server(attnd_binary):
    """One attnd shared by the tests that only send it requests."""
    s = AttndServer(attnd_binary)
    yield s
    s.kill()


@pytest.fixture(scope="session")
def client(server):
    with attnd.Client(server.target, timeout=60) as c:
        yield c


@pytest.fixture
def rng(request) -> np.random.Generator:
    """Fresh random inputs every run; the seed is printed with a failure's output."""
    seed = int.from_bytes(os.urandom(4), "little")
    print(f"{request.node.name}: seed {seed}")
    return np.random.default_rng(seed)
