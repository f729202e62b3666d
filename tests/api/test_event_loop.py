"""The ingress keeps answering while a maximal ingest is in flight (no CPU work on its event loop)."""

import json
import threading
import time

import httpx
import pandas as pd
import pytest

from apihelpers import demo_plants
from engine import data

pytestmark = pytest.mark.slow
ROWS = 500_000  # configs/service.yaml http.max_rows


def test_healthz_answers_within_a_second_during_a_500k_row_ingest(client, service, auth, training_config):
    saved = client.post("/api/v1/locations", json={"locations": [{**demo_plants()[1], "name": f"ingest load {i}"}
                                                                 for i in range(10)]})
    assert saved.status_code == 200, saved.text
    ids = [loc["location_id"] for loc in saved.json()["locations"]]
    psm3 = data.load_weather(training_config, 0).drop(columns=["ghi_clear"])  # 2011-2013, 30 min, real
    per_plant = ROWS // len(ids)
    assert len(psm3) >= per_plant
    psm3 = psm3.iloc[:per_plant]
    times = psm3["valid_time"].map(pd.Timestamp.isoformat).tolist()
    columns = {c: psm3[c].tolist() for c in ("ghi", "temp_air", "wind_speed")}
    rows = [{"location_id": lid, "valid_time": t, "issue_time": "2013-12-31T00:00:00Z", "source": "load",
             "ghi": g, "temp_air": ta, "wind_speed": w, "period_minutes": 0}
            for lid in ids for t, g, ta, w in zip(times, columns["ghi"], columns["temp_air"], columns["wind_speed"])]
    assert len(rows) == ROWS
    body = json.dumps({"rows": rows}).encode()  # serialised here: json.dumps in the thread would hold our GIL
    result = {}

    def ingest():
        with httpx.Client(base_url=service, timeout=900, headers=auth) as c:
            t0 = time.monotonic()
            result["response"] = c.post("/api/v1/weather", content=body, headers={"content-type": "application/json"})
            result["seconds"] = time.monotonic() - t0

    thread = threading.Thread(target=ingest)
    thread.start()
    latencies = []
    with httpx.Client(base_url=service, timeout=30) as c:
        while thread.is_alive():
            t0 = time.monotonic()
            assert c.get("/healthz").status_code == 200
            latencies.append(time.monotonic() - t0)
            time.sleep(0.1)
    thread.join()
    assert result["response"].status_code == 200, result["response"].text
    assert result["response"].json() == {"rows": ROWS}
    assert len(latencies) >= 10, f"the ingest took only {result['seconds']:.1f} s: too short to show anything"
    print(f"ingest of {ROWS} rows ({len(body) / 1e6:.0f} MB): {result['seconds']:.1f} s; /healthz latency during it: "
          f"n {len(latencies)}, median {sorted(latencies)[len(latencies) // 2]:.3f} s, max {max(latencies):.3f} s")
    assert max(latencies) < 1.0, f"/healthz latencies during the ingest: max {max(latencies):.2f} s"
