"""Forecaster deployment: holds the verified CatBoost models, forecasts batches of plants."""

import asyncio
import functools
import pickle
import time

import asyncpg
import numpy as np
import pandas as pd
import yaml
from ray import serve

from engine import adaptation, forecast, modelio, quantiles, resample, resources, shading, store, tuning
from engine import validation
from engine.features import WEATHER_COLUMNS
from serve_app.featuretask import feature_task, remote_feature_task
from serve_app.observability import CLIPPED, event
from serve_app.settings import pool_options
from serve_app.writer import Writer


def model_version(card):
    """``<model_id>@<first 12 hex of the model file sha256>`` (the card's identity of the file)."""
    return f"{card['model_id']}@{card['sha256'][:12]}"


def served_geometry(locations, planes, horizon, calibrations):
    """The calibrated plants as forecast: tuned description (``engine.tuning.tuned_locations``) and the entered
    horizon raised to each calibration's fitted skyline (``engine.shading.served_horizon``)."""
    locations, planes = tuning.tuned_locations(locations, planes, adaptation.tuning_table(calibrations))
    return locations, planes, shading.served_horizon(horizon, {i: c.get("shading") for i, c in calibrations.items()})


@serve.deployment
class Forecaster:
    """Loads every configured model once (checked against its card) and keeps it."""

    def __init__(self, settings, writer):
        self.settings = settings
        self.writer = writer
        # the same writer in this replica, its own pool: small passes write without a hop (writes_here)
        self.local_writer = Writer.func_or_class(settings)
        self.models = {m: modelio.load_model(settings["models_dir"], m) for m in settings["model_ids"]}
        # a missing wind speed is the constant the model was trained with (one definition: training.yaml)
        self.wind_speed_ms = float(yaml.safe_load(resources.config_path("training.yaml").read_text())
                                   ["data"]["wind_speed_ms"])
        self.pool = None
        self.merge = settings["forecast"]["merge"]
        self.waiting = []  # (call, future) of small calls for the next pass (forecast.merge)
        self.passes = set()  # merged passes running
        self.refits = {}  # location_id -> background refit task (policy of configs/service.yaml adaptation)
        self.refit_refused = {}  # location_id -> (new daylight actuals, daylight days) when its refit was refused
        self.refit_pending, self.refit_check = {}, None  # location_id -> cutoff to check (None: arrival); the check
        self.refit_slot = asyncio.Semaphore(1)  # refits of a replica run one at a time (CPU: the replica's executor)

    async def ready(self):
        """Model ids and versions (called by the ingress' /readyz)."""
        return {m: model_version(model["card"]) for m, model in self.models.items()}

    async def forecast(self, locations, params, task_id, batches=1):
        """Forecast, store and summarise one batch of plants (the call of a task: serve_app/tasks.py).

        ``batches``: how many batches the task was split into (its batches'
        features are always Ray tasks: :meth:`features`).

        A call of at most ``forecast.merge.max_locations`` plants is merged
        (:meth:`start_passes`): it shares a pass with the compatible calls
        that arrived while the replica's previous passes ran
        (:func:`merge_groups`); a larger call runs alone. Either way the answer
        is this call's own.

        Returns
        -------
        dict
            ``run_ids`` {location_id: run_id}, ``errors`` {location_id: error}
            (``engine.validation.plant_error``: code and sentence),
            ``timings`` (s by stage, and ``merged_calls``: calls that shared the
            pass), ``clipped`` (count), ``forecast`` (frame or None).

        Raises
        ------
        Exception
            Whatever failed the pass whole (the writer gave up on the database):
            every call of the pass gets it.
        """
        if len(locations) <= self.merge["max_locations"]:
            answer = self.enqueue((locations, params, task_id, batches))
            self.start_passes()
            return await answer
        return (await self.forecast_pass([(locations, params, task_id, batches)]))[0]

    async def forecast_group(self, calls):
        """Small calls an Ingress sent together (serve_app/tasks.py ``forecast_call``), each answered as
        :meth:`forecast` answers it alone, in order; a call whose pass raised gets the exception as its result.

        The calls wait together, so they share passes with each other and with the calls already waiting.
        """
        answers = [self.enqueue(call) for call in calls]
        self.start_passes()
        return [portable(r) if isinstance(r, BaseException) else r
                for r in await asyncio.gather(*answers, return_exceptions=True)]

    def enqueue(self, call):
        """A future of ``call``'s answer; the call waits for the next merged pass (:meth:`start_passes`)."""
        answer = asyncio.get_running_loop().create_future()
        self.waiting.append((call, answer))
        return answer

    def start_passes(self):
        """Start merged passes of the waiting calls while fewer than ``forecast.merge.max_passes`` run.

        A call that finds a free pass runs at once (a lone client never
        waits); calls that arrive while every pass is busy wait and form the
        next one (at most ``max_calls`` calls each): the busier the replica,
        the more calls a pass serves. (Ray Serve's ``serve.batch`` closes a
        batch after its wait timeout and only then waits for a free
        concurrent slot: under load it queues many one-call batches.)
        """
        while self.waiting and len(self.passes) < self.merge["max_passes"]:
            taken, self.waiting = self.waiting[:self.merge["max_calls"]], self.waiting[self.merge["max_calls"]:]
            job = asyncio.get_running_loop().create_task(self.answer_calls(taken))
            self.passes.add(job)

            def ended(done):
                self.passes.discard(done)
                self.start_passes()
            job.add_done_callback(ended)

    async def answer_calls(self, taken):
        """Forecast (call, future) pairs in merged passes and give each future its call's result or error."""
        try:
            results = await self.forecast_calls([call for call, _ in taken])
        except BaseException as exc:  # a bug in the split itself: every call gets it, none hangs
            results = [exc] * len(taken)
        for (_, answer), result in zip(taken, results):
            if answer.done():  # the caller went away
                continue
            if isinstance(result, BaseException):
                answer.set_exception(result)
            else:
                answer.set_result(result)

    async def forecast_calls(self, calls):
        """Concurrent small forecast calls: one pass per group of :func:`merge_groups`, the groups concurrent.

        Returns one result per call, in order; a pass that raised gives its
        exception to its calls only (returned, re-raised by :meth:`forecast`).
        """
        groups = merge_groups([c[0]["location_id"].tolist() for c in calls], [pass_key(c[1]) for c in calls],
                              [c[2] for c in calls])
        passes = await asyncio.gather(*[self.forecast_pass([calls[i] for i in g]) for g in groups],
                                      return_exceptions=True)
        results = [None] * len(calls)
        for group, out in zip(groups, passes):
            for k, i in enumerate(group):
                results[i] = out if isinstance(out, BaseException) else out[k]
        return results

    async def forecast_pass(self, calls):
        """Forecast, store and summarise the plants of compatible calls in one pass; one result per call.

        ``calls``: (locations, params, task_id, batches) with the same :func:`pass_key`
        and no plant twice. Each plant's run carries its own call's task id.
        """
        t0 = time.perf_counter()
        params = calls[0][1]
        locations = pd.concat([c[0] for c in calls], ignore_index=True) if len(calls) > 1 else calls[0][0]
        task_of = dict(zip(locations["location_id"].tolist(),
                           np.repeat([c[2] for c in calls], [len(c[0]) for c in calls]).tolist()))
        issue = pd.Timestamp(params["issue_time"])
        times = forecast.forecast_times(issue, params["horizon_hours"], params["resolution_minutes"])
        margin = pd.Timedelta(minutes=self.settings["forecast"]["weather_margin_minutes"])
        ids = locations["location_id"].tolist()
        async with (await self.open_pool()).acquire() as conn:  # the pass's reads: one connection, one after another
            extras = await store.plant_extras(conn, ids)  # planes, horizons, calibrations: only of plants with some
            calibrations, actuals = await self.calibration_inputs(conn, extras["calibrations"], issue)
            # no plant with stored planes / a horizon: None (one plane each, a free horizon), no empty frame built
            planes = await store.fetch_planes(conn, extras["planes"]) if extras["planes"] else None
            horizon = await store.fetch_horizons(conn, extras["horizon"]) if extras["horizon"] else None
            start = min(times[0], actuals["time"].min() if actuals is not None and len(actuals) else times[0]) - margin
            weather = await store.read_weather(conn, ids, start, times[-1] + margin, issue, columns=WEATHER_COLUMNS)
        if calibrations:  # no calibration: the plants as stated; the tuned ones built off the event loop
            locations, planes, horizon = await asyncio.get_running_loop().run_in_executor(
                None, served_geometry, locations, planes, horizon, calibrations)
        geometry = {"planes": planes, "horizon": horizon}
        t_read = time.perf_counter()
        lookback_times = (pd.DatetimeIndex(actuals["time"].unique()).sort_values()
                          if actuals is not None and len(actuals) else None)
        local = self.features_here(len(locations), [c[3] for c in calls])
        feats, locs, errors, lookback, wind_defaulted = await self.features(
            local, locations, weather, times, **geometry, lookback_times=lookback_times,
            lookback_ids=list(calibrations), wind_speed_ms=self.wind_speed_ms)
        t_feat = time.perf_counter()
        frame, model_errors = await asyncio.get_running_loop().run_in_executor(
            None, self.predict, feats, locs, params, issue, (calibrations, actuals, lookback))
        errors.update(model_errors)
        t_pred = time.perf_counter()
        run_ids, here = {}, False
        if len(frame):
            written = locs if len(errors) == 0 else locs[locs["location_id"].isin(frame["location_id"].unique())]
            written_ids = written["location_id"].tolist()
            runs = self.runs_frame(written, params, issue, [task_of[i] for i in written_ids],
                                   calibration_version=[calibrations[i]["version"] if i in calibrations else None
                                                        for i in written_ids],
                                   input_flags=input_flags(written_ids, wind_defaulted, self.wind_speed_ms))
            here = self.writes_here(len(written), [c[3] for c in calls])
            run_ids = await (self.local_writer.write(runs, frame) if here else self.writer.write.remote(runs, frame))
        t_write = time.perf_counter()
        timings = {"read_weather_s": t_read - t0, "features_s": t_feat - t_read, "predict_s": t_pred - t_feat,
                   "write_s": t_write - t_pred, "merged_calls": len(calls), "local_feature_passes": int(local),
                   "local_writes": int(here)}
        self.check_refits(extras["actuals"], issue)  # a plant without actuals cannot be due (store.plant_extras)
        results = await asyncio.get_running_loop().run_in_executor(
            None, call_results, calls, run_ids, errors, frame, locs, timings)
        clipped = sum(r["clipped"] for r in results)
        if clipped:  # a Ray Counter refuses inc(0)
            CLIPPED.inc(clipped)
        event("batch_done", task_ids=sorted(set(task_of.values())), locations=len(locations), errors=len(errors),
              runs=len(run_ids), timings=timings)
        return results

    def features_here(self, n_locations, batches):
        """Whether a pass computes its features in this replica: at most ``forecast.local_features_max_locations``
        plants, none of a task split into several batches (the ingress split it to spread it over replicas and
        nodes: serve_app/tasks.py)."""
        return n_locations <= self.settings["forecast"]["local_features_max_locations"] and max(batches) == 1

    def writes_here(self, n_locations, batches):
        """Whether a pass writes its runs through this replica's own :class:`~serve_app.writer.Writer` instance
        (same policy, its own pool) instead of a call to the Writer deployment: at most
        ``writer.local_max_locations`` plants, none of a task split into several batches. A small pass then
        crosses no process to be stored (no handle call, no frames pickled both ways: bench/bench_load.py
        prints the CPU by process); a fleet's batches keep the Writer's replica."""
        return n_locations <= self.settings["writer"]["local_max_locations"] and max(batches) == 1

    def features(self, local, *args, **kwargs):
        """:func:`feature_task` of a pass, awaitable: in the replica's executor when ``local`` (a few plants: no
        task to schedule, no frames crossing processes), else a Ray task of ``forecast.feature_task_num_cpus``.

        The tasks are placed with Ray's ``SPREAD`` strategy: a fleet's batches go over every node with free
        CPU. Ray's default (hybrid) keeps tasks on the replica's node until it is about half busy, so on a
        cluster whose head can still take them (fast batches, few in flight) an added node stayed idle.
        On one node the two are the same."""
        if local:
            return asyncio.get_running_loop().run_in_executor(None, functools.partial(feature_task, *args, **kwargs))
        task_cpus = self.settings["forecast"]["feature_task_num_cpus"]
        return remote_feature_task.options(num_cpus=task_cpus, scheduling_strategy="SPREAD").remote(*args, **kwargs)

    async def calibration_inputs(self, conn, location_ids, issue):
        """The calibrations for ``issue`` of plants (``location_ids``: those with a calibration,
        ``engine.store.plant_extras``) and, for those, the actuals of the intraday window before it (read on
        ``conn``, the pass's connection; no plant: no statement, and None for the actuals).

        Only actuals strictly before the issue time are read, and only a
        calibration fitted on actuals before it (a forecast issued at T uses
        actuals with time < T, ``engine.store.read_calibrations``); period
        means are at the middle of their period (``engine.adaptation.actual_instants``).
        """
        calibrations = await store.read_calibrations(conn, location_ids, issue) if len(location_ids) else {}
        window = pd.Timedelta(minutes=self.settings["adaptation"]["intraday_window_minutes"])
        if not calibrations:
            return calibrations, None
        actuals = await store.read_actuals(conn, list(calibrations), issue - window, issue)
        return calibrations, adaptation.actual_instants(actuals, issue)[0]

    async def calibrate(self, location_id, cutoff, tenant_id=None):
        """Refit a plant's calibration from its actuals before ``cutoff`` and store it as a new version.

        The fit (``engine.adaptation.fit_calibration``) runs in the replica's
        executor. Errors are data: ``{"error": (status, field, message, code)}``
        (404 unknown plant, 422 too little or wrong data: the refusal is stored,
        ``engine.store.write_refusal``, with its code, ``engine.tuning.REFUSAL_CODES``;
        ``engine.validation.ERRORS`` for the others); else the stored calibration.
        """
        plants = await store.fetch_plants(await self.open_pool(), [location_id], tenant_id=tenant_id)
        loc = plants["locations"]
        if not len(loc):
            return {"error": (404, "location_id", f"location_id: {location_id} is unknown", "unknown_location")}
        conf = self.settings["adaptation"]
        cutoff = pd.Timestamp(cutoff).tz_convert("UTC")
        start = cutoff - pd.Timedelta(days=conf["max_history_days"])
        actuals = await store.read_actuals(self.pool, [location_id], start, cutoff)
        margin = pd.Timedelta(minutes=self.settings["forecast"]["weather_margin_minutes"])
        weather = await store.read_weather(self.pool, [location_id], start - margin, cutoff, cutoff)
        model = self.models.get(loc["model_id"].iloc[0])
        if model is None:
            return {"error": (422, "model_id", f"model_id {loc['model_id'].iloc[0]!r} is not loaded",
                              "not_one_of")}
        fit = await asyncio.get_running_loop().run_in_executor(
            None, lambda: adaptation.fit_calibration(
                loc, resample.fill_wind_speed(weather, self.wind_speed_ms)[0], actuals, model, cutoff,
                plants["planes"], plants["horizon"],
                conf["intraday_tau_hours"], conf["intraday_window_minutes"],
                day_inflation=conf["day_inflation"], relative_untuned=conf["relative_untuned"]))
        if not fit["ok"]:  # kept (the latest refusal), so a refit the policy started says why it stored nothing
            await store.write_refusal(self.pool, location_id, cutoff, fit["reason"], fit.get("diagnostics", {}),
                                      code=fit["code"], tenant_id=tenant_id)
            return {"error": (422, "actuals", f"actuals: cannot calibrate location_id {location_id}: {fit['reason']}",
                              fit["code"])}
        # the last actual read: forecasts issued after it may use the fit (engine.store.read_calibrations)
        fit = {**fit, "diagnostics": {**fit["diagnostics"], "actuals_end": actuals["time"].max().isoformat()}}
        version = await store.write_calibration(self.pool, location_id, fit, tenant_id=tenant_id)
        event("calibrated", location_id=location_id, version=version, dc_scale=fit["dc_scale"])
        return await store.read_calibration(self.pool, location_id, version)

    async def open_pool(self):
        """The replica's connection pool, created on first use."""
        if self.pool is None:
            self.pool = await asyncpg.create_pool(store.database_url(), min_size=1, max_size=4,
                                                  **pool_options(self.settings))
        return self.pool

    async def actuals_arrived(self, location_ids):
        """Check the refit policy of plants whose actuals were just stored (``POST /api/v1/actuals``).

        Returns at once (the ingest never waits for the check); a due refit
        runs in this replica's background (:meth:`check_refits`) with its
        cutoff just after the plant's latest actual, so that the next forecast
        uses the data that made it due.
        """
        self.check_refits(location_ids, None)

    def check_refits(self, location_ids, cutoff):
        """:meth:`refit_due` of plants, off the caller's path (a forecast's answer or an ingest never waits).

        At most one check runs at a time; the plants of passes and ingests
        that end meanwhile are checked together by the next one (one count
        query per cutoff for many calls under load). ``cutoff``: the issue
        time of the plant's latest pass, or None (its actuals arrived: just
        after its latest actual).
        """
        if not location_ids or not adaptation.refit_policy(self.settings["adaptation"])[0]:
            return
        self.refit_pending.update(dict.fromkeys(location_ids, cutoff))
        if self.refit_check is not None:
            return

        async def check():
            try:
                await self.open_pool()
                while self.refit_pending:
                    pending, self.refit_pending = self.refit_pending, {}
                    for when in set(pending.values()):
                        await self.refit_due([i for i, t in pending.items() if t == when], when)
            except Exception as exc:  # a refit check never fails a forecast or an ingest
                event("refit_check_failed", error=repr(exc))
            finally:
                self.refit_check = None
        self.refit_check = asyncio.get_running_loop().create_task(check())

    async def refit_due(self, location_ids, cutoff=None):
        """Start a background refit of every plant due (``engine.adaptation.refits_due``); returns their ids.

        new daylight actuals that stand for ``adaptation.refit_after_daylight_hours``
        (``engine.adaptation.refit_policy``),
        or, for a plant without a calibration, ``refit_first_after_days`` local
        days of them; 0 turns the policy off. ``cutoff`` None: just after each
        plant's latest actual (at most now). A refit runs off the caller's
        path (:meth:`refit`); its calibration serves the forecasts issued
        after its last actual.
        """
        conf = self.settings["adaptation"]
        if not adaptation.refit_policy(conf)[0]:
            return []
        counts = await store.refit_counts(self.pool, location_ids)
        threshold, first_days, column = adaptation.refit_policy(conf)
        due = adaptation.refits_due(counts, threshold, first_days, self.refit_refused, column).tolist()
        due = [i for i in due if i not in self.refits]
        if not due:  # the usual answer: nothing more to read
            return due
        last = dict(zip(counts["location_id"].tolist(), counts["last_time"]))
        now = pd.Timestamp.now(tz="UTC")
        for location_id in due:
            when = cutoff if cutoff is not None else min(now, last[location_id] + pd.Timedelta(microseconds=1))
            self.refits[location_id] = asyncio.get_running_loop().create_task(self.refit(location_id, when))
        return due

    async def refit(self, location_id, cutoff):
        """One policy refit: :meth:`calibrate` if the plant is still due, under its database lock.

        One refit of a plant at a time in the whole service: a replica holds
        it in ``refits``, and the plant's advisory lock (``engine.store.try_refit_lock``)
        keeps other replicas out; the plant is counted again under the lock,
        so a refit that another replica just stored is not repeated. A refused
        fit is remembered (:func:`engine.adaptation.refits_due`). Errors are
        events, never raised.
        """
        conf = self.settings["adaptation"]
        try:
            async with self.refit_slot, self.pool.acquire() as conn:
                if not await store.try_refit_lock(conn, location_id):
                    event("refit_busy", location_id=location_id)  # another replica refits it now
                    return
                try:
                    counts = await store.refit_counts(conn, [location_id])
                    threshold, first_days, column = adaptation.refit_policy(conf)
                    if not len(adaptation.refits_due(counts, threshold, first_days, self.refit_refused, column)):
                        return
                    result = await self.calibrate(location_id, cutoff)
                    if "error" in result:
                        row = counts.iloc[0]
                        self.refit_refused[location_id] = (float(row[column]), int(row["daylight_days"]))
                        event("refit_skipped", location_id=location_id, code=result["error"][3], reason=result["error"][2])
                    else:
                        self.refit_refused.pop(location_id, None)
                finally:
                    await store.refit_unlock(conn, location_id)
        except Exception as exc:  # a refit never fails a forecast or an ingest
            event("refit_failed", location_id=location_id, error=repr(exc))
        finally:
            self.refits.pop(location_id, None)

    def predict(self, feats, locations, params, issue, adapt_inputs=({}, None, None)):
        """``engine.adaptation.forecast_with_calibrations`` (blocking; runs in the replica's executor).

        ``adapt_inputs``: (calibrations, actuals up to the issue, lookback
        features at the actuals' times): the plants' intraday blend
        (``engine.adaptation.serving_adaptation``).
        """
        if feats is None:  # every plant of the batch already has its error
            return pd.DataFrame(columns=list(validation.FORECAST_COLUMNS)), {}
        calibrations, actuals, lookback = adapt_inputs
        return adaptation.forecast_with_calibrations(feats, locations, self.models, params["forecast_type"], issue,
                                                     self.settings["forecast"]["predict_threads"], calibrations,
                                                     actuals, lookback)

    def runs_frame(self, locations, params, issue, task_ids, **more):
        """One runs row per location (ARCHITECTURE 'runs'); ``task_ids``: one per location, or one for all.

        ``more``: further columns (``calibration_version``, ``input_flags``: one value per location), built
        with the others in one DataFrame call (a column added afterwards costs a block insert each)."""
        model_ids = locations["model_id"].to_numpy(dtype=object)
        versions = {m: model_version(self.models[m]["card"]) for m in set(model_ids.tolist())}
        return pd.DataFrame({
            "location_id": locations["location_id"].to_numpy(dtype="int64"), "issue_time": issue,
            "model_id": model_ids, "model_version": [versions[m] for m in model_ids.tolist()],
            "forecast_type": params["forecast_type"], "resolution_minutes": params["resolution_minutes"],
            "horizon_hours": params["horizon_hours"], "task_id": task_ids, "timings": [{}] * len(locations),
            **more})


