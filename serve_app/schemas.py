"""The HTTP contract: request and response schemas, the one source of ``/openapi.json``.

Every body the API accepts is validated by the pydantic schema built here, and
the OpenAPI document is generated from the same schemas (``serve_app.api``), so
the two cannot drift. Schemas are built with pydantic's functional API
(``create_model``, ``TypedDict(...)``): the project writes no class statements
outside the Ray Serve deployments. Nothing here is a second copy of a rule:

- bounds, text lengths and the DC/AC ratio come from :mod:`engine.validation`;
- forecast types, quantile columns and tracking modes from the engine modules
  that use them;
- limits, defaults, resolutions and model ids from ``configs/service.yaml``;
- NWP source names from :mod:`engine.nwp`.

Validation is strict (JSON types only: no ``"24"`` or ``true`` for a number,
no ``24.9`` for an id), refuses unknown fields, NaN/inf, control characters
and nesting deeper than pydantic's JSON parser allows.
"""

import datetime
import re
from typing import Annotated, Literal, Optional

from pydantic import (AfterValidator, AwareDatetime, ConfigDict, Field, Strict, TypeAdapter, WrapValidator,
                      create_model, model_validator, with_config)
from pydantic_core import PydanticCustomError
from typing_extensions import NotRequired, TypedDict

from engine import nwp, planes, validation
from engine.forecast import FORECAST_TYPES
from engine.quantiles import QUANTILE_COLUMNS
from engine.tuning import REFUSAL_CODES
from serve_app.api import ERROR_CODES

STRICT = ConfigDict(strict=True, extra="forbid", allow_inf_nan=False)
OPEN = ConfigDict(extra="allow")  # responses: documented fields, more may be added
TASK_STATUSES = ("queued", "running", "succeeded", "partial", "failed")
FINAL_STATUSES = ("succeeded", "partial", "failed")
TEXT_PATTERN = f"^[^{validation.CONTROL_CHARACTERS[1:-1]}]*$"  # no control characters
PATH_MAX = 4096  # bytes of a path on Linux (limits.h): longest file name accepted


def bounds_of(spec):
    """pydantic ``Field`` keywords of an :mod:`engine.validation` bounds entry (unit -> description)."""
    return {k: v for k, v in spec.items() if k in ("ge", "gt", "le", "lt")}


def number(spec, description=""):
    """A finite JSON number within the bounds ``spec`` (unit in the description)."""
    unit = f" ({spec['unit']})" if spec.get("unit") else ""
    return Annotated[float, Field(**bounds_of(spec), description=f"{description}{unit}".strip())]


def integer(spec, description=""):
    return Annotated[int, Field(**bounds_of(spec), description=description)]


def text(column, description="", min_length=1):
    return Annotated[str, Field(min_length=min_length, max_length=validation.TEXT_LENGTH[column],
                                pattern=TEXT_PATTERN, description=description)]


def refusal(code, message):
    """A pydantic error whose type is ``code`` (``engine.validation.ERRORS``): the answer's ``error.code``."""
    if code not in validation.ERRORS:
        raise ValueError(f"code: {code!r} is not one of engine.validation.ERRORS")
    return PydanticCustomError(code, message)  # no context: braces in the message stay as they are


#: TIME_RANGE as aware datetimes, [first, end).
TIME_LIMITS = tuple(datetime.datetime.fromisoformat(t) for t in validation.TIME_RANGE)
#: The start of an ISO-8601 (RFC 3339) instant in text: its extended-format date and the time's separator.
ISO_START = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]")


def checked_instant(value, handler):
    """An aware datetime of ISO-8601 text (or a datetime) in TIME_RANGE; one call per value (wrap validator).

    Text must start with an ISO-8601 date: pydantic reads digits as Unix seconds (or milliseconds), so the compact
    date ``"20130701"`` would be 1970-08-22T23:45:01Z and ``"2013"`` 33 minutes after 1970.
    """
    if not isinstance(value, datetime.datetime) and not (isinstance(value, str) and ISO_START.match(value)):
        raise refusal("bad_time", "must be an ISO-8601 time with a UTC offset (YYYY-MM-DDThh:mm:ss+hh:mm)")
    value = handler(value)
    if not TIME_LIMITS[0] <= value < TIME_LIMITS[1]:
        raise refusal("bad_time", f"must be in [{validation.TIME_RANGE[0]}, {validation.TIME_RANGE[1]})")
    return value


