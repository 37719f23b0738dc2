"""What every benchmark shares: its own database and Redis namespace, the processes, clients and figures.

A benchmark runs real processes on loopback: the fake ComfyUI (`safelight fake-comfy`), the API
(`safelight api`, uvicorn) and workers (`safelight worker`, or the polling baseline of bench/polling.py).
It creates a database on the PostgreSQL server of DATABASE_URL, migrates it with `db.migrate.upgrade`, uses
a Redis namespace of its own (SAFELIGHT_NAMESPACE) on REDIS_URL, and drops the database at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import math
import os
import platform
import resource
import signal
import socket
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import httpx
import psutil
import uvloop
import websockets

DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
TEMPLATES = Path(__file__).resolve().parent / "templates"
BENCH_TEMPLATE = "bench_txt2img"

TRANSPORT_WS = "graphql-transport-ws"


# -- figures --------------------------------------------------------------------------------


def percentile(sorted_values: Sequence[float], q: float) -> float:
    if not sorted_values:
        return math.nan
    index = min(len(sorted_values) - 1, max(0, math.ceil(q / 100 * len(sorted_values)) - 1))
    return sorted_values[index]


def summary(values: Iterable[float]) -> dict[str, float]:
    """n, p50, p95, p99, max and mean of `values` (milliseconds in, milliseconds out)."""
    data = sorted(values)
    if not data:
        return {"n": 0}
    return {
        "n": len(data),
        "p50": percentile(data, 50),
        "p95": percentile(data, 95),
        "p99": percentile(data, 99),
        "max": data[-1],
        "mean": sum(data) / len(data),
    }


def ratio(value: float | None, baseline: float | None) -> float | None:
    if value is None or baseline is None or baseline == 0 or math.isnan(value) or math.isnan(baseline):
        return None
    return value / baseline


@dataclass
class Report:
    """Rows of figures, printed as a table and written as JSON (`--json PATH`)."""

    bench: str
    params: dict[str, Any]
    rows: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    checks: list[dict[str, Any]] = field(default_factory=list)

    def add(self, case: str, system: str, **figures: Any) -> dict[str, Any]:
        row = {"case": case, "system": system, **figures}
        self.rows.append(row)
        return row

    def note(self, text: str) -> None:
        self.notes.append(text)
        print(f"  note: {text}", flush=True)

    def target(self, name: str, value: float | None, limit: float, *, at_least: bool = False) -> None:
        ok = value is not None and not math.isnan(value) and (value >= limit if at_least else value <= limit)
        self.checks.append({"target": name, "value": value, "limit": limit, "at_least": at_least, "met": ok})

    def print(self) -> None:
        print(f"\n== {self.bench} ==  {json.dumps(self.params)}")
        keys: list[str] = []
        for row in self.rows:
            for key in row:
                if key not in keys:
                    keys.append(key)
        table = [[_cell(row.get(k)) for k in keys] for row in self.rows]
        widths = [max(len(k), *(len(r[i]) for r in table)) if table else len(k) for i, k in enumerate(keys)]
        print("  ".join(k.ljust(w) for k, w in zip(keys, widths, strict=True)))
        for r in table:
            print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))
        for check in self.checks:
            sign = ">=" if check["at_least"] else "<="
            verdict = "MET" if check["met"] else "MISSED"
            print(f"  target {check['target']}: {_cell(check['value'])} {sign} {check['limit']}  {verdict}")
        for text in self.notes:
            print(f"  note: {text}")

    def write(self, path: str | None) -> None:
        if not path:
            return
        machine = {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()}
        data = {
            "bench": self.bench,
            "params": self.params,
            "machine": machine,
            "at": time.time(),
            "commit": _git_commit(),
            "rows": self.rows,
            "checks": self.checks,
            "notes": self.notes,
        }
        Path(path).write_text(json.dumps(data, indent=2, default=_json_default) + "\n")
        print(f"wrote {path}")


def _json_default(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    return str(value)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        return f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"
    return str(value)


def _git_commit() -> str | None:
    head = Path(__file__).resolve().parent.parent / ".git" / "HEAD"
    try:
        ref = head.read_text().strip()
        if ref.startswith("ref: "):
            return (head.parent / ref[5:]).read_text().strip()
        return ref
    except OSError:
        return None


def latency_row(report: Report, case: str, system: str, ms: Iterable[float], **extra: Any) -> dict[str, Any]:
    figures = summary(ms)
    return report.add(case, system, **{k: v for k, v in figures.items() if k != "mean"}, **extra)


def base_parser(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="tiny sizes (seconds): for smoke tests")
    parser.add_argument("--json", metavar="PATH", default=None, help="also write the figures as JSON")
    return parser


def raise_nofile(want: int = 65536) -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = min(want, hard) if hard != resource.RLIM_INFINITY else want
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


class MachineCpu:
    """The whole machine's busy CPU time over a window: every process (PostgreSQL, Redis and the kernel's
    network work included), which is what bounds a CPU-bound case: its rate cannot pass
    cores / (busy seconds per item)."""

    def __init__(self) -> None:
        self._start = self._busy_and_total()

    @staticmethod
    def _busy_and_total() -> tuple[float, float]:
        times = psutil.cpu_times()
        idle = times.idle + getattr(times, "iowait", 0.0)
        total = sum(times)
        return total - idle, total

    def figures(self, items: int) -> dict[str, float]:
        """`busy_pct` of the machine's CPU time, `cpu_ms_each` busy per item, the `ceiling_per_s` that implies."""
        busy0, total0 = self._start
        busy1, total1 = self._busy_and_total()
        busy, total = busy1 - busy0, total1 - total0
        cores = os.cpu_count() or 1
        each_ms = busy / max(1, items) * 1000
        return {
            "busy_pct": 100 * busy / total if total > 0 else math.nan,
            "cpu_ms_each": each_ms,
            "ceiling_per_s": cores * 1000 / each_ms if each_ms > 0 else math.nan,
        }


