"""The ``pvcast`` command: run from any directory, outputs below ``./out``, committed files untouched.

`pvcast train` runs the full real training (2011-04..2012-12, 8 calibration folds): about 2 min
on 2 idle cores. Both commands run here as the installed console script from a scratch
directory, with every default.
"""

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest

from cards import assert_same_table
from engine import cli, modelio, training

ROOT = Path(__file__).parents[2]
CONFIG = training.load_config()
MODEL_ID = CONFIG["model_id"]
PVCAST = str(Path(sys.executable).parent / "pvcast")
COMMITTED = [ROOT / "models" / f"{MODEL_ID}.cbm", ROOT / "models" / f"{MODEL_ID}.json",
             ROOT / "docs" / "img" / "fan_chart.png", ROOT / "docs" / "img" / "reliability.png"]


def fingerprints(paths):
    return {p.name: (modelio.sha256_file(p), p.stat().st_mtime_ns) for p in paths}


@pytest.fixture(scope="module")
def retrained(tmp_path_factory):
    """``pvcast train`` with every default, from a scratch directory."""
    cwd = tmp_path_factory.mktemp("train")
    before = fingerprints(COMMITTED)
    proc = subprocess.run([PVCAST, "train"], cwd=cwd, capture_output=True, text=True, check=False)
    return proc, cwd / "out" / "models", before


def test_train_reproduces_committed_metrics_within_tolerance(retrained):
    proc, out, _ = retrained
    assert proc.returncode == 0, proc.stderr[-2000:]  # non-zero when a metric is outside reproduce_tolerance
    new = json.loads((out / f"{MODEL_ID}.json").read_text())["holdout_metrics"]["ml"]
    old = json.loads((ROOT / "models" / f"{MODEL_ID}.json").read_text())["holdout_metrics"]["ml"]
    for name, tol in CONFIG["reproduce_tolerance"].items():
        assert abs(new[name] - old[name]) <= tol, name


def test_train_writes_below_out_and_leaves_committed_files_alone(retrained):
    _, out, before = retrained
    assert (out / f"{MODEL_ID}.cbm").is_file() and (out / f"{MODEL_ID}.json").is_file()
    assert fingerprints(COMMITTED) == before


def test_retrained_model_file_is_byte_identical_to_committed(retrained):
    """The model file holds no run-dependent bytes (modelio.reproducible_copy): same code, data and
    library versions give the committed sha256. Other library versions may round differently;
    then only the metrics are compared (test above)."""
    proc, out, _ = retrained
    card = json.loads((ROOT / "models" / f"{MODEL_ID}.json").read_text())
    if training.library_versions() != card["versions"]:
        pytest.skip(f"library versions {training.library_versions()} differ from the committed card's "
                    f"{card['versions']}: byte identity is promised for the same versions only")
    assert modelio.sha256_file(out / f"{MODEL_ID}.cbm") == card["sha256"]
    assert "model file identical to the committed one" in proc.stdout


def test_retrained_model_loads_with_verified_checksum(retrained):
    _, out, _ = retrained
    model = modelio.load_model(out, MODEL_ID)
    assert model["card"]["data"]["train_period"] == [CONFIG["periods"]["train_start"], CONFIG["periods"]["train_end"]]


def test_retrained_card_carries_the_committed_within_period_deviations(retrained):
    """``pvcast train`` writes the within-period table the committed card carries (a function of the training data)."""
    _, out, _ = retrained
    assert_same_table(modelio.load_model(out, MODEL_ID)["within_period"],
                      modelio.load_model(ROOT / "models", MODEL_ID)["within_period"])


def test_evaluate_prints_table_and_writes_plots_below_out(tmp_path):
    before = fingerprints(COMMITTED)
    proc = subprocess.run([PVCAST, "evaluate"], cwd=tmp_path, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "coverage_p10_p90_day" in proc.stdout and "persistence" in proc.stdout
    coverage_row = next(line for line in proc.stdout.splitlines() if line.startswith("coverage_p10_p90_day"))
    assert coverage_row.split()[-2:] == ["-", "-"]  # baseline and persistence are point forecasts
    for name in ("fan_chart.png", "reliability.png"):
        png = tmp_path / "out" / "img" / name
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert png.stat().st_size > 10_000
    assert fingerprints(COMMITTED) == before


def commands(parser, name="pvcast"):
    """Every (name, parser) of the command tree, subcommands of subcommands included."""
    yield name, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub_name, sub in action.choices.items():
                yield from commands(sub, f"{name} {sub_name}")


def test_every_option_has_help_with_its_default():
    tree = dict(commands(cli.parser()))
    assert {"pvcast train", "pvcast evaluate", "pvcast db"} <= set(tree)
    for name, sub in tree.items():
        assert sub.formatter_class is argparse.ArgumentDefaultsHelpFormatter, name
        for action in sub._actions:
            assert action.help, (name, action.dest)
    text = " ".join(tree["pvcast train"].format_help().split())
    assert "(default: out/models)" in text and "(default: False)" in text


def test_missing_config_is_a_message_not_a_traceback(tmp_path, capsys):
    assert cli.main(["evaluate", "--config", str(tmp_path / "missing.yaml")]) == 2
    err = capsys.readouterr().err
    assert "missing.yaml" in err and "Traceback" not in err


def test_unknown_subcommand_is_an_error():
    with pytest.raises(SystemExit):
        cli.main(["forecast-everything"])