#: An instant: ISO-8601 text with an explicit UTC offset (naive times are refused) in TIME_RANGE, in bodies and query
#: parameters alike. Not strict: the text reaches the datetime validator as a Python str (a strict one refuses it).
Instant = Annotated[AwareDatetime, Strict(False), WrapValidator(checked_instant)]


def instant(description=""):
    """:data:`Instant` described (``description``; the format is appended)."""
    return Annotated[Instant, Field(description=f"{description} ISO-8601 with a UTC offset".strip())]


def unique(values):
    """Refuse a repeated item (JSON schema ``uniqueItems``)."""
    seen = set()
    for v in values:
        if v in seen:
            raise refusal("duplicate", f"repeats {v!r}")
        seen.add(v)
    return values


LocationId = Annotated[int, Field(**validation.ID_BOUNDS, description="location id")]
RunId = Annotated[int, Field(**validation.ID_BOUNDS, description="run id")]


def plane_in(settings):
    """One plane of a location (``planes[j]``): its own orientation, DC capacity and mounting.

    Geometry defaults come from ``location_defaults``; ``losses_pct``,
    ``gamma_pdc`` and the temperature-model parameters default to null: the
    plane then uses its location's value.
    """
    defaults = settings["location_defaults"]
    fields = {}
    for column in validation.PLANE_COLUMNS:
        if column == "plane":
            continue  # the position in the list
        if column == "tracking":
            fields[column] = (Literal[validation.TRACKING], defaults["tracking"])
        elif column == "backtrack":
            fields[column] = (bool, Field(True, description="single-axis trackers: backtracking on"))
        else:
            kind = number(validation.PLANE_BOUNDS[column], column.replace("_", " "))
            if column in validation.PLANE_INHERITED:
                fields[column] = (Optional[kind], Field(None, description="null: the location's value"))
            else:
                fields[column] = (kind, ... if column in PLANE_REQUIRED else defaults[column])
    return create_model("PlaneIn", __config__=STRICT, **fields)


def horizon_in():
    """A horizon profile (``horizon``): skyline elevation by azimuth, azimuth increasing."""
    bounds, most = validation.HORIZON_BOUNDS, validation.MAX_HORIZON_POINTS
    points = {c: (Annotated[list[number(bounds[c], c)], Field(min_length=2, max_length=most)], ...)
              for c in validation.HORIZON_COLUMNS}
    return create_model("HorizonIn", __config__=STRICT,
                        __validators__={"paired": model_validator(mode="after")(paired_points)}, **points)


def paired_points(horizon):
    """One elevation per azimuth."""
    if len(horizon.azimuth) != len(horizon.elevation):
        raise refusal("bad_length", f"azimuth and elevation differ in length ({len(horizon.azimuth)} != "
                                    f"{len(horizon.elevation)})")
    return horizon


#: Plane columns a plane must give; a location without planes must give them itself.
PLANE_REQUIRED = ("tilt", "azimuth", "capacity_dc_kw")


def location_in(settings):
    """One plant of ``POST/PUT /api/v1/locations`` (defaults: ``location_defaults`` of the settings).

    A plant is one plane described by its own columns, or 1..MAX_PLANES
    ``planes`` behind its one ``capacity_ac_kw``; with ``planes`` its plane
    columns (``capacity_dc_kw``, ``tilt``, ``azimuth``, ...) are derived
    (sum of DC, the largest plane's orientation) and may be left out.
    """
    defaults = settings["location_defaults"]
    required = ("name", "latitude", "longitude", "capacity_ac_kw")
    derived = (f" Derived from `planes` when given ({', '.join(planes.SUMMARY_COLUMNS)}: sum of DC, "
               "the largest plane's geometry); required without planes.")
    fields = {"name": (text("name", "natural key of the plant (unique)"), ...),
              "timezone": (text("timezone", "IANA time zone of local-time energy buckets"), defaults["timezone"]),
              "tracking": (Optional[Literal[validation.TRACKING]], defaults["tracking"]),
              "model_id": (Literal[tuple(settings["model_ids"])], defaults["model_id"])}
    for column, spec in validation.LOCATION_BOUNDS.items():
        kind = number(spec, column.replace("_", " "))
        if column == "export_limit_kw":
            fields[column] = (Optional[kind], defaults[column])
        elif column in PLANE_REQUIRED:
            fields[column] = (Optional[kind], Field(None, description=derived.strip()))
        elif column in planes.SUMMARY_COLUMNS:
            fields[column] = (Optional[kind], defaults[column])
        else:
            fields[column] = (kind, ... if column in required else defaults[column])
    extra = {"planes": (Optional[Annotated[list[plane_in(settings)],
                                           Field(min_length=1, max_length=validation.MAX_PLANES)]],
                        Field(None, description=f"1..{validation.MAX_PLANES} planes sharing the inverter limit "
                                                "(null: one plane from the location's own columns)")),
             "horizon": (Optional[horizon_in()], Field(None, description="skyline blocking the beam (null: free)"))}
    # a plant without planes must give its own (else engine.validation refuses the missing value by name)
    return create_model("LocationIn", __config__=STRICT, **{c: fields[c] for c in validation.LOCATION_COLUMNS},
                        **extra)