# -- services -------------------------------------------------------------------------------


def service_urls() -> tuple[str, str]:
    """(server-level PostgreSQL URL, Redis URL) from DATABASE_URL / REDIS_URL, defaulting to local servers."""
    return (
        os.environ.get("DATABASE_URL") or DEFAULT_DATABASE_URL,
        os.environ.get("REDIS_URL") or DEFAULT_REDIS_URL,
    )


def _plain(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


@asynccontextmanager
async def bench_database(server_url: str) -> AsyncIterator[str]:
    """A fresh database, migrated; dropped at the end."""
    from db.migrate import upgrade
    from settings import load_settings

    name = f"safelight_bench_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(_plain(server_url))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    url = f"{server_url.rpartition('/')[0]}/{name}"
    try:
        await asyncio.to_thread(upgrade, load_settings(database_url=url))
        yield url
    finally:
        admin = await asyncpg.connect(_plain(server_url))
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


async def _drop_namespace(redis_url: str, namespace: str) -> None:
    from redis.asyncio import Redis

    client: Redis = Redis.from_url(redis_url)
    try:
        keys = [key async for key in client.scan_iter(match=f"{namespace}:*", count=1000)]
        for start in range(0, len(keys), 500):
            await client.delete(*keys[start : start + 500])
        await client.delete(f"arq:result:{namespace}")  # nothing else is ours
    finally:
        await client.aclose()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# -- processes ------------------------------------------------------------------------------


@dataclass
class Proc:
    name: str
    process: asyncio.subprocess.Process

    @property
    def pid(self) -> int:
        return self.process.pid

    def rss(self) -> int:
        return int(psutil.Process(self.pid).memory_info().rss)

    def cpu_seconds(self) -> float:
        times = psutil.Process(self.pid).cpu_times()
        return float(times.user + times.system)

    async def stop(self) -> None:
        if self.process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            self.process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(self.process.wait(), 15)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()
            await self.process.wait()


_ROOT = Path(__file__).resolve().parent.parent


def _log_file(log_dir: Path, name: str) -> Any:
    log_dir.mkdir(parents=True, exist_ok=True)
    return open(log_dir / f"{name}.log", "ab")  # handed to the child; closed after spawning


async def spawn(name: str, args: Sequence[str], env: dict[str, str], *, log_dir: Path | None = None) -> Proc:
    """Start `python ARGS`; its output goes to LOG_DIR/NAME.log (shown if the benchmark fails)."""
    output = None if log_dir is None else _log_file(log_dir, name)
    try:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            *args,
            env=env,
            start_new_session=True,
            cwd=str(_ROOT),
            stdout=output,
            stderr=output,
        )
    finally:
        if output is not None:
            output.close()
    return Proc(name, process)


