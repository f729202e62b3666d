"""Files that ship with pvcast: ``configs/*.yaml`` and the committed ``models/``.

In the repository they are the top-level folders ``configs/`` and ``models/``;
``pyproject.toml`` maps them into the package as ``engine.configs`` and
``engine.models`` (setuptools ``package-dir``), so a wheel carries them and an
editable install points at the repository folders. They are found through the
import system (the package's folder), never relative to the current directory, so the
``pvcast`` command and the service work from any directory and from an
installed wheel.
"""

import importlib.util
from pathlib import Path

SHIPPED = {"configs": "engine.configs", "models": "engine.models"}
"""Top-level folder of the repository -> the package it is installed as."""


def folder(name):
    """The installed location of a shipped folder, ``'configs'`` or ``'models'``.

    Returns
    -------
    pathlib.Path
        A folder on disk (pvcast is installed unzipped: wheel or editable).
    """
    if name not in SHIPPED:
        raise ValueError(f"shipped folder {name!r} must be one of {sorted(SHIPPED)}")
    spec = importlib.util.find_spec(SHIPPED[name])
    if spec is None or not spec.submodule_search_locations:
        raise LookupError(f"pvcast is installed without its {name}/ folder (package {SHIPPED[name]})")
    return Path(list(spec.submodule_search_locations)[0])


def path(relative):
    """Resolve ``configs/<file>`` or ``models/<file>`` to its installed file.

    Any other relative path, and any absolute path, is returned unchanged
    (relative to the current directory, as a user typed it).

    Parameters
    ----------
    relative : str or Path
        E.g. ``'configs/service.yaml'``.

    Returns
    -------
    pathlib.Path
    """
    p = Path(relative)
    if p.is_absolute() or not p.parts or p.parts[0] not in SHIPPED:
        return p
    return folder(p.parts[0]).joinpath(*p.parts[1:])


def config_path(name):
    """The shipped configuration file ``configs/<name>``."""
    return folder("configs") / name
