"""The edge proxy (serve_app/edge.py, nginx) bounds what one client holds before a request reaches Ray Serve.

Real nginx (``scripts/edge bin``) in front of the session's real service: answers pass unchanged; an API key
beyond its rate is answered 429 ``rate_limited`` while another key is served; headers that never finish
close the connection after ``edge.header_timeout_seconds``; a body over ``http.max_body_bytes`` is 413, headers
too large 400; a key's and an address' requests in progress are bounded (429 ``too_many_connections``); a
service that does not answer is 503 ``service_unavailable``; TLS when a certificate is set. Every refusal is the
service's error body (the OpenAPI ``Error`` schema, a code of ``engine.validation.ERRORS``).
"""

import copy
import socket
import subprocess
import time

import httpx
import pytest

from apihelpers import assert_error
from engine import validation
import local_instance as local
from serve_app import edge
from serve_app.settings import load_settings

pytestmark = pytest.mark.slow

#: Small limits, so that a few requests reach them (the shipped ones: configs/service.yaml edge).
LIMITS = {"header_timeout_seconds": 2, "body_timeout_seconds": 2, "keepalive_seconds": 5, "rate_per_key": 2,
          "burst_per_key": 3, "rate_per_address": 1000, "burst_per_address": 1000, "connections_per_address": 4,
          "connections_per_key": 3}
MAX_BODY = 65536


def running_edge(tmp_path, upstream, **changes):
    """Base URL of an edge in front of ``upstream`` with :data:`LIMITS` and ``changes`` (stopped after)."""
    return local.edge_instance(upstream, tmp_path, {**LIMITS, **changes}, max_body_bytes=MAX_BODY)


@pytest.fixture(scope="module")
def upstream(service):
    return service.split("://", 1)[1]


@pytest.fixture(scope="module")
def front(tmp_path_factory, upstream):
    with running_edge(tmp_path_factory.mktemp("edge"), upstream) as url:
        yield url


def test_answers_pass_through_unchanged(front, service, auth, plants):
    for path in ("/api/v1/locations?limit=2", "/healthz"):
        direct, through = httpx.get(service + path, headers=auth), httpx.get(front + path, headers=auth)
        assert (through.status_code, through.json()) == (direct.status_code, direct.json()) == (200, direct.json())
    theirs = httpx.get(front + "/api/v1/locations")  # the service's own refusal (no key), not the edge's
    assert theirs.status_code == 401 and theirs.json()["error"]["code"] == "unauthenticated"


def test_a_key_beyond_its_rate_is_refused_while_another_key_is_served(front, api_db_url, client, auth, plants):
    other = local.bearer(local.api_key(api_db_url, "edge-other", "read,write", "tests/api/test_edge.py"))
    with httpx.Client(base_url=front, headers=auth) as c:
        answers = [c.get("/api/v1/locations?limit=1") for _ in range(LIMITS["burst_per_key"] + 6)]
        served_other = httpx.get(front + "/api/v1/locations?limit=1", headers=other)
        refused = [r for r in answers if r.status_code == 429]
        assert answers[0].status_code == 200 and len(refused) >= 4, [r.status_code for r in answers]
        assert_error(client, refused[0], 429, "authorization", "rate_limited")  # client: the schema, directly
        assert refused[0].headers["Retry-After"] == "1"
    assert served_other.status_code == 200, served_other.text
    time.sleep((LIMITS["burst_per_key"] + 1) / LIMITS["rate_per_key"])  # the bucket refills at the rate
    assert httpx.get(front + "/api/v1/locations?limit=1", headers=auth).status_code == 200


def test_headers_that_never_finish_close_the_connection(front):
    host, port = front.split("://", 1)[1].split(":")
    with socket.create_connection((host, int(port))) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: pvcast\r\nX-Slow: ")  # half a header, then nothing
        s.settimeout(LIMITS["header_timeout_seconds"] + 10)
        t0 = time.monotonic()
        assert s.recv(4096) == b""  # closed by the edge, without an answer
        assert time.monotonic() - t0 < LIMITS["header_timeout_seconds"] + 5


def test_a_body_over_the_limit_and_headers_too_large_are_refused_with_the_error_body(front, client, auth):
    large = httpx.post(front + "/api/v1/weather", headers={**auth, "content-type": "application/json"},
                       content=b"[" + b"0," * MAX_BODY + b"0]")
    assert_error(client, large, 413, "body", "body_too_large")
    huge = httpx.get(front + "/healthz", headers={"X-Large": "x" * 20_000})
    assert_error(client, huge, 400, "request", "malformed_request")


