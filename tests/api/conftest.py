"""One real Ray Serve instance (serve_config.yaml) + one fresh TimescaleDB database per session.

The cluster is started with ``ray start --head --block`` on free ports (RAY_AUTH_MODE
disabled) and the app with ``serve run`` of a copy of serve_config.yaml whose only changes
are the HTTP port and PVCAST_DATABASE_URL (the session's database). Both are stopped with
SIGTERM at the end. Plants and weather are real: the SERF East configuration and the
NSRDB PSM3 series from the pvanalytics wheel, ingested through the HTTP API.
"""

import asyncio
import os
import signal
import socket
import subprocess
import time
import uuid

import asyncpg
import httpx
import psutil
import pytest
import yaml

from engine import data

from apihelpers import ROOT, WINDOW, demo_plants, weather_rows


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_url():
    return subprocess.run([str(ROOT / "scripts/tsdb"), "url"], capture_output=True, text=True, check=True).stdout.strip()


@pytest.fixture(scope="session")
def api_db_url():
    """A fresh migrated database on the project's TimescaleDB, dropped at the end."""
    subprocess.run([str(ROOT / "scripts/tsdb"), "start"], check=True)
    admin = server_url()
    name = f"pvcast_api_{uuid.uuid4().hex[:8]}"
    url = admin.rsplit("/", 1)[0] + "/" + name

    async def setup():
        from engine import schema  # storage layer
        conn = await asyncpg.connect(admin)
        await conn.execute(f"create database {name}")
        await conn.close()
        conn = await asyncpg.connect(url)
        await schema.apply_migrations(conn)
        await conn.close()

    async def drop():
        conn = await asyncpg.connect(admin)
        await conn.execute(f"drop database if exists {name} with (force)")
        await conn.close()

    asyncio.run(setup())
    yield url
    asyncio.run(drop())


def stop(proc, timeout=60):
    """SIGTERM the process group of ``proc``; then end what remains of its session (ray workers)."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    deadline = time.monotonic() + 30
    while True:
        left = [p for p in psutil.process_iter() if p.pid != os.getpid() and session_of(p) == proc.pid]
        if not left or time.monotonic() > deadline:
            break
        time.sleep(1)
    for p in left:
        p.kill()


def session_of(process):
    try:
        return os.getsid(process.pid)
    except OSError:
        return None


@pytest.fixture(scope="session")
def service(api_db_url, tmp_path_factory):
    """Base URL of the running service (waits for /readyz)."""
    tmp = tmp_path_factory.mktemp("serve")
    gcs, dash, http_port = free_port(), free_port(), free_port()
    cfg = yaml.safe_load((ROOT / "serve_config.yaml").read_text())
    cfg["http_options"]["port"] = http_port
    cfg["applications"][0]["runtime_env"]["env_vars"]["PVCAST_DATABASE_URL"] = api_db_url
    (tmp / "serve_config.yaml").write_text(yaml.safe_dump(cfg))
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "PVCAST_DATABASE_URL": api_db_url}
    bin_dir = ROOT / ".venv/bin"
    head = subprocess.Popen([str(bin_dir / "ray"), "start", "--head", "--block", f"--port={gcs}",
                             f"--dashboard-port={dash}", "--num-cpus=2", "--include-dashboard=true"],
                            cwd=ROOT, env=env, start_new_session=True,
                            stdout=open(tmp / "ray.log", "w"), stderr=subprocess.STDOUT)
    serve = None
    try:
        time.sleep(8)
        serve = subprocess.Popen([str(bin_dir / "serve"), "run", "--address", f"127.0.0.1:{gcs}",
                                  str(tmp / "serve_config.yaml")], cwd=ROOT, env=env, start_new_session=True,
                                 stdout=open(tmp / "serve.log", "w"), stderr=subprocess.STDOUT)
        base = f"http://127.0.0.1:{http_port}"
        deadline = time.monotonic() + 300
        while True:
            try:
                if httpx.get(f"{base}/readyz", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if serve.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"service did not become ready:\n{(tmp / 'serve.log').read_text()[-4000:]}")
            time.sleep(2)
        yield base
    finally:
        if serve is not None:
            stop(serve)
        stop(head)


@pytest.fixture(scope="session")
def client(service):
    with httpx.Client(base_url=service, timeout=600) as c:
        yield c


@pytest.fixture(scope="session")
def training_config():
    return yaml.safe_load((ROOT / "configs/training.yaml").read_text())


@pytest.fixture(scope="session")
def plants(client, training_config):
    """The demo plants created through the API, with real weather and SERF East actuals."""
    saved = client.post("/api/v1/locations", json={"locations": demo_plants()})
    assert saved.status_code == 200, saved.text
    locations = saved.json()["locations"]
    ids = [loc["location_id"] for loc in locations]
    written = client.post("/api/v1/weather", json={"rows": weather_rows(ids, training_config)})
    assert written.status_code == 200, written.text
    power, _ = data.load_power(training_config)
    power = power[WINDOW[0]:WINDOW[1]].dropna()
    actuals = [{"location_id": ids[0], "time": t.isoformat(), "power_kw": float(p)} for t, p in power.items()]
    written = client.post("/api/v1/actuals", json={"rows": actuals})
    assert written.status_code == 200, written.text
    return {loc["location_id"]: loc for loc in locations}


