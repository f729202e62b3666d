"""Helpers of the API tests: real weather rows, the forecast invariant, OpenAPI validation, errors, counts."""

import asyncio
import json
from pathlib import Path

import asyncpg
import numpy as np
import pandas as pd
import yaml

from engine import data
from engine.quantiles import QUANTILE_COLUMNS

ROOT = Path(__file__).resolve().parents[2]
WINDOW = ("2013-07-01T00:00:00Z", "2013-07-10T00:00:00Z")  # real PSM3 weather ingested
ISSUE = "2013-07-01T06:00:00Z"  # perfect-prognosis issue time of that weather
TENANT = "tests"  # tenant of the session's API key (conftest.api_key): every plant the clients create is its
#: Upload limit (nwp.max_upload_bytes) of the test service: above every real NWP sample upload of the tests
#: (0.7 MB at most: the 22 GEFS files), so that a refused upload costs a few MB, not the 512 MiB of
#: configs/service.yaml.
NWP_MAX_UPLOAD_BYTES = 4 * 1024 * 1024


def demo_plants():
    """configs/demo_plants.yaml plants; SERF East gets the capacity derived in training (model card)."""
    card = json.loads((ROOT / "models/global.json").read_text())
    plants = yaml.safe_load((ROOT / "configs/demo_plants.yaml").read_text())["plants"]
    for plant in plants:
        if plant.pop("capacity_from_model_card", False):
            plant.update({k: card["capacity"][k] for k in ("capacity_ac_kw", "capacity_dc_kw")})
    return plants


def weather_rows(location_ids, training_config, start=WINDOW[0], end=WINDOW[1], issue=ISSUE):
    """Real PSM3 rows of the window for each location, as API JSON rows."""
    frames = []
    for lid in location_ids:
        w = data.load_weather(training_config, lid).drop(columns=["ghi_clear"])
        w = w[(w["valid_time"] >= pd.Timestamp(start)) & (w["valid_time"] <= pd.Timestamp(end))]
        frames.append(w.assign(issue_time=pd.Timestamp(issue), source="psm3_perfect_prognosis"))
    rows = pd.concat(frames, ignore_index=True)
    for column in ("valid_time", "issue_time"):
        rows[column] = rows[column].map(pd.Timestamp.isoformat)
    return rows.astype(object).where(rows.notna(), None).to_dict(orient="records")


def assert_forecast_invariant(times, values, location, resolution_minutes):
    """0 <= p10 <= ... <= p90 <= min(capacity, export limit); exactly 0 with the sun down.

    "Sun down" = solar elevation <= 0 at both ends of the step (either label convention).
    """
    q = np.column_stack([np.asarray(values[c], dtype=float) for c in QUANTILE_COLUMNS])
    limit = min(location["capacity_ac_kw"], location["export_limit_kw"] or np.inf)
    assert np.isfinite(q).all()
    assert (q >= 0).all() and (np.diff(q, axis=1) >= 0).all() and (q <= limit + 1e-9).all()
    times = pd.DatetimeIndex(times)
    ends = [times, times - pd.Timedelta(minutes=resolution_minutes)]
    night = np.logical_and.reduce([np.asarray(data.solar_elevation(t, location["latitude"], location["longitude"],
                                                                   location["altitude"])) <= 0 for t in ends])
    assert night.any() and (q[night] == 0).all()
    assert q[~night].max() > 0


def openapi_validator(client, name):
    """jsonschema validator of a component schema of the served /openapi.json."""
    import jsonschema
    doc = client.get("/openapi.json").json()
    schema_ = {"$ref": f"#/components/schemas/{name}", "components": doc["components"]}
    return jsonschema.Draft202012Validator(schema_)


def assert_error(client, response, status, field, code=None):
    """``response`` is the documented error ``status`` naming ``field`` (its message starts with it), with ``code``.

    Every error body must carry an ``error.code`` of the definition (the schema's enum, required): an
    answer without one fails here, whichever test made it.
    """
    assert response.status_code == status, response.text
    body = response.json()
    openapi_validator(client, "Error").validate(body)
    assert body["error"]["status"] == status and body["error"]["field"] == field, body
    assert body["error"]["message"].startswith(field) or status in (413, 415), body
    assert code is None or body["error"]["code"] == code, body


def count(url, sql, *args):
    """``fetchval`` of ``sql`` on the database ``url``."""
    async def run():
        conn = await asyncpg.connect(url)
        try:
            return await conn.fetchval(sql, *args)
        finally:
            await conn.close()
    return asyncio.run(run())
