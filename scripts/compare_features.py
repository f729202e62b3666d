"""Feature frames and hold-out metrics of two source trees on the same real inputs, compared.

    .venv/bin/python scripts/compare_features.py --against /work/main [--plants 600] [--out /tmp/compare]

Each tree (this one and ``--against``) runs in its own subprocess with
``PYTHONPATH`` set to it, so each imports its own ``engine`` and ``bench``:

1. ``training.build_dataset`` (SERF East, real PSM3 2011-04 .. 2013-12 at the
   measured power's 15-min instants: the training and hold-out features) and
   the hold-out metrics of the COMMITTED model (``models/global.cbm`` of this
   tree, never retrained) on them (``training.holdout_table``);
2. ``feature_frame`` of the first ``--plants`` one-plane plants of the seeded
   bench fleet (``bench/fleet.py``: fixed and tracking plants at four real
   weather sites, 48 h x 15 min).

Then every column both trees produce is compared: bit-identical or not, and the
largest absolute difference; the hold-out metrics of both trees are printed
beside the model card's. Nothing is written outside ``--out``.
"""

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]

SNAPSHOT = r'''
import json, sys
from pathlib import Path
import numpy as np, pandas as pd, yaml
np.seterr(all="ignore")
tree, out, n_plants, models = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
sys.path.insert(0, str(tree / "bench"))
from engine import features, forecast, modelio, training
import fleet
assert Path(features.__file__).resolve().is_relative_to(tree.resolve()), features.__file__
config = training.load_config(str(tree / "configs/training.yaml"))
ds = training.build_dataset(config, features.feature_frame)
ds["features"].assign(clear_physical_kw=ds["clear_physical_kw"]).reset_index().to_parquet(out / "training.parquet")
bundle = modelio.load_model(models, config["model_id"])
table = training.holdout_table(training.holdout_forecasts(bundle, ds, config))
(out / "holdout.json").write_text(json.dumps(table, default=float))
start, end = pd.Timestamp("2013-06-30T06:00Z"), pd.Timestamp("2013-07-02T18:00Z")
weather = {s: fleet.site_weather(s, start, end) for s in fleet.SITES}
plants = fleet.plants(n_plants, 20130630, list(fleet.SITES)).assign(location_id=lambda d: np.arange(1, len(d) + 1))
plants = plants.assign(gamma_pdc=-0.004, temp_model_u0=25.0, temp_model_u1=6.84)
w = pd.concat([weather[s].reset_index().assign(location_id=i) for i, s in zip(plants["location_id"], plants["site"])],
              ignore_index=True)
times = forecast.forecast_times(pd.Timestamp("2013-06-30T12:00Z"), 48, 15)
features.feature_frame(plants, w, times).reset_index().to_parquet(out / "fleet.parquet")
'''


def snapshot(tree, out, n_plants):
    """Run the snapshot of ``tree`` into ``out`` (subprocess, PYTHONPATH = tree)."""
    out.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, PYTHONPATH=str(tree))
    subprocess.run([sys.executable, "-c", SNAPSHOT, str(tree), str(out), str(n_plants), str(ROOT / "models")],
                   check=True, env=env, cwd=out)


def compare(a, b, name):
    """Per common column: identical bits or the largest absolute difference."""
    common = [c for c in a.columns if c in b.columns]
    print(f"\n{name}: {len(a):,} rows; columns only here {sorted(set(a.columns) - set(b.columns))}, "
          f"only there {sorted(set(b.columns) - set(a.columns))}")
    assert len(a) == len(b), (len(a), len(b))
    same = []
    for c in common:
        x, y = a[c].to_numpy(), b[c].to_numpy()
        if x.dtype.kind == "f":
            equal = np.array_equal(x, y, equal_nan=True)
            diff = np.nanmax(np.abs(x - y)) if not equal else 0.0
        else:
            equal, diff = bool((x == y).all()), None
        if equal:
            same.append(c)
        else:
            print(f"  {c}: DIFFERS, max |diff| {diff}")
    print(f"  {len(same)} of {len(common)} common columns bit-identical")
    return len(same) == len(common)


def main(args):
    base = Path(args.out)
    snapshot(ROOT, base / "this", args.plants)
    snapshot(Path(args.against).resolve(), base / "other", args.plants)
    ok = True
    for name in ("training", "fleet"):
        ok &= compare(pd.read_parquet(base / "this" / f"{name}.parquet"),
                      pd.read_parquet(base / "other" / f"{name}.parquet"), f"{name} features (this vs {args.against})")
    card = json.loads((ROOT / "models/global.json").read_text())["holdout_metrics"]
    mine = json.loads((base / "this" / "holdout.json").read_text())
    other = json.loads((base / "other" / "holdout.json").read_text())
    print("\nhold-out metrics of the committed model (2013):")
    for method in ("ml", "physics"):
        for k in sorted(card[method]):
            print(f"  {method:8s} {k:26s} card {card[method][k]:.10f}  this {mine[method][k]:.10f}  "
                  f"other {other[method][k]:.10f}")
            ok &= mine[method][k] == other[method][k]
    print("\nALL IDENTICAL" if ok else "\nDIFFERENCES FOUND")
    return 0 if ok else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--against", required=True, help="root of the other source tree (e.g. /work/main)")
    parser.add_argument("--plants", type=int, default=600)
    parser.add_argument("--out", default="/tmp/pvcast_compare_features")
    sys.exit(main(parser.parse_args()))
