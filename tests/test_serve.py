"""``onyproxy serve`` as a user runs it: a real process, a real port, a config file."""

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import aiohttp
import pytest
from fakes.openai_upstream import Behaviour
from serve_process import GatewayProcess, post_json

from onyproxy.parent_watch import watch_parent

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


# --- signals, orphans and the drain -----------------------------------------------------


def wait_until(condition, timeout: float = 30) -> bool:
    """Poll ``condition`` until it holds or ``timeout`` passes (a bound, not a measurement)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def worker_pids(gateway: GatewayProcess, count: int = 2) -> list[int]:
    assert wait_until(lambda: gateway.log().count("onyproxy listening on") >= count), \
        gateway.log()
    return [int(pid) for pid in re.findall(r"listening on \S+ \(pid (\d+)\)", gateway.log())]


def gone(pid: int) -> bool:
    """The process ended (an unreaped zombie counts: it serves nothing)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().rsplit(")", 1)[1].split()[0] == "Z"


def refuses_connections(gateway: GatewayProcess) -> bool:
    try:
        with urllib.request.urlopen(gateway.url("/healthz"), timeout=2):
            return False
    except urllib.error.URLError as exc:
        return isinstance(exc.reason, ConnectionRefusedError)
    except ConnectionError:
        return True


def test_workers_exit_when_their_master_is_killed(process):
    gateway = process({**CONFIG, "server": {"workers": 2}})
    gateway.wait_ready()
    pids = worker_pids(gateway)
    gateway.process.kill()
    gateway.process.wait()
    assert wait_until(lambda: all(gone(pid) for pid in pids)), gateway.log()
    assert refuses_connections(gateway)


async def test_a_worker_notices_its_master_is_gone_without_a_signal():
    orphaned = []
    await asyncio.wait_for(watch_parent(os.getpid(), lambda: orphaned.append(1), 0.01), 10)
    assert orphaned == [1]  # os.getpid() is not this process's parent: as if it had died
    watching = asyncio.ensure_future(watch_parent(os.getppid(), lambda: orphaned.append(2),
                                                  0.01))
    await asyncio.sleep(0.1)
    assert not watching.done() and orphaned == [1]
    watching.cancel()


def test_sighup_does_not_stop_a_single_process_gateway(process):
    gateway = process()
    gateway.wait_ready()
    gateway.process.send_signal(signal.SIGHUP)
    assert wait_until(lambda: "SIGHUP ignored" in gateway.log()), gateway.log()
    assert post_json(gateway.url("/v1/chat/completions"), CHAT)[0] == 200
    assert gateway.stop() == 0


def test_sighup_to_the_master_or_a_worker_does_not_stop_serving(process):
    gateway = process({**CONFIG, "server": {"workers": 2}})
    gateway.wait_ready()
    pids = worker_pids(gateway)
    for pid in (gateway.process.pid, pids[0]):
        os.kill(pid, signal.SIGHUP)
        assert wait_until(lambda pid=pid: f"pid {pid}: SIGHUP ignored" in gateway.log()), \
            gateway.log()
    assert gateway.process.poll() is None and not any(gone(pid) for pid in pids)
    statuses = [post_json(gateway.url("/v1/chat/completions"), CHAT)[0] for _ in range(10)]
    assert statuses == [200] * 10
    assert "restarting" not in gateway.log()
    assert gateway.stop() == 0


def streaming(fake, drain_s: float) -> dict:
    return {"providers": {"up": {"type": "openai", "base_url": fake.base_url,
                                 "api_key": "sk-up"}},
            "models": {"gpt-test": {"targets": [{"provider": "up", "model": "gpt-4o-mini"}]}},
            "server": {"drain_s": drain_s}}


LONG = " ".join(f"canaryword{i}" for i in range(40))


async def open_stream(http: aiohttp.ClientSession, gateway: GatewayProcess):
    resp = await http.post(gateway.url("/v1/chat/completions"), json={
        "model": "gpt-test", "stream": True, "messages": [{"role": "user", "content": LONG}]})
    assert resp.status == 200
    first = await resp.content.readline()
    assert first.startswith(b"data: ")
    return resp


async def rest_of(resp) -> list[bytes]:
    lines = []
    try:
        async for line in resp.content:
            lines.append(line.strip())
    except aiohttp.ClientPayloadError:
        pass  # the gateway cut the stream
    finally:
        resp.close()
    return [line for line in lines if line.startswith(b"data: ")]


async def exit_code(gateway: GatewayProcess) -> int:
    return await asyncio.to_thread(gateway.process.wait, 60)


async def test_sigterm_lets_running_streams_finish_and_refuses_new_calls(process, fake_openai):
    fake_openai.default = Behaviour.trickle(0.05)
    gateway = process(streaming(fake_openai, drain_s=30))
    gateway.wait_ready()
    async with aiohttp.ClientSession() as http:
        resp = await open_stream(http, gateway)
        gateway.process.send_signal(signal.SIGTERM)
        while "draining" not in gateway.log():
            await asyncio.sleep(0.02)
        with pytest.raises(aiohttp.ClientConnectionError):
            await http.get(gateway.url("/healthz"))
        events = await rest_of(resp)
    assert events[-1] == b"data: [DONE]" and len(events) > 40
    assert await exit_code(gateway) == 0
    assert "1 requests in flight" in gateway.log() and " cut " not in gateway.log()


async def test_sigterm_cuts_what_outlives_drain_s_and_counts_it(process, fake_openai):
    fake_openai.default = Behaviour.trickle(1.0)  # 40 words: a stream of about 40 s
    gateway = process(streaming(fake_openai, drain_s=1))
    gateway.wait_ready()
    async with aiohttp.ClientSession() as http:
        resp = await open_stream(http, gateway)
        gateway.process.send_signal(signal.SIGTERM)
        events = await rest_of(resp)
    assert b"data: [DONE]" not in events
    assert await exit_code(gateway) == 0
    log = gateway.log()
    assert "cut 1 requests (1 of them streams) still running after server.drain_s=1s" in log
    assert "canaryword" not in log and "Traceback" not in log