def weather_row():
    """One weather row (pvlib names and units; ``validation.WEATHER_OPTIONAL`` may be null or absent)."""
    bounds = validation.WEATHER_BOUNDS
    optional = validation.WEATHER_OPTIONAL
    fields = {"location_id": LocationId,
              "valid_time": instant("label of the value (END of its period for period averages);"),
              "issue_time": instant("when this weather was issued;"),
              "source": text("source", "name of the weather source")}
    for column in ("ghi", "dni", "dhi", "temp_air", "wind_speed", "cloud_cover"):
        kind = number(bounds[column], column)
        fields[column] = NotRequired[Optional[kind]] if column in optional else kind
    fields["period_minutes"] = integer(bounds["period_minutes"], "averaging period, 0 = instantaneous")
    return with_config(STRICT)(TypedDict("WeatherRow", fields))


def actual_row():
    """One measured power value (kW, end-of-interval ``time``; optional averaging period)."""
    default = validation.ACTUALS_DEFAULTS["period_minutes"]
    return with_config(STRICT)(TypedDict("ActualRow", {
        "location_id": LocationId, "time": instant("end of the measured interval;"),
        "power_kw": number(validation.POWER_BOUNDS, "measured AC power; also within "
                           f"{list(validation.ACTUALS_FRACTION_OF_AC)} x the plant's capacity_ac_kw"),
        "period_minutes": NotRequired[integer(validation.WEATHER_BOUNDS["period_minutes"],
                                              f"averaging period ending at time (e.g. 60: an hourly mean); "
                                              f"absent: {default}, an instantaneous sample")]}))


def generate_request(settings):
    """Body of ``POST /api/v1/forecast/generate`` (defaults from the settings' ``forecast`` section)."""
    f = settings["forecast"]
    return create_model(
        "GenerateRequest", __config__=STRICT,
        location_ids=(Annotated[list[LocationId], Field(min_length=1, max_length=f["max_locations"],
                                                        json_schema_extra={"uniqueItems": True}),
                                AfterValidator(unique)], ...),
        horizon_hours=(Annotated[int, Field(ge=f["horizon_hours_min"], le=f["horizon_hours_max"])],
                       f["default_horizon_hours"]),
        resolution=(Literal[tuple(f["resolutions"])], f["default_resolution"]),
        forecast_type=(Literal[FORECAST_TYPES], FORECAST_TYPES[0]),
        quantiles=(Annotated[list[Literal[QUANTILE_COLUMNS]], Field(min_length=1, json_schema_extra={"uniqueItems": True}),
                             AfterValidator(unique)], list(QUANTILE_COLUMNS)),
        issue_time=(Optional[instant("issue time of the forecast (default: now);")], None),
        wait=(bool, False), include_forecast=(bool, True))


def nwp_import(settings, name, file_item, description):
    """Body of ``POST /api/v1/weather/nwp``: the files and the options of an NWP import.

    The JSON body (``NwpImport``) names files under ``nwp.import_dir``; the
    multipart body (``NwpUpload``) carries them, with the same options as
    form fields (``location_ids`` one part per id). Both are built here so
    their options cannot differ.
    """
    n, f = settings["nwp"], settings["forecast"]
    ids = Annotated[list[LocationId], Field(min_length=1, max_length=f["max_locations"],
                                            json_schema_extra={"uniqueItems": True}), AfterValidator(unique)]
    return create_model(
        name, __config__=STRICT,
        files=(Annotated[list[file_item], Field(min_length=1, max_length=n["max_files"], description=description)],
               ...),
        location_ids=(Optional[ids], Field(None, description="plants to import the weather for (default: all)")),
        source=(Optional[Literal[nwp.SOURCE_NAMES]],
                Field(None, description="source of every file (default: detected per file, docs/weather.md)")))


