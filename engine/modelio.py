"""Model files and model cards in ``models/``.

A model ``<model_id>`` is two files: ``<model_id>.cbm`` (CatBoost binary) and
``<model_id>.json`` (the model card: training data source and period, features
in order, library versions, hold-out metrics, sha256 of the .cbm file,
calibration offsets, physics residual quantiles, capacity derivation).
Loading verifies the checksum and the feature list; an unknown id is a
``LookupError`` and never falls back to another model.
"""

import hashlib
import json
import re
from pathlib import Path

import catboost

MODEL_ID_PATTERN = re.compile(r"^[A-Za-z0-9_\-]{1,64}$")


def sha256_file(path):
    """Hex sha256 of a file's bytes."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def model_paths(models_dir, model_id):
    """Paths ``(<model_id>.cbm, <model_id>.json)``; ``ValueError`` on an unsafe id."""
    if not isinstance(model_id, str) or not MODEL_ID_PATTERN.match(model_id):
        raise ValueError(f"model_id {model_id!r} must match {MODEL_ID_PATTERN.pattern}")
    base = Path(models_dir)
    return base / f"{model_id}.cbm", base / f"{model_id}.json"


RUN_METADATA = ("model_guid", "train_finish_time")
"""CatBoost model metadata that differs on every fit (a random GUID, the wall-clock end time)."""


def reproducible_copy(model):
    """A copy of a fitted model without the metadata that changes on every run.

    CatBoost stores a random ``model_guid`` and the ``train_finish_time`` in
    the model file, so two fits with identical trees give files with
    different bytes. Without them, the file is a function of the trees,
    the training parameters and the CatBoost version only (checked: two fits
    in the same environment give the same sha256; ``tests/engine/test_cli.py``).

    Parameters
    ----------
    model : catboost.CatBoost

    Returns
    -------
    catboost.CatBoost
        A copy; ``model`` is left unchanged.
    """
    out = model.copy()
    meta = out.get_metadata()
    for key in RUN_METADATA:
        if key in meta:
            del meta[key]
    return out


def save_model(models_dir, model_id, model, card):
    """Write the model file (reproducible bytes) and its card (with the file's sha256).

    Parameters
    ----------
    models_dir : str or Path
    model_id : str
    model : catboost.CatBoost
        Freshly fitted; saved through :func:`reproducible_copy`.
    card : dict
        JSON-serialisable card; ``model_id`` and ``sha256`` are set here.

    Returns
    -------
    dict
        The card as written.
    """
    cbm, card_path = model_paths(models_dir, model_id)
    cbm.parent.mkdir(parents=True, exist_ok=True)
    reproducible_copy(model).save_model(str(cbm), format="cbm")
    card = dict(card, model_id=model_id, model_file=cbm.name, sha256=sha256_file(cbm))
    card_path.write_text(json.dumps(card, indent=2, sort_keys=False) + "\n")
    return card


def load_model(models_dir, model_id, expected_features=None):
    """Load and verify a model.

    Parameters
    ----------
    models_dir : str or Path
    model_id : str
    expected_features : sequence of str, optional
        Feature names the serving code will pass, in order; default
        ``engine.features.MODEL_FEATURES``.

    Returns
    -------
    dict
        ``model`` (catboost.CatBoost), ``card`` (dict), ``physics`` (dict of
        residual quantiles), ``calibration`` (dict of conformal offsets),
        ``within_period`` (the card's within-period deviations of instants
        from period means, ``engine.training.within_period_table``; None in a
        card without them).

    Raises
    ------
    LookupError
        Unknown model id (no card / model file).
    ValueError
        Checksum mismatch (corrupted or replaced file) or feature list differs.
    """
    cbm, card_path = model_paths(models_dir, model_id)
    if not card_path.is_file() or not cbm.is_file():
        raise LookupError(f"model_id {model_id!r}: no model in {models_dir} "
                          f"(need {cbm.name} and {card_path.name})")
    card = json.loads(card_path.read_text())
    actual = sha256_file(cbm)
    if actual != card.get("sha256"):
        raise ValueError(f"model_id {model_id!r}: {cbm.name} sha256 {actual} does not match "
                         f"model card sha256 {card.get('sha256')} (corrupted or replaced file)")
    if expected_features is None:
        from engine.features import MODEL_FEATURES
        expected_features = MODEL_FEATURES
    if list(card["features"]) != list(expected_features):
        raise ValueError(f"model_id {model_id!r}: card features {card['features']} differ from "
                         f"expected features {list(expected_features)}")
    model = catboost.CatBoost()
    model.load_model(str(cbm), format="cbm")
    if list(model.feature_names_) != list(card["features"]):
        raise ValueError(f"model_id {model_id!r}: model file features {model.feature_names_} differ "
                         f"from card features {card['features']}")
    return {"model": model, "card": card, "physics": card["physics"], "calibration": card["calibration"],
            "within_period": card.get("within_period")}
