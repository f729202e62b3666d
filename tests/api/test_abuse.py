"""A careless or hostile client gets a bounded, typed answer and cannot starve the others (docs/ARCHITECTURE.md "Probes").

Real service, real database: an unknown path or method answers the JSON error body; HEAD
is answered as GET without the body; a rejected value is quoted shortened, never echoed whole;
a request whose body stalls is answered 408 within ``http.body_grace_seconds`` and one that only
pauses arrives whole; a tenant holds at most ``http.max_slow_bodies_per_tenant`` such requests
(more: 429) while another tenant's forecast is served; concurrent refits of one plant are one
fit and 409s.
"""

import concurrent.futures
import json
import socket
import time
from urllib.parse import urlsplit

import httpx
import pytest

from apihelpers import assert_error, demo_plants
import local_instance as local
from serve_app.settings import load_settings
from test_calibration_api import CUTOFF, stored_plant

pytestmark = pytest.mark.slow
HTTP = load_settings()["http"]  # the shipped limits: the test service does not override them


def test_unknown_paths_and_methods_answer_the_error_body(client, plants):
    assert_error(client, client.get("/api/v1/no-such-thing"), 404, "path")
    r = client.delete(f"/api/v1/locations/{min(plants)}")
    assert_error(client, r, 405, "method")
    assert r.headers["allow"] == "GET"


def test_head_answers_as_get_without_a_body_and_keeps_the_key_check(client, service, plants):
    for path in ("/healthz", "/api/v1/locations?limit=2", f"/api/v1/locations/{min(plants)}"):
        got, head = client.get(path), client.head(path)
        assert (head.status_code, head.content) == (200, b""), head.text
        for name in ("content-type", "content-length", "link"):
            assert head.headers.get(name) == got.headers.get(name), name
    r = httpx.head(f"{service}/api/v1/locations", timeout=60)  # no key
    assert (r.status_code, r.content, r.headers["www-authenticate"]) == (401, b"", "Bearer")
    r = client.head("/api/v1/forecast/generate")  # no GET: no HEAD
    assert (r.status_code, r.headers["allow"]) == (405, "POST")


def test_a_rejected_value_is_quoted_shortened_not_echoed(client, plants):
    # 4 MB of control characters in a string: invalid JSON whose every byte was quoted back 5 times over
    body = b'{"location_ids": [1], "issue_time": "' + b"\x01" * 4_000_000 + b'"}'
    r = client.post("/api/v1/forecast/generate", content=body, headers={"content-type": "application/json"})
    assert_error(client, r, 400, "body")
    assert len(r.content) < 4096
    r = client.post("/api/v1/locations", json={"locations": [{**demo_plants()[1], "name": "x" * 1_000_000}]})
    assert_error(client, r, 422, "locations[0].name")
    assert len(r.content) < 4096


def stalled(service, key, declared=100_000):
    """A socket that sent a generate request's headers and the start of its body, then stalls."""
    address = urlsplit(service)
    s = socket.create_connection((address.hostname, address.port))
    s.sendall((f"POST /api/v1/forecast/generate HTTP/1.1\r\nHost: {address.netloc}\r\nAuthorization: Bearer {key}\r\n"
               f"Content-Type: application/json\r\nContent-Length: {declared}\r\n\r\n" '{"location_ids": [').encode())
    return s


def status_line(s, timeout):
    """(HTTP status the service answered on ``s``, seconds it took), or (None, timeout) without an answer."""
    s.settimeout(timeout)
    t0 = time.monotonic()
    try:
        head = s.recv(4096)
    except TimeoutError:
        return None, timeout
    return int(head.split(b" ", 2)[1]), time.monotonic() - t0


def test_stalled_bodies_of_one_tenant_are_bounded_and_timed_out(service, api_key, api_db_url, plants):
    most, grace, slow = HTTP["max_slow_bodies_per_tenant"], HTTP["body_grace_seconds"], HTTP["body_slow_after_seconds"]
    t0 = time.monotonic()
    held = [stalled(service, api_key) for _ in range(most)]
    try:
        time.sleep(slow + 1)  # they reached the Ingress and count as slow
        extra = stalled(service, api_key)
        assert status_line(extra, slow + 5)[0] == 429  # once it is slow too: not held until its 408
        extra.close()
        other = local.api_key(api_db_url, "abuse-other", "read,write", "tests/api/test_abuse.py")
        with httpx.Client(base_url=service, timeout=30, headers=local.bearer(other)) as c:
            r = c.get("/api/v1/locations")
        assert r.status_code == 200, r.text
        answers = [status_line(s, grace + 20) for s in held]  # each within its grace (+ scheduling slack)
        assert [status for status, _ in answers] == [408] * most
        assert time.monotonic() - t0 < grace + 20
    finally:
        for s in held:
            s.close()


def test_a_body_that_pauses_past_the_slow_mark_arrives_whole(service, api_key, plants):
    """A read cut by the slow-body check is issued again: no byte of the body is lost (only the delay counts)."""
    body = json.dumps({"locations": [{**demo_plants()[1], "name": "paused body " + "p" * 150}]}).encode()
    address = urlsplit(service)
    with socket.create_connection((address.hostname, address.port)) as s:
        s.sendall((f"PUT /api/v1/locations HTTP/1.1\r\nHost: {address.netloc}\r\nAuthorization: Bearer {api_key}\r\n"
                   f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
                   ).encode() + body[:len(body) // 2])
        time.sleep(HTTP["body_slow_after_seconds"] + 1)  # past the slow mark, within the grace
        s.sendall(body[len(body) // 2:])
        s.settimeout(60)
        answer = b""
        while chunk := s.recv(65536):
            answer += chunk
    head, _, payload = answer.partition(b"\r\n\r\n")
    assert head.split(b" ", 2)[1] == b"200", answer[:500]
    assert b"paused body " + b"p" * 150 in payload


def test_concurrent_refits_of_one_plant_run_one_fit(client, training_config, plants):
    loc, _ = stored_plant(client, training_config, "SERF East 2016 [abuse: refit flood]")

    def calibrate(_):
        return client.post(f"/api/v1/locations/{loc['location_id']}/calibrate", json={"cutoff": CUTOFF})
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(calibrate, range(8)))
    fitted = [r for r in answers if r.status_code == 200]
    assert len(fitted) >= 1, [r.text[:200] for r in answers]
    for r in answers:
        if r.status_code != 200:
            assert_error(client, r, 409, "location_id", "conflict")
    versions = {r.json()["version"] for r in fitted}
    assert len(versions) == len(fitted)
    # 8 requests that arrive within one fit's seconds: at most a couple of fits, the rest refused at once
    assert len(fitted) <= 2, [r.status_code for r in answers]
