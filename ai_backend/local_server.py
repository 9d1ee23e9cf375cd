# SPDX-License-Identifier: GPL-3.0-or-later
"""Serve an app on a background thread on 127.0.0.1 (tests, benchmarks, an embedded local backend)."""

import socket
import threading
import time

import uvicorn


class LiveServer:
    """``app`` served by uvicorn on a thread, on 127.0.0.1 and a port the OS picked; ``stop()`` ends it."""

    def __init__(self, app):
        self.app = app
        # proto must say TCP: asyncio turns Nagle off (TCP_NODELAY) only for sockets whose proto is
        # IPPROTO_TCP, and with Nagle on every response waits ~40 ms for a delayed ACK.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, log_level="warning", lifespan="on", timeout_graceful_shutdown=2)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self._run, args=(sock,), daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 15
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("the server did not start (see its log)")
            time.sleep(0.02)

    def _run(self, sock) -> None:
        try:
            self.server.run(sockets=[sock])
        except SystemExit:  # uvicorn's answer to a failed startup (the reason is logged)
            pass
        finally:
            sock.close()

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(20)
        if self.thread.is_alive():
            raise RuntimeError("the server did not stop within 20 s")
