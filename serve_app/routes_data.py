"""Locations, weather and actuals endpoints (validated by engine.requests + engine.validation)."""

from starlette.routing import Route

from engine import requests, store, validation
from serve_app.http import handles_errors, json_response

LOCATION_REQUIRED = ("name", "latitude", "longitude", "capacity_ac_kw", "capacity_dc_kw", "tilt", "azimuth")
WEATHER_REQUIRED = ("location_id", "valid_time", "issue_time", "source", "ghi", "temp_air", "wind_speed",
                    "period_minutes")
WEATHER_OPTIONAL = {"dni": None, "dhi": None, "cloud_cover": None}


async def read_json(request, settings):
    """Parsed body; 413 from Content-Length before reading when it is too large."""
    limit = settings["http"]["max_body_bytes"]
    declared = int(request.headers.get("content-length") or 0)
    if declared > limit:
        raise ValueError(f"body too large: {declared} bytes > limit {limit} bytes")
    return requests.parse_json(await request.body(), limit)


def location_records(frame):
    return frame.astype(object).where(frame.notna(), None).to_dict(orient="records")


def routes(app):
    """Starlette routes bound to the ingress ``app`` (pool, settings)."""
    settings = app.settings

    @handles_errors
    async def upsert_locations(request):
        body = await read_json(request, settings)
        frame = requests.rows_frame(body, "locations", LOCATION_REQUIRED, settings["location_defaults"], (),
                                    settings["http"]["max_locations_per_upsert"])
        validation.validate_locations(frame)
        saved = await store.upsert_locations(app.pool, frame)
        return json_response({"locations": location_records(saved)}, 200)

    @handles_errors
    async def list_locations(request):
        return json_response({"locations": location_records(await store.fetch_locations(app.pool))})

    @handles_errors
    async def get_location(request):
        lid = int(request.path_params["location_id"])
        frame = await store.fetch_locations(app.pool, [lid])
        if not len(frame):
            raise LookupError(f"location_id {lid} is unknown")
        return json_response(location_records(frame)[0])

    async def known_ids():
        return set((await store.fetch_locations(app.pool))["location_id"].tolist())

    @handles_errors
    async def ingest_weather(request):
        body = await read_json(request, settings)
        frame = requests.rows_frame(body, "rows", WEATHER_REQUIRED, WEATHER_OPTIONAL, ("valid_time", "issue_time"),
                                    settings["http"]["max_rows"])
        frame = requests.numeric(frame, ["ghi", "dni", "dhi", "temp_air", "wind_speed", "cloud_cover"], "rows")
        frame["location_id"] = frame["location_id"].astype("int64")
        frame["period_minutes"] = frame["period_minutes"].astype("int64")
        validation.validate_weather(frame, await known_ids())
        return json_response({"rows": await store.write_weather(app.pool, frame)})

    @handles_errors
    async def ingest_actuals(request):
        body = await read_json(request, settings)
        frame = requests.rows_frame(body, "rows", ("location_id", "time", "power_kw"), {}, ("time",),
                                    settings["http"]["max_rows"])
        frame = requests.numeric(frame, ["power_kw"], "rows")
        frame["location_id"] = frame["location_id"].astype("int64")
        validation.validate_actuals(frame, await known_ids())
        return json_response({"rows": await store.write_actuals(app.pool, frame)})

    return [
        Route("/api/v1/locations", upsert_locations, methods=["POST", "PUT"]),
        Route("/api/v1/locations", list_locations, methods=["GET"]),
        Route("/api/v1/locations/{location_id:int}", get_location, methods=["GET"]),
        Route("/api/v1/weather", ingest_weather, methods=["POST"]),
        Route("/api/v1/actuals", ingest_actuals, methods=["POST"]),
    ]