async def wait_http(url: str, proc: Proc, *, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    async with httpx.AsyncClient(timeout=2) as client:
        while time.monotonic() < deadline:
            if proc.process.returncode is not None:
                raise RuntimeError(f"{proc.name} exited with {proc.process.returncode}")
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get(url)).status_code < 500:
                    return
            await asyncio.sleep(0.05)
    raise RuntimeError(f"{proc.name} did not answer {url} within {timeout_s} s")


@dataclass
class Stack:
    """Handles to a running stack; `api`, `fake`, `workers` are processes of their own."""

    database_url: str
    redis_url: str
    namespace: str
    env: dict[str, str]
    fake: Proc
    fake_url: str
    api: Proc | None = None
    api_url: str = ""
    workers: list[Proc] = field(default_factory=list)
    token: str = ""
    user_id: uuid.UUID | None = None
    log_dir: Path | None = None
    _extra: list[Proc] = field(default_factory=list)

    @property
    def ws_url(self) -> str:
        return "ws" + self.api_url.removeprefix("http") + "/graphql"

    @property
    def fake_ws_url(self) -> str:
        return "ws" + self.fake_url.removeprefix("http") + "/ws"

    async def configure_fake(self, **changes: Any) -> None:
        async with httpx.AsyncClient(timeout=10) as client:
            response = await client.post(f"{self.fake_url}/_fake/config", json=changes)
            response.raise_for_status()

    async def fake_stats(self) -> dict[str, Any]:
        async with httpx.AsyncClient(timeout=30) as client:
            response = await client.get(f"{self.fake_url}/_fake/stats")
            response.raise_for_status()
            data: dict[str, Any] = response.json()
            return data

    async def fake_prompt(self, *, steps: int) -> str:
        """Queue the bench workflow straight on the fake, Safelight out of the path; the prompt id.

        No client_id: its `progress` reaches every socket on the fake (as in ComfyUI), which is what the
        limit baselines listen to.
        """
        from comfy.catalog import Catalog
        from comfy.templates import build_workflow, load_template, validate_params

        template = load_template(TEMPLATES / f"{BENCH_TEMPLATE}.json")
        async with httpx.AsyncClient(base_url=self.fake_url, timeout=30) as client:
            catalog = Catalog.from_object_info((await client.get("/object_info")).raise_for_status().json())
            raw = generation_input(steps=steps, prompt="limit")
            params = validate_params(template, {k: v for k, v in raw.items() if k not in ("template", "extra")}
                                     | raw["extra"], catalog=catalog)  # fmt: skip
            workflow = build_workflow(template, params, filename_prefix="bench-limit")
            response = (await client.post("/prompt", json={"prompt": workflow})).raise_for_status()
            prompt_id: str = response.json()["prompt_id"]
            return prompt_id

    async def reset_fake(self) -> None:
        async with httpx.AsyncClient(timeout=10) as client:
            (await client.post(f"{self.fake_url}/_fake/reset")).raise_for_status()

    async def start_workers(self, count: int, *, kind: str = "safelight", concurrency: int = 4) -> None:
        """`safelight` workers (SafelightWorker) or `polling` baseline workers (bench/polling.py)."""
        env = {**self.env, "SAFELIGHT_WORKER_CONCURRENCY": str(concurrency)}
        for index in range(count):
            if kind == "safelight":
                args = ["-m", "safelight.cli", "worker"]
            elif kind == "polling":
                args = ["-m", "bench.polling"]
            else:
                raise ValueError(kind)
            proc = await spawn(f"{kind}-worker-{index}", args, env, log_dir=self.log_dir)
            self.workers.append(proc)
        await self._wait_workers(count if kind == "safelight" else 0)
        if kind == "polling":
            await asyncio.sleep(1.5)  # started: arq logs its own readiness; the first poll follows

    async def _wait_workers(self, count: int, timeout_s: float = 30.0) -> None:
        if count == 0:
            return
        from redis.asyncio import Redis

        client: Redis = Redis.from_url(self.redis_url)
        try:
            deadline = time.monotonic() + timeout_s
            while time.monotonic() < deadline:
                for proc in self.workers:
                    if proc.process.returncode is not None:
                        raise RuntimeError(f"{proc.name} exited with {proc.process.returncode}")
                if await client.zcard(f"{self.namespace}:workers") >= count:
                    return
                await asyncio.sleep(0.05)
            raise RuntimeError("workers did not register a heartbeat in time")
        finally:
            await client.aclose()

    async def stop_workers(self) -> None:
        await asyncio.gather(*(w.stop() for w in self.workers))
        self.workers.clear()
        from redis.asyncio import Redis

        client: Redis = Redis.from_url(self.redis_url)
        try:
            await client.delete(f"{self.namespace}:workers", f"{self.namespace}:queue")
        finally:
            await client.aclose()

    async def start_api(self) -> None:
        port = free_port()
        env = {**self.env, "SAFELIGHT_PORT": str(port)}
        self.api = await spawn("api", ["-m", "safelight.cli", "api", "--port", str(port)], env, log_dir=self.log_dir)
        self.api_url = f"http://127.0.0.1:{port}"
        await wait_http(f"{self.api_url}/healthz", self.api)

    async def metrics(self) -> dict[str, float]:
        async with httpx.AsyncClient(timeout=30) as client:
            text = (await client.get(f"{self.api_url}/metrics")).text
        out: dict[str, float] = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                with contextlib.suppress(ValueError):
                    out[name] = float(value)
        return out


