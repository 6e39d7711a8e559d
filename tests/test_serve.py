"""``onyproxy serve`` as a user runs it: a real process, a real port, a config file."""

import subprocess
import sys
import time

import pytest
from serve_process import GatewayProcess, post_json

pytestmark = pytest.mark.slow

CONFIG = {
    "providers": {"mock": {"type": "mock"}},
    "models": {"mock-small": {"targets": [{"provider": "mock", "model": "mock-small"}]}},
}
CHAT = {"model": "mock-small", "messages": [{"role": "user", "content": "ping"}]}


@pytest.fixture
def process(tmp_path):
    started = []

    def start(config=CONFIG, **kwargs):
        gateway = GatewayProcess(config, tmp_path, **kwargs)
        started.append(gateway)
        return gateway

    yield start
    for gateway in started:
        gateway.stop()


def test_serve_answers_and_stops_cleanly_on_sigterm(process):
    gateway = process()
    gateway.wait_ready()
    status, body, _ = post_json(gateway.url("/v1/chat/completions"), CHAT)
    assert status == 200 and body["choices"][0]["message"]["content"] == "echo: ping"
    assert gateway.stop() == 0
    assert "Traceback" not in gateway.log()


def test_two_workers_share_one_port(process):
    gateway = process({**CONFIG, "server": {"workers": 2}})
    gateway.wait_ready()
    statuses = [post_json(gateway.url("/v1/chat/completions"), CHAT)[0] for _ in range(20)]
    assert statuses == [200] * 20
    deadline = time.monotonic() + 30  # the first worker may answer before the second listens
    while gateway.log().count("onyproxy listening on") < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert gateway.log().count("onyproxy listening on") == 2
    assert gateway.stop() == 0


def test_unreachable_database_is_a_message_not_a_traceback(process):
    gateway = process({**CONFIG, "storage": {"url": "mongodb://127.0.0.1:1/x"}})
    assert gateway.process.wait(timeout=60) == 1
    log = gateway.log()
    assert "cannot start: storage (mongodb://127.0.0.1:1/x)" in log
    assert "Traceback" not in log


def test_corrupt_sqlite_file_is_a_message(process, tmp_path):
    (tmp_path / "bad.db").write_bytes(b"this is not a database" * 100)
    gateway = process({**CONFIG, "storage": {"url": f"sqlite:///{tmp_path}/bad.db"}})
    assert gateway.process.wait(timeout=60) == 1
    assert "file is not a database" in gateway.log()
    assert "Traceback" not in gateway.log()


def test_version_command():
    out = subprocess.run([sys.executable, "-m", "onyproxy", "version"], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.startswith("onyproxy ")
