# SPDX-License-Identifier: GPL-3.0-or-later
"""Backend test fixtures: ``make_package`` writes a synthetic, valid shot package (see shot_packages);
``serve`` runs apps on real uvicorn servers on 127.0.0.1 and stops them."""

import pytest

from standin.ai_backend.local_server import LiveServer

from shot_packages import CHARACTERS, character_box, write_package  # noqa: F401  (re-exported for tests)


@pytest.fixture
def make_package(tmp_path):
    """``make_package(frames=3, width=64, height=48, ...)`` → the folder of a fresh shot package."""
    counter = iter(range(1000))

    def make(**kwargs):
        return write_package(tmp_path / f"package{next(counter)}", **kwargs)

    return make


@pytest.fixture
def serve():
    """``serve(app) -> LiveServer``; every server started is stopped at teardown."""
    servers = []

    def start(app) -> LiveServer:
        server = LiveServer(app)
        servers.append(server)
        return server

    yield start
    for server in reversed(servers):
        server.stop()
