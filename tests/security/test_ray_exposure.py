"""No open doors in a local run: Ray wants its token and listens on 127.0.0.1 only.

A real instance from bench/local_instance.py (``ray start`` + ``serve run`` with scripts/ray_env, the
launcher of the API tests and the benchmarks). Issue 9: a POST to the dashboard agent's job
API from the machine's network address ran a shell command as root.

"Outside" is a network namespace made by the test and joined to this host by a veth pair:
a client there reaches this host at the veth's address, as a client on the network reaches
the machine's address. A server bound to all interfaces answers there (the control below);
Ray's must not.
"""

import ipaddress
import json
import os
import shutil
import socket
import stat
import subprocess
import sys
from pathlib import Path

import httpx
import psutil
import pytest

import local_instance as local

PROBE = """
import json, socket, sys
import grpc
import os
host, ports, grpc_ports = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
token = os.environ["PROBE_RAY_TOKEN"]  # not in argv (ps, error messages)
result = {}
for port in ports:
    s = socket.socket()
    s.settimeout(3)
    try:
        s.connect((host, port))
        result[port] = "open"
    except ConnectionRefusedError:
        result[port] = "refused"
    except OSError as exc:
        result[port] = type(exc).__name__
    finally:
        s.close()
calls = {}
for port in grpc_ports:  # a request to the replica's inter-deployment gRPC service, with and without the token
    with grpc.insecure_channel(f"{host}:{port}") as channel:
        call = channel.unary_unary("/ray.serve.ASGIService/HandleRequest")
        for name, metadata in (("none", ()), ("wrong", (("authorization", "Bearer " + "0" * 64),)),
                               ("token", (("authorization", "Bearer " + token),))):
            try:
                call(b"", timeout=20, metadata=metadata)
                calls[f"{port} {name}"] = "OK"
            except grpc.RpcError as exc:
                calls[f"{port} {name}"] = exc.code().name
print(json.dumps({"ports": result, "grpc": calls}))
"""
REPLICA_GRPC = "ray::ServeReplica"  # Ray Serve 2.60 binds each replica's inter-deployment gRPC server to [::]:0


@pytest.fixture(scope="module")
def instance(tmp_path_factory):
    """The running instance: base URL, session ids of its processes, its ports."""
    with local.scratch_database("pvcast_security") as (url, _):
        workdir = tmp_path_factory.mktemp("serve")
        with local.serve_instance(url, workdir) as (base, sessions):
            yield {"base": base, "sessions": sessions, "ports": json.loads((workdir / "ports.json").read_text())}


def token_path():
    env = local.ray_env()
    assert env["RAY_AUTH_MODE"] == "token" and "RAY_AUTH_TOKEN" not in env
    return Path(env.get("RAY_AUTH_TOKEN_PATH") or Path.home() / ".ray/auth_token")


def bearer():
    """``{"Authorization": "Bearer <the Ray token>"}`` (read here, never a test argument: no token in reports)."""
    return {"Authorization": "Bearer " + token_path().read_text().strip()}


@pytest.fixture(scope="module")
def outside():
    """``probe(host, ports)`` run in a network namespace joined by a veth pair, and this host's address there."""
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("needs root and iproute2 to make a network namespace")
    tag = os.getpid() % 100000
    ns, host_if, ns_if = f"pvsec{tag}", f"pvh{tag}", f"pvn{tag}"
    a, b = divmod((tag % 16000) * 4, 256)
    host_ip, ns_ip = f"198.18.{a}.{b + 1}", f"198.18.{a}.{b + 2}"  # RFC 2544 test range, a /30 of its own
    setup = [["ip", "netns", "add", ns], ["ip", "link", "add", host_if, "type", "veth", "peer", "name", ns_if],
             ["ip", "link", "set", ns_if, "netns", ns], ["ip", "addr", "add", f"{host_ip}/30", "dev", host_if],
             ["ip", "link", "set", host_if, "up"],
             ["ip", "netns", "exec", ns, "ip", "addr", "add", f"{ns_ip}/30", "dev", ns_if],
             ["ip", "netns", "exec", ns, "ip", "link", "set", ns_if, "up"],
             ["ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up"]]

    def probe(ports, grpc_ports=()):
        env = {**os.environ, "PROBE_RAY_TOKEN": token_path().read_text().strip()}
        out = subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c", PROBE, host_ip, json.dumps(ports),
                              json.dumps(list(grpc_ports))],
                             capture_output=True, text=True, check=True, timeout=300, env=env).stdout
        result = json.loads(out)
        return {int(k): v for k, v in result["ports"].items()}, result["grpc"]
    try:
        for cmd in setup:
            subprocess.run(cmd, check=True, capture_output=True)
        yield probe
    finally:
        subprocess.run(["ip", "link", "del", host_if], capture_output=True)
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def listening(sessions):
    """(address, port, process name) of every listening TCP socket of the instance's processes."""
    procs = {p.pid: p.name() for p in psutil.process_iter() if local.session_of(p.pid) in sessions}
    return [(c.laddr.ip, c.laddr.port, procs[c.pid]) for c in psutil.net_connections("tcp")
            if c.status == psutil.CONN_LISTEN and c.pid in procs]


