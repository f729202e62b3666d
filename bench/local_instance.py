"""A local pvcast instance for the end-to-end tests and the benchmarks.

A scratch database on the project's TimescaleDB, then
``ray start --head --block`` on free ports with the environment of
scripts/ray_env (token authentication on, every Ray server on 127.0.0.1),
then ``serve run`` of a copy of serve_config.yaml whose only changes are the
HTTP port and PVCAST_DATABASE_URL. Both run in their own process sessions and
are stopped with SIGTERM to the process group (background ``serve run``
ignores SIGINT), then whatever remains of their sessions is killed.

Not part of the runtime packages (it needs httpx and psutil of the test and
bench extras): the bench scripts import it from their folder, the tests
through pytest's ``pythonpath`` (pyproject.toml).
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


def api_key(db_url, tenant_id, scopes="read,write", description="bench/local_instance.py"):
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


def instance_config(db_url, workdir, http_port, serve_config=ROOT / "serve_config.yaml", service_settings=None):
    """Path of a copy of ``serve_config`` in ``workdir``: only the HTTP port and PVCAST_DATABASE_URL changed.

    ``service_settings`` (dict of section -> {key: value}) overrides entries of
    configs/service.yaml for this instance (written to a copy in ``workdir``).
    """
    workdir = Path(workdir)
    cfg = yaml.safe_load(Path(serve_config).read_text())
    cfg["http_options"]["port"] = http_port
    cfg["applications"][0]["runtime_env"]["env_vars"]["PVCAST_DATABASE_URL"] = db_url
    if service_settings:
        service = yaml.safe_load((ROOT / cfg["applications"][0]["args"]["service_config"]).read_text())
        for section, values in service_settings.items():
            service[section].update(values)
        (workdir / "service.yaml").write_text(yaml.safe_dump(service, sort_keys=False))
        cfg["applications"][0]["args"]["service_config"] = str(workdir / "service.yaml")
    (workdir / "serve_config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    return workdir / "serve_config.yaml"


def ray_node(workdir, name, env, *args):
    """``ray start --block ARGS`` in its own process session (log ``workdir/<name>.log``), from the repository."""
    return subprocess.Popen([str(BIN / "ray"), "start", "--block", *args], cwd=ROOT, env=env, start_new_session=True,
                            stdout=open(Path(workdir) / f"{name}.log", "w"), stderr=subprocess.STDOUT)


def wait_ready(base, procs, log, timeout=300):
    """Wait until ``base``/readyz answers 200; RuntimeError (with the end of ``log``) if a process of ``procs`` ends."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(f"{base}/readyz", timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if any(p.poll() is not None for p in procs) or time.monotonic() > deadline:
            raise RuntimeError(f"service did not become ready:\n{Path(log).read_text()[-4000:]}")
        time.sleep(2)


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
    config = instance_config(db_url, workdir, ports["http"], serve_config, service_settings)
    env = {**ray_env(), "PVCAST_DATABASE_URL": db_url}
    head = ray_node(workdir, "ray", env, "--head", "--node-ip-address=127.0.0.1",
                    f"--port={ports['gcs']}", "--dashboard-host=127.0.0.1",
                    f"--dashboard-port={ports['dashboard']}",
                    f"--dashboard-agent-listen-port={ports['dashboard_agent']}",
                    f"--ray-client-server-port={ports['client']}", f"--num-cpus={num_cpus}",
                    f"--metrics-export-port={ports['metrics']}", "--include-dashboard=true")
    serve = None
    try:
        time.sleep(8)
        serve = subprocess.Popen([str(BIN / "serve"), "run", "--address", f"127.0.0.1:{ports['gcs']}",
                                  str(config)], cwd=ROOT, env=env, start_new_session=True,
                                 stdout=open(workdir / "serve.log", "w"), stderr=subprocess.STDOUT)
        base = f"http://127.0.0.1:{ports['http']}"
        wait_ready(base, [serve, head], workdir / "serve.log")
        yield base, {head.pid, serve.pid}
    finally:
        if serve is not None:
            stop(serve)
        stop(head)


def nginx_binary():
    """Path of the edge proxy's nginx (``scripts/edge bin``: unpacked on first use)."""
    return subprocess.run(["bash", str(ROOT / "scripts/edge"), "bin"], check=True, capture_output=True,
                          text=True).stdout.strip()


