"""The benchmark: one command, every row in one run (DESIGN.md §8).

    .venv/bin/python bench/run.py [--duration 10] [--connections 16] [--quick]

Starts the example upstream, the bare ceiling and gateways (uvicorn and Daphne; 1 and 2
processes) on loopback, drives them with wrk pinned to the other core, and prints a table
and JSON (bench/results/latest.json). Everything it starts, it stops.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/13"
CORES = os.cpu_count() or 1
SERVER_CORE, LOAD_CORE = "0", "1" if CORES > 1 else "0"


@dataclass
class Row:
    name: str
    server: str
    processes: int
    rps: float
    p50_ms: float
    p99_ms: float
    non_2xx: int
    vs_direct: float = 0.0
    vs_ceiling: float = 0.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    print("installing wrk …", file=sys.stderr)
    subprocess.run(["apt-get", "install", "-y", "wrk"], capture_output=True)
    if not shutil.which("wrk"):
        subprocess.run(["apt-get", "update"], capture_output=True)
        subprocess.run(["apt-get", "install", "-y", "wrk"], capture_output=True)
    found = shutil.which("wrk")
    if not found:
        sys.exit("wrk is not installed and `apt-get install wrk` failed; install it and rerun")
    return found


def bench_redis() -> str:
    """A Redis of the benchmark's own, pinned to the load generator's core, so that the
    gateway's core runs the gateway alone (the machine's Redis floats between cores).
    BENCH_REDIS_URL overrides; without redis-server the machine's Redis (db 13) is used."""
    if os.environ.get("BENCH_REDIS_URL") or not shutil.which("redis-server"):
        return os.environ.get("BENCH_REDIS_URL") or DEFAULT_REDIS_URL
    import redis

    port = free_port()
    child = subprocess.Popen(pinned(LOAD_CORE, ["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                                                "--save", "", "--appendonly", "no"]),
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    atexit.register(lambda: os.killpg(child.pid, signal.SIGTERM))
    url = f"redis://127.0.0.1:{port}/0"
    deadline = time.monotonic() + 10
    while True:
        try:
            redis.Redis.from_url(url).ping()
            return url
        except redis.RedisError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def pinned(core: str | None, command: list[str]) -> list[str]:
    return ["taskset", "-c", core, *command] if core is not None and shutil.which("taskset") else command


@contextmanager
def process(command: list[str], env: dict[str, str], log: Path, ready_url: str | None = None,
            headers: dict[str, str] | None = None) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("ab") as output:
        child = subprocess.Popen(command, cwd=ROOT, env=env, stdout=output, stderr=output, start_new_session=True)
    try:
        if ready_url:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                try:
                    if httpx.get(ready_url, headers=headers, timeout=1).status_code < 500:
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.2)
            else:
                raise RuntimeError(f"{command[0]} never answered {ready_url}; see {log}")
        yield child
    finally:
        os.killpg(child.pid, signal.SIGTERM)
        try:
            child.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, signal.SIGKILL)


# Each gateway row's ceiling: proxied rows against redis + forward, answers without the
# upstream (hits, 429s) against the Redis-only answer.
_CEILING_OF = {"gateway proxied": "ceiling: redis + forward",
               "gateway proxied, records on": "ceiling: redis + forward",
               "gateway proxied, records off": "ceiling: redis + forward",
               "gateway cache hit": "ceiling: redis only", "gateway 429 storm": "ceiling: redis only"}
_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def wrk(url: str, *, duration: int, connections: int, key: str | None = None) -> tuple[float, float, float, int]:
    command = pinned(LOAD_CORE, ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency", url])
    if key:
        command[-1:-1] = ["-H", f"X-API-Key: {key}"]
    out = subprocess.run(command, capture_output=True, text=True, timeout=duration + 30).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]

    def percentile(label: str) -> float:
        match = re.search(rf"\s{label}%\s+([\d.]+)(us|ms|s)", out)
        return float(match.group(1)) * _UNITS[match.group(2)] if match else float("nan")

    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    return rps, percentile("50"), percentile("99"), int(non_2xx.group(1)) if non_2xx else 0


async def stampede(url: str, key: str, count: int) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=count)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:
        async def one() -> httpx.Response:
            response = await client.get(url, headers={"X-API-Key": key})
            response.raise_for_status()
            return response
        return await asyncio.gather(*[one() for _ in range(count)])


