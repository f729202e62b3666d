"""Service settings from ``configs/service.yaml`` (shipped paths resolved by ``engine.resources``)."""

import os
from pathlib import Path

import yaml

from engine import resources, store

ROOT = Path(__file__).resolve().parent.parent  # the source checkout (scripts/demo_data.py)


def load_settings(path="configs/service.yaml"):
    """Settings dict; ``models_dir`` made absolute (env ``PVCAST_MODELS_DIR`` wins).

    ``configs/...`` and ``models`` mean the shipped folders (repository or installed wheel);
    other relative paths are relative to the current directory.
    """
    settings = yaml.safe_load(resources.path(path).read_text())
    models_dir = resources.path(os.environ.get("PVCAST_MODELS_DIR") or settings["models_dir"])
    settings["models_dir"] = str(models_dir.resolve())
    return settings


def pool_options(settings, command_timeout=None):
    """Keyword arguments of ``asyncpg.create_pool`` bounding the wait for the database (``database`` settings).

    ``timeout``: seconds to open a connection; ``command_timeout``: seconds a
    statement may take (then ``TimeoutError``, answered 503; the argument, when
    given, replaces ``database.command_timeout_seconds``: the Writer's COPYs
    have their own, ``writer.command_timeout_seconds``). Without them a
    database host that stops answering (a partition, a hung server) held every
    request that had a connection for ever (docs/ARCHITECTURE.md "Probes").
    A released connection goes back as it is (``reset``: ``engine.store.release_as_is``, which says why that is
    safe): no reset query per release. ``jit`` false: the sessions run without PostgreSQL's JIT
    (``server_settings``; configs/service.yaml says why).
    """
    conf = settings["database"]
    command_timeout = conf["command_timeout_seconds"] if command_timeout is None else command_timeout
    return {"timeout": float(conf["connect_timeout_seconds"]), "command_timeout": float(command_timeout),
            "reset": store.release_as_is, **({} if conf["jit"] else {"server_settings": {"jit": "off"}})}
