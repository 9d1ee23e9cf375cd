# SPDX-License-Identifier: GPL-3.0-or-later
"""Start local backend (``addon/local_backend.py``): a real ``standin-backend serve`` child process
started, answering, stopped; a child whose parent dies is stopped too; and starts that fail say why
(with the child's last output) and leave no process behind.
"""

import os
import pathlib
import socket
import subprocess
import sys
import time

import pytest

from standin.addon import local_backend
from standin.addon.backend_client import BackendClient, BackendError
from standin.addon.local_backend import LocalBackend, LocalBackendError, backend_command
from standin.ai_backend.engines.sketch import SketchEngine
from standin.ai_backend.local_server import LiveServer
from standin.ai_backend.server import create_app

pytestmark = pytest.mark.skipif(os.name != "posix", reason="the fake programs here are shell scripts")


def gone(pid: int) -> bool:
    """The process has exited (a zombie nobody reaped counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    status = pathlib.Path(f"/proc/{pid}/status")
    try:
        return "State:\tZ" in status.read_text()
    except OSError:
        return True


def wait_until(condition, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def refuses(url: str) -> bool:
    try:
        BackendClient(url, timeout=1).health()
    except BackendError as error:
        return error.kind == "unreachable"
    return False


def program(tmp_path, text: str) -> pathlib.Path:
    path = tmp_path / "fake-standin-backend"
    path.write_text("#!/bin/sh\n" + text)
    path.chmod(0o755)
    return path


def test_start_a_real_backend_and_stop_it(tmp_path):
    backend = LocalBackend()
    try:
        assert backend.start(data_dir=tmp_path / "data", timeout=60) is backend
        url = backend.url
        assert url.startswith("http://127.0.0.1:") and backend.running
        health = BackendClient(url).health()
        assert health["engine"] == "sketch" and health["auth"] is False
        pid = backend.pid
        assert backend.start().url == url and backend.pid == pid  # already running: the same one
    finally:
        backend.stop(grace=10)
    assert not backend.running and backend.url is None and gone(pid)
    assert refuses(url)


def test_a_backend_outlives_no_crashed_blender(tmp_path):
    """Blender killed outright (no atexit): the watchdog stops the backend it left behind."""
    code = ("import sys, time\n"
            "from standin.addon.local_backend import LocalBackend\n"
            "backend = LocalBackend()\n"
            "backend.start(data_dir=sys.argv[1])\n"
            "print(backend.pid, backend.url, flush=True)\n"
            "time.sleep(120)\n")
    blender = subprocess.Popen([sys.executable, "-c", code, str(tmp_path / "data")], stdout=subprocess.PIPE, text=True)
    try:
        pid, url = blender.stdout.readline().split()
        assert BackendClient(url).health()["engine"] == "sketch"
    finally:
        blender.kill()
        blender.wait(10)
    assert wait_until(lambda: gone(int(pid)), timeout=15), "the backend outlived its parent"
    assert refuses(url)


def test_a_backend_that_cannot_start_says_why(tmp_path):
    data = tmp_path / "data"
    holder = LiveServer(create_app(SketchEngine(), data))  # another backend already uses this data folder
    backend = LocalBackend()
    try:
        with pytest.raises(LocalBackendError) as caught:
            backend.start(data_dir=data, timeout=60)
    finally:
        holder.stop()
    message = str(caught.value)
    assert caught.value.kind == "local" and "stopped at once" in message
    assert f"another standin-backend is using {data}" in message and "Stop that backend" in message
    assert not backend.running


def test_a_failing_program_shows_its_last_words(tmp_path):
    script = 'echo "loading engine..."\necho "boom: no GPU here" >&2\nexit 3\n'
    crashing = LocalBackend(executable=program(tmp_path, script))
    with pytest.raises(LocalBackendError) as caught:
        crashing.start(timeout=10)
    assert caught.value.kind == "local"
    assert "exit code 3" in str(caught.value) and "boom: no GPU here" in str(caught.value)
    assert not crashing.running


def test_a_silent_program_times_out_and_is_stopped(tmp_path):
    pid_file = tmp_path / "pid"
    stuck = LocalBackend(executable=program(tmp_path, f'echo $$ > "{pid_file}"\necho "warming up"\nexec sleep 60\n'))
    started = time.monotonic()
    with pytest.raises(LocalBackendError) as caught:
        stuck.start(timeout=1)
    assert time.monotonic() - started < 10
    assert "did not answer within 1 s" in str(caught.value) and "warming up" in str(caught.value)
    assert gone(int(pid_file.read_text())) and not stuck.running


def test_ports():
    taken = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    try:
        busy = taken.getsockname()[1]
        other = local_backend.free_port(busy)
        assert other != busy and local_backend.free_port(other) == other  # the preferred port when it is free
    finally:
        taken.close()


def test_finding_the_program(tmp_path, monkeypatch):
    assert local_backend.shared() is local_backend.shared() and not local_backend.shared().running
    assert issubclass(LocalBackendError, BackendError)  # one except clause catches every backend problem
    with pytest.raises(LocalBackendError) as caught:
        backend_command(tmp_path / "no-such-program")
    assert caught.value.kind == "not_installed" and "no-such-program" in str(caught.value)
    fake = program(tmp_path, "exit 0\n")
    assert backend_command(fake) == [str(fake)]

    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    assert backend_command() == [str(tmp_path / "python"), "-m", "standin.ai_backend.cli"]  # importable here

    monkeypatch.setattr(local_backend, "MODULE", "standin_backend_not_installed.cli")
    with pytest.raises(LocalBackendError) as caught:
        backend_command()
    assert caught.value.kind == "not_installed"
    assert "pip install standin[backend]" in str(caught.value) and "README" in str(caught.value)
