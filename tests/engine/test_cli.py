"""`pvcast train` reproduces the committed model; `pvcast evaluate` prints the table and plots.

`pvcast train` runs the full real training (2011-04..2012-12, 8 calibration folds):
about a minute on 2 cores.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from engine import cli, modelio

ROOT = Path(__file__).parents[2]
CONFIG = yaml.safe_load((ROOT / "configs" / "training.yaml").read_text())
MODEL_ID = CONFIG["model_id"]


@pytest.fixture(scope="module")
def retrained(tmp_path_factory):
    out = tmp_path_factory.mktemp("models")
    code = cli.main(["train", "--config", str(ROOT / "configs" / "training.yaml"),
                     "--models-dir", str(ROOT / "models"), "--output-dir", str(out)])
    return code, out


def test_train_reproduces_committed_metrics_within_tolerance(retrained):
    code, out = retrained
    assert code == 0  # non-zero when a metric is outside reproduce_tolerance
    new = json.loads((out / f"{MODEL_ID}.json").read_text())["holdout_metrics"]["ml"]
    old = json.loads((ROOT / "models" / f"{MODEL_ID}.json").read_text())["holdout_metrics"]["ml"]
    for name, tol in CONFIG["reproduce_tolerance"].items():
        assert abs(new[name] - old[name]) <= tol, name


def test_retrained_model_loads_with_verified_checksum(retrained):
    _, out = retrained
    model = modelio.load_model(out, MODEL_ID)
    assert model["card"]["data"]["train_period"] == ["2011-04-01", "2013-01-01"]


def test_evaluate_prints_table_and_writes_plots(tmp_path):
    proc = subprocess.run([str(Path(sys.executable).parent / "pvcast"), "evaluate", "--img-dir", str(tmp_path)],
                          cwd=ROOT, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "coverage_p10_p90_day" in proc.stdout and "persistence" in proc.stdout
    for name in ("fan_chart.png", "reliability.png"):
        png = tmp_path / name
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert png.stat().st_size > 10_000


def test_unknown_subcommand_is_an_error():
    with pytest.raises(SystemExit):
        cli.main(["forecast-everything"])