def rows_body(name, row, field, max_rows):
    return create_model(name, __config__=STRICT,
                        **{field: (Annotated[list[row], Field(min_length=1, max_length=max_rows)], ...)})


def responses(settings):
    """Response bodies (documentation; the API tests validate responses against them)."""
    quantile = {q: list[float] for q in QUANTILE_COLUMNS}
    error = TypedDict("ErrorDetail", {"status": int, "field": Optional[str], "message": str,
                                      "task_id": NotRequired[str],
                                      # every refusal's stable code (serve_app.api.ERROR_CODES:
                                      # engine.validation.ERRORS, a refused calibration's engine.tuning.REFUSALS)
                                      "code": Annotated[Literal[ERROR_CODES], Field(description=(
                                          "stable machine-readable reason: branch on it, never on the message "
                                          "(docs/api.md \"Error codes\", \"Refusal codes\")"))]})
    # a plant's error in a forecast (engine.validation.PLANT_ERRORS, the one definition of the codes)
    plant_code = Annotated[Literal[tuple(validation.PLANT_ERRORS)], Field(description=(
        "stable machine-readable reason the plant has no run: branch on it, never on the sentence "
        "(docs/api.md \"Per-plant error codes\", with whether retrying can help)"))]
    location_error = TypedDict("LocationError", {"location_id": int, "code": plant_code, "error": str})
    task_error = TypedDict("TaskError", {"code": plant_code, "message": str})
    plane_out = TypedDict("Plane", {"plane": int, "tracking": str, "backtrack": bool,
                                    **{c: (Optional[float] if c in validation.PLANE_INHERITED else float)
                                       for c in planes.GEOMETRY_COLUMNS}})
    location_out = TypedDict("Location", {"location_id": int, **{c: str for c in ("name", "timezone", "tracking",
                                                                                 "model_id")},
                                          **{c: (Optional[float] if c == "export_limit_kw" else float)
                                             for c in validation.LOCATION_BOUNDS},
                                          "planes": list[plane_out],
                                          "horizon": Optional[TypedDict("Horizon", {c: list[float] for c in
                                                                                     validation.HORIZON_COLUMNS})]})
    location_forecast = TypedDict("LocationForecast", {
        "location_id": int, "run_id": Optional[int], "capacity_ac_kw": float, "power_limit_kw": float,
        "valid_time": list[datetime.datetime], "horizon_minutes": list[int],
        **{q: NotRequired[list[float]] for q in quantile}})
    timings = dict[str, float]
    accuracy_part = TypedDict("AccuracyPart", {"n": int, "metrics": dict[str, Optional[float]]})
    task_accepted = TypedDict("TaskAccepted", {"task_id": str, "status": Literal["queued"], "status_url": str})
    nwp_file = TypedDict("NwpFile", {
        "file": str, "source": Literal[nwp.SOURCE_NAMES], "issue_time": datetime.datetime, "steps": int,
        "first_valid_time": datetime.datetime, "last_valid_time": datetime.datetime, "period_minutes": list[int]})
    nwp_cycle = TypedDict("NwpCycle", {"source": Literal[nwp.SOURCE_NAMES], "issue_time": datetime.datetime,
                                       "last_valid_time": datetime.datetime})
    resolutions = tuple(settings["forecast"]["resolutions"].values())
    generate_result = TypedDict("GenerateResult", {
        "task_id": str, "status": Literal[FINAL_STATUSES], "issue_time": datetime.datetime,
        "forecast_type": Literal[FORECAST_TYPES], "resolution_minutes": Literal[resolutions],
        "horizon_hours": int, "run_ids": dict[str, int], "errors": list[location_error], "timings": timings,
        "locations": list[location_forecast]})
    task = TypedDict("Task", {
        "task_id": str, "status": Literal[TASK_STATUSES], "progress_done": int, "progress_total": int,
        "run_ids": dict[str, int], "errors": dict[str, task_error], "timings": timings, "request": dict,
        "created_at": Optional[datetime.datetime], "started_at": Optional[datetime.datetime],
        "finished_at": Optional[datetime.datetime], "lease_expires_at": NotRequired[Optional[datetime.datetime]],
        "attempts": NotRequired[int]})
    run = TypedDict("Run", {"run_id": int, "location_id": int, "issue_time": datetime.datetime, "model_id": str,
                            "model_version": str, "forecast_type": Literal[FORECAST_TYPES],
                            "resolution_minutes": int, "horizon_hours": int,
                            "input_flags": NotRequired[dict[str, str]]})
    stored_row = TypedDict("StoredForecastRow", {"valid_time": datetime.datetime, **{q: float for q in quantile},
                                                 "location_id": NotRequired[int], "horizon_minutes": NotRequired[int]})
    # aggregate=hourly|daily: energy (kWh) per bucket of the plant's local time, ``time`` = bucket start
    energy_row = TypedDict("EnergyRow", {"time": datetime.datetime, **{q: float for q in quantile}})
    return {
        "Error": TypedDict("Error", {"error": error}),
        "GenerateResult": generate_result,
        "TaskAccepted": task_accepted,
        "Task": task,
        "Location": location_out,
        "LocationList": TypedDict("LocationList", {"locations": list[location_out]}),
        # GET /api/v1/locations: a page in location_id order; next_after: the `after` of the next page, null: last
        "LocationPage": TypedDict("LocationPage", {"locations": list[location_out], "next_after": Optional[int]}),
        "StoredForecast": TypedDict("StoredForecast", {
            "location_id": int, "capacity_ac_kw": float, "power_limit_kw": float, "run": run,
            "aggregate": Optional[Literal["hourly", "daily"]], "unit": Literal["kW", "kWh"],
            "rows": list[stored_row] | list[energy_row]}),
        "Accuracy": TypedDict("Accuracy", {"location_id": int, "n": int, "runs": int, "start": datetime.datetime,
                                           "end": datetime.datetime, "metrics": dict[str, Optional[float]],
                                           "by_lead": dict[str, accuracy_part], "day_ahead": Optional[accuracy_part],
                                           "runs_counted": Literal["all", "latest"],
                                           "normalised_by": Literal["capacity_ac_kw"]}),
        "RowCount": TypedDict("RowCount", {"rows": int}),
        "NwpImportResult": TypedDict("NwpImportResult", {
            "rows": int, "files": list[nwp_file], "location_ids": list[int],
            "covered": dict[str, list[nwp_cycle]], "uncovered": dict[str, str],
            "forecast_tasks": list[task_accepted]}),
        "Calibration": calibration_out(),
        "Health": TypedDict("Health", {"status": Literal["ok"]}),
        "Ready": TypedDict("Ready", {"status": Literal["ready"], "models": dict[str, str],
                                     "database": Literal["reachable"]}),
    }