@asynccontextmanager
async def running_stack(
    *,
    api: bool = True,
    step_time: float = 0.0,
    namespace_prefix: str = "slbench",
    extra_env: dict[str, str] | None = None,
) -> AsyncIterator[Stack]:
    """Database, namespace, fake ComfyUI and (unless api=False) the API; workers via `start_workers`."""
    server_url, redis_url = service_urls()
    namespace = f"{namespace_prefix}-{uuid.uuid4().hex[:8]}"
    async with bench_database(server_url) as database_url:
        state_dir = Path(tempfile.gettempdir()) / namespace
        log_dir = state_dir / "logs"
        fake_port = free_port()
        fake_url = f"http://127.0.0.1:{fake_port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("SAFELIGHT_")}
        env.update(
            {
                "DATABASE_URL": database_url,
                "REDIS_URL": redis_url,
                "COMFYUI_URLS": fake_url,
                "SAFELIGHT_NAMESPACE": namespace,
                "SAFELIGHT_STATE_DIR": str(state_dir),
                "SAFELIGHT_TEMPLATE_DIRS": str(TEMPLATES),
                "SAFELIGHT_MAX_STEPS": "10000",
                "SAFELIGHT_LOG_LEVEL": "WARNING",
                "SAFELIGHT_RATE_LIMIT_PER_MINUTE": "100000000",
                "SAFELIGHT_MAX_ACTIVE_PER_USER": "1000000",
                "SAFELIGHT_CATALOG_TTL_S": "3600",
                "SAFELIGHT_WORKER_HEARTBEAT_S": "2",
                # Every benchmark client connects from 127.0.0.1, thousands of sockets at once.
                "SAFELIGHT_WS_MAX_CONNECTIONS": "1000000",
                "SAFELIGHT_WS_MAX_UNAUTHENTICATED": "1000000",
                "SAFELIGHT_WS_MAX_PER_CLIENT": "1000000",
                "SAFELIGHT_WS_MAX_UNAUTHENTICATED_PER_CLIENT": "1000000",
                "PYTHONUNBUFFERED": "1",
                **(extra_env or {}),
            }
        )
        fake = await spawn(
            "fake-comfyui",
            ["-m", "bench.fake_server", "--port", str(fake_port), "--step-time", str(step_time)],
            env,
            log_dir=log_dir,
        )
        stack = Stack(database_url, redis_url, namespace, env, fake, fake_url, log_dir=log_dir)
        failed = True
        try:
            await wait_http(f"{fake_url}/system_stats", fake)
            await stack.configure_fake(step_time=step_time, stamp_messages=True, preview=False)
            stack.user_id, stack.token = await _make_user(database_url)
            if api:
                await stack.start_api()
            yield stack
            failed = False
        finally:
            if failed:
                _show_logs(log_dir)
            await stack.stop_workers()
            if stack.api is not None:
                await stack.api.stop()
            for proc in stack._extra:
                await proc.stop()
            await fake.stop()
            await _drop_namespace(redis_url, namespace)
            await asyncio.to_thread(_rmtree, state_dir)


