"""The endpoint in a background thread of this process: for the demo and the tests.

`modelfactory serve` runs uvicorn in the foreground; here the same app answers on
127.0.0.1 while the caller goes on, so one process can send traffic, tick sensors and run
jobs against a real endpoint.
"""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

import uvicorn

__all__ = ["BackgroundServer", "free_port"]


def free_port() -> int:
    """A TCP port nobody listens on right now, on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class BackgroundServer:
    """A real uvicorn server on 127.0.0.1, started and stopped as a context manager."""

    def __init__(self, app: Any, port: int | None = None, start_timeout: float = 60.0) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.app = app
        self.start_timeout = start_timeout
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="endpoint", daemon=True)

    def __enter__(self) -> BackgroundServer:
        self.thread.start()
        deadline = time.monotonic() + self.start_timeout
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError(f"the endpoint did not start on {self.url}")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.server.should_exit = True  # the app's shutdown flushes captured requests
        self.thread.join(timeout=60)