def calibrate_request():
    """Body of ``POST /api/v1/locations/{id}/calibrate``: ``{}`` (cutoff now) or ``{"cutoff": ...}``."""
    return create_model("CalibrateRequest", __config__=STRICT, cutoff=(Optional[instant(
        "only actuals before this time are used (default: now); ISO-8601 with offset")], None))


def calibration_out():
    """A stored plant calibration (``engine.store.read_calibration``; docs/model.md "Plant adaptation")."""
    bands = TypedDict("CalibrationBands", {
        "offsets": list[list[list[float]]], "raw": list[list[list[float]]], "n": list[list[int]],
        "weight": list[list[float]], "pooled": list[float], "pooled_weight": float, "n0": float,
        # effective sample sizes of the recency-weighted scores; absent: stored before weighting (equal weights)
        "n_effective": NotRequired[list[list[float]]], "pooled_n_effective": NotRequired[float],
        # longest averaging period of the actuals fitted (0: instants); absent: stored before actuals had periods
        "actuals_period_minutes": NotRequired[int],
        # offsets relative to the forecast level (engine.conformal.forecast_level: the P50 before them, at least this
        # fraction of capacity_ac_kw): an untuned calibration's with adaptation.relative_untuned; null: fractions of
        # capacity_ac_kw; absent: stored before session 11 (fractions of capacity_ac_kw)
        "level_floor": NotRequired[Optional[float]],
        "lead_edges_hours": list[Optional[float]],
        "csi_edges": list[Optional[float]]})
    orientation = TypedDict("CalibrationOrientation", {  # engine.tuning.fit_orientation; null: not fitted
        "ok": bool, "reason": Optional[str], "tilt": float, "azimuth": float, "stated_tilt": float,
        "stated_azimuth": float, "diagnostics": dict[str, object]})
    shading = TypedDict("CalibrationShading", {  # engine.shading.fit_shading; null: fitted before it or not fitted
        "ok": bool, "reason": Optional[str], "bin_deg": float, "azimuth": list[float], "elevation": list[float],
        "shaded": bool, "window_start": Optional[str], "window_end": Optional[str], "diagnostics": dict[str, object]})
    blend = TypedDict("CalibrationIntradayBlend", {  # engine.adaptation.fit_intraday_blend; null: fitted before it
        "ok": bool, "reason": Optional[str], "candidates": list[str], "window_minutes": list[int], "issues": int,
        "rows": int, "lead_edges_hours": list[float], "tau_hours": float,
        "fitted": list[list[Optional[float]]], "shrink": list[float], "n": list[int],
        "mae_fitted": list[Optional[float]], "mae_prior": list[Optional[float]], "fallback": list[str]})
    return TypedDict("Calibration", {
        "location_id": int, "version": int, "cutoff": datetime.datetime, "window_start": datetime.datetime,
        "window_end": datetime.datetime, "n_samples": int, "dc_scale": float, "capacity_dc_kw": float,
        "clip_kw": Optional[float], "orientation": Optional[orientation], "shading": Optional[shading],
        "bands": bands,
        "intraday": TypedDict("CalibrationIntraday", {"tau_hours": float, "window_minutes": int,
                                                      "blend": Optional[blend]}),
        "diagnostics": dict[str, object], "created_at": datetime.datetime,
        # the plant's latest refused fit since its latest version (engine.store.read_refusal); null: none
        "last_refusal": Optional[TypedDict("CalibrationRefusal", {
            "refused_at": datetime.datetime, "cutoff": datetime.datetime,
            "code": Optional[Literal[REFUSAL_CODES]],  # engine.tuning.REFUSAL_CODES; null: refused before codes
            "reason": str,
            "diagnostics": dict[str, object]})]})