def _show_logs(log_dir: Path, lines: int = 30) -> None:
    for path in sorted(log_dir.glob("*.log")):
        tail = path.read_text(errors="replace").splitlines()[-lines:]
        if tail:
            print(f"--- last lines of {path.name} ---", file=sys.stderr)
            print("\n".join(tail), file=sys.stderr)


def _rmtree(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)


async def _make_user(database_url: str) -> tuple[uuid.UUID, str]:
    from db.engine import create_engine, create_session_factory
    from db.users import create_token, ensure_user
    from settings import load_settings

    engine = create_engine(load_settings(database_url=database_url), pool_size=1)
    try:
        async with create_session_factory(engine)() as session:
            user = await ensure_user(session, name="bench", is_admin=False)
            token = await create_token(session, user_id=user.id, name="bench")
            await session.commit()
            return user.id, token
    finally:
        await engine.dispose()


# -- GraphQL clients ------------------------------------------------------------------------

CREATE = """
mutation($input: GenerationInput!) {
  createGeneration(input: $input) {
    __typename
    ... on GenerationPayload { generation { id } }
    ... on ValidationError { message errors { field message } }
    ... on QuotaExceededError { message }
    ... on BackendUnavailableError { message }
  }
}
"""

CANCEL = """
mutation($id: ID!) { cancelGeneration(id: $id) { __typename } }
"""

STATUS = """
query($id: ID!) { generation(id: $id) { status progress { percent step maxSteps phase } } }
"""

EVENTS = """
subscription($id: ID!, $after: Int) {
  generationEvents(id: $id, after: $after) { seq kind at terminal status progress { step maxSteps emittedAt } }
}
"""

MY_EVENTS = """
subscription { myGenerationEvents { generationId seq kind at terminal status } }
"""


def generation_input(*, steps: int, size: int = 64, prompt: str = "bench") -> dict[str, Any]:
    """bench_txt2img (bench/templates): a KSampler workflow whose step count is `sampler_steps`."""
    return {
        "template": BENCH_TEMPLATE,
        "prompt": prompt,
        "width": size,
        "height": size,
        "seed": 1,
        "extra": {"sampler_steps": steps},
    }