@contextlib.contextmanager
def edge_instance(upstream, workdir, edge_settings=None, max_body_bytes=None):
    """Base URL of the edge proxy (nginx, ``serve_app/edge.py``) in front of ``upstream`` (``host:port``).

    The shipped configs/service.yaml ``edge`` with ``edge_settings`` over it, on a free loopback port
    (``http.max_body_bytes`` replaced when given); stopped with SIGTERM at the end.
    """
    from serve_app import edge
    from serve_app.settings import load_settings

    settings = load_settings()
    port = free_port()
    settings["edge"].update({**(edge_settings or {}), "listen": f"127.0.0.1:{port}"})
    if max_body_bytes is not None:
        settings["http"]["max_body_bytes"] = max_body_bytes
    prefix = Path(workdir) / f"edge-{port}"
    conf = edge.write_config(prefix, settings, upstream)
    proc = subprocess.Popen([nginx_binary(), "-p", str(prefix), "-e", str(prefix / "error.log"), "-c", str(conf),
                             "-g", "daemon off;"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        for _ in range(200):
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                break
            if proc.poll() is not None:
                raise RuntimeError(f"the edge proxy did not start: {proc.stderr.read().decode()}")
            time.sleep(0.05)
        yield f"{'https' if settings['edge']['tls_certificate'] else 'http'}://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


#: Node addresses of the multi-node cluster of :func:`cluster_instance`: two loopback addresses.
#: A multi-node cluster needs RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=1 (with 0, scripts/ray_env's
#: single-node mode, ``ray start --address`` refuses to add a node), and then Ray replaces a
#: literal 127.0.0.1 by the machine's address (resolve_ip_for_localhost), so the nodes take
#: 127.0.0.2 and 127.0.0.3: every connection between them stays on loopback. Ray binds only the
#: servers of a node at 127.0.0.1 to loopback; in cluster mode the raylets, dashboard agents and
#: metrics exporters listen on all interfaces, as on any multi-node cluster: each refuses a caller
#: without the token (RAY_AUTH_MODE=token of scripts/ray_env).
HEAD_IP, WORKER_IP = "127.0.0.2", "127.0.0.3"


def cluster_env(db_url):
    """Environment of the nodes and CLI calls of :func:`cluster_instance`."""
    return {**ray_env(), "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "1", "PVCAST_DATABASE_URL": db_url}


@contextlib.contextmanager
def cluster_instance(db_url, workdir, head_cpus=2, service_settings=None, serve_config=ROOT / "serve_config.yaml"):
    """A Ray head node at HEAD_IP running pvcast, deployed with ``serve deploy`` (the production path).

    Yields a dict: ``base`` (HTTP URL, /readyz answered 200), ``dashboard`` (URL of the head's
    dashboard: ``serve deploy``, the state API), ``gcs`` (address for ``ray start --address``),
    ``env`` (environment for Ray CLI calls), ``head`` (Popen of ``ray start --head --block``),
    ``workdir``. Nodes added with :func:`add_worker` are stopped by the caller (:func:`stop`);
    the head is stopped on exit.
    """
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    ports = {name: free_port() for name in ("gcs", "dashboard", "dashboard_agent", "client", "http")}
    config = instance_config(db_url, workdir, ports["http"], serve_config, service_settings)
    env = cluster_env(db_url)
    head = ray_node(workdir, "head", env, "--head", f"--node-ip-address={HEAD_IP}", f"--port={ports['gcs']}",
                    f"--dashboard-host={HEAD_IP}", f"--dashboard-port={ports['dashboard']}",
                    f"--dashboard-agent-listen-port={ports['dashboard_agent']}",
                    f"--ray-client-server-port={ports['client']}", f"--num-cpus={head_cpus}",
                    "--include-dashboard=true")
    out = {"base": f"http://127.0.0.1:{ports['http']}", "dashboard": f"http://{HEAD_IP}:{ports['dashboard']}",
           "gcs": f"{HEAD_IP}:{ports['gcs']}", "env": env, "head": head, "workdir": workdir}
    try:
        deadline = time.monotonic() + 120
        while True:  # the dashboard's job/serve API is up once `serve status` answers
            status = subprocess.run([str(BIN / "serve"), "status", "--address", out["dashboard"]], cwd=ROOT, env=env,
                                    capture_output=True, text=True)
            if status.returncode == 0:
                break
            if head.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"Ray head did not start:\n{(workdir / 'head.log').read_text()[-4000:]}"
                                   f"\n{status.stderr[-2000:]}")
            time.sleep(2)
        subprocess.run([str(BIN / "serve"), "deploy", "--address", out["dashboard"], str(config)], cwd=ROOT, env=env,
                       check=True, capture_output=True, text=True)
        wait_ready(out["base"], [head], workdir / "head.log")
        yield out
    finally:
        stop(head)


def add_worker(cluster, name, num_cpus, resources=None, ip=WORKER_IP):
    """``ray start --address`` of a worker node at ``ip`` joining ``cluster`` (:func:`cluster_instance`): its Popen.

    Returns once the node is ALIVE in the cluster's state API.
    """
    args = [f"--address={cluster['gcs']}", f"--node-ip-address={ip}", f"--num-cpus={num_cpus}"]
    if resources:
        args.append(f"--resources={json.dumps(resources)}")
    node = ray_node(cluster["workdir"], name, cluster["env"], *args)
    deadline = time.monotonic() + 120
    while not any(n["node_ip"] == ip and n["state"] == "ALIVE" for n in ray_state(cluster, "nodes")):
        if node.poll() is not None or time.monotonic() > deadline:
            stop(node)
            raise RuntimeError(f"worker node did not join:\n{(cluster['workdir'] / f'{name}.log').read_text()[-4000:]}")
        time.sleep(1)
    return node


def ray_state(cluster, kind, *filters):
    """Rows of Ray's state API (``ray list KIND --detail``; e.g. ``"state=ALIVE"`` filters) on ``cluster``.

    RuntimeError if none match: the CLI then prints a sentence, not JSON.
    """
    args = [str(BIN / "ray"), "list", kind, "--address", cluster["dashboard"], "--format", "json", "--detail",
            "--limit", "10000"]
    for f in filters:
        args += ["--filter", f]
    done = subprocess.run(args, cwd=ROOT, env=cluster["env"], capture_output=True, text=True, check=True)
    try:
        return json.loads(done.stdout)
    except json.JSONDecodeError:
        raise RuntimeError(f"`ray list {kind}` printed no JSON:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}") from None


#: The job of :func:`hold_cpus`: an actor pinned to the job's node (the head) that takes all its free CPUs but
#: ``argv[1]``, alive until the job is stopped. The free CPUs are Ray's own view (GCS, per node: replicas,
#: tasks and actors still starting included); if the view was stale and the actor cannot be placed within
#: 10 s, it is killed and sized again.
_HOLD_SCRIPT = """
import sys, time
import ray
from ray._private.state import available_resources_per_node
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

ray.init()
here = ray.get_runtime_context().get_node_id()
leave = float(sys.argv[1])


@ray.remote
class CpuHold:
    def ready(self):
        return True


while True:
    free = available_resources_per_node().get(here, {}).get("CPU", 0.0)
    hold = CpuHold.options(num_cpus=round(max(free - leave, 0.0), 4),
                           scheduling_strategy=NodeAffinitySchedulingStrategy(here, soft=False)).remote()
    if ray.wait([hold.ready.remote()], timeout=10)[0]:
        break
    ray.kill(hold)
while True:
    time.sleep(60)
"""


def holds_alive(cluster):
    """The live actors of :func:`hold_cpus` (from every live actor: a filter that matches none makes the CLI print text)."""
    return [a for a in ray_state(cluster, "actors", "state=ALIVE") if a["class_name"] == "CpuHold"]


@contextlib.contextmanager
def hold_cpus(cluster, leave, timeout=120):
    """Hold the head node's free CPUs but ``leave`` while the block runs, as other work on the node would.

    A Ray job (``ray job submit``: its driver runs on the head) holds an actor pinned to the head
    (``_HOLD_SCRIPT``); the job is stopped on exit and the actor ends with it. RuntimeError if the
    actor is not alive within ``timeout`` seconds.
    """
    job = f"pvcast-cpu-hold-{uuid.uuid4().hex[:8]}"
    ray_cli = [str(BIN / "ray"), "job"]
    address = ["--address", cluster["dashboard"]]
    subprocess.run([*ray_cli, "submit", *address, "--submission-id", job, "--no-wait", "--",
                    str(BIN / "python"), "-c", _HOLD_SCRIPT, f"{leave:.4f}"],
                   cwd=ROOT, env=cluster["env"], capture_output=True, text=True, check=True)
    try:
        deadline = time.monotonic() + timeout
        while not holds_alive(cluster):
            if time.monotonic() > deadline:
                logs = subprocess.run([*ray_cli, "logs", *address, job], cwd=ROOT, env=cluster["env"],
                                      capture_output=True, text=True)
                raise RuntimeError(f"the CPU hold (leaving {leave} CPUs) did not start:\n{logs.stdout[-4000:]}")
            time.sleep(1)
        yield
    finally:
        subprocess.run([*ray_cli, "stop", *address, job], cwd=ROOT, env=cluster["env"], capture_output=True,
                       text=True)
        deadline = time.monotonic() + 60
        while holds_alive(cluster) and time.monotonic() < deadline:
            time.sleep(1)


def crash(proc):
    """SIGKILL every process of ``proc``'s session at once (a node that dies, not one that stops)."""
    members = [p for p in psutil.process_iter() if p.pid != os.getpid() and session_of(p.pid) == proc.pid]
    for p in members:
        with contextlib.suppress(psutil.Error):
            p.kill()
    proc.wait()
