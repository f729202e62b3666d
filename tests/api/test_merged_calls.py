"""Many small clients at once, through real HTTP: merged Forecaster passes, and load shedding.

Concurrent small generate requests share Forecaster passes (configs/service.yaml
``forecast.merge``; a task's ``timings.merged_calls`` counts the calls of its pass): each client
still gets exactly its own plants' forecast, equal to the one its request gets alone, its own
errors only, and tenant scoping holds. Beyond capacity requests are shed at once: 503 with
Retry-After (serve_config.yaml ``max_queued_requests``, ``backpressure_config``).
"""

import asyncio

import httpx
import numpy as np
import pytest
import yaml

import local_instance as local
from apihelpers import ISSUE, ROOT, assert_forecast_invariant, demo_plants, openapi_validator, weather_rows
from engine.quantiles import QUANTILE_COLUMNS
from serve_app.forecaster import merge_groups

pytestmark = pytest.mark.slow


def body(ids):
    return {"location_ids": ids, "issue_time": ISSUE, "horizon_hours": 48, "wait": True}


async def post_all(service, headers, bodies):
    """The answers of generate requests sent all at once (one connection each)."""
    async with httpx.AsyncClient(base_url=service, timeout=600, headers=headers,
                                 limits=httpx.Limits(max_connections=len(bodies))) as c:
        return await asyncio.gather(*[c.post("/api/v1/forecast/generate", json=b) for b in bodies])


def concurrently(service, headers, bodies):
    return asyncio.run(post_all(service, headers, bodies))


def values(location):
    return np.column_stack([location[q] for q in QUANTILE_COLUMNS])


def merged(answer):
    return answer.json()["timings"]["merged_calls"]


def test_concurrent_single_plant_requests_share_passes_and_each_gets_its_own_forecast(client, service, auth, plants):
    ids = sorted(plants)
    alone = {}
    for lid in ids:
        r = client.post("/api/v1/forecast/generate", json=body([lid]))
        assert r.status_code == 200, r.text
        assert merged(r) == 1  # one request at a time: a pass of its own
        assert r.json()["timings"]["grouped_calls"] == 1  # ... and a Forecaster call of its own, sent at once
        alone[lid] = r.json()["locations"][0]
    asked = ids * 4  # each plant asked by four clients at once: no pass holds a plant twice
    answers = concurrently(service, auth, [body([lid]) for lid in asked])
    validator = openapi_validator(client, "GenerateResult")
    for lid, r in zip(asked, answers):
        assert r.status_code == 200, r.text
        out = r.json()
        validator.validate(out)
        assert out["status"] == "succeeded" and out["errors"] == []
        assert [loc["location_id"] for loc in out["locations"]] == [lid]
        assert list(out["run_ids"]) == [str(lid)] and r.headers["X-Task-Id"] == out["task_id"]
        mine = out["locations"][0]
        assert mine["valid_time"] == alone[lid]["valid_time"]
        np.testing.assert_allclose(values(mine), values(alone[lid]), rtol=0, atol=1e-9)
        assert_forecast_invariant(mine["valid_time"], mine, plants[lid], 15)
    assert max(merged(r) for r in answers) > 1, [merged(r) for r in answers]
    # the Ingress sent calls that waited together in one Forecaster call (forecast.merge.ingress_groups)
    grouped = [r.json()["timings"]["grouped_calls"] for r in answers]
    assert max(grouped) > 1, grouped
    run_ids = [r.json()["run_ids"][str(lid)] for lid, r in zip(asked, answers)]
    assert len(set(run_ids)) == len(asked)  # a run per request, each stored under its own task
    for lid, r in zip(asked[:len(ids)], answers):
        task = client.get(f"/api/v1/forecast/task/{r.json()['task_id']}").json()
        assert task["status"] == "succeeded" and task["run_ids"] == r.json()["run_ids"], task


def test_a_plant_error_in_a_merged_pass_is_only_its_own_requests(client, service, auth, plants):
    base = demo_plants()[1]
    saved = client.post("/api/v1/locations", json={"locations": [{**base, "name": "merged no weather"}]})
    assert saved.status_code == 200, saved.text
    bad = saved.json()["locations"][0]["location_id"]
    good = sorted(plants)
    # the mixed request is sent last: the first calls find free passes, the later ones wait and merge
    for _ in range(5):  # until the bad plant's request shared a pass (concurrency is not a schedule)
        answers = concurrently(service, auth, [body([lid]) for lid in good * 2] + [body([bad, good[0]])])
        if merged(answers[-1]) > 1:
            break
    assert merged(answers[-1]) > 1
    mixed = answers[-1].json()
    assert answers[-1].status_code == 200 and mixed["status"] == "partial"
    assert [(e["location_id"], e["code"]) for e in mixed["errors"]] == [(bad, "no_weather")]
    assert list(mixed["run_ids"]) == [str(good[0])]
    for lid, r in zip(good * 2, answers[:-1]):
        assert r.status_code == 200 and r.json()["status"] == "succeeded" and r.json()["errors"] == [], r.text
        assert list(r.json()["run_ids"]) == [str(lid)]


