"""Start ``onyproxy serve`` as a subprocess on a free port, for tests that need a real process."""

from __future__ import annotations

import json
import os
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import yaml


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class GatewayProcess:
    """A gateway subprocess; ``url(path)`` addresses it, ``stop()`` ends it with SIGTERM."""

    def __init__(self, config: dict[str, Any], workdir: Path, env: dict[str, str] | None = None,
                 ssl_context: ssl.SSLContext | None = None, config_after_command: bool = False,
                 program: list[str] | None = None):
        self.port = free_port()
        # With server.tls the gateway speaks HTTPS; ssl_context is how the test trusts its cert.
        self.scheme = "https" if config.get("server", {}).get("tls") else "http"
        self.ssl_context = ssl_context
        config = {**config, "server": {**config.get("server", {}), "port": self.port}}
        config.setdefault("storage", {"url": f"sqlite:///{workdir}/onyproxy.db"})
        self.config_path = workdir / "gateway.yaml"
        self.config_path.write_text(yaml.safe_dump(config))
        self.log_path = workdir / "gateway.log"
        self._log = self.log_path.open("wb")
        option = ["--config", str(self.config_path)]
        # Both spellings are documented: `onyproxy --config F serve` and `onyproxy serve --config F`
        argv = ["serve", *option] if config_after_command else [*option, "serve"]
        # program: another installation's `onyproxy` (the wheel test), else this checkout's.
        self.process = subprocess.Popen(
            [*(program or [sys.executable, "-m", "onyproxy"]), *argv],
            stdout=self._log, stderr=subprocess.STDOUT, cwd=workdir,
            env={**os.environ, **(env or {})})

    def url(self, path: str) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}{path}"

    def wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gateway exited: {self.log()}")
            try:
                with urllib.request.urlopen(self.url("/healthz"), timeout=1,
                                            context=self.ssl_context):
                    return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.1)
        raise TimeoutError(f"gateway not ready: {self.log()}")

    def log(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
        return self.process.returncode


def post_json(url: str, body: dict[str, Any], headers: dict[str, str] | None = None,
              timeout: float = 10) -> tuple[int, dict[str, Any], dict[str, str]]:
    """POST with a fresh connection each time (so SO_REUSEPORT spreads calls over workers)."""
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"content-type": "application/json",
                                              **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read()), dict(resp.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read()), dict(exc.headers)