def held(front, authorization=None, declared=MAX_BODY // 2):
    """A socket whose request sent its headers and the start of a body, then waits (held by the edge)."""
    host, port = front.split("://", 1)[1].split(":")
    s = socket.create_connection((host, int(port)))
    key = f"Authorization: {authorization}\r\n" if authorization else ""
    s.sendall(f"POST /api/v1/weather HTTP/1.1\r\nHost: pvcast\r\n{key}Content-Type: application/json\r\n"
              f"Content-Length: {declared}\r\n\r\n{{\"rows\": [".encode())
    return s


def test_requests_in_progress_of_one_key_and_of_one_address_are_bounded(tmp_path, upstream, client):
    """One key's requests in progress are bounded (another key's pass), and one address' whatever their keys."""
    def healthz(authorization=None):
        return httpx.get(url + "/healthz", headers={"Authorization": authorization} if authorization else {})
    # its own edge: no other test's requests in progress; bodies held longer than the test; no rate limit
    with running_edge(tmp_path, upstream, body_timeout_seconds=60, rate_per_key=1000, burst_per_key=1000) as url:
        sockets = [held(url, "Bearer one") for _ in range(LIMITS["connections_per_key"])]
        try:
            time.sleep(0.5)  # their headers are read: they count
            assert_error(client, healthz("Bearer one"), 429, "connection", "too_many_connections")
            assert healthz("Bearer two").status_code == 200  # another key (the address has 3 of its 4)
            sockets += [held(url) for _ in range(LIMITS["connections_per_address"] - len(sockets))]
            time.sleep(0.5)
            assert_error(client, healthz("Bearer two"), 429, "connection", "too_many_connections")
        finally:
            for s in sockets:
                s.close()
        time.sleep(0.5)
        assert healthz("Bearer one").status_code == 200


def test_a_service_that_does_not_answer_is_503_with_retry_after(tmp_path, client):
    with running_edge(tmp_path, f"127.0.0.1:{local.free_port()}") as url:  # nothing listens there
        r = httpx.get(url + "/healthz")
    assert_error(client, r, 503, "service", "service_unavailable")
    assert r.headers["Retry-After"] == "1"


def test_tls_when_a_certificate_is_set(tmp_path, upstream):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
                    "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out",
                    str(cert)], check=True, capture_output=True)
    with running_edge(tmp_path, upstream, tls_certificate=str(cert), tls_key=str(key)) as url:
        assert url.startswith("https://")
        assert httpx.get(url + "/healthz", verify=str(cert)).status_code == 200
        with pytest.raises(httpx.ConnectError):  # a client that checks certificates does not trust another one
            httpx.get(url + "/healthz")


def test_the_shipped_edge_is_loopback_bounded_and_valid_for_nginx(tmp_path):
    settings = load_settings()
    assert settings["edge"]["listen"].startswith("127.0.0.1:")
    text = edge.nginx_config(settings, edge.upstream_address(), tmp_path, tmp_path / "temp")
    assert f"client_max_body_size {settings['http']['max_body_bytes']};" in text
    assert edge.upstream_address() == "127.0.0.1:8000"
    # one key never holds more requests than the Ingress serves of its tenant (the rest would queue in Ray Serve's
    # proxy, whose overflow is shed for every tenant alike)
    assert settings["edge"]["connections_per_key"] <= settings["http"]["max_ongoing_per_tenant"]
    conf = edge.write_config(tmp_path / "shipped", settings)
    check = subprocess.run([local.nginx_binary(), "-t", "-p", str(tmp_path / "shipped"), "-e",
                            str(tmp_path / "error.log"), "-c", str(conf)], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    one = copy.deepcopy(settings)
    one["edge"]["tls_certificate"] = "/etc/ssl/cert.pem"
    with pytest.raises(ValueError, match="tls"):
        edge.nginx_config(one, edge.upstream_address(), tmp_path, tmp_path / "temp")


def test_every_refusal_of_the_edge_has_a_code_of_the_definition():
    assert {code for *_, code in edge.REFUSALS.values()} <= set(validation.ERRORS)
    assert set(edge.SAME_AS.values()) <= set(edge.REFUSALS)
