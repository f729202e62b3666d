"""Model files: checksum, feature list, unknown ids, model id per location."""

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from engine import data, features, forecast, modelio

ROOT = Path(__file__).parents[2]
CONFIG = yaml.safe_load((ROOT / "configs" / "training.yaml").read_text())
MODEL_ID = CONFIG["model_id"]


@pytest.fixture()
def model_copy(tmp_path):
    for suffix in (".cbm", ".json"):
        shutil.copy(ROOT / "models" / f"{MODEL_ID}{suffix}", tmp_path / f"{MODEL_ID}{suffix}")
    return tmp_path


def test_committed_model_loads_and_is_verified():
    model = modelio.load_model(ROOT / "models", MODEL_ID)
    assert model["card"]["features"] == list(features.MODEL_FEATURES)
    assert list(model["model"].feature_names_) == list(features.MODEL_FEATURES)
    assert model["card"]["sha256"] == modelio.sha256_file(ROOT / "models" / f"{MODEL_ID}.cbm")
    assert (ROOT / "models" / f"{MODEL_ID}.cbm").stat().st_size < 10 * 2**20


def test_card_documents_data_period_versions_and_metrics():
    card = modelio.load_model(ROOT / "models", MODEL_ID)["card"]
    assert card["data"]["train_period"] == ["2011-04-01", "2013-01-01"]
    assert card["data"]["holdout_period"] == ["2013-01-01", "2014-01-01"]
    assert {"catboost", "pvlib", "pandas", "numpy"} <= set(card["versions"])
    assert "derivation" in card["capacity"]
    assert card["holdout_metrics"]["ml"]["mae_day"] > 0


def test_holdout_calibration_meets_coverage_target():
    metrics = modelio.load_model(ROOT / "models", MODEL_ID)["card"]["holdout_metrics"]
    assert 0.78 <= metrics["ml"]["coverage_p10_p90_day"] <= 0.82
    # plain GBDT quantiles are too narrow; calibration is what brings them to target
    assert metrics["ml_uncalibrated"]["coverage_p10_p90_day"] < 0.78


def test_ml_beats_physics_baseline_and_persistence_on_holdout():
    skill = modelio.load_model(ROOT / "models", MODEL_ID)["card"]["holdout_metrics"]["skill"]
    assert skill["mae_day_vs_baseline"] > 0
    assert skill["mae_day_vs_persistence"] > 0
    assert skill["crps_day_vs_physics"] > 0


def test_corrupted_model_file_is_refused(model_copy):
    path = model_copy / f"{MODEL_ID}.cbm"
    blob = bytearray(path.read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    path.write_bytes(bytes(blob))
    with pytest.raises(ValueError, match="sha256"):
        modelio.load_model(model_copy, MODEL_ID)


def test_wrong_feature_list_is_refused(model_copy):
    wrong = list(features.MODEL_FEATURES)[::-1]
    with pytest.raises(ValueError, match="features"):
        modelio.load_model(model_copy, MODEL_ID, expected_features=wrong)
    with pytest.raises(ValueError, match="features"):
        modelio.load_model(model_copy, MODEL_ID, expected_features=list(features.MODEL_FEATURES)[:-1])


def test_tampered_card_feature_list_is_refused(model_copy):
    import json
    card_path = model_copy / f"{MODEL_ID}.json"
    card = json.loads(card_path.read_text())
    card["features"] = card["features"][1:] + card["features"][:1]
    card_path.write_text(json.dumps(card))
    with pytest.raises(ValueError, match="features"):
        modelio.load_model(model_copy, MODEL_ID, expected_features=card["features"])


def test_unknown_model_id_is_a_lookup_error():
    with pytest.raises(LookupError, match="no-such-plant"):
        modelio.load_model(ROOT / "models", "no-such-plant")


def test_unsafe_model_id_is_refused():
    with pytest.raises(ValueError, match="model_id"):
        modelio.load_model(ROOT / "models", "../models/global")


def test_location_asking_for_another_model_is_refused():
    model = modelio.load_model(ROOT / "models", MODEL_ID)
    loc = pd.DataFrame([model["card"]["location"]]).assign(location_id=7, model_id="plant-7")
    w = data.load_weather(CONFIG, 7).drop(columns=["ghi_clear"])
    issue = pd.Timestamp("2013-06-01 06:00", tz="UTC")
    feats = features.feature_frame(loc, w, forecast.forecast_times(issue, 6, 15))
    with pytest.raises(ValueError, match="model_id"):
        forecast.forecast_quantiles(feats, loc, model, "ml", issue)
    with pytest.raises(ValueError, match="forecast_type"):
        forecast.forecast_quantiles(feats, loc.assign(model_id=MODEL_ID), model, "hybrid", issue)
