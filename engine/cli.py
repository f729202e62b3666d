"""``pvcast`` command line: train, evaluate, db, keys, weather.

``pvcast train``     re-trains the global model from the real data, prints the
                     2013 hold-out table, compares it with the committed model
                     card (tolerances in configs/training.yaml; the exit code
                     is 1 when a metric is out of tolerance), says whether the
                     model file is byte-identical to the committed one, and
                     writes the model + card to ``out/models``;
                     ``--update-committed`` writes over the committed files.
``pvcast evaluate``  loads the committed model (checksum and features verified),
                     prints the hold-out table (ml vs physics vs baseline vs
                     clear-sky persistence) and writes the fan chart and
                     reliability PNGs to ``out/img`` (``--img-dir docs/img``:
                     the README's images).
``pvcast db migrate|status``  applies migrations (as the owner role) / prints database capabilities.
``pvcast keys create|list|revoke``  API keys of tenants (stored hashed; a new key is
                     printed once, or written to a mode-600 ``--key-file``).
``pvcast weather import FILE...``  NWP files (GRIB2/netCDF) -> weather of the plants
                     (engine.weatherimport; all files or nothing; prints a JSON summary).

Configs and models default to the shipped ones (:mod:`engine.resources`), so
the command works from any directory and from an installed wheel; outputs go
below the current directory. ``--help`` of each command shows every default.
A subcommand is one ``add_<name>(subparsers)`` function listed in
:data:`SUBCOMMANDS`.
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from tqdm import tqdm

from engine import modelio, plots, resources, training

HELP = argparse.ArgumentDefaultsHelpFormatter
OUT = Path("out")


def progress_callback(bar):
    """A ``step(msg)`` callback advancing a tqdm bar."""
    def step(msg):
        bar.set_description(msg)
        bar.update(1)
    return step


def train_steps(config):
    """Number of progress steps of a training run."""
    return 4 + config["periods"]["calibration_folds"] + 1 + 1


def compare_metrics(new, old, tolerance):
    """Differences of hold-out ml metrics against a committed card.

    Returns
    -------
    list of (name, new, old, ok)
    """
    return [(k, new["ml"][k], old["ml"][k], abs(new["ml"][k] - old["ml"][k]) <= tol)
            for k, tol in tolerance.items()]


def model_file_comparison(written, previous, versions):
    """One line saying whether a new model file is byte-identical to the committed one.

    Parameters
    ----------
    written, previous : dict
        The new card and the committed card (``sha256``, ``versions``).
    versions : dict
        Library versions of this run.
    """
    if written["sha256"] == previous.get("sha256"):
        return f"model file identical to the committed one (sha256 {written['sha256'][:16]}...)"
    same = previous.get("versions") == versions
    return (f"model file differs from the committed one (sha256 {written['sha256'][:16]}... vs "
            f"{str(previous.get('sha256'))[:16]}...); " +
            ("same library versions as the committed card: the code, the data or the CPU differ; "
             "the metrics above decide" if same else
             f"library versions differ (committed {previous.get('versions')}, this run {versions}): "
             "only the metrics are compared"))


def cmd_train(args):
    from engine import features
    config = training.load_config(args.config)
    models_dir = Path(args.models_dir)
    out_dir = models_dir if args.update_committed else Path(args.output_dir)
    previous = None
    card_path = models_dir / f"{config['model_id']}.json"
    if card_path.is_file():
        previous = json.loads(card_path.read_text())
    with tqdm(total=train_steps(config), unit="step") as bar:
        step = progress_callback(bar)
        bundle, ds = training.train(config, features.feature_frame, features.MODEL_FEATURES, step)
        step("hold-out evaluation (2013)")
        table = training.holdout_table(training.holdout_forecasts(bundle, ds, config))
    print(training.format_table(table))
    card = dict(bundle["card"], physics=bundle["physics"], calibration=bundle["calibration"],
                holdout_metrics=table, reproduce_tolerance=config["reproduce_tolerance"])
    ok = True
    if previous is not None:
        print(f"\ncomparison with {card_path} (tolerance from {args.config}):")
        for name, new, old, within in compare_metrics(table, previous["holdout_metrics"],
                                                      config["reproduce_tolerance"]):
            print(f"  {name:24s} new {100 * new:7.3f} %  committed {100 * old:7.3f} %  "
                  f"{'ok' if within else 'OUT OF TOLERANCE'}")
            ok &= within
    written = modelio.save_model(out_dir, config["model_id"], bundle["model"], card)
    print(f"\nwrote {out_dir / written['model_file']} (sha256 {written['sha256'][:16]}...) and card")
    if previous is not None:
        print(model_file_comparison(written, previous, card["versions"]))
    return 0 if ok else 1


def cmd_evaluate(args):
    from engine import features
    config = training.load_config(args.config)
    bundle = modelio.load_model(args.models_dir, config["model_id"])
    with tqdm(total=4, unit="step") as bar:
        ds = training.build_dataset(config, features.feature_frame, progress_callback(bar))
    fx = training.holdout_forecasts(bundle, ds, config)
    table = training.holdout_table(fx)
    print(training.format_table(table))
    img = Path(args.img_dir)
    img.mkdir(parents=True, exist_ok=True)
    ev = config["evaluate"]
    local = fx["times"].tz_convert(config["site"]["timezone"]).tz_localize(None)
    sel = np.asarray((local >= ev["fan_chart_start"]) & (local < ev["fan_chart_end"]))
    plots.fan_chart(fx["times"][sel], fx["obs_kw"][sel], fx["ml"][sel], img / "fan_chart.png",
                    f"pvcast ml P10-P90 vs measured, SERF East, {ev['fan_chart_start']} .. {ev['fan_chart_end']}"
                    " (hold-out)")
    day = fx["daylight"]
    plots.reliability(fx["obs_kw"][day], {m: fx[m][day] for m in ("ml", "ml_uncalibrated", "physics")},
                      img / "reliability.png", "Reliability, 2013 hold-out, daylight")
    print(f"\nwrote {img / 'fan_chart.png'} and {img / 'reliability.png'}")
    return 0


def cmd_db(args):
    import asyncio

    import asyncpg

    from engine import schema, store

    async def run():
        # migrations as the tables' owner, granting the service role (the user of the service's URL)
        url = store.owner_database_url() if args.action == "migrate" else store.database_url()
        if args.action == "migrate":
            await store.ensure_database(url)
        conn = await asyncpg.connect(url)
        try:
            if args.action == "migrate":
                applied = await schema.apply_migrations(conn, service_role=store.url_role(store.database_url()))
                print("applied:", ", ".join(applied) if applied else "nothing (up to date)")
            print(json.dumps(await schema.capabilities(conn), indent=2, default=str))
        finally:
            await conn.close()

    asyncio.run(run())
    return 0


def cmd_weather_import(args):
    """``pvcast weather import FILE...``: NWP files -> weather rows of the plants (one transaction)."""
    import asyncio

    import asyncpg

    from engine import store, weatherimport

    ids = None if args.location_ids is None else [int(i) for i in args.location_ids.split(",") if i.strip()]

    async def run():
        conn = await asyncpg.connect(store.database_url())
        try:
            with tqdm(total=len(args.files), unit="file", desc="reading") as bar:
                return await weatherimport.import_files(conn, args.files, ids, args.source,
                                                        progress=lambda path: bar.update(1))
        finally:
            await conn.close()

    try:
        summary = asyncio.run(run())
    except (ValueError, LookupError, OSError) as exc:
        print(f"pvcast weather import: refused, nothing stored: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(summary, indent=2))
    return 0


def cmd_keys(args):
    import asyncio
    import os

    import asyncpg

    from engine import store

    async def run():
        conn = await asyncpg.connect(store.database_url())
        try:
            if args.action == "create":
                return await store.create_key(conn, args.tenant, args.scopes, args.description)
            if args.action == "revoke":
                return await store.revoke_key(conn, args.key_id)
            return await store.list_keys(conn, args.tenant)
        finally:
            await conn.close()

    try:
        result = asyncio.run(run())
    except (LookupError, ValueError) as exc:  # unknown key_id, bad tenant or scopes
        print(f"pvcast keys {args.action}: {exc}", file=sys.stderr)
        return 2
    if args.action == "create" and args.key_file:
        key = result.pop("key")
        fd = os.open(args.key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(key)
        os.chmod(args.key_file, 0o600)
        result["key_file"] = args.key_file
    for row in result if isinstance(result, list) else [result]:
        print(json.dumps(row, default=str))
    return 0


def add_train(sub):
    """``pvcast train``."""
    t = sub.add_parser("train", formatter_class=HELP,
                       help="train the global model from the real data and print hold-out metrics",
                       description="Re-train the global model, compare its hold-out metrics with the committed "
                                   "card and write the model + card (never over the committed files unless "
                                   "--update-committed).")
    t.add_argument("--config", default=str(resources.config_path("training.yaml")),
                   help="training configuration (YAML)")
    t.add_argument("--models-dir", default=str(resources.folder("models")),
                   help="folder of the committed model + card to compare with")
    t.add_argument("--output-dir", default=str(OUT / "models"),
                   help="folder the new model + card are written to")
    t.add_argument("--update-committed", action="store_true",
                   help="write the new model + card over the committed ones in --models-dir "
                        "instead of --output-dir")
    t.set_defaults(func=cmd_train)


def add_evaluate(sub):
    """``pvcast evaluate``."""
    e = sub.add_parser("evaluate", formatter_class=HELP, help="hold-out table + fan chart and reliability PNGs",
                       description="Evaluate a model on the 2013 hold-out: print the table, write the plots.")
    e.add_argument("--config", default=str(resources.config_path("training.yaml")),
                   help="training configuration (YAML): data, hold-out period, fan chart dates")
    e.add_argument("--models-dir", default=str(resources.folder("models")),
                   help="folder of the model + card to evaluate")
    e.add_argument("--img-dir", default=str(OUT / "img"),
                   help="folder the fan chart and reliability PNGs are written to "
                        "(--img-dir docs/img from the repository root regenerates the README's images)")
    e.set_defaults(func=cmd_evaluate)


def add_db(sub):
    """``pvcast db migrate|status``."""
    d = sub.add_parser("db", formatter_class=HELP, help="database migrations / status",
                       description="migrate connects as env PVCAST_OWNER_DATABASE_URL (default "
                                   "engine.store.OWNER_URL), status as env PVCAST_DATABASE_URL (default "
                                   "engine.store.DEFAULT_URL).")
    d.add_argument("action", choices=["migrate", "status"],
                   help="migrate: create the database if missing and apply migrations as the owner role, then "
                        "print its capabilities; status: print its capabilities")
    d.set_defaults(func=cmd_db)


def add_weather(sub):
    """``pvcast weather import FILE...``."""
    w = sub.add_parser("weather", formatter_class=HELP, help="weather data")
    wsub = w.add_subparsers(dest="weather_command", required=True, help="weather action")
    wi = wsub.add_parser("import", formatter_class=HELP,
                         help="import NWP files (GRIB2/netCDF: GFS, GEFS, HRRR, NAM, RAP, ECMWF IFS) "
                              "into the weather of the plants; all files or nothing (docs/weather.md)")
    wi.add_argument("files", nargs="+", metavar="FILE", help="NWP files")
    wi.add_argument("--source", default=None, help="force the source of every file (None: detected per file)")
    wi.add_argument("--location-ids", default=None, help="comma-separated plant ids (None: all plants)")
    wi.set_defaults(func=cmd_weather_import)


def add_keys(sub):
    """``pvcast keys create|list|revoke``."""
    k = sub.add_parser("keys", formatter_class=HELP, help="API keys: create (printed once), list, revoke")
    ksub = k.add_subparsers(dest="action", required=True, help="key action")
    kc = ksub.add_parser("create", formatter_class=HELP, help="a new key of a tenant (the tenant is created if new)")
    kc.add_argument("--tenant", required=True, default=argparse.SUPPRESS,
                    help="tenant id, e.g. acme (lower-case letters, digits, _ -)")
    kc.add_argument("--scopes", required=True, default=argparse.SUPPRESS, help="comma-separated: read, write, admin")
    kc.add_argument("--description", default="", help="free text stored with the key")
    kc.add_argument("--key-file", default=None, help="write the key to this file (mode 600) instead of stdout")
    kl = ksub.add_parser("list", formatter_class=HELP, help="keys (never the keys themselves), of one tenant or all")
    kl.add_argument("--tenant", default=None, help="tenant id (None: all tenants)")
    kr = ksub.add_parser("revoke", formatter_class=HELP, help="revoke a key by its key_id")
    kr.add_argument("key_id", help="the key_id shown by create and list")
    k.set_defaults(func=cmd_keys)


SUBCOMMANDS = (add_train, add_evaluate, add_db, add_weather, add_keys)
"""Each adds one subcommand to the ``pvcast`` parser."""


def parser():
    """The argparse parser of ``pvcast``."""
    p = argparse.ArgumentParser(prog="pvcast", description="probabilistic PV power forecasts", formatter_class=HELP)
    sub = p.add_subparsers(dest="command", required=True, help="command")
    for add in SUBCOMMANDS:
        add(sub)
    return p


def main(argv=None):
    """Entry point of the ``pvcast`` script."""
    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except (OSError, LookupError) as exc:  # a file, model or server that is not there: a message, no traceback
        print(f"pvcast {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