def pass_key(params):
    """What calls must share to be forecast in one pass: issue time, horizon, resolution, forecast type."""
    return (params["issue_time"], params["horizon_hours"], params["resolution_minutes"], params["forecast_type"])


def merge_groups(location_ids, keys, task_ids):
    """Calls that can share a pass: indices grouped by key, no plant twice and no task twice in a group.

    A plant asked by two calls of the same key (two clients, the same plant
    and issue time) is in two groups: each call gets a run of its own task.
    Two batches of one task are never merged: the ingress split that task to
    spread its batches over replicas and nodes (serve_app/tasks.py).

    Parameters
    ----------
    location_ids : list of list of int
        The plants of each call.
    keys : list
        :func:`pass_key` of each call.
    task_ids : list of str
        The task of each call.

    Returns
    -------
    list of list of int
        Call indices, each group in call order.
    """
    groups = []  # (key, plants, tasks, indices)
    for i, (ids, key, task) in enumerate(zip(location_ids, keys, task_ids)):
        ids = set(ids)
        group = next((g for g in groups if g[0] == key and not g[1] & ids and task not in g[2]), None)
        if group is None:
            groups.append((key, ids, {task}, [i]))
        else:
            group[1].update(ids)
            group[2].add(task)
            group[3].append(i)
    return [g[3] for g in groups]


