# SPDX-License-Identifier: GPL-3.0-or-later
"""Start local backend: the sketch backend as a child process of Blender, on 127.0.0.1. No bpy.

``LocalBackend().start()`` runs ``standin-backend serve --engine sketch --host 127.0.0.1 --port P``
on 8765 when that is free (else any free port) and returns once ``/v1/health`` answers (``.url``
is then set); ``stop()`` ends it (SIGTERM, then kill after a grace period). ``shared()`` is the one
this Blender session's buttons start and stop. The program is found in this order: an explicit
path, then ``standin-backend`` on the PATH or beside this Python, then ``python -m
standin.ai_backend.cli`` when the backend package is importable here; otherwise a
``LocalBackendError`` (kind ``not_installed``) says how to install it. Every failure is a
``LocalBackendError`` (a ``BackendError``) with the child's last output.

A child must not outlive Blender: every started backend is stopped at interpreter exit (atexit),
the add-on stops it on unregister, and a tiny watchdog process (stdlib Python, started with this
interpreter) holds a pipe from us: when Blender dies without cleaning up (a crash, a kill), the
pipe closes and the watchdog stops the backend.
"""

from __future__ import annotations

import atexit
import collections
import importlib.util
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import weakref

from .backend_client import BackendClient, BackendError

__all__ = ["LocalBackend", "LocalBackendError", "backend_command", "free_port", "shared"]

PROGRAM = "standin-backend"
#: the backend's own default port, which a new project's Backend URL already names: used when free
DEFAULT_PORT = 8765
MODULE = "standin.ai_backend.cli"
INSTALL_HINT = ("install the backend with `pip install standin[backend]` (see the README, "
                "“The generation backend”), or set the path to the standin-backend program")
#: the watchdog: waits for its stdin to close; unless it was told "stop" first, stops the backend
#: (SIGTERM to its process group, SIGKILL after 5 s). argv[1] is the backend's pid.
WATCHDOG = r"""
import os, signal, sys, time
pid = int(sys.argv[1])
told = sys.stdin.buffer.read()
if told.strip() != b"stop":
    if os.name == "nt":
        try:
            os.kill(pid, signal.SIGTERM)
        except OSError:
            pass
    else:
        def alive():
            try:
                os.kill(pid, 0)
                return True
            except OSError:
                return False
        try:
            os.killpg(pid, signal.SIGTERM)
        except OSError:
            pass
        deadline = time.monotonic() + 5
        while alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        if alive():
            try:
                os.killpg(pid, signal.SIGKILL)
            except OSError:
                pass
"""
_started: "weakref.WeakSet[LocalBackend]" = weakref.WeakSet()
_shared: "LocalBackend | None" = None


class LocalBackendError(BackendError):
    """The local backend cannot be found or started; the message says why and what to do."""

    def __init__(self, message: str, kind: str = "local"):
        super().__init__(message, kind=kind)


def shared() -> "LocalBackend":
    """This session's local backend (made on first use; not started until ``start()``)."""
    global _shared
    if _shared is None:
        _shared = LocalBackend()
    return _shared


def free_port(preferred: int | None = None) -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now: ``preferred`` when it is free."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        if preferred:
            try:
                probe.bind(("127.0.0.1", preferred))
                return preferred
            except OSError:
                pass
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _backend_importable() -> bool:
    try:
        return importlib.util.find_spec(MODULE) is not None
    except (ImportError, ValueError):
        return False


