"""Property-based run of every operation of the served OpenAPI document (schemathesis), issue 9.

Schemathesis reads the live ``/openapi.json`` of the session's service and, for every operation,
sends requests generated from the documented parameters and bodies (``EXAMPLES`` each, with a
valid key of a tenant of its own, so whatever it stores is invisible to the other tests). That
tenant has a plant with real weather, actuals and a stored run (``seed``); about half of the
valid requests name it (path ``location_id``, ``task_id``, ``run_id``, generate's
``location_ids``), so that the successful answers (JSON, CSV, energy, PNG, accuracy) are checked
too, not only the 404 of random ids. Every
answer must be no server error, a documented status with a documented content type, a body
matching the documented schema, and the operation must refuse the request without its key.
Requests are generated valid (positive) and invalid (negative: must be refused with a 4xx).
Bounded in time: about a minute for the whole document on the test machine.

One test per operation of the committed document (serve_app/openapi.json, which
tests/api/test_contract.py holds equal to the generated one); the served document must list the
same operations. (schemathesis.pytest.from_fixture is not used: it sets ``_nodeid``, which
pytest 9 no longer has.)
"""

import json

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode, checks

from apihelpers import ISSUE, WINDOW, demo_plants, weather_rows
from engine import data
import local_instance as local
from serve_app import ingress

pytestmark = pytest.mark.slow
TENANT = "fuzz"
EXAMPLES = 20  # per operation and mode
CHECKS = [checks.not_a_server_error, checks.status_code_conformance, checks.content_type_conformance,
          checks.response_schema_conformance, checks.ignored_auth]
#: generation mode -> checks: valid requests (by the document), and invalid ones, which must be refused (4xx)
MODES = {GenerationMode.POSITIVE: CHECKS, GenerationMode.NEGATIVE: [*CHECKS, checks.negative_data_rejection]}
DOCUMENT = json.loads(ingress.OPENAPI.read_text())
COMMITTED = [(method.upper(), path) for path, ops in DOCUMENT["paths"].items() for method in ops]
#: (method, path, mode) runs: negative only where there is something to make invalid (parameters, a body)
RUNS = [(m, p, mode) for m, p in COMMITTED for mode in MODES
        if mode == GenerationMode.POSITIVE or {"parameters", "requestBody"} & set(DOCUMENT["paths"][p][m.lower()])]


@pytest.fixture(scope="module")
def fuzz_auth(api_db_url):
    """Headers with a read/write key of the tenant ``fuzz``."""
    return local.bearer(local.api_key(api_db_url, TENANT, "read,write", "tests/api/test_schemathesis.py"))


@pytest.fixture(scope="module")
def seed(service, fuzz_auth, training_config):
    """A plant of the tenant ``fuzz`` with real weather and actuals, and a stored run: its ids."""
    with httpx.Client(base_url=service, timeout=600, headers=fuzz_auth) as c:
        plant = {**demo_plants()[0], "name": "fuzz seed"}
        lid = c.post("/api/v1/locations", json={"locations": [plant]}).json()["locations"][0]["location_id"]
        assert c.post("/api/v1/weather", json={"rows": weather_rows([lid], training_config)}).status_code == 200
        power = data.load_power(training_config)[0][WINDOW[0]:WINDOW[1]].dropna()
        actuals = [{"location_id": lid, "time": t.isoformat(), "power_kw": float(p)} for t, p in power.items()]
        assert c.post("/api/v1/actuals", json={"rows": actuals}).status_code == 200
        r = c.post("/api/v1/forecast/generate", json={"location_ids": [lid], "issue_time": ISSUE,
                                                      "horizon_hours": 24, "wait": True}).json()
    assert r["status"] == "succeeded", r
    return {"location_id": lid, "task_id": r["task_id"], "run_id": r["run_ids"][str(lid)]}


def name_the_seed(case, seed):
    """``case`` with the seed's ids in place of the generated ones (where the operation takes them)."""
    for name in ("location_id", "task_id"):
        if name in (case.path_parameters or {}):
            case.path_parameters[name] = seed[name]
    if "run_id" in (case.query or {}):
        case.query["run_id"] = seed["run_id"]
    if isinstance(case.body, dict) and "location_ids" in case.body:
        case.body["location_ids"] = [seed["location_id"]]


@pytest.fixture(scope="module")
def served_schema(service):
    return schemathesis.openapi.from_url(f"{service}/openapi.json")


def test_every_served_operation_is_run(served_schema):
    served = [(method.upper(), path) for path, ops in served_schema.raw_schema["paths"].items() for method in ops]
    assert sorted(served) == sorted(COMMITTED)


@pytest.mark.parametrize("method, path, mode", RUNS, ids=[f"{m} {p} {mode.value}" for m, p, mode in RUNS])
def test_every_operation_keeps_its_documented_contract(served_schema, fuzz_auth, seed, method, path, mode):
    operation = served_schema[path][method]

    @given(case=operation.as_strategy(mode), known=st.booleans())
    @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large])
    def run(case, known):
        if known and mode == GenerationMode.POSITIVE:  # a negative case stays invalid
            name_the_seed(case, seed)
        case.call_and_validate(headers=fuzz_auth, checks=MODES[mode], timeout=120)

    run()