def is_loopback(ip):
    address = ipaddress.ip_address(ip.split("%")[0])
    return (getattr(address, "ipv4_mapped", None) or address).is_loopback


def test_every_socket_listens_on_loopback_but_the_replicas_grpc_servers(instance):
    """Everything on 127.0.0.1, except what Ray Serve 2.60 hard-codes (ray/serve/_private/replica.py
    binds the replicas' inter-deployment gRPC server to [::]:0, no setting): those are guarded by
    Ray's token interceptor (next test)."""
    sockets = listening(instance["sessions"])
    ports = {port for _, port, _ in sockets}
    # the enumeration sees the GCS, the dashboard, its agent, the client server and the HTTP proxy
    assert set(instance["ports"].values()) <= ports, (instance["ports"], sorted(sockets))
    exposed = [s for s in sockets if not is_loopback(s[0])]
    assert exposed and all(name.startswith(REPLICA_GRPC) and ip in ("::", "0.0.0.0") for ip, _, name in exposed), \
        f"listening beyond 127.0.0.1: {exposed}"


def test_from_outside_the_job_api_and_dashboard_are_absent_and_ray_grpc_wants_the_token(instance, outside):
    sockets = listening(instance["sessions"])
    loopback = sorted({port for ip, port, _ in sockets if is_loopback(ip)})
    replica_grpc = sorted({port for ip, port, _ in sockets if not is_loopback(ip)})
    with socket.socket() as control:  # a server bound to all interfaces, as Ray's were
        control.bind(("0.0.0.0", 0))
        control.listen()
        open_port = control.getsockname()[1]
        result, calls = outside([*loopback, *replica_grpc, open_port], replica_grpc)
    assert result.pop(open_port) == "open"  # the namespace does reach this host
    assert {instance["ports"]["dashboard"], instance["ports"]["dashboard_agent"]} <= set(loopback)
    assert result == {**{p: "refused" for p in loopback}, **{p: "open" for p in replica_grpc}}
    for port in replica_grpc:  # reachable, but nothing happens without the token
        assert calls[f"{port} none"] == calls[f"{port} wrong"] == "UNAUTHENTICATED"
        assert calls[f"{port} token"] != "UNAUTHENTICATED"  # the token is what the refusal is about


def test_the_job_api_refuses_without_the_token_and_works_with_it(instance):
    dashboard = f"http://127.0.0.1:{instance['ports']['dashboard']}"
    agent = f"http://127.0.0.1:{instance['ports']['dashboard_agent']}"
    job = {"entrypoint": "touch /tmp/pvcast-security-should-never-exist"}
    with httpx.Client(timeout=30) as client:
        assert client.post(f"{dashboard}/api/jobs/", json=job).status_code == 401
        assert client.post(f"{agent}/api/job_agent/jobs/", json=job).status_code == 401
        assert client.get(f"{dashboard}/api/jobs/").status_code == 401
        assert client.get(f"{dashboard}/api/jobs/", headers={"Authorization": "Bearer " + "0" * 64}).status_code == 403
        allowed = client.get(f"{dashboard}/api/jobs/", headers=bearer())
        assert allowed.status_code == 200
        assert [j for j in allowed.json() if j["type"] == "SUBMISSION"] == []  # none got through
    assert not Path("/tmp/pvcast-security-should-never-exist").exists()


def test_the_token_file_is_private(instance):
    path = token_path()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    n_chars = len(path.read_text().strip())  # not inside the assert: a report never shows the token
    assert n_chars == 64  # 256 random bits, hex


def test_the_service_answers_on_loopback(instance):
    assert httpx.get(f"{instance['base']}/healthz", timeout=30).status_code == 200