def backend_command(executable: str | os.PathLike | None = None) -> list[str]:
    """The command that runs ``standin-backend`` (without ``serve`` and its options)."""
    if executable:
        path = pathlib.Path(executable).expanduser()
        if not path.is_file() or not os.access(path, os.X_OK):
            raise LocalBackendError(f"the backend program {path} does not exist or cannot be run: fix the path, or "
                                    f"clear it to use the installed {PROGRAM}.", kind="not_installed")
        return [str(path)]
    found = shutil.which(PROGRAM)
    if found is None:  # a virtualenv's scripts sit beside its python, even when not on the PATH
        folder = pathlib.Path(sys.executable).parent
        for name in (PROGRAM, PROGRAM + ".exe"):
            if (folder / name).is_file() and os.access(folder / name, os.X_OK):
                found = str(folder / name)
                break
    if found is not None:
        return [found]
    if _backend_importable():
        return [sys.executable, "-m", MODULE]
    raise LocalBackendError(f"the StandIn backend is not installed where Blender can find it: {INSTALL_HINT}.",
                            kind="not_installed")


class LocalBackend:
    """One ``standin-backend serve`` child process on 127.0.0.1.

    ``executable``: the program to run (default: found as the module docstring says); ``engine``:
    ``sketch`` (no models needed); ``token``: handed over in the environment, not on the command line.
    """

    def __init__(self, executable: str | os.PathLike | None = None, engine: str = "sketch",
                 token: str | None = None):
        self.executable = executable
        self.engine = engine
        self.token = token or None
        self.url: str | None = None
        self.port: int | None = None
        self._process: subprocess.Popen | None = None
        self._watchdog: subprocess.Popen | None = None
        self._output: collections.deque[str] = collections.deque(maxlen=40)
        self._lock = threading.Lock()

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def output_tail(self, lines: int = 12) -> str:
        """The child's last lines of output (stdout and stderr together)."""
        return "\n".join(list(self._output)[-lines:])

    def client(self, timeout: float = 20.0) -> BackendClient:
        if self.url is None:
            raise LocalBackendError("the local backend is not running: press Start local backend.", kind="unreachable")
        return BackendClient(self.url, self.token, timeout=timeout)

    # -- start / stop --------------------------------------------------------------------------

    def start(self, port: int | None = None, data_dir: str | os.PathLike | None = None,
              timeout: float = 60.0) -> "LocalBackend":
        """Start the backend (on ``port``; by default on 8765 when free, which a new project's
        Backend URL names, else any free port) and wait until it answers; returns itself (``.url``
        is set). Blocks for the seconds the child needs to start: call it off the UI thread.

        ``data_dir``: the jobs' folder (default: the backend's own, ``$STANDIN_BACKEND_DATA`` or
        ``~/.local/share/standin-backend``). Already running: returns at once."""
        with self._lock:
            if self.running:
                return self
            self._stop_locked(grace=1.0)  # a child that died on its own: collect it
            command = backend_command(self.executable)
            tries_left = 1 if port else 3  # a free port can be taken between choosing and binding it
            while True:
                chosen = port or free_port(DEFAULT_PORT if tries_left == 3 else None)
                tries_left -= 1
                try:
                    self._launch(command, chosen, data_dir, timeout)
                    return self
                except LocalBackendError:
                    port_taken = "address already in use" in self.output_tail(40).lower()
                    if not port_taken or tries_left == 0:
                        raise

    def stop(self, grace: float = 5.0) -> None:
        """Stop the backend: SIGTERM (it finishes gracefully), then kill after ``grace`` seconds."""
        with self._lock:
            self._stop_locked(grace)

    def _launch(self, command: list[str], port: int, data_dir, timeout: float) -> None:
        arguments = [*command, "serve", "--engine", self.engine, "--host", "127.0.0.1", "--port", str(port)]
        if data_dir is not None:
            arguments += ["--data", str(pathlib.Path(data_dir).expanduser())]
        environment = {key: value for key, value in os.environ.items() if key != "STANDIN_BACKEND_TOKEN"}
        environment["PYTHONUNBUFFERED"] = "1"
        if self.token:
            environment["STANDIN_BACKEND_TOKEN"] = self.token
        self._output.clear()
        try:
            process = subprocess.Popen(arguments, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                       stderr=subprocess.STDOUT, env=environment, **_own_process_group())
        except OSError as error:
            raise LocalBackendError(f"{arguments[0]} could not be started ({error.strerror or error}): {INSTALL_HINT}.",
                                    kind="not_installed") from None
        self._process = process
        _started.add(self)
        threading.Thread(target=self._collect_output, args=(process,), name="standin-local-backend-output",
                         daemon=True).start()
        self._watchdog = _start_watchdog(process.pid)
        url = f"http://127.0.0.1:{port}"
        probe = BackendClient(url, self.token, timeout=2.0)
        deadline = time.monotonic() + timeout
        while True:
            code = process.poll()
            if code is not None:
                time.sleep(0.1)  # let the output thread catch the last lines
                self._stop_locked(grace=0)
                raise LocalBackendError(self._failure(f"the local backend stopped at once (exit code {code})"))
            try:
                probe.health()
            except BackendError as error:
                if error.kind not in ("unreachable", "connection", "timeout"):
                    self._stop_locked(grace=2.0)
                    raise LocalBackendError(
                        self._failure(f"the local backend on port {port} answered wrongly ({error})")) from None
                if time.monotonic() > deadline:
                    self._stop_locked(grace=2.0)
                    raise LocalBackendError(
                        self._failure(f"the local backend did not answer within {timeout:g} s")) from None
                time.sleep(0.1)
                continue
            self.url, self.port = url, port
            return

    def _stop_locked(self, grace: float) -> None:
        process, self._process = self._process, None
        self.url = self.port = None
        if process is not None:
            if process.poll() is None:
                _signal_group(process, signal.SIGTERM)
                try:
                    process.wait(grace)
                except subprocess.TimeoutExpired:
                    _signal_group(process, getattr(signal, "SIGKILL", signal.SIGTERM))
                    try:
                        process.wait(5)
                    except subprocess.TimeoutExpired:
                        pass
            if process.stdout is not None:
                process.stdout.close()
        watchdog, self._watchdog = self._watchdog, None
        if watchdog is not None:
            try:
                watchdog.stdin.write(b"stop")
                watchdog.stdin.close()
            except OSError:
                pass
            try:
                watchdog.wait(5)
            except subprocess.TimeoutExpired:
                watchdog.kill()

    def _collect_output(self, process: subprocess.Popen) -> None:
        try:
            for raw in process.stdout:
                self._output.append(raw.decode("utf-8", "replace").rstrip())
        except (OSError, ValueError):  # closed by stop()
            pass

    def _failure(self, what: str) -> str:
        tail = self.output_tail()
        hint = ""
        if "No module named" in tail:
            hint = f" Part of the backend is missing: {INSTALL_HINT}."
        elif "another standin-backend is using" in tail:
            hint = " Stop that backend, or use it: put its address in Project ▸ Backend URL."
        said = f"; its last output:\n{tail}" if tail else " (it printed nothing)"
        return f"{what}{said}\n{hint.strip()}".rstrip()


def _own_process_group() -> dict:
    """Popen arguments that put the child in its own process group (stopped as a whole)."""
    if os.name == "nt":
        return {"creationflags": subprocess.CREATE_NEW_PROCESS_GROUP}
    return {"start_new_session": True}


def _signal_group(process: subprocess.Popen, signum: int) -> None:
    try:
        if os.name == "nt":
            process.terminate() if signum == signal.SIGTERM else process.kill()
        else:
            os.killpg(process.pid, signum)
    except (ProcessLookupError, PermissionError):
        pass


def _start_watchdog(pid: int) -> subprocess.Popen | None:
    try:
        return subprocess.Popen([sys.executable, "-c", WATCHDOG, str(pid)], stdin=subprocess.PIPE,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **_own_process_group())
    except OSError:  # without it, atexit and unregister still stop the backend
        return None


@atexit.register
def _stop_every_backend() -> None:
    for backend in list(_started):
        backend.stop(grace=3.0)