def test_another_tenants_plant_is_unknown_while_requests_are_merged(service, auth, plants, api_db_url):
    other = local.bearer(local.api_key(api_db_url, "merged-other", "read,write", "tests/api/test_merged_calls.py"))
    ids = sorted(plants)

    async def both():
        mine = post_all(service, auth, [body([lid]) for lid in ids])
        theirs = post_all(service, other, [body([lid]) for lid in ids])
        return await asyncio.gather(mine, theirs)

    mine, theirs = asyncio.run(both())
    assert all(r.status_code == 200 and r.json()["status"] == "succeeded" for r in mine)
    for r in theirs:
        assert r.status_code == 404 and r.json()["error"]["field"] == "location_ids", r.text
        assert "X-Task-Id" not in r.headers


# --- load shedding --------------------------------------------------------------------------

#: Tiny queues: the Ingress takes 4 requests and queues 2 more at the proxy; the one Forecaster
#: replica runs 1 call and queues 1 (calls not merged, so each holds its place).
TINY = {"Ingress": {"max_ongoing_requests": 4, "max_queued_requests": 2},
        "Forecaster": {"num_replicas": 1, "max_ongoing_requests": 1, "max_queued_requests": 1}}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, training_config):
    """(base URL, headers, location id, database URL) of an instance with TINY queues and one plant with weather."""
    cfg = yaml.safe_load((ROOT / "serve_config.yaml").read_text())
    for deployment in cfg["applications"][0]["deployments"]:
        if deployment["name"] in TINY:
            deployment.pop("autoscaling_config", None)
            deployment.update(TINY[deployment["name"]])
    work = tmp_path_factory.mktemp("tiny")
    (work / "tiny_serve_config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    merge_off = {"max_locations": 0, "max_calls": 1, "max_passes": 1}
    with local.scratch_database("pvcast_tiny") as (url, _), local.serve_instance(
            url, work / "serve", serve_config=work / "tiny_serve_config.yaml",
            service_settings={"forecast": {"merge": merge_off}}) as (base, _):
        headers = local.bearer(local.api_key(url, "tests", "read,write", "tests/api/test_merged_calls.py"))
        with httpx.Client(base_url=base, timeout=600, headers=headers) as c:
            saved = c.post("/api/v1/locations", json={"locations": [demo_plants()[1]]})
            assert saved.status_code == 200, saved.text
            lid = saved.json()["locations"][0]["location_id"]
            assert c.post("/api/v1/weather", json={"rows": weather_rows([lid], training_config)}).status_code == 200
        yield base, headers, lid, url


def test_beyond_capacity_requests_are_shed_with_503_and_retry_after(tiny):
    base, headers, lid, url = tiny
    configured = {d["name"]: d["backpressure_config"]["retry_after_s"]
                  for d in yaml.safe_load((ROOT / "serve_config.yaml").read_text())["applications"][0]["deployments"]
                  if "backpressure_config" in d}
    answers = concurrently(base, headers, [body([lid])] * 40)
    statuses = [r.status_code for r in answers]
    assert set(statuses) <= {200, 503} and statuses.count(200) >= 1, statuses
    shed = [r for r in answers if r.status_code == 503]
    # the proxy refuses what the Ingress cannot queue (Ray Serve's answer: text body); how many depends
    # on how fast the admitted ones end, at least those of the first instant beyond its 4 + 2
    proxy = [r for r in shed if not r.headers.get("content-type", "").startswith("application/json")]
    assert proxy, statuses
    assert {r.headers.get("Retry-After") for r in proxy} == {str(int(configured["Ingress"]))}
    # the Ingress answers 503 (its JSON error, the task named) when the Forecaster's queue is full: more than
    # 1 running + 1 queued calls at once. The burst above may give the Ingress only 2 requests (the proxy can
    # fill its queue of 2 before it hands one to the replica: seen under load), so waves of the Ingress'
    # own capacity (4 running + 2 queued at the proxy) follow until one is shed there, at most 10
    ingress = [r for r in shed if r.headers.get("content-type", "").startswith("application/json")]
    for _ in range(10):
        if ingress:
            break
        wave = concurrently(base, headers, [body([lid])] * 6)
        assert {r.status_code for r in wave} <= {200, 503}, [r.status_code for r in wave]
        ingress = [r for r in wave if r.status_code == 503
                   and r.headers.get("content-type", "").startswith("application/json")]
    assert ingress, statuses
    with httpx.Client(base_url=base, timeout=600, headers=headers) as c:
        validator = openapi_validator(c, "Error")
        for r in ingress:
            validator.validate(r.json())
            assert r.json()["error"]["status"] == 503 and r.json()["error"]["field"] == "service", r.text
            assert r.json()["error"]["code"] == "overloaded", r.text
            assert r.headers["Retry-After"] == str(int(configured["Forecaster"]))
            task = c.get(f"/api/v1/forecast/task/{r.headers['X-Task-Id']}").json()
            assert task["status"] == "failed" and set(task["errors"]) == {str(lid)}, task  # shed: not resumed
            assert task["errors"][str(lid)]["code"] == "overloaded", task
        assert c.post("/api/v1/forecast/generate", json=body([lid])).status_code == 200  # and it serves on


def test_batches_of_one_task_never_share_a_pass_other_tasks_calls_do():
    # calls: two batches of task a, one of task b (same key), a call of b with another key, b again on plant 1
    same, other = ("2013-07-01T06:00:00+00:00", 48, 15, "ml"), ("2013-07-01T07:00:00+00:00", 48, 15, "ml")
    groups = merge_groups([[1], [2], [3], [4], [1]], [same, same, same, other, same], ["a", "a", "b", "b", "c"])
    assert groups == [[0, 2], [1, 4], [3]]
