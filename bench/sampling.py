"""Profile the gateway under load with py-spy (sampling, no instrumentation overhead).

``py-spy record --threads --gil --format raw`` on the running ``onyproxy serve``: only samples
of a thread holding the GIL count, so the shares are of Python CPU time. Each sample of the
event loop thread is attributed to every *area* on its stack (a plugin, a core module, the
aiohttp server or client ...), so an area's share is inclusive: "x % of the loop's time was
spent inside plugin metering, whatever it called". Leaf shares (own time) are given too.
py-spy is not a dependency: ``pip install py-spy`` (anywhere) and pass ``--py-spy PATH`` or
have it on PATH.
"""

from __future__ import annotations

import collections
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

from bench.gateways import GatewaySpec, start_gateway
from bench.matrix import Limits, Scenario, measure

_FRAME = re.compile(r"\((?P<path>[^()]*?):\d+\)$")
_SERVER = ("web", "http_writer", "base_protocol", "streams", "http_parser", "http_")


def find_py_spy(given: str | None) -> str | None:
    if given:
        return given
    return shutil.which("py-spy")


def sample_gateway(py_spy: str, upstream: str, workdir: Path, cores: str | None,
                   load_cores: str | None, seconds: float, pipeline: str = "full",
                   modes: tuple[str, ...] = ("json", "stream")) -> dict[str, Any]:
    target = start_gateway(f"{pipeline} (py-spy)", GatewaySpec(pipeline=pipeline), upstream,
                           workdir / "sampled", cores)
    out = workdir / "py-spy.txt"
    runs: list[dict[str, Any]] = []
    env = dict(os.environ)
    spy_home = Path(py_spy).resolve().parent.parent  # a --target install needs its PYTHONPATH
    env["PYTHONPATH"] = f"{spy_home}:{env.get('PYTHONPATH', '')}"
    try:
        spy = subprocess.Popen(
            [py_spy, "record", "-p", str(target.child.pid), "-d",
             str(int(seconds * len(modes) + 1)), "-r", "250", "--threads", "--gil",
             "--nonblocking", "--format", "raw", "-o", str(out)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
        for mode in modes:
            runs.append(measure(target, Scenario(mode, 16), Limits(duration_s=seconds,
                                                                   warmup_s=0.5), load_cores))
        log = spy.communicate(timeout=60)[0].decode(errors="replace")
    finally:
        target.stop()
    if not out.exists():
        raise RuntimeError(f"py-spy wrote nothing:\n{log[-2000:]}")
    summary = summarise(out.read_text())
    return {"requests": sum(r["sent"] for r in runs), "runs": runs, "pipeline": pipeline,
            "modes": list(modes), "sampler": "py-spy", **summary}


def area(frame: str) -> str:
    """Which part of the program a py-spy frame ``func (path:line)`` belongs to."""
    match = _FRAME.search(frame)
    path = match.group("path") if match else ""
    top = path.split("/", 1)[0]
    if top == "plugins":
        return "plugin " + path.split("/")[1].removesuffix(".py")
    if top == "onyproxy":
        return "onyproxy." + path[len("onyproxy/"):].removesuffix(".py").replace("/", ".")
    if top == "aiohttp":
        name = path.split("/")[1]
        if name.startswith(("client", "connector")):
            return "aiohttp client"
        return "aiohttp server" if name.startswith(_SERVER) else "aiohttp (other)"
    if top in ("asyncio", "uvloop"):
        return "asyncio/uvloop"
    if top in ("logging", "json", "copy.py", "dataclasses.py", "threading.py", "concurrent"):
        return f"stdlib {top.removesuffix('.py')}"
    return top or frame


def summarise(raw: str) -> dict[str, Any]:
    threads: collections.Counter[str] = collections.Counter()
    areas: collections.Counter[str] = collections.Counter()
    leaves: collections.Counter[str] = collections.Counter()
    loop_total = 0
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        frames = stack.split(";")
        thread = frames[0].split(":", 1)[-1].strip()
        threads[thread] += n
        if thread != "MainThread":
            continue
        loop_total += n
        for name in {area(f) for f in frames[1:]}:
            areas[name] += n
        leaves[_short(frames[-1])] += n
    skip = {"asyncio/uvloop", "onyproxy.server", "onyproxy.cli", "onyproxy.cli.serve",
            "onyproxy.cli.__init__", "onyproxy", "onyproxy."}
    return {
        "threads": dict(threads.most_common()),
        "loop_samples": loop_total,
        "areas": [{"area": a, "share": round(n / loop_total, 4)}
                  for a, n in areas.most_common() if a not in skip][:30],
        "leaves": [{"function": f, "share": round(n / loop_total, 4)}
                   for f, n in leaves.most_common(25)],
    }


def _short(frame: str) -> str:
    return re.sub(r"\S*/site-packages/", "", frame)


def sampling_tables(result: dict[str, Any]) -> str:
    threads = ", ".join(f"{t}: {n}" for t, n in result["threads"].items())
    lines = [f"GIL-holding samples per thread: {threads}", "",
             "| area (inclusive) | share of event-loop time |", "|---|---|"]
    lines += [f"| {row['area']} | {row['share'] * 100:.1f} % |" for row in result["areas"]]
    lines += ["", "| function (own time) | share |", "|---|---|"]
    lines += [f"| `{row['function']}` | {row['share'] * 100:.1f} % |" for row in result["leaves"]]
    return "\n".join(lines)