def call_results(calls, run_ids, errors, frame, locations, timings):
    """Each call's share of a pass: its runs, its errors, its clipped count, its forecast rows if it asked.

    CPU work (a pass of many calls): runs in the replica's executor.
    """
    alone = len(calls) == 1  # a pass of one call: its rows are the whole frame (no grouping, no copy)
    rows = frame.groupby("location_id", sort=False).indices if len(frame) and not alone else {}
    clipped = clipped_by_location(frame, locations)
    out = []
    for call_locations, params, *_ in calls:
        ids = call_locations["location_id"].tolist()
        wanted = params["wait"] and params["include_forecast"]
        if alone or not wanted:
            mine = frame if wanted else None
        else:
            parts = [rows[i] for i in ids if i in rows]
            mine = frame.iloc[np.concatenate(parts)] if parts else frame.iloc[:0]
        out.append({"run_ids": {i: run_ids[i] for i in ids if i in run_ids},
                    "errors": {i: errors[i] for i in ids if i in errors},
                    "timings": dict(timings), "clipped": int(sum(clipped.get(i, 0) for i in ids)),
                    "forecast": mine})
    return out


def portable(exc):
    """``exc`` if it survives pickling (a group's answers cross processes as values), else a RuntimeError
    naming its type and message."""
    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:
        return RuntimeError(f"{type(exc).__name__}: {exc}")


def input_flags(location_ids, wind_defaulted, wind_speed_ms):
    """Per run (``location_ids``: a list), what was not given and what replaced it (``{}``: every input given)."""
    flag = {"wind_speed": f"not given for some times: {wind_speed_ms:g} m/s used (the model's training constant)"}
    defaulted = set(np.asarray(wind_defaulted).tolist())
    return [dict(flag) if i in defaulted else {} for i in location_ids]


def clipped_by_location(frame, locations):
    """{location_id: number of quantile values at the plant's power limit while the sun is up (p90 > 0)}."""
    if not len(frame):
        return {}
    limit = quantiles.plant_limits_kw(locations, frame["location_id"].to_numpy("int64"))[1]
    values = np.column_stack([frame[q].to_numpy() for q in quantiles.QUANTILE_COLUMNS])  # no frame of columns built
    at_limit = ((values >= limit[:, None]) & (frame["p90"].to_numpy()[:, None] > 0)).sum(axis=1)
    ids, where = np.unique(frame["location_id"].to_numpy("int64"), return_inverse=True)
    return dict(zip(ids.tolist(), np.bincount(where, weights=at_limit, minlength=len(ids)).astype(int).tolist()))