def page_limit(settings):
    """``limit`` of a list request: 1..``http.page_limit_max``, absent: ``http.page_limit_default``."""
    http = settings["http"]
    return Annotated[int, Field(strict=True, ge=1, le=http["page_limit_max"], json_schema_extra={
        "default": http["page_limit_default"]}, description="items per page")]


def build(settings):
    """Every schema of the API by component name: request bodies and responses.

    Parameters
    ----------
    settings : dict
        ``configs/service.yaml`` (limits, defaults, resolutions, model ids).

    Returns
    -------
    dict
        name -> type (pydantic model or TypedDict).
    """
    http = settings["http"]
    location = location_in(settings)
    return {
        "GenerateRequest": generate_request(settings),
        "LocationIn": location,
        "PlaneIn": plane_in(settings),
        "HorizonIn": horizon_in(),
        "LocationsUpsert": rows_body("LocationsUpsert", location, "locations", http["max_locations_per_upsert"]),
        "WeatherRow": weather_row(),
        "WeatherIngest": rows_body("WeatherIngest", weather_row(), "rows", http["max_rows"]),
        "ActualRow": actual_row(),
        "ActualsIngest": rows_body("ActualsIngest", actual_row(), "rows", http["max_rows"]),
        "NwpImport": nwp_import(settings, "NwpImport", Annotated[str, Field(min_length=1, max_length=PATH_MAX,
                                                                            pattern=TEXT_PATTERN)],
                                "file names relative to nwp.import_dir"),
        "CalibrateRequest": calibrate_request(),
        "PageLimit": page_limit(settings),
        "NwpUpload": nwp_import(settings, "NwpUpload", bytes, "the files (one part each, with its file name)"),
        **responses(settings),
    }


def adapters(schemas):
    """A pydantic ``TypeAdapter`` per schema (validation of JSON bytes, JSON schema)."""
    return {name: TypeAdapter(kind) for name, kind in schemas.items()}
