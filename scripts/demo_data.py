"""Load the demo plants and REAL PSM3 weather into a running pvcast through its HTTP API.

Usage: demo_data.py BASE_URL KEY_FILE  -> prints the JSON body of the demo generate request.

KEY_FILE holds the API key (``pvcast keys create --key-file``); the key is read from it, never
taken from the command line (visible in ``ps``).
"""

import json
import sys
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import yaml

from engine import data
from serve_app.settings import ROOT


def weather_rows(location_ids, window, training):
    """PSM3 rows of ``window`` for every location, issued at ``window['issue_time']``."""
    frames = []
    for lid in location_ids:  # 4 plants; the demo is not a hot path
        w = data.load_weather(training, lid).drop(columns=["ghi_clear"])
        w = w[(w["valid_time"] >= pd.Timestamp(window["start"])) & (w["valid_time"] <= pd.Timestamp(window["end"]))]
        frames.append(w.assign(issue_time=pd.Timestamp(window["issue_time"]), source=window["source"]))
    rows = pd.concat(frames, ignore_index=True)
    for column in ("valid_time", "issue_time"):
        rows[column] = rows[column].map(pd.Timestamp.isoformat)
    return rows.astype(object).where(rows.notna(), None).to_dict(orient="records")


def main(base, key_file):
    demo = yaml.safe_load((ROOT / "configs/demo_plants.yaml").read_text())
    training = yaml.safe_load((ROOT / "configs/training.yaml").read_text())
    card = json.loads((ROOT / "models/global.json").read_text())
    for plant in demo["plants"]:
        if plant.pop("capacity_from_model_card", False):  # SERF East: the capacity derived in training
            plant.update({k: card["capacity"][k] for k in ("capacity_ac_kw", "capacity_dc_kw")})
    key = Path(key_file).read_text().strip()
    client = httpx.Client(base_url=base, timeout=300, headers={"Authorization": f"Bearer {key}"})
    saved = client.post("/api/v1/locations", json={"locations": demo["plants"]})
    saved.raise_for_status()
    ids = [loc["location_id"] for loc in saved.json()["locations"]]
    rows = weather_rows(ids, demo["weather"], training)
    written = client.post("/api/v1/weather", json={"rows": rows})
    written.raise_for_status()
    print(f"demo: {len(ids)} plants, {written.json()['rows']} real PSM3 weather rows "
          f"({demo['weather']['start']} .. {demo['weather']['end']}, issued {demo['weather']['issue_time']})",
          file=sys.stderr)
    print(json.dumps({"location_ids": ids, **{k: demo["forecast"][k] for k in
                      ("issue_time", "horizon_hours", "resolution", "forecast_type")}, "wait": True}))


if __name__ == "__main__":
    np.seterr(all="ignore")
    main(sys.argv[1], sys.argv[2])