def upstream_calls(upstream: str, path: str) -> int:
    return int(httpx.get(f"{upstream}/stats").json()["by_path"].get(path, 0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--quick", action="store_true", help="4 s per row")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds of the server rows (median)")
    parser.add_argument("--json-out", default=str(ROOT / "bench" / "results" / "latest.json"))
    args = parser.parse_args()
    duration = 4 if args.quick else args.duration
    ensure_wrk()
    import redis

    redis_url = bench_redis()
    redis.Redis.from_url(redis_url).flushdb()
    work = Path(tempfile.mkdtemp(prefix="heliox-bench-"))
    env = {**os.environ, "DEBUG": "true", "REDIS_URL": redis_url, "HELIOX_VAR_DIR": str(work),
           "SECURE_SSL_REDIRECT": "false", "LOG_LEVEL": "WARNING", "BENCH_REDIS_URL": redis_url,
           "STATIC_ROOT": str(work / "static")}
    env.pop("DATABASE_URL", None)
    up_port = free_port()
    upstream = f"http://127.0.0.1:{up_port}"
    env["BENCH_UPSTREAM"] = upstream
    rows: list[Row] = []
    extras: dict[str, object] = {}
    with process(pinned(LOAD_CORE, [PY, "-m", "gateway.example_upstream", "--port", str(up_port)]), env,
                 work / "upstream.log", f"{upstream}/health"):
        subprocess.run([PY, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
        keys = json.loads(subprocess.run([PY, "-m", "bench.seed", upstream], cwd=ROOT, env=env, check=True,
                                         capture_output=True, text=True).stdout.strip().splitlines()[-1])
        c = args.connections

        def measure(name: str, server: str, processes: int, url: str, key: str | None = None) -> Row:
            wrk(url, duration=2, connections=c, key=key)  # warm-up
            row = Row(name, server, processes, *wrk(url, duration=duration, connections=c, key=key))
            print(f"  {name:<28} {server:<8} {row.rps:>9.0f} req/s  p50 {row.p50_ms:.2f} ms  p99 {row.p99_ms:.2f} ms",
                  file=sys.stderr)
            return row

        def measure_rounds(specs: list[tuple[str, str, str | None]], server: str) -> dict[str, Row]:
            for _, url, key in specs:
                wrk(url, duration=2, connections=c, key=key)  # warm-up
            results: dict[str, list[tuple[float, float, float, int]]] = {name: [] for name, _, _ in specs}
            for round_ in range(args.rounds):
                # Every other round backwards, so no row always follows the same one.
                for name, url, key in specs if round_ % 2 == 0 else specs[::-1]:
                    results[name].append(wrk(url, duration=duration, connections=c, key=key))
            measured = {}
            for name, runs in results.items():
                median_run = sorted(runs)[len(runs) // 2]
                measured[name] = Row(name, server, 1, *median_run)
            for name, ceiling in _CEILING_OF.items():
                if name in measured:
                    ratios = [a[0] / b[0] for a, b in zip(results[name], results[ceiling], strict=True)]
                    measured[name].vs_ceiling = statistics.median(ratios)
            for row in measured.values():
                print(f"  {row.name:<28} {server:<8} {row.rps:>9.0f} req/s  p50 {row.p50_ms:.2f} ms  "
                      f"p99 {row.p99_ms:.2f} ms  ÷ceiling {row.vs_ceiling or float('nan'):.2f}", file=sys.stderr)
            return measured

        direct = measure("direct to upstream", "-", 1, f"{upstream}/bytes?size=1024")
        rows.append(direct)
        for server in ("uvicorn", "daphne"):
            ports = {name: free_port() for name in ("ceiling", "gateway", "recorded", "unrecorded")}
            bases = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}

            def serve(name: str, server: str = server, ports: dict[str, int] = ports) -> list[str]:
                if server == "uvicorn":
                    # --no-proxy-headers: the gateway resolves X-Forwarded-For itself (TRUSTED_PROXIES).
                    return ["-m", "uvicorn", "--host", "127.0.0.1", "--port", str(ports[name]), "--no-access-log",
                            "--log-level", "warning", "--loop", "uvloop", "--http", "httptools",
                            "--no-proxy-headers", "--no-date-header"]
                return ["-m", "daphne", "-b", "127.0.0.1", "-p", str(ports[name]), "-v", "0"]

            gateway_url = f"{bases['gateway']}/g/bench/bytes?size=1024"
            # Ceiling and gateway run side by side (the idle one costs nothing) and are measured
            # in alternation, round after round, so that both see the same minutes of a noisy
            # machine; each row is the median round, each ratio the median of per-round ratios.
            specs = [("ceiling: redis + forward", f"{bases['ceiling']}/proxy", None),
                     ("gateway proxied", gateway_url, keys["fast"]),
                     ("ceiling: redis only", f"{bases['ceiling']}/redis-only", None),
                     ("gateway cache hit", f"{bases['gateway']}/g/benchhit/bytes?size=1024", keys["fast"]),
                     ("gateway 429 storm", gateway_url, keys["storm"])]
            if server == "uvicorn":
                # What recording costs: twin processes that differ only in REQUEST_RECORDS and serve
                # only this row (the main gateway also serves hits and the 429 storm, so its heap,
                # metrics and stream are not the unrecorded one's).
                specs += [(f"gateway proxied, records {state}", f"{bases[name]}/g/bench/bytes?size=1024",
                           keys["fast"]) for state, name in (("on", "recorded"), ("off", "unrecorded"))]
            with contextlib.ExitStack() as running:
                running.enter_context(process(pinned(SERVER_CORE, [PY, *serve("ceiling"), "bench.ceiling:app"]), env,
                                              work / f"ceiling-{server}.log", f"{bases['ceiling']}/redis-only"))
                running.enter_context(process(pinned(SERVER_CORE, [PY, *serve("gateway"),
                                                                   "heliox_site.asgi:application"]),
                                              env, work / f"gateway-{server}.log", f"{bases['gateway']}/ready"))
                if server == "uvicorn":
                    for name, recording in (("recorded", "true"), ("unrecorded", "false")):
                        running.enter_context(process(
                            pinned(SERVER_CORE, [PY, *serve(name), "heliox_site.asgi:application"]),
                            {**env, "REQUEST_RECORDS": recording}, work / f"gateway-{name}.log",
                            f"{bases[name]}/ready"))
                measured = measure_rounds(specs, server)
                rows += list(measured.values())
                base = bases["gateway"]
                if server == "uvicorn":
                    c1_direct = wrk(f"{upstream}/bytes?size=1024", duration=duration, connections=1)
                    c1_proxied = wrk(f"{base}/g/bench/bytes?size=1024", duration=duration, connections=1,
                                     key=keys["fast"])
                    c1_hit = wrk(f"{base}/g/benchhit/bytes?size=1024", duration=duration, connections=1,
                                 key=keys["fast"])
                    extras["concurrency_1_p50_ms"] = {"direct": c1_direct[1], "proxied": c1_proxied[1],
                                                      "cache_hit": c1_hit[1],
                                                      "added_proxied": round(c1_proxied[1] - c1_direct[1], 3),
                                                      "added_cache_hit": round(c1_hit[1] - c1_direct[1], 3)}
                    httpx.post(f"{upstream}/stats/reset")
                    asyncio.run(stampede(f"{base}/g/benchhit/slow?delay=0.3", keys["fast"], 1000))
                    extras["cold_key_1000_concurrent_upstream_calls"] = upstream_calls(upstream, "/slow")
                    # A broker is configured (REDIS_URL), so refreshes are Celery jobs: run a worker.
                    with process(pinned(LOAD_CORE, [PY, "-m", "celery", "-A", "heliox_site", "worker", "--pool",
                                                    "solo", "--loglevel", "WARNING"]), env, work / "worker.log"):
                        asyncio.run(stampede(f"{base}/g/benchswr/slow?delay=0.5", keys["fast"], 1))
                        time.sleep(3.0)  # the worker is up and the first refresh is done
                        httpx.post(f"{upstream}/stats/reset")
                        answers = asyncio.run(stampede(f"{base}/g/benchswr/slow?delay=0.5", keys["fast"], 200))
                        time.sleep(2.0)
                        # Time inside the gateway: one that waited on the 0.5 s upstream would show it.
                        extras["swr_200_concurrent"] = {
                            "stale_answers": sum(r.headers["x-cache"] == "STALE" for r in answers),
                            "max_gateway_ms": max(float(r.headers["x-gateway-overhead-ms"]) for r in answers),
                            "upstream_refreshes": upstream_calls(upstream, "/slow")}
                    extras["records_off_over_on"] = round(
                        measured["gateway proxied, records off"].rps / measured["gateway proxied, records on"].rps, 3)
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        with process([PY, "-m", "uvicorn", "--host", "127.0.0.1", "--port", str(port), "--workers", "2",
                      "--no-access-log", "--log-level", "warning", "--loop", "uvloop", "--http", "httptools",
                      "--no-proxy-headers", "--no-date-header", "heliox_site.asgi:application"],
                     env, work / "gateway-2p.log", f"{base}/ready"):
            time.sleep(2)  # both workers up
            rows.append(measure("gateway proxied", "uvicorn", 2, f"{base}/g/bench/bytes?size=1024", keys["fast"]))

    for row in rows:
        row.vs_direct = row.rps / direct.rps
    report(rows, extras, Path(args.json_out))


def report(rows: list[Row], extras: dict[str, object], json_out: Path) -> None:
    print(f"\n{'row':<28} {'server':<8} {'proc':>4} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} "
          f"{'non-2xx':>8} {'/direct':>8} {'/ceiling':>9}")
    for r in rows:
        ceiling = f"{r.vs_ceiling:.2f}" if r.vs_ceiling else "-"
        print(f"{r.name:<28} {r.server:<8} {r.processes:>4} {r.rps:>9.0f} {r.p50_ms:>8.2f} {r.p99_ms:>8.2f} "
              f"{r.non_2xx:>8} {r.vs_direct:>8.2f} {ceiling:>9}")
    print(json.dumps(extras, indent=2))
    json_out.parent.mkdir(parents=True, exist_ok=True)
    json_out.write_text(json.dumps({"rows": [asdict(r) for r in rows], **extras}, indent=2))
    print(f"\nJSON: {json_out}")


if __name__ == "__main__":
    main()
