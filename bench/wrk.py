"""Closed-loop load from ``wrk`` (C, event loop per thread): POST a JSON event whose
``event_id`` differs on every request (run tag + thread + counter, made in the Lua
``request`` function), so no request is a replay. Returns requests/s, latency percentiles
(``--latency``), errors, and wrk's own CPU time (its rusage), so the load generator's cost is
printed next to the numbers it produced.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Any

from bench.support import run_measured

SCRIPT = r"""
-- args: token, run tag, event type ("deposit" or "register")
local counter = 0
local threads = {}

function setup(thread)
  table.insert(threads, thread)
  thread:set("tid", #threads)
end

function init(args)
  token = args[1] or ""
  run = args[2] or "run"
  kind = args[3] or "deposit"
  wrk.headers["Content-Type"] = "application/json"
  if token ~= "" then
    wrk.headers["Authorization"] = "Bearer " .. token
  end
end

function request()
  counter = counter + 1
  local body
  if kind == "register" then
    body = string.format(
      '{"event_id":"%s-%d-%d","type":"user.registered","user_id":"%s-%d-%d",' ..
      '"app_id":"broker-app","occurred_at":"2026-12-02T09:30:00+08:00"}',
      run, tid, counter, run, tid, counter)
  else
    body = string.format(
      '{"event_id":"%s-%d-%d","type":"cash.deposited","user_id":"u%d",' ..
      '"app_id":"broker-app","occurred_at":"2026-12-02T09:30:00+08:00",' ..
      '"amount":"1000.00","currency":"HKD"}',
      run, tid, counter, counter % 1000)
  end
  return wrk.format("POST", nil, nil, body)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d,' ..
    '"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
"""


def wrk_binary() -> str:
    found = shutil.which("wrk") or ("/usr/bin/wrk" if Path("/usr/bin/wrk").exists() else None)
    if not found:
        raise SystemExit("wrk is not installed (apt-get install -y wrk)")
    return found


def run_wrk(
    url: str,
    token: str = "",
    *,
    seconds: int = 10,
    threads: int = 2,
    connections: int = 32,
    kind: str = "deposit",
) -> dict[str, Any]:
    """One closed-loop wrk run; raises if wrk fails."""
    binary = wrk_binary()
    run = f"w{uuid.uuid4().hex[:10]}"
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "post_event.lua"
        script.write_text(SCRIPT)
        argv = [
            binary,
            f"-t{threads}",
            f"-c{connections}",
            f"-d{seconds}s",
            "--timeout",
            "10s",
            "--latency",
            "-s",
            str(script),
            url,
            "--",
            token,
            run,
            kind,
        ]
        out, err, wall, cpu, code = run_measured(argv, timeout=seconds + 60)
    lines = [line for line in out.splitlines() if line.startswith("WRKJSON ")]
    if code != 0 or not lines:
        raise RuntimeError(f"wrk failed ({code}):\n{out[-2000:]}\n{err[-2000:]}")
    raw = json.loads(lines[-1].removeprefix("WRKJSON "))
    elapsed = raw["duration_us"] / 1e6
    non_2xx = 0
    for line in out.splitlines():
        if "Non-2xx or 3xx responses:" in line:
            non_2xx = int(line.rsplit(":", 1)[1])
    socket_errors = raw["connect"] + raw["read"] + raw["write"] + raw["timeout"]
    return {
        "requests": raw["requests"],
        "seconds": round(elapsed, 2),
        "requests_per_s": raw["requests"] / elapsed if elapsed else 0.0,
        "ok_per_s": (raw["requests"] - non_2xx) / elapsed if elapsed else 0.0,
        "p50_ms": raw["p50_us"] / 1000,
        "p90_ms": raw["p90_us"] / 1000,
        "p99_ms": raw["p99_us"] / 1000,
        "max_ms": raw["max_us"] / 1000,
        "non_2xx": non_2xx,
        "socket_errors": socket_errors,
        "gen_cpu_pct": 100 * cpu / wall if wall else 0.0,
        "threads": threads,
        "connections": connections,
    }


def describe(label: str, r: dict[str, Any]) -> str:
    return (
        f"{label:<34} {r['requests_per_s']:>9.0f} {r['p50_ms']:>8.2f} {r['p99_ms']:>8.2f} "
        f"{r['non_2xx'] + r['socket_errors']:>7} {r['gen_cpu_pct']:>9.0f}%"
    )


HEADER = (
    f"{'target (wrk, closed loop)':<34} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} "
    f"{'errors':>7} {'wrk CPU':>10}"
)
