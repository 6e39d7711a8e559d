"""The README's first call, as a new user makes it: default config, quickstart key, SDK call."""

import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import openai
import pytest
from serve_process import free_port

pytestmark = pytest.mark.slow


def onyproxy(*args: str, cwd: Path, env: dict, **kwargs) -> subprocess.Popen:
    # No --config, as in the README: the folder has no config/gateway.yaml, so the default
    # shipped inside the package is used.
    env = {k: v for k, v in env.items() if k != "ONYPROXY_CONFIG"}
    return subprocess.Popen([sys.executable, "-m", "onyproxy", *args], cwd=cwd, env=env,
                            **kwargs)


def wait_healthy(url: str, process: subprocess.Popen) -> None:
    for _ in range(300):
        assert process.poll() is None, "the gateway exited"
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(url)


def test_default_config_quickstart_key_and_openai_sdk(tmp_path):
    port = free_port()
    env = {**os.environ, "ONYPROXY_PORT": str(port)}
    env.pop("ONYPROXY_STORAGE_URL", None)
    url = f"http://127.0.0.1:{port}"
    server = onyproxy("serve", cwd=tmp_path, env=env, stdout=subprocess.DEVNULL,
                      stderr=subprocess.DEVNULL)
    try:
        wait_healthy(url, server)
        quickstart = onyproxy("quickstart", cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
        key, _ = quickstart.communicate(timeout=60)
        assert quickstart.returncode == 0
        client = openai.OpenAI(base_url=url + "/v1", api_key=key.strip(), max_retries=0)
        answer = client.chat.completions.create(
            model="mock-small", messages=[{"role": "user", "content": "Hello!"}])
        assert answer.choices[0].message.content == "echo: Hello!"
        client.close()
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert (tmp_path / "data" / "onyproxy.db").exists()