class Api:
    """GraphQL over HTTP for one user."""

    def __init__(self, stack: Stack, *, max_connections: int = 100) -> None:
        self.http = httpx.AsyncClient(
            base_url=stack.api_url,
            timeout=60,
            headers={"Authorization": f"Bearer {stack.token}"},
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
        )

    async def aclose(self) -> None:
        await self.http.aclose()

    async def execute(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        response = await self.http.post("/graphql", json={"query": query, "variables": variables or {}})
        response.raise_for_status()
        body: dict[str, Any] = response.json()
        if body.get("errors"):
            raise RuntimeError(f"GraphQL errors: {body['errors']}")
        data: dict[str, Any] = body["data"]
        return data

    async def create(self, **kwargs: Any) -> str:
        return _created_id(await self.execute(CREATE, {"input": generation_input(**kwargs)}))


def _created_id(data: dict[str, Any]) -> str:
    """The new generation's id from createGeneration's data; anything but a GenerationPayload raises."""
    result = data["createGeneration"]
    if result["__typename"] != "GenerationPayload":
        raise RuntimeError(f"createGeneration: {result}")
    return str(result["generation"]["id"])


_IDLE_S = 4.0  # a kept-alive connection idle this long is replaced (uvicorn closes them after 5 s)


class LeanHttp:
    """One keep-alive HTTP/1.1 connection; each request is one write, and `post` says when it was sent.

    Only what the API and the fake answer is read: a status line, headers and a Content-Length body.
    """

    def __init__(self, base_url: str, headers: dict[str, str] | None = None) -> None:
        url = urlsplit(base_url)
        self._host = url.hostname or "127.0.0.1"
        self._port = url.port or 80
        extra = "".join(f"{name}: {value}\r\n" for name, value in (headers or {}).items())
        self._head = f"Host: {url.netloc}\r\nContent-Type: application/json\r\n{extra}"
        self._streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        self._used = 0.0

    async def post(self, path: str, body: Any) -> tuple[float, int, bytes]:
        """(wall time the request was written, status, response body)."""
        if self._streams is not None and (self._streams[0].at_eof() or time.monotonic() - self._used > _IDLE_S):
            await self.aclose()
        if self._streams is None:
            self._streams = await asyncio.open_connection(self._host, self._port)
        reader, writer = self._streams
        data = json.dumps(body).encode()
        request = f"POST {path} HTTP/1.1\r\n{self._head}Content-Length: {len(data)}\r\n\r\n".encode() + data
        sent = time.time()
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        fields = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
        if "content-length" not in fields:
            raise RuntimeError(f"POST {path}: no Content-Length in the answer ({fields})")
        content = await reader.readexactly(int(fields["content-length"]))
        self._used = time.monotonic()
        if fields.get("connection", "").lower() == "close":
            await self.aclose()
        return sent, status, content

    async def aclose(self) -> None:
        if self._streams is not None:
            _, writer = self._streams
            self._streams = None
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


class Client:
    """createGeneration and cancelGeneration over LeanHttp, for one user."""

    def __init__(self, stack: Stack) -> None:
        self.http = LeanHttp(stack.api_url, {"Authorization": f"Bearer {stack.token}"})

    async def execute(self, query: str, variables: dict[str, Any]) -> tuple[float, dict[str, Any]]:
        """(wall time sent, data)."""
        sent, status, content = await self.http.post("/graphql", {"query": query, "variables": variables})
        body = json.loads(content)
        if status != 200 or body.get("errors"):
            raise RuntimeError(f"GraphQL answered {status}: {body}")
        data: dict[str, Any] = body["data"]
        return sent, data

    async def create(self, **kwargs: Any) -> tuple[float, str]:
        """(wall time sent, generation id)."""
        sent, data = await self.execute(CREATE, {"input": generation_input(**kwargs)})
        return sent, _created_id(data)

    async def cancel(self, generation_id: str) -> float:
        """Wall time sent."""
        sent, _ = await self.execute(CANCEL, {"id": generation_id})
        return sent

    async def aclose(self) -> None:
        await self.http.aclose()


class Subscription:
    """One websocket with one graphql-transport-ws subscription; `next()` yields payload data."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws

    @classmethod
    @asynccontextmanager
    async def open(
        cls, stack: Stack, query: str, variables: dict[str, Any] | None = None
    ) -> AsyncIterator[Subscription]:
        async with websockets.connect(stack.ws_url, subprotocols=[TRANSPORT_WS], max_size=None, compression=None) as ws:  # type: ignore[list-item]
            init = {"type": "connection_init", "payload": {"authorization": f"Bearer {stack.token}"}}
            await ws.send(json.dumps(init))
            ack = json.loads(await asyncio.wait_for(ws.recv(), 30))
            if ack.get("type") != "connection_ack":
                raise RuntimeError(f"no connection_ack: {ack}")
            payload = {"query": query, "variables": variables or {}}
            await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": payload}))
            yield cls(ws)

    async def next(self, wait_s: float = 30.0) -> tuple[float, dict[str, Any] | None]:
        """(wall time received, data), or data None when the subscription completed."""
        while True:
            async with asyncio.timeout(wait_s):  # not wait_for: that is a task per message in 3.11
                raw = await self.ws.recv()
            received = time.time()
            message = json.loads(raw)
            kind = message.get("type")
            if kind == "next":
                payload = message["payload"]
                if payload.get("errors"):
                    raise RuntimeError(f"subscription errors: {payload['errors']}")
                data: dict[str, Any] = payload["data"]
                return received, data
            if kind == "complete":
                return received, None
            if kind == "error":
                raise RuntimeError(f"subscription error: {message}")
            if kind == "ping":
                await self.ws.send(json.dumps({"type": "pong"}))


async def direct_progress_listener(
    stack: Stack, out: list[tuple[float, dict[str, Any]]], ready: asyncio.Event, stop: asyncio.Event
) -> None:
    """Baseline (a): a client on the fake's own websocket, recording (receipt wall time, data) of `progress`."""
    try:
        await _direct_listen(stack, out, ready, stop)
    except websockets.ConnectionClosed:
        if not stop.is_set():
            raise


async def _direct_listen(
    stack: Stack, out: list[tuple[float, dict[str, Any]]], ready: asyncio.Event, stop: asyncio.Event
) -> None:
    async with websockets.connect(
        stack.fake_ws_url + f"?clientId=bench-direct-{uuid.uuid4().hex[:6]}", max_size=None, compression=None
    ) as ws:
        ready.set()
        while not stop.is_set():
            try:
                async with asyncio.timeout(0.5):
                    raw = await ws.recv()
            except TimeoutError:
                continue
            received = time.time()
            if isinstance(raw, bytes):
                continue
            message = json.loads(raw)
            if message.get("type") == "progress":
                out.append((received, message["data"]))


def events_of(stats: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [e for e in stats["events"] if e["event"] == kind]


def prompt_id(generation_id: str, attempt: int = 1) -> str:
    from jobs.worker.submit import prompt_id_for

    return prompt_id_for(uuid.UUID(generation_id), attempt)


def measuring_process() -> None:
    """Keep the cyclic GC out of what a client process measures: collect now, then never on its own.

    In bench.relay at 2,000 events/s, a full collection of the client's heap (the thousands of events it
    had recorded) stopped the process for up to 189 ms: every receipt behind it was late by that much,
    the limit's and Safelight's alike, and both rows' p99 (108 and 115 ms) was the client's own pause.
    Reference counting still frees everything that is not in a cycle; a benchmark runs for minutes.
    """
    gc.collect()
    gc.freeze()
    gc.disable()


def run(main: Any) -> None:
    """Run a benchmark's async main (in a measuring process); Ctrl-C stops it cleanly."""
    measuring_process()
    try:
        # uvloop, like the API: the clients share the machine's cores with what they measure.
        uvloop.run(main)
    except KeyboardInterrupt:
        raise SystemExit(130) from None
