"""A local pvcast instance for the end-to-end tests and the benchmarks.

A scratch database on the project's TimescaleDB, then
``ray start --head --block`` on free ports with the environment of
scripts/ray_env (token authentication on, every Ray server on 127.0.0.1),
then ``serve run`` of a copy of serve_config.yaml whose only changes are the
HTTP port and PVCAST_DATABASE_URL. Both run in their own process sessions and
are stopped with SIGTERM to the process group (background ``serve run``
ignores SIGINT), then whatever remains of their sessions is killed.
"""

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path

import asyncpg
import httpx
import psutil
import yaml

from engine import schema, store

ROOT = Path(__file__).resolve().parents[1]  # the repository (editable install)
BIN = ROOT / ".venv/bin"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tsdb(*args):
    """Output of ``scripts/tsdb ARGS`` (the project's TimescaleDB)."""
    return subprocess.run([str(ROOT / "scripts/tsdb"), *args], capture_output=True, text=True,
                          check=True).stdout.strip()


def server_url(role="admin"):
    """URL of ``role`` (admin, owner, service) on the project's TimescaleDB, started if needed."""
    tsdb("start")
    return tsdb("url", role)


def database_url(role, name):
    """URL of ``role`` on database ``name`` of the project's TimescaleDB (no password: ~/.pgpass)."""
    return tsdb("url", role).rsplit("/", 1)[0] + "/" + name


@contextlib.contextmanager
def scratch_database(prefix="pvcast_scratch"):
    """(URL, capabilities) of a new migrated database ``<prefix>_<random>``, dropped on exit.

    Created by ``scripts/tsdb createdb`` (owned by the owner role), migrated as the
    owner role with the service role granted; the URL is the service role's, what
    the service connects with (``database_url("owner", name)`` for the owner's).
    """
    admin = server_url()
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    tsdb("createdb", name)
    url = database_url("service", name)

    async def create():
        conn = await asyncpg.connect(database_url("owner", name))
        await schema.apply_migrations(conn, service_role=store.url_role(url))
        caps = await schema.capabilities(conn)
        await conn.close()
        return caps

    async def drop():
        conn = await asyncpg.connect(admin)
        await conn.execute(f"drop database if exists {name} with (force)")
        await conn.close()

    try:
        caps = asyncio.run(create())
        yield url, caps
    finally:
        asyncio.run(drop())


def api_key(db_url, tenant_id, scopes="read,write", description="serve_app.local"):
    """A new API key of ``tenant_id`` on the database ``db_url`` (:func:`engine.store.create_key`); the key string.

    What ``pvcast keys create`` does, for the tests and benchmarks of an instance from :func:`serve_instance`.
    """
    async def create():
        conn = await asyncpg.connect(db_url)
        try:
            return (await store.create_key(conn, tenant_id, scopes, description))["key"]
        finally:
            await conn.close()
    return asyncio.run(create())


def bearer(key):
    """HTTP headers that present ``key`` (``Authorization: Bearer <key>``)."""
    return {"Authorization": f"Bearer {key}"}


def ray_env():
    """``os.environ`` with scripts/ray_env applied (RAY_AUTH_MODE=token, Ray on 127.0.0.1; token made on first use)."""
    out = subprocess.run(["bash", "-c", f'source "{ROOT}/scripts/ray_env" && env -0'], capture_output=True,
                         check=True).stdout.decode()
    return dict(item.split("=", 1) for item in out.split("\0") if "=" in item)


def session_of(pid):
    try:
        return os.getsid(pid)
    except OSError:
        return None


def stop(proc, timeout=60):
    """SIGTERM the process group of ``proc``; then kill what remains of its session."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    deadline = time.monotonic() + 30
    while True:
        left = [p for p in psutil.process_iter() if p.pid != os.getpid() and session_of(p.pid) == proc.pid]
        if not left or time.monotonic() > deadline:
            break
        time.sleep(1)
    for p in left:
        with contextlib.suppress(psutil.Error):
            p.kill()


@contextlib.contextmanager
def serve_instance(db_url, workdir, serve_config=ROOT / "serve_config.yaml", num_cpus=2, service_settings=None):
    """Base URL of a running pvcast (``/readyz`` answered 200) and the session ids of its processes.

    ``service_settings`` (dict of section -> {key: value}) overrides entries of
    configs/service.yaml for this instance (written to a copy in ``workdir``).
    The ports chosen (gcs, dashboard, dashboard_agent, client, http, metrics: Ray's
    Prometheus endpoint) are written to ``workdir/ports.json``.
    """
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    ports = {name: free_port() for name in ("gcs", "dashboard", "dashboard_agent", "client", "http", "metrics")}
    (workdir / "ports.json").write_text(json.dumps(ports))
    cfg = yaml.safe_load(Path(serve_config).read_text())
    cfg["http_options"]["port"] = ports["http"]
    cfg["applications"][0]["runtime_env"]["env_vars"]["PVCAST_DATABASE_URL"] = db_url
    if service_settings:
        service = yaml.safe_load((ROOT / cfg["applications"][0]["args"]["service_config"]).read_text())
        for section, values in service_settings.items():
            service[section].update(values)
        (workdir / "service.yaml").write_text(yaml.safe_dump(service, sort_keys=False))
        cfg["applications"][0]["args"]["service_config"] = str(workdir / "service.yaml")
    (workdir / "serve_config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    env = {**ray_env(), "PVCAST_DATABASE_URL": db_url}
    head = subprocess.Popen([str(BIN / "ray"), "start", "--head", "--block", "--node-ip-address=127.0.0.1",
                             f"--port={ports['gcs']}", "--dashboard-host=127.0.0.1",
                             f"--dashboard-port={ports['dashboard']}",
                             f"--dashboard-agent-listen-port={ports['dashboard_agent']}",
                             f"--ray-client-server-port={ports['client']}", f"--num-cpus={num_cpus}",
                             f"--metrics-export-port={ports['metrics']}",
                             "--include-dashboard=true"],
                            cwd=ROOT, env=env, start_new_session=True,
                            stdout=open(workdir / "ray.log", "w"), stderr=subprocess.STDOUT)
    serve = None
    try:
        time.sleep(8)
        serve = subprocess.Popen([str(BIN / "serve"), "run", "--address", f"127.0.0.1:{ports['gcs']}",
                                  str(workdir / "serve_config.yaml")], cwd=ROOT, env=env, start_new_session=True,
                                 stdout=open(workdir / "serve.log", "w"), stderr=subprocess.STDOUT)
        base = f"http://127.0.0.1:{ports['http']}"
        deadline = time.monotonic() + 300
        while True:
            try:
                if httpx.get(f"{base}/readyz", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if serve.poll() is not None or head.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"service did not become ready:\n{(workdir / 'serve.log').read_text()[-4000:]}")
            time.sleep(2)
        yield base, {head.pid, serve.pid}
    finally:
        if serve is not None:
            stop(serve)
        stop(head)
