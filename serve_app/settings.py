"""Service settings from ``configs/service.yaml`` (paths resolved from the repository root)."""

import os
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def load_settings(path="configs/service.yaml"):
    """Settings dict; ``models_dir`` made absolute (env ``PVCAST_MODELS_DIR`` wins)."""
    path = Path(path)
    settings = yaml.safe_load((path if path.is_absolute() else ROOT / path).read_text())
    models_dir = Path(os.environ.get("PVCAST_MODELS_DIR") or settings["models_dir"])
    settings["models_dir"] = str(models_dir if models_dir.is_absolute() else ROOT / models_dir)
    return settings
