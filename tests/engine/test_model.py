"""The committed model: files verified on load, its card describes it, it beats the references.

The hold-out behaviour is recomputed from the committed model file and the real data (as
``pvcast evaluate`` does, ~15 s), never read from the card.
"""

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cards import assert_same_table
from engine import data, features, forecast, metrics, modelio, quantiles, training

ROOT = Path(__file__).parents[2]
CONFIG = training.load_config()
MODEL_ID = CONFIG["model_id"]


@pytest.fixture()
def model_copy(tmp_path):
    for suffix in (".cbm", ".json"):
        shutil.copy(ROOT / "models" / f"{MODEL_ID}{suffix}", tmp_path / f"{MODEL_ID}{suffix}")
    return tmp_path


@pytest.fixture(scope="module")
def committed():
    return modelio.load_model(ROOT / "models", MODEL_ID)


@pytest.fixture(scope="module")
def dataset():
    """The training and hold-out rows of the real data (``training.build_dataset``)."""
    return training.build_dataset(CONFIG, features.feature_frame)


@pytest.fixture(scope="module")
def holdout(committed, dataset):
    """Hold-out forecasts of every method and their table, from the committed model file."""
    fx = training.holdout_forecasts(committed, dataset, CONFIG)
    return fx, training.holdout_table(fx)


def test_card_within_period_deviations_are_those_of_the_training_samples(committed, dataset):
    """The card's within-period table is what ``pvcast train`` computes from the training period (to the last bits of a float)."""
    assert_same_table(json.loads(json.dumps(training.within_period_table(dataset, CONFIG))), committed["within_period"])
    assert [e["period_minutes"] for e in committed["within_period"]["periods"]] == [30, 60]


def test_within_period_deviations_never_read_the_holdout(committed, dataset):
    """Scrambling every hold-out measurement (2013) leaves the table as it is."""
    holdout = training.period_mask(dataset["times"], CONFIG["periods"]["holdout_start"],
                                   CONFIG["periods"]["holdout_end"])
    assert holdout.sum() > 10000
    y = dataset["y_kw"].copy()
    y[holdout] = np.random.default_rng(0).uniform(0.0, 3.0, holdout.sum())
    scrambled = training.within_period_table({**dataset, "y_kw": y}, CONFIG)
    assert_same_table(json.loads(json.dumps(scrambled)), committed["within_period"])


def test_committed_model_loads_and_is_verified(committed):
    assert committed["card"]["features"] == list(features.MODEL_FEATURES)
    assert list(committed["model"].feature_names_) == list(features.MODEL_FEATURES)
    assert committed["card"]["sha256"] == modelio.sha256_file(ROOT / "models" / f"{MODEL_ID}.cbm")
    assert (ROOT / "models" / f"{MODEL_ID}.cbm").stat().st_size < 10 * 2**20


def test_card_documents_the_training_it_came_from(committed):
    card = committed["card"]
    periods = CONFIG["periods"]
    assert card["data"]["train_period"] == [periods["train_start"], periods["train_end"]]
    assert card["data"]["holdout_period"] == [periods["holdout_start"], periods["holdout_end"]]
    assert card["data"]["train_period"][1] <= card["data"]["holdout_period"][0]  # nothing fitted on the hold-out
    assert card["alphas"] == list(quantiles.ALPHAS)
    assert card["catboost_params"] == CONFIG["catboost"]
    assert set(training.library_versions()) <= set(card["versions"])


def test_card_metrics_are_those_of_the_committed_model_file(committed, holdout):
    """Every hold-out figure of the card (README, docs/model.md) is reproduced from the model file.

    Same file, same data: the figures agree to 1e-9 of capacity, far inside the re-training
    tolerance of configs/training.yaml.
    """
    _, table = holdout
    card = committed["card"]["holdout_metrics"]
    assert table["rows"] == card["rows"]
    for method in training.METHODS:
        for name, value in table[method].items():
            assert value == pytest.approx(card[method][name], abs=1e-9), (method, name)
    for name, value in table["skill"].items():
        assert value == pytest.approx(card["skill"][name], abs=1e-9), name


def test_ml_beats_physics_baseline_and_persistence_on_holdout(holdout):
    _, table = holdout
    for ref in ("baseline", "persistence", "physics"):
        assert table["ml"]["mae_day"] < table[ref]["mae_day"], ref
        assert table["ml"]["crps_day"] < table[ref]["crps_day"], ref


def test_calibration_brings_holdout_coverage_to_nominal(holdout):
    """Conformal offsets fitted on the training period give nominal coverage on 2013 (+-2 points)."""
    _, table = holdout
    assert table["ml"]["coverage_p10_p90_day"] == pytest.approx(0.8, abs=0.02)
    assert table["ml"]["coverage_p25_p75_day"] == pytest.approx(0.5, abs=0.02)
    # plain GBDT quantiles are too narrow; calibration is what brings them to target
    assert table["ml_uncalibrated"]["coverage_p10_p90_day"] < 0.78


def test_holdout_reliability_points_agree_with_coverage(holdout):
    """Daylight hold-out rows where measured power is exactly 0 and P10 is clipped to 0 exist;
    the reliability plot's P90 - P10 frequencies still equal the coverage of the table."""
    fx, table = holdout
    day = fx["daylight"]
    obs = fx["obs_kw"][day]
    for method in ("ml", "ml_uncalibrated", "physics"):
        q = fx[method][day]
        assert ((obs == 0) & (q[:, 0] == 0)).sum() > 100, method
        freq = metrics.observed_frequencies(obs, q)
        assert freq[4] - freq[0] == pytest.approx(table[method]["coverage_p10_p90_day"], abs=1e-12)
        assert freq[3] - freq[1] == pytest.approx(table[method]["coverage_p25_p75_day"], abs=1e-12)


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
