"""Reads and writes of the pvcast database (asyncpg, plain SQL, no ORM).

Every function takes an asyncpg connection or pool as its first argument.
Bulk writes go through binary COPY into a temporary staging table and ONE
``INSERT ... SELECT ... ON CONFLICT`` inside one transaction: all rows or
none, and re-writing the same rows is idempotent. Timestamps cross the COPY
as int64 microseconds since the Unix epoch (vectorised in numpy; no Python
datetime per row) and become ``timestamptz`` in the INSERT.

Frames and their units are those of ARCHITECTURE "Frames"; bad input is
refused by :mod:`engine.validation` before anything is written.
"""

import asyncio
import contextlib
import functools
import io
import json
import os
import time
import urllib.parse

import asyncpg
import numpy as np
import pandas as pd

from engine import keys, validation
from engine.tuning import REFUSAL_CODES
from engine.planes import empty_planes, summarise
from engine.quantiles import QUANTILE_COLUMNS

DEFAULT_URL = "postgresql://pvcast_service@127.0.0.1:55432/pvcast"  # `scripts/tsdb url service`
OWNER_URL = "postgresql://pvcast_owner@127.0.0.1:55432/pvcast"      # `scripts/tsdb url owner`
FROM_MICROS = "(timestamptz 'epoch' + {} * interval '1 microsecond')"
BUCKETS = ("1 hour", "1 day")
TASK_STATUSES = ("queued", "running", "succeeded", "partial", "failed")
FINAL_STATUSES = ("succeeded", "partial", "failed")
LOCATION_COLUMNS = ("location_id", *validation.LOCATION_COLUMNS)
WEATHER_COLUMNS = validation.WEATHER_COLUMNS
RUN_FIELDS = ("run_id", "location_id", "issue_time", "model_id", "model_version", "forecast_type",
              "resolution_minutes", "horizon_hours", "n_steps", "status", "task_id", "timings", "written_at",
              "calibration_version", "input_flags")


def database_url():
    """URL the service connects with: env ``PVCAST_DATABASE_URL``, default the service role of ``scripts/tsdb``.

    URLs carry no password: libpq's ``~/.pgpass`` (or ``PGPASSFILE``, or
    ``PGPASSWORD``) supplies it, as asyncpg reads them by default.
    """
    return os.environ.get("PVCAST_DATABASE_URL", DEFAULT_URL)


def owner_database_url():
    """URL the migrations run with: env ``PVCAST_OWNER_DATABASE_URL``, default the owner role of ``scripts/tsdb``."""
    return os.environ.get("PVCAST_OWNER_DATABASE_URL", OWNER_URL)


def url_role(url):
    """The role (user name) a connection URL logs in as."""
    return urllib.parse.unquote(urllib.parse.urlparse(url).username or "")


async def ensure_database(url):
    """Create the database named in ``url`` if it does not exist.

    Connects to the ``postgres`` database of the same server.

    Returns
    -------
    bool
        True when it was created by this call.
    """
    name = urllib.parse.unquote(urllib.parse.urlparse(url).path.lstrip("/"))
    if not name:
        raise ValueError(f"database url {url!r} names no database")
    conn = await asyncpg.connect(url, database="postgres")
    try:
        if await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            return False
        try:
            await conn.execute('CREATE DATABASE "{}"'.format(name.replace('"', '""')))
        except asyncpg.DuplicateDatabaseError:  # created concurrently by another starter
            return False
        return True
    finally:
        await conn.close()


@contextlib.asynccontextmanager
async def connection(db):
    """A connection from ``db`` (a pool is acquired from, a connection used as is)."""
    if isinstance(db, asyncpg.Pool):
        async with db.acquire() as conn:
            yield conn
    else:
        yield db


async def release_as_is(conn):
    """``reset`` of the service's asyncpg pools: a released connection goes back as it is.

    asyncpg still rolls back a transaction left open and drops the
    connection's listeners (``Connection._reset``, always run on release);
    what this skips is its default reset query (``SELECT
    pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL``): one more
    round trip and some work of the server's backend at every release, ~6 per
    forecast pass. Safe because pvcast's statements leave no session state on
    a pooled connection: no ``SET`` or ``set_config``, no ``LISTEN``, no
    cursors, temporary tables ``ON COMMIT DROP``. The one exception, a plant's refit lock (a session advisory lock,
    :func:`try_refit_lock`), is released by :func:`refit_unlock`, and both end
    the connection's session (``terminate``) when they fail, so a lock is never
    handed on with a pooled connection.
    """


def utc(value, field):
    """A tz-aware time as a UTC datetime for a query parameter (None stays None)."""
    if value is None:
        return None
    ts = pd.Timestamp(value)
    if ts.tzinfo is None:
        raise ValueError(f"{field}: {value!r} is naive (no UTC offset); times must be tz-aware UTC")
    return ts.tz_convert("UTC").to_pydatetime()


def micros(series):
    """tz-aware timestamps -> int64 microseconds since the Unix epoch (UTC)."""
    return pd.DatetimeIndex(series).as_unit("us").asi8


def nullable(values):
    """Float array -> list with None where NaN (SQL NULL; a float NaN would be stored as NaN)."""
    out = values.astype(object)
    out[np.isnan(values)] = None
    return out


def records(*columns):
    """Rows for binary COPY from column arrays: one ``tolist`` per column, zipped."""
    return list(zip(*[c.tolist() for c in columns]))


PGCOPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + bytes(8)  # signature, flags, header extension length
PGCOPY_TRAILER = b"\xff\xff"
#: Binary ``timestamptz`` is int64 microseconds since 2000-01-01T00:00Z (PostgreSQL's epoch), this many after Unix's.
PG_EPOCH_US = 946_684_800_000_000


def binary_copy(columns):
    """PostgreSQL binary COPY payload of non-NULL columns, built in numpy (no Python row objects).

    Each tuple is a big-endian int16 field count followed by, per field, an
    int32 byte length and the big-endian value (PostgreSQL "COPY ... FORMAT
    binary" file format). The tuples are the rows of ONE 2-D byte array
    between the header and the trailer of ONE buffer (no further copy of a
    payload of tens of MB: asyncpg's ``copy_to_table`` sends a buffer as it
    is): the constant bytes (field count, lengths) are one broadcast of a
    template tuple, each column one block copy of its big-endian bytes (a
    structured array's field-by-field assignment took ~2x as long).

    Parameters
    ----------
    columns : list of (name, ndarray, dtype)
        dtype ``'>i8'`` (bigint), ``'>i4'`` (int) or ``'>f8'`` (float8); no NaN-as-NULL.

    Returns
    -------
    memoryview
        Of bytes (``bytes(payload)`` for a copy).
    """
    n = len(columns[0][1])
    template, offsets = bytearray(np.array(len(columns), ">i2").tobytes()), []
    for _, _, dtype in columns:
        width = np.dtype(dtype).itemsize
        template += np.array(width, ">i4").tobytes()
        offsets.append((len(template), width))
        template += bytes(width)
    size, head, tail = len(template), len(PGCOPY_HEADER), len(PGCOPY_TRAILER)
    buffer = np.empty(head + n * size + tail, dtype=np.uint8)
    buffer[:head] = np.frombuffer(PGCOPY_HEADER, dtype=np.uint8)
    buffer[head + n * size:] = np.frombuffer(PGCOPY_TRAILER, dtype=np.uint8)
    tuples = buffer[head:head + n * size].reshape(n, size)
    tuples[:] = np.frombuffer(bytes(template), dtype=np.uint8)
    for (_, values, dtype), (offset, width) in zip(columns, offsets):
        tuples[:, offset:offset + width] = np.asarray(values).astype(dtype).view(np.uint8).reshape(n, width)
    return memoryview(buffer)


def frame(rows, columns, times=(), floats=(), ints=(), bools=()):
    """DataFrame of query rows; ``times`` UTC tz-aware, ``floats`` NULL -> NaN, ``ints`` int64, ``bools`` bool.

    Built from one array per column in one DataFrame call (a one-row read, the
    plants of a small request, costs a fraction of a millisecond; the columns
    are the dict's, in order: a ``columns=`` argument would index them again).
    """
    values = list(zip(*[tuple(r) for r in rows])) or [()] * len(columns)
    data = {}
    for c, v in zip(columns, values):
        if c in times:
            data[c] = pd.to_datetime(list(v), utc=True).astype("datetime64[us, UTC]")
        elif c in floats:
            data[c] = np.array(v, dtype="float64")  # None (NULL) -> NaN
        elif c in ints:
            data[c] = np.array(v, dtype="int64")
        elif c in bools:
            data[c] = np.array(v, dtype=bool)
        else:  # text: inferred as the DataFrame constructor does (an empty column: object)
            data[c] = list(v) if len(v) else np.array([], dtype=object)
    return pd.DataFrame(data) if len(data) == len(columns) else pd.DataFrame(data, columns=list(columns))


def to_json(value):
    """JSON text of a dict holding numpy scalars (task fields)."""
    return json.dumps(value, default=lambda o: o.item() if isinstance(o, np.generic) else str(o))


async def copy_upsert(conn, staging, columns, rows, insert, *args):
    """COPY ``rows`` into a temporary table dropped at commit, then run ``insert`` (caller's transaction).

    Returns
    -------
    int
        Rows copied (all stored once ``insert`` succeeds: new, replaced or identical).
    """
    await conn.execute(f"CREATE TEMP TABLE {staging} ({columns}) ON COMMIT DROP")
    await conn.copy_records_to_table(staging, records=rows)
    await conn.execute(insert, *args)
    return len(rows)


def upsert_set(table, columns):
    """``SET`` clause of an upsert that leaves an identical stored row untouched (no dead tuple)."""
    return (f"SET {', '.join(f'{c} = EXCLUDED.{c}' for c in columns)} "
            f"WHERE ({', '.join(f'{table}.{c}' for c in columns)}) IS DISTINCT FROM "
            f"({', '.join(f'EXCLUDED.{c}' for c in columns)})")


def unknown_location(exc):
    """``LookupError`` (an unknown id) for a foreign-key violation on location_id."""
    return validation.field_error("location_id", f"not a known location ({exc.detail or exc})", LookupError,
                                  code="unknown_location")


# --- locations ------------------------------------------------------------------------------

async def upsert_locations(db, df, planes=None, horizon=None, *, tenant_id=None):
    """Create or update plants by ``name`` (the natural key within a tenant), with their planes and horizon.

    ONE transaction. The configuration of every location of ``df`` is
    replaced whole: its stored plane and horizon rows are those given here
    (none given: one plane from its own columns, a free horizon).

    Parameters
    ----------
    db : asyncpg.Connection or asyncpg.Pool
    df : DataFrame
        Locations frame (ARCHITECTURE "locations"); ``location_id`` ignored.
        A location with planes may leave ``capacity_dc_kw``, ``tilt``,
        ``azimuth``, ``tracking``, ``axis_azimuth``, ``max_angle``, ``gcr``
        empty: they are derived from its planes (:func:`engine.planes.summarise`).
    planes : DataFrame, optional
        Planes frame keyed by ``name`` (ARCHITECTURE "planes").
    horizon : DataFrame, optional
        Horizon frame keyed by ``name`` (ARCHITECTURE "horizon").
    tenant_id : str, optional
        The tenant owning the plants; None: the default tenant (CLI, admin).
        A name stored by another tenant is another plant.

    Returns
    -------
    DataFrame
        The stored rows, with ``location_id``, in the order of ``df``.

    Raises
    ------
    ValueError
        Bad locations, planes or horizon (:mod:`engine.validation`), or plane
        / horizon rows of a location not in ``df``.
    """
    df, planes, horizon = checked_plants(df, planes, horizon, time_zones=await time_zones(db))
    return await write_plants(db, df, planes, horizon, tenant_id=tenant_id)


async def time_zones(db):
    """Names of the time zones the database knows (``pg_timezone_names``): those a plant's ``timezone`` may be.

    The queries in a plant's local time (:func:`read_energy`, :func:`refit_counts`) need its zone in the
    database, which may lack aliases Python knows (PostgreSQL on Debian trixie: no ``US/Eastern``).
    """
    return frozenset(r["name"] for r in await db.fetch("SELECT name FROM pg_timezone_names"))


def checked_plants(df, planes=None, horizon=None, model_ids=None, time_zones=None):
    """Check plants with their planes and horizon and derive the plane summary (CPU work, no I/O).

    Parameters
    ----------
    df, planes, horizon : DataFrame
        As :func:`upsert_locations` (planes/horizon None: none).
    model_ids : sequence of str, optional
        Model ids a location may name (None: not checked).
    time_zones : collection of str, optional
        Time zones a location may name besides being IANA ones (:func:`time_zones`; None: not checked).

    Returns
    -------
    tuple of DataFrame
        ``(locations, planes, horizon)`` ready for :func:`write_plants`:
        the summary columns of multi-plane locations filled
        (:func:`engine.planes.summarise`).

    Raises
    ------
    ValueError
        As :func:`upsert_locations`; the exception's ``field`` is
        ``planes.<column>``, ``horizon.<column>`` or a location column and
        its ``row`` the row of that frame.
    """
    planes = empty_planes("name") if planes is None else planes
    horizon = pd.DataFrame({"name": [], "azimuth": [], "elevation": []}) if horizon is None else horizon
    named = validation.labels(df, "name")
    validation.unique_keys("name", {"name": named}, ("name",), named)  # planes/horizon rows are keyed by it
    validation.validate_planes(planes, key="name")
    validation.validate_horizon(horizon, key="name")
    names = df["name"].astype(str).to_numpy()
    for rows, what in ((planes, "planes"), (horizon, "horizon")):
        given = rows["name"].astype(str).to_numpy()
        validation.reject(f"{what}.name", pd.Index(names).get_indexer(given) < 0, "is not a location of this write",
                          given, "invalid_value")  # hashed lookup: numpy.isin on object arrays is quadratic
    df = summarise(df, planes, key="name")
    validation.validate_locations(df, model_ids, time_zones)
    return df, planes, horizon


async def write_plants(db, df, planes, horizon, *, tenant_id=None):
    """Store plants checked by :func:`checked_plants` (one transaction; see :func:`upsert_locations`)."""
    names = df["name"].astype(str).to_numpy()
    cols = validation.LOCATION_COLUMNS
    text = {"name", "timezone", "tracking", "model_id"}
    args = [df[c].astype(str).tolist() if c in text else
            (nullable(df[c].to_numpy("float64")) if c == "export_limit_kw" else df[c].to_numpy("float64")).tolist()
            for c in cols]
    types = ["text" if c in text else "float8" for c in cols]
    async with connection(db) as conn, conn.transaction():
        rows = await conn.fetch(f"""
            INSERT INTO locations (tenant_id, {", ".join(cols)})
            SELECT ${len(cols) + 1}::text, * FROM unnest({", ".join(f"${i + 1}::{t}[]" for i, t in enumerate(types))})
            ON CONFLICT (tenant_id, name) DO UPDATE
            SET {", ".join(f"{c} = EXCLUDED.{c}" for c in cols if c != "name")}, updated_at = now()
            RETURNING {", ".join(LOCATION_COLUMNS)}""", *args, tenant_id or keys.DEFAULT_TENANT)
        saved = location_frame(rows).set_index("name", drop=False)
        ids = saved["location_id"]
        await replace_planes(conn, ids, planes)
        await replace_horizons(conn, ids, horizon)
    return saved.loc[names.tolist()].reset_index(drop=True)


async def write_plants_within(db, df, planes, horizon, most, *, tenant_id=None):
    """:func:`write_plants` unless the tenant would then have more than ``most`` plants (one transaction).

    Updating stored plants (by name) is always allowed; only new names count.
    The tenant's row is locked (``FOR NO KEY UPDATE``) before its plants are
    counted, so concurrent writes of one tenant are counted one after the
    other and together never pass ``most``; other tenants' writes do not
    wait, nor do inserts that only reference the tenant (its tasks, keys).

    Returns
    -------
    tuple
        (stored rows as :func:`write_plants`, None), or (None, (plants stored,
        new plants of ``df``)) when they would exceed ``most``: nothing written.
    """
    tenant_id = tenant_id or keys.DEFAULT_TENANT
    async with connection(db) as conn, conn.transaction():
        await conn.execute("SELECT 1 FROM tenants WHERE tenant_id = $1 FOR NO KEY UPDATE", tenant_id)
        stored, new = await conn.fetchrow("""
            SELECT (SELECT count(*) FROM locations WHERE tenant_id = $1),
                   (SELECT count(*) FROM unnest($2::text[]) AS n (name)
                    WHERE NOT EXISTS (SELECT 1 FROM locations l WHERE l.tenant_id = $1 AND l.name = n.name))""",
            tenant_id, df["name"].astype(str).tolist())
        if new and stored + new > most:
            return None, (stored, new)
        return await write_plants(conn, df, planes, horizon, tenant_id=tenant_id), None


async def replace_planes(conn, ids, planes):
    """Delete the plane rows of the locations ``ids`` (name -> id) and insert ``planes`` (keyed by name)."""
    await conn.execute("DELETE FROM location_planes WHERE location_id = ANY($1::bigint[])", ids.tolist())
    if not len(planes):
        return
    floats = ("tilt", "azimuth", "capacity_dc_kw", "axis_azimuth", "max_angle", "gcr", *validation.PLANE_INHERITED)
    args = [ids.loc[planes["name"].astype(str)].to_numpy("int64").tolist(), planes["plane"].to_numpy("int64").tolist(),
            *[(nullable(planes[c].to_numpy("float64")) if c in validation.PLANE_INHERITED
               else planes[c].to_numpy("float64")).tolist() for c in floats],
            planes["tracking"].astype(str).tolist(), planes["backtrack"].to_numpy(bool).tolist()]
    types = ["bigint", "smallint", *["float8"] * len(floats), "text", "boolean"]
    await conn.execute(f"""
        INSERT INTO location_planes (location_id, plane, {", ".join(floats)}, tracking, backtrack)
        SELECT * FROM unnest({", ".join(f"${i + 1}::{t}[]" for i, t in enumerate(types))})""", *args)


async def replace_horizons(conn, ids, horizon):
    """Delete the horizon rows of the locations ``ids`` (name -> id) and insert ``horizon`` (keyed by name)."""
    await conn.execute("DELETE FROM location_horizons WHERE location_id = ANY($1::bigint[])", ids.tolist())
    if not len(horizon):
        return
    rows = records(ids.loc[horizon["name"].astype(str)].to_numpy("int64"), horizon["azimuth"].to_numpy("float64"),
                   horizon["elevation"].to_numpy("float64"))
    await conn.copy_records_to_table("location_horizons", records=rows,
                                     columns=["location_id", "azimuth", "elevation"])


def location_frame(rows):
    return frame(rows, LOCATION_COLUMNS, ints=("location_id",),
                 floats=[c for c in LOCATION_COLUMNS
                         if c not in ("location_id", "name", "timezone", "tracking", "model_id")])


async def fetch_locations(db, ids=None, *, tenant_id=None):
    """Plants by id (all when ``ids`` is None), ordered by id; unknown ids are simply absent.

    ``tenant_id`` given: only that tenant's plants (another tenant's ids are
    absent like unknown ones); None: every tenant's (CLI, admin).

    Returns
    -------
    DataFrame
        Locations frame with ``location_id``; ``export_limit_kw`` NaN = no limit.
    """
    ids = None if ids is None else [int(i) for i in ids]
    rows = await db.fetch(f"""
        SELECT {", ".join(LOCATION_COLUMNS)} FROM locations
        WHERE ($1::bigint[] IS NULL OR location_id = ANY($1::bigint[])) AND ($2::text IS NULL OR tenant_id = $2)
        ORDER BY location_id""", ids, tenant_id)
    return location_frame(rows)


#: Rows ``p`` of a per-location table restricted to given location ids ($1, NULL: all) of a tenant ($2, NULL: any).
OF_LOCATIONS = """JOIN locations l USING (location_id)
    WHERE ($1::bigint[] IS NULL OR l.location_id = ANY($1::bigint[])) AND ($2::text IS NULL OR l.tenant_id = $2)"""


def location_filter(ids, tenant_id):
    """Query arguments of :data:`OF_LOCATIONS`."""
    return [None if ids is None else [int(i) for i in ids], tenant_id]


# Each probe reads the first key of the table's primary key in its order, LIMIT 1: a correlated EXISTS may be
# planned as a sequential scan that stops at the plant's first row (cheap when the statistics say every plant has
# many rows, i.e. when few plants have them all), so it scans the whole table for each plant without any (measured:
# 20 plants with 730 calibration versions, 10,000 plants asked: 8 s; bench/bench_actuals_history.py).
PLANT_EXTRAS = """
        SELECT array_agg(id ORDER BY k) FILTER (WHERE p.plane IS NOT NULL) AS planes,
               array_agg(id ORDER BY k) FILTER (WHERE h.azimuth IS NOT NULL) AS horizon,
               array_agg(id ORDER BY k) FILTER (WHERE c.version IS NOT NULL) AS calibrations,
               array_agg(id ORDER BY k) FILTER (WHERE l.actuals_since IS NOT NULL) AS actuals
        FROM unnest($1::bigint[]) WITH ORDINALITY AS ids(id, k)
        LEFT JOIN LATERAL (SELECT p.plane FROM location_planes p WHERE p.location_id = ids.id
                           ORDER BY p.location_id, p.plane LIMIT 1) p ON true
        LEFT JOIN LATERAL (SELECT h.azimuth FROM location_horizons h WHERE h.location_id = ids.id
                           ORDER BY h.location_id, h.azimuth LIMIT 1) h ON true
        LEFT JOIN LATERAL (SELECT c.version FROM plant_calibrations c WHERE c.location_id = ids.id
                           ORDER BY c.location_id, c.version LIMIT 1) c ON true
        LEFT JOIN locations l ON l.location_id = ids.id"""


async def plant_extras(db, location_ids):
    """Which of the locations have stored planes, a stored horizon, a calibration, actuals: one statement.

    A forecast pass reads planes, horizons and calibrations only of the
    plants that have them (most have none: one statement instead of three
    round trips for a single plant), and checks the refit policy only of
    plants with actuals (a plant without any cannot be due: its first
    actuals start a check of their own, ``Forecaster.actuals_arrived``).

    Parameters
    ----------
    db : asyncpg.Connection or asyncpg.Pool
    location_ids : sequence of int

    Returns
    -------
    dict
        ``planes``, ``horizon``, ``calibrations``, ``actuals``: list of int,
        the location ids (in the order given) with rows in
        ``location_planes``, ``location_horizons``, ``plant_calibrations``,
        ``actuals`` (the last: ``locations.actuals_since``, set by the plant's first
        :func:`write_actuals`, not a probe of each chunk of the actuals hypertable).
    """
    row = await db.fetchrow(PLANT_EXTRAS, [int(i) for i in location_ids])
    return {name: list(row[name] or []) for name in ("planes", "horizon", "calibrations", "actuals")}


async def fetch_planes(db, ids=None, *, tenant_id=None):
    """Stored plane rows of locations (all when ``ids`` is None): one COPY query, ordered by location, plane.

    Locations without rows are one plane from their own columns
    (:func:`engine.planes.plane_arrays`). ``tenant_id`` as :func:`fetch_locations`.

    Returns
    -------
    DataFrame
        Planes frame keyed by ``location_id`` (ARCHITECTURE "planes"); NaN in
        the inherited columns = the location's value.
    """
    columns = ("location_id", *validation.PLANE_COLUMNS)
    select = ", ".join("p.backtrack::int" if c == "backtrack" else f"p.{c}" for c in columns)
    planes = await copy_query_frame(None if ids is not None and not len(ids) else db,  # no plant: no query
                                    f"SELECT {select} FROM location_planes p {OF_LOCATIONS} ORDER BY 1, 2",
                                    location_filter(ids, tenant_id), columns,
                                    ints=("location_id", "plane", "backtrack"), texts=("tracking",))
    return planes.assign(backtrack=planes["backtrack"].astype(bool))


async def fetch_horizons(db, ids=None, *, tenant_id=None):
    """Stored horizon profiles of locations (all when ``ids`` is None): one COPY query.

    ``tenant_id`` as :func:`fetch_locations`.

    Returns
    -------
    DataFrame
        Horizon frame keyed by ``location_id`` (ARCHITECTURE "horizon"),
        ordered by location, azimuth; locations without rows have a free horizon.
    """
    columns = ("location_id", *validation.HORIZON_COLUMNS)
    query = f"SELECT {', '.join(f'p.{c}' for c in columns)} FROM location_horizons p {OF_LOCATIONS} ORDER BY 1, 2"
    return await copy_query_frame(None if ids is not None and not len(ids) else db,  # no plant: no query
                                  query, location_filter(ids, tenant_id), columns, ints=("location_id",))


async def fetch_plants(db, ids=None, *, tenant_id=None):
    """Everything the feature path needs about plants: three set-based queries, none per plant.

    Returns
    -------
    dict
        ``locations`` (:func:`fetch_locations`), ``planes``
        (:func:`fetch_planes`), ``horizon`` (:func:`fetch_horizons`) of the
        same locations, ready for ``features.feature_frame(locations, weather,
        times, planes=..., horizon=...)``.
    """
    async with connection(db) as conn:
        return {"locations": await fetch_locations(conn, ids, tenant_id=tenant_id),
                "planes": await fetch_planes(conn, ids, tenant_id=tenant_id),
                "horizon": await fetch_horizons(conn, ids, tenant_id=tenant_id)}


async def location_page(db, limit, after=None, *, tenant_id=None):
    """One page of plants in ``location_id`` order (keyset pagination), with their planes and horizon.

    Parameters
    ----------
    limit : int
        Plants in the page, at least 1 (the caller bounds it).
    after : int, optional
        Only plants whose id is greater (the previous page's last id); None: from the first.
    tenant_id : str, optional
        As :func:`fetch_locations`: only that tenant's plants.

    Returns
    -------
    tuple
        (``fetch_plants`` dict of the page, the page's last id when more plants
        follow it, else None). One ids query (an index range scan on
        ``(tenant_id, location_id)``) and :func:`fetch_plants` of those ids.
    """
    async with connection(db) as conn:
        of_tenant = "" if tenant_id is None else "AND tenant_id = $3"  # spelled out: the index serves it
        ids = [r[0] for r in await conn.fetch(f"""
            SELECT location_id FROM locations WHERE location_id > $1 {of_tenant} ORDER BY location_id LIMIT $2""",
            int(after or 0), int(limit) + 1, *([] if tenant_id is None else [tenant_id]))]
        page = ids[:limit]
        return await fetch_plants(conn, page, tenant_id=tenant_id), (page[-1] if len(ids) > limit else None)


# --- weather and actuals --------------------------------------------------------------------

async def write_weather(db, df, *, tenant_id=None):
    """Store weather issues (COPY + one upsert on location, valid_time, issue_time, source).

    Rows are upserted in key order, so concurrent writers of the same keys
    lock them in the same order and never deadlock (whatever their row order).

    A row with the key of a stored row replaces it (left untouched when
    identical); other issues are never touched (a later issue does not
    overwrite an earlier one).

    Parameters
    ----------
    db : asyncpg.Connection or asyncpg.Pool
    df : DataFrame
        Weather frame (ARCHITECTURE "weather"); extra columns are ignored.
    tenant_id : str, optional
        Refuse locations of other tenants (like unknown ones); None: any.

    Returns
    -------
    int
        Rows stored (new, replaced or already stored identically).

    Raises
    ------
    ValueError
        Bad values (see :func:`engine.validation.validate_weather`) or an
        unknown location (or another tenant's).
    """
    validation.validate_weather(df, None)
    num = {c: df[c].to_numpy("float64") for c in ("ghi", "dni", "dhi", "temp_air", "wind_speed", "cloud_cover")}
    rows = records(df["location_id"].to_numpy("int64"), micros(df["valid_time"]), micros(df["issue_time"]),
                   df["source"].to_numpy(object), num["ghi"], nullable(num["dni"]), nullable(num["dhi"]),
                   num["temp_air"], nullable(num["wind_speed"]), nullable(num["cloud_cover"]),
                   df["period_minutes"].to_numpy("int64"))
    values = ("ghi", "dni", "dhi", "temp_air", "wind_speed", "cloud_cover", "period_minutes")
    async with connection(db) as conn, conn.transaction():
        await refuse_other_tenants(conn, df["location_id"], tenant_id)
        try:
            return await copy_upsert(
                conn, "weather_staging",
                "location_id bigint, valid_us bigint, issue_us bigint, source text, ghi float8, dni float8, "
                "dhi float8, temp_air float8, wind_speed float8, cloud_cover float8, period_minutes int",
                rows, f"""
                INSERT INTO weather (location_id, valid_time, issue_time, source, {", ".join(values)})
                SELECT location_id, {FROM_MICROS.format("valid_us")}, {FROM_MICROS.format("issue_us")}, source,
                       {", ".join(values)}
                FROM weather_staging
                ORDER BY location_id, valid_us, issue_us, source  -- every writer locks rows in key order: no deadlock
                ON CONFLICT (location_id, valid_time, issue_time, source) DO UPDATE {upsert_set("weather", values)}""")
        except asyncpg.ForeignKeyViolationError as exc:
            raise unknown_location(exc) from None


async def write_actuals(db, df, *, tenant_id=None):
    """Store measured power (COPY + one upsert on location_id, time; a re-sent value replaces).

    Upserted in key order: concurrent writers of the same keys never deadlock. A
    plant's first actuals set its ``locations.actuals_since`` (:func:`plant_extras`).

    Parameters
    ----------
    db : asyncpg.Connection or asyncpg.Pool
    df : DataFrame
        Columns ``location_id``, ``time`` (UTC, end of interval), ``power_kw`` (kW), optional
        ``period_minutes`` (``validation.ACTUALS_DEFAULTS``: 0, instantaneous).
    tenant_id : str, optional
        Refuse locations of other tenants (like unknown ones); None: any.

    Returns
    -------
    int
        Rows stored (new, replaced or already stored identically).
    """
    validation.validate_actuals(df, None)
    period = (df["period_minutes"].to_numpy("int64") if "period_minutes" in df
              else np.full(len(df), validation.ACTUALS_DEFAULTS["period_minutes"], dtype="int64"))
    rows = records(df["location_id"].to_numpy("int64"), micros(df["time"]), df["power_kw"].to_numpy("float64"),
                   period)
    async with connection(db) as conn, conn.transaction():
        await refuse_other_tenants(conn, df["location_id"], tenant_id)
        try:
            stored = await copy_upsert(
                conn, "actuals_staging", "location_id bigint, time_us bigint, power_kw float8, period_minutes int4",
                rows, f"""
                INSERT INTO actuals (location_id, time, power_kw, period_minutes)
                SELECT location_id, {FROM_MICROS.format("time_us")}, power_kw, period_minutes FROM actuals_staging
                ORDER BY location_id, time_us  -- every writer locks rows in key order: no deadlock
                ON CONFLICT (location_id, time) DO UPDATE {upsert_set("actuals", ["power_kw", "period_minutes"])}""")
        except asyncpg.ForeignKeyViolationError as exc:
            raise unknown_location(exc) from None
        # a plant's first actuals mark it (plant_extras); rows already marked are neither written nor locked
        await conn.execute("UPDATE locations SET actuals_since = now() WHERE location_id = ANY($1::bigint[]) "
                           "AND actuals_since IS NULL", np.unique(df["location_id"].to_numpy("int64")).tolist())
        return stored


async def read_weather(db, location_ids, start, end, issued_before, sources=None, columns=WEATHER_COLUMNS):
    """Weather of many locations as one frame, as known at ``issued_before``.

    For each location and valid_time the row of the latest issue at or before
    ``issued_before`` (ties between sources: first source by name), among
    ``sources`` when given (e.g. one GEFS member).

    Parameters
    ----------
    db : asyncpg.Connection or asyncpg.Pool
    location_ids : sequence of int
    start, end : tz-aware Timestamp or None
        valid_time window, inclusive (None: open).
    issued_before : tz-aware Timestamp
        Issue time bound, inclusive.
    sources : sequence of str, optional
        Only these sources (default: all).
    columns : sequence of str, optional
        Columns of :data:`WEATHER_COLUMNS` to return, in this order (default:
        all). Without ``source`` (a forecast's read:
        ``engine.features.WEATHER_COLUMNS``) the rows come through binary COPY
        (:func:`copy_query_arrays`: no text formatted by the server or parsed
        here); with it, through CSV (:func:`copy_query_frame`). Same frame
        either way.

    Returns
    -------
    DataFrame
        Weather frame (ARCHITECTURE "weather"), sorted by location_id,
        valid_time; NaN where ``dni``/``dhi``/``wind_speed``/``cloud_cover``
        were not given.
    """
    unknown = [c for c in columns if c not in WEATHER_COLUMNS]
    if unknown:
        raise ValueError(f"columns: {unknown} are not weather columns {WEATHER_COLUMNS}")
    binary = "source" not in columns
    times, ints = ("valid_time", "issue_time"), ("location_id", "period_minutes")
    if binary:  # timestamptz as it is stored (binary: int64 us), NULL floats as NaN: every field fixed-width
        select = [c if c in times or c in ints else f"coalesce({c}, 'NaN'::float8)" for c in columns]
    else:
        select = [f"(extract(epoch FROM {c}) * 1000000)::bigint" if c in times else c for c in columns]
    query = f"""
        SELECT DISTINCT ON (weather.location_id, weather.valid_time) {", ".join(select)}
        FROM weather
        WHERE location_id = ANY($1::bigint[])
          AND valid_time >= coalesce($2::timestamptz, '-infinity') AND valid_time <= coalesce($3::timestamptz, 'infinity')
          AND issue_time <= $4::timestamptz
          AND ($5::text[] IS NULL OR source = ANY($5::text[]))
        ORDER BY weather.location_id, weather.valid_time, weather.issue_time DESC, weather.source"""
    args = ([int(i) for i in location_ids], utc(start, "start"), utc(end, "end"), utc(issued_before, "issued_before"),
            None if sources is None else [str(s) for s in sources])
    if binary:
        types = [">i8" if c in times or c == "location_id" else ">i4" if c == "period_minutes" else ">f8"
                 for c in columns]
        return await copy_query_arrays(db, query, args, list(zip(columns, types)), times=times)
    return await copy_query_frame(db, query, args, columns, times=times, ints=ints, texts=("source",))


async def copy_query_arrays(db, query, args, columns, times=()):
    """DataFrame of a query's rows read through binary COPY, decoded in numpy (:func:`binary_rows`).

    For many rows of fixed-width, non-NULL fields (a fleet's weather): the
    server formats no text and no Python object is made per value; the
    decoding runs in the default executor, off the event loop.

    Parameters
    ----------
    columns : list of (name, dtype)
        The query's columns in order: ``'>i8'`` (bigint, or ``timestamptz``
        for the names in ``times``), ``'>i4'`` (int) or ``'>f8'`` (float8).
    times : sequence of str
        ``timestamptz`` columns, returned tz-aware UTC (ns), as :func:`parse_csv` does.
    """
    buffer = io.BytesIO()
    async with connection(db) as conn:
        await conn.copy_from_query(query, *args, output=buffer, format="binary")
    return await asyncio.get_running_loop().run_in_executor(None, binary_frame, buffer.getbuffer(), columns, times)


def binary_frame(payload, columns, times=()):
    """DataFrame of a binary COPY payload of :func:`copy_query_arrays` (int64, float64; ``times`` tz-aware UTC)."""
    rows = binary_rows(payload, columns)
    data = {}
    for name, dtype in columns:
        if name in times:  # PostgreSQL epoch (2000-01-01) -> Unix epoch, as parse_csv's unit="us"
            data[name] = pd.to_datetime(rows[name].astype("int64") + PG_EPOCH_US, unit="us", utc=True)
        else:
            data[name] = rows[name].astype("float64" if dtype == ">f8" else "int64")
    return pd.DataFrame(data, columns=[name for name, _ in columns])


def binary_rows(payload, columns):
    """Tuples of a PostgreSQL binary COPY payload as one structured numpy array (the inverse of :func:`binary_copy`).

    Every field must be fixed-width and non-NULL (a NULL has length -1 and
    no value, so the tuples would not share one layout): checked, and a
    payload that does not fit the layout raises ``ValueError``.

    Parameters
    ----------
    payload : bytes-like
        The whole COPY output (header, tuples, trailer).
    columns : list of (name, dtype)
        Big-endian numpy dtypes of the fields, in order.

    Returns
    -------
    ndarray
        Structured, a view of ``payload`` (big-endian fields).
    """
    data = np.frombuffer(payload, dtype=np.uint8)
    signature = PGCOPY_HEADER[:11]
    if bytes(data[:11]) != signature:
        raise ValueError("not a PostgreSQL binary COPY payload (signature)")
    extension = int(data[15:19].view(">i4")[0])
    head, tail = 19 + extension, len(PGCOPY_TRAILER)
    layout = [("n_fields", ">i2")]
    for name, dtype in columns:
        layout += [(f"len_{name}", ">i4"), (name, dtype)]
    layout = np.dtype(layout)
    body = len(data) - head - tail
    if body < 0 or body % layout.itemsize or bytes(data[len(data) - tail:]) != PGCOPY_TRAILER:
        raise ValueError(f"binary COPY payload of {len(data)} bytes is not tuples of {layout.itemsize} bytes "
                         "(a NULL or variable-width field?)")
    rows = data[head:head + body].view(layout)
    if len(rows) and not (np.all(rows["n_fields"] == len(columns)) and all(
            np.all(rows[f"len_{name}"] == np.dtype(dtype).itemsize) for name, dtype in columns)):
        raise ValueError("binary COPY tuples do not match the layout (a NULL or variable-width field)")
    return rows


async def copy_query_frame(db, query, args, columns, times=(), ints=(), texts=()):
    """DataFrame of a query's rows read through COPY (CSV) and pandas' C parser.

    Many rows (a whole fleet's weather) come back without one Python object
    per value; the parsing runs in the default executor, off the event loop.
    ``times`` are selected as int64 microseconds since the epoch and returned
    tz-aware UTC, ``ints`` are int64, ``texts`` str, the rest float64 with
    empty fields (SQL NULL) as NaN. ``db`` None: the query is known to have
    no rows (the frame of no rows, no round trip).
    """
    buffer = io.BytesIO()
    if db is not None:
        async with connection(db) as conn:
            await conn.copy_from_query(query, *args, output=buffer, format="csv")
    if not buffer.getbuffer().nbytes:  # no rows (most plants have no stored planes, no horizon): nothing to parse
        return empty_frame(tuple(columns), tuple(times), tuple(ints), tuple(texts)).copy()
    buffer.seek(0)
    return await asyncio.get_running_loop().run_in_executor(None, parse_csv, buffer, columns, times, ints, texts)


@functools.lru_cache(maxsize=64)
def empty_frame(columns, times=(), ints=(), texts=()):
    """:func:`parse_csv` of no rows, kept per layout (pandas takes ~1 ms to parse nothing; callers get a copy)."""
    return parse_csv(io.BytesIO(b""), columns, times, ints, texts)


def parse_csv(buffer, columns, times=(), ints=(), texts=()):
    """CSV of :func:`copy_query_frame` -> typed DataFrame (pandas' C parser)."""
    dtypes = {c: ("str" if c in texts else "int64" if c in (*times, *ints) else "float64") for c in columns}
    df = pd.read_csv(buffer, names=list(columns), dtype=dtypes, keep_default_na=False,
                     na_values={c: [""] for c in columns if c not in texts})
    for c in times:
        df[c] = pd.to_datetime(df[c].to_numpy(), unit="us", utc=True)
    return df


# --- forecasts ------------------------------------------------------------------------------

def forecast_write_arrays(runs, forecast):
    """Checked arrays of a forecast write (CPU work of :func:`write_forecasts`, run in an executor).

    Returns
    -------
    tuple
        valid_us (forecast rows), run upsert arguments, run locations,
        issue_us (per run), the runs' order by location and each forecast
        row's position in that order.
    """
    valid_us = validation.validate_forecast(runs, forecast)
    ids = forecast["location_id"].to_numpy("int64")
    run_locations = runs["location_id"].to_numpy("int64")
    issue_us = micros(runs["issue_time"])
    uniq, counts = np.unique(ids, return_counts=True)
    run_args = [run_locations.tolist(), issue_us.tolist(), runs["model_id"].astype(str).tolist(),
                runs["model_version"].astype(str).tolist(), runs["forecast_type"].astype(str).tolist(),
                runs["resolution_minutes"].to_numpy("int64").tolist(), runs["horizon_hours"].to_numpy("int64").tolist(),
                counts[np.searchsorted(uniq, run_locations)].tolist(),
                [None if t is None or t != t else str(t) for t in runs["task_id"]],
                [to_json(t if isinstance(t, dict) else {}) for t in runs["timings"]],
                calibration_versions(runs),
                [to_json(f if isinstance(f, dict) else {}) for f in runs.get("input_flags", [{}] * len(runs))]]
    order = np.argsort(run_locations)
    row_run = np.searchsorted(run_locations[order], ids)  # forecast row -> position in sorted runs
    return valid_us, run_args, run_locations, issue_us, order, row_run


#: Columns of a forecasts COPY payload (:func:`forecast_values_payload`), in the table's names.
FORECAST_VALUE_COLUMNS = ("run_id", "location_id", "issue_time", "valid_time", *QUANTILE_COLUMNS, "horizon_minutes")


def forecast_values_payload(run_ids, issue_us, valid_us, forecast, rows=slice(None)):
    """Binary COPY payload of ``forecast`` rows ``rows`` in :data:`FORECAST_VALUE_COLUMNS` order.

    ``run_ids`` and ``issue_us`` (Unix microseconds) are per forecast row, as is
    ``valid_us``; timestamps are written as binary ``timestamptz`` (PostgreSQL
    epoch), so the payload goes into ``forecasts`` or a staging table of the
    same column types without conversion. CPU work: run it in an executor.
    """
    return binary_copy([
        ("run_id", run_ids[rows], ">i8"), ("location_id", forecast["location_id"].to_numpy("int64")[rows], ">i8"),
        ("issue_time", issue_us[rows] - PG_EPOCH_US, ">i8"), ("valid_time", valid_us[rows] - PG_EPOCH_US, ">i8"),
        *[(q, forecast[q].to_numpy("float64")[rows], ">f8") for q in QUANTILE_COLUMNS],
        ("horizon_minutes", forecast["horizon_minutes"].to_numpy("int64")[rows], ">i4")])


async def upsert_runs(conn, run_args):
    """Upsert of the runs of a forecast write (arguments of :func:`forecast_write_arrays`) on their natural key.

    Returns the records (location_id, run_id, inserted): ``inserted`` (``xmax = 0``) is true for a
    run this statement created, false for one that existed (its metadata replaced: ON CONFLICT DO
    UPDATE leaves the updating transaction's id in xmax of the new row version; PostgreSQL's usual
    idiom, checked by tests/storage/test_store.py). Were an existing run ever reported inserted, the
    direct COPY of its rows would hit the primary key (run_id, valid_time) and roll the write back:
    an error, never a half-written run.
    Raises LookupError for an unknown location.
    """
    try:
        return await conn.fetch(f"""
            INSERT INTO forecast_runs (location_id, issue_time, model_id, model_version, forecast_type,
                                       resolution_minutes, horizon_hours, n_steps, task_id, timings,
                                       calibration_version, input_flags)
            SELECT location_id, {FROM_MICROS.format("issue_us")}, model_id, model_version, forecast_type,
                   resolution_minutes, horizon_hours, n_steps, task_id::uuid, timings::jsonb, calibration_version,
                   input_flags::jsonb
            FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::int[], $7::int[],
                        $8::int[], $9::text[], $10::text[], $11::int[], $12::text[])
                 AS r(location_id, issue_us, model_id, model_version, forecast_type, resolution_minutes,
                      horizon_hours, n_steps, task_id, timings, calibration_version, input_flags)
            ON CONFLICT (location_id, issue_time, forecast_type, model_version, resolution_minutes, horizon_hours,
                         task_id)
            DO UPDATE SET model_id = EXCLUDED.model_id, n_steps = EXCLUDED.n_steps, timings = EXCLUDED.timings,
                          calibration_version = EXCLUDED.calibration_version, input_flags = EXCLUDED.input_flags,
                          written_at = now()
            RETURNING location_id, run_id, xmax = 0 AS inserted""", *run_args)
    except asyncpg.ForeignKeyViolationError as exc:
        raise unknown_location(exc) from None


def forecast_write_payloads(stored, run_locations, issue_us, order, row_run, valid_us, forecast):
    """COPY payloads of a forecast write: rows of runs inserted by this write, rows of re-written runs, and
    the number of the former.

    ``stored`` are the run upsert's (location_id, run_id, inserted) records; a
    payload is None when it has no rows. CPU work: run it in an executor.
    """
    run_ids = {r["location_id"]: r["run_id"] for r in stored}
    inserted = {r["location_id"]: r["inserted"] for r in stored}
    located = run_locations[order].tolist()
    row_run_ids = np.array([run_ids[i] for i in located], dtype="int64")[row_run]
    row_new = np.array([inserted[i] for i in located], dtype=bool)[row_run]
    row_issue = issue_us[order][row_run]
    n_new = int(row_new.sum())
    if n_new == len(row_new):
        return forecast_values_payload(row_run_ids, row_issue, valid_us, forecast), None, n_new
    if n_new == 0:
        return None, forecast_values_payload(row_run_ids, row_issue, valid_us, forecast), n_new
    return (forecast_values_payload(row_run_ids, row_issue, valid_us, forecast, row_new),
            forecast_values_payload(row_run_ids, row_issue, valid_us, forecast, ~row_new), n_new)


async def upsert_forecast_values(conn, payload):
    """Rows of runs that already had values: binary COPY into a staging table dropped at commit, then one
    ``INSERT ... SELECT ... ON CONFLICT (run_id, valid_time) DO UPDATE`` (identical values left untouched).
    Inside the caller's transaction."""
    await conn.execute(
        "CREATE TEMP TABLE forecast_staging (run_id bigint, location_id bigint, issue_time timestamptz, "
        "valid_time timestamptz, p10 float8, p25 float8, p50 float8, p75 float8, p90 float8, horizon_minutes int) "
        "ON COMMIT DROP")
    await conn.copy_to_table("forecast_staging", source=payload, format="binary")
    columns = ", ".join(FORECAST_VALUE_COLUMNS)
    await conn.execute(f"""
        INSERT INTO forecasts ({columns}) SELECT {columns} FROM forecast_staging
        ON CONFLICT (run_id, valid_time) DO UPDATE {upsert_set("forecasts", (*QUANTILE_COLUMNS, "horizon_minutes"))}""")


def forecast_parts(runs, forecast, parts):
    """``(runs, forecast)`` of a forecast write split into at most ``parts`` writes of whole plants.

    Consecutive runs go together (``numpy.array_split`` of the runs' rows),
    each forecast row with its plant's run; the parts are written concurrently,
    each by :func:`write_forecasts` (one transaction each: a run is never
    stored without all its values). A forecast row whose plant has no run row
    stays in some part, whose write refuses it (``validate_forecast``). CPU
    work: run it in an executor.

    Returns
    -------
    list of (DataFrame, DataFrame)
        Runs and forecast rows of each part, in run order; ``[(runs, forecast)]`` for one part.
    """
    parts = max(1, min(int(parts), len(runs)))
    if parts == 1:
        return [(runs, forecast)]
    run_locations = runs["location_id"].to_numpy("int64")
    order = np.argsort(run_locations, kind="stable")
    part_of = np.empty(len(runs), dtype="int64")
    for k, rows in enumerate(np.array_split(np.arange(len(runs)), parts)):
        part_of[rows] = k
    found = np.searchsorted(run_locations[order], forecast["location_id"].to_numpy("int64"))
    row_part = part_of[order][np.minimum(found, len(runs) - 1)]
    return [(runs.iloc[rows], forecast[row_part == k])
            for k, rows in enumerate(np.array_split(np.arange(len(runs)), parts))]


async def write_forecasts(db, runs, forecast, timings=None):
    """Store one forecast run per location with its values, in ONE transaction.

    The runs are upserted on their natural key (location_id, issue_time,
    forecast_type, model_version, resolution_minutes, horizon_hours,
    task_id): a new issue, model version or task (a re-generation of the
    same issue time) is a new run, never an overwrite of an older one,
    while the same task re-writing a plant (a retried or resumed batch)
    replaces its values (idempotent; identical values are left untouched).
    The values of the runs this write INSERTED (``xmax = 0`` of the upsert:
    a fresh identity, so no stored row can share their (run_id, valid_time))
    go through one binary COPY straight into ``forecasts``; those of runs
    that already existed (a re-write, or a retry after a committed attempt)
    through :func:`upsert_forecast_values`. A retried batch thus writes the
    same run ids or none, and any failure rolls back everything: no run is
    left without its values, none with part of them.

    Parameters
    ----------
    db : asyncpg.Connection or asyncpg.Pool
    runs : DataFrame
        ARCHITECTURE "runs", one row per location of ``forecast``.
    forecast : DataFrame
        ARCHITECTURE "forecast", p10..p90 in kW.
    timings : dict, optional
        Filled with seconds per stage: ``validate_s`` (checks, run
        arrays), ``runs_s`` (run upsert), ``records_s`` (COPY payloads),
        ``copy_s`` (COPY of the new runs' rows), ``upsert_s`` (staging +
        upsert of re-written runs' rows), ``commit_s``; and the row counts
        ``new_rows``, ``rewritten_rows``.

    Returns
    -------
    dict
        location_id -> run_id.

    Raises
    ------
    ValueError
        Bad frames (:func:`engine.validation.validate_forecast`) or an unknown location.
    """
    timings = {} if timings is None else timings
    t0 = time.perf_counter()
    loop = asyncio.get_running_loop()
    valid_us, run_args, run_locations, issue_us, order, row_run = await loop.run_in_executor(
        None, forecast_write_arrays, runs, forecast)
    t1 = time.perf_counter()
    async with connection(db) as conn:
        async with conn.transaction():
            stored = await upsert_runs(conn, run_args)
            t2 = time.perf_counter()
            new, rewritten, n_new = await loop.run_in_executor(
                None, forecast_write_payloads, stored, run_locations, issue_us, order, row_run, valid_us, forecast)
            t3 = time.perf_counter()
            if new is not None:
                await conn.copy_to_table("forecasts", source=new, columns=list(FORECAST_VALUE_COLUMNS),
                                         format="binary")
            t4 = time.perf_counter()
            if rewritten is not None:
                await upsert_forecast_values(conn, rewritten)
            t5 = time.perf_counter()
    t6 = time.perf_counter()
    timings.update(validate_s=t1 - t0, runs_s=t2 - t1, records_s=t3 - t2, copy_s=t4 - t3, upsert_s=t5 - t4,
                   commit_s=t6 - t5, new_rows=n_new, rewritten_rows=len(forecast) - n_new)
    return {int(r["location_id"]): int(r["run_id"]) for r in stored}


def run_dict(row):
    """A forecast_runs row as a JSON-ready dict (times stay datetimes)."""
    run = dict(row)
    run["task_id"] = None if run["task_id"] is None else str(run["task_id"])
    run["timings"] = json.loads(run["timings"])
    run["input_flags"] = json.loads(run["input_flags"])
    return run


async def read_run(db, location_id, start, end, run_id=None, *, forecast_type=None, tenant_id=None):
    """One stored run of a location (its ``forecast_runs`` row alone, no values).

    Parameters
    ----------
    db : asyncpg.Connection or asyncpg.Pool
    location_id : int
    start, end : tz-aware Timestamp or None
        valid_time window, inclusive (None: open).
    run_id : int, optional
        The run to read; default the latest issued run of the location whose
        horizon (issue_time, issue_time + horizon_hours] overlaps the window
        (ties, e.g. a re-generated issue time: the latest written run).
    forecast_type : str, optional
        Only runs of this type (``validation.FORECAST_TYPES``); None: any.
    tenant_id : str, optional
        Another tenant's location reads like one without runs; None: any.

    Returns
    -------
    dict
        run_id, location_id, issue_time, model_id, model_version,
        forecast_type, resolution_minutes, horizon_hours, n_steps, status,
        task_id, timings, written_at.

    Raises
    ------
    LookupError
        No such run for this location.
    """
    start, end = utc(start, "start"), utc(end, "end")
    fields = ", ".join(RUN_FIELDS)
    if run_id is None:
        row = await db.fetchrow(f"""
            SELECT {fields} FROM forecast_runs
            WHERE location_id = $1 AND {TENANT_OWNS.format("$4")}
              AND issue_time + horizon_hours * interval '1 hour' >= coalesce($2::timestamptz, '-infinity')
              AND issue_time < coalesce($3::timestamptz, 'infinity')
              AND ($5::text IS NULL OR forecast_type = $5)
            ORDER BY issue_time DESC, run_id DESC LIMIT 1""", int(location_id), start, end, tenant_id, forecast_type)
    else:
        row = await db.fetchrow(f"""
            SELECT {fields} FROM forecast_runs WHERE run_id = $1 AND location_id = $2 AND {TENANT_OWNS.format("$3")}
              AND ($4::text IS NULL OR forecast_type = $4)""", int(run_id), int(location_id), tenant_id, forecast_type)
    if row is None:
        of_type = "" if forecast_type is None else f" of forecast_type {forecast_type}"
        raise LookupError(f"run_id {run_id} of location_id {location_id}{of_type} not found" if run_id is not None
                          else f"location_id {location_id}: no forecast run{of_type} overlaps the window")
    return run_dict(row)


async def read_forecast(db, location_id, start, end, run_id=None, *, forecast_type=None, tenant_id=None):
    """One stored run of a location (:func:`read_run`) and its values over a window.

    Parameters
    ----------
    db : asyncpg.Connection or asyncpg.Pool
    location_id : int
    start, end : tz-aware Timestamp or None
        valid_time window, inclusive (None: open).
    run_id : int, optional
    forecast_type : str, optional
    tenant_id : str, optional
        The run's selection: :func:`read_run`.

    Returns
    -------
    run : dict
        :func:`read_run`.
    forecast : DataFrame
        Forecast frame (kW) of the window, sorted by valid_time.

    Raises
    ------
    LookupError
        No such run for this location.
    """
    run = await read_run(db, location_id, start, end, run_id, forecast_type=forecast_type, tenant_id=tenant_id)
    start, end = utc(start, "start"), utc(end, "end")
    rows = await db.fetch(f"""
        SELECT location_id, valid_time, {", ".join(QUANTILE_COLUMNS)}, horizon_minutes FROM forecasts
        WHERE run_id = $1 AND valid_time >= coalesce($2::timestamptz, '-infinity')
          AND valid_time <= coalesce($3::timestamptz, 'infinity')
        ORDER BY valid_time""", run["run_id"], start, end)
    return run, frame(rows, validation.FORECAST_COLUMNS, times=("valid_time",),
                                ints=("location_id", "horizon_minutes"), floats=QUANTILE_COLUMNS)


async def read_forecast_with_actuals(db, location_id, start, end, *, forecast_type=None, run_id=None,
                                     issued_start=None, issued_end=None, tenant_id=None):
    """Stored runs' values of a location joined to the measured power at valid_time.

    Parameters
    ----------
    db : asyncpg.Connection or asyncpg.Pool
    location_id : int
    start, end : datetime or None
        Window of valid_time (inclusive; None: open).
    forecast_type : str, optional
        Only runs of this type.
    run_id : int, optional
        Only this run.
    issued_start, issued_end : datetime, optional
        Window of the runs' issue_time (inclusive; None: open).
    tenant_id : str, optional
        Given: another tenant's location reads like one without runs (empty);
        None: any.

    Returns
    -------
    DataFrame
        Columns run_id, issue_time, forecast_type, valid_time, horizon_minutes,
        p10..p90 (kW), power_kw (kW, NaN where nothing was measured), sorted
        by valid_time, run_id.
    """
    async with connection(db) as conn:
        rows = await conn.fetch(f"""
            SELECT f.run_id, r.issue_time, r.forecast_type, f.valid_time, f.horizon_minutes,
                   {", ".join(f"f.{q}" for q in QUANTILE_COLUMNS)}, a.power_kw
            FROM forecast_runs r
            JOIN forecasts f ON f.run_id = r.run_id
            LEFT JOIN actuals a ON a.location_id = f.location_id AND a.time = f.valid_time
            WHERE r.location_id = $1
              AND ($4::text IS NULL OR r.location_id IN (SELECT location_id FROM locations WHERE tenant_id = $4))
              AND f.valid_time >= coalesce($2::timestamptz, '-infinity')
              AND f.valid_time <= coalesce($3::timestamptz, 'infinity')
              AND ($5::text IS NULL OR r.forecast_type = $5) AND ($6::bigint IS NULL OR r.run_id = $6)
              AND r.issue_time >= coalesce($7::timestamptz, '-infinity')
              AND r.issue_time <= coalesce($8::timestamptz, 'infinity')
            ORDER BY f.valid_time, f.run_id""", int(location_id), utc(start, "start"), utc(end, "end"), tenant_id,
                                forecast_type, None if run_id is None else int(run_id),
                                utc(issued_start, "issued_start"), utc(issued_end, "issued_end"))
    return frame(rows, ("run_id", "issue_time", "forecast_type", "valid_time", "horizon_minutes", *QUANTILE_COLUMNS,
                        "power_kw"), times=("issue_time", "valid_time"), ints=("run_id", "horizon_minutes"),
                 floats=(*QUANTILE_COLUMNS, "power_kw"))


async def has_timescaledb(db):
    """Whether the timescaledb extension is installed in this database."""
    return bool(await db.fetchval("SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb')"))


async def read_energy(db, run_id, bucket, *, tenant_id=None):
    """Energy of a run per hour or day of the plant's local time, kWh.

    A step labelled ``valid_time`` covers (valid_time - resolution,
    valid_time] and holds power x resolution of energy, so it is bucketed by
    the start of its period. Buckets are aligned in the location's time zone
    (``time_bucket`` with a time zone on TimescaleDB, ``date_bin`` on local
    times on plain PostgreSQL).

    Parameters
    ----------
    db : asyncpg.Connection or asyncpg.Pool
    run_id : int
    bucket : {'1 hour', '1 day'}
    tenant_id : str, optional
        Another tenant's run reads like an unknown one; None: any.

    Returns
    -------
    DataFrame
        Columns time (bucket start, UTC), p10..p90 (kWh).

    Raises
    ------
    ValueError
        Unknown bucket.
    LookupError
        Unknown run.
    """
    if bucket not in BUCKETS:
        raise ValueError(f"bucket must be one of {list(BUCKETS)}, got {bucket!r}")
    run = await db.fetchrow("""
        SELECT r.resolution_minutes, l.timezone FROM forecast_runs r JOIN locations l USING (location_id)
        WHERE r.run_id = $1 AND ($2::text IS NULL OR l.tenant_id = $2)""", int(run_id), tenant_id)
    if run is None:
        raise LookupError(f"run_id {run_id} not found")
    start = "f.valid_time - $2::int * interval '1 minute'"
    if await has_timescaledb(db):
        time_expr = f"time_bucket($3::text::interval, {start}, $4::text)"
    else:
        time_expr = f"date_bin($3::text::interval, ({start}) AT TIME ZONE $4::text, timestamp '2000-01-01') AT TIME ZONE $4::text"
    rows = await db.fetch(f"""
        SELECT {time_expr} AS time, {", ".join(f"sum(f.{q}) * $2::int / 60.0 AS {q}" for q in QUANTILE_COLUMNS)}
        FROM forecasts f WHERE f.run_id = $1 GROUP BY 1 ORDER BY 1""",
        int(run_id), run["resolution_minutes"], bucket, run["timezone"])
    return frame(rows, ("time", *QUANTILE_COLUMNS), times=("time",), floats=QUANTILE_COLUMNS)


# --- tasks ----------------------------------------------------------------------------------
# A task's truth is what is stored: its runs are the forecast_runs rows carrying its task_id
# (each complete: one transaction with its values), its errors explain the plants without a run.
# A task is 'queued'/'running' only while its owner renews the lease (0006_task_leases.sql).

def task_status(n_runs, total):
    """Final status of a task of ``total`` plants with ``n_runs`` stored runs.

    succeeded: every plant has a run; partial: some have; failed: none has.
    """
    if n_runs >= total:
        return "succeeded"
    return "partial" if n_runs else "failed"


async def create_task(db, task_id, request, total, *, tenant_id=None, owner=None, lease_seconds=None):
    """Record a new task, status 'queued', with its request parameters and ``total`` locations.

    ``tenant_id``: the tenant that asked (None: the default tenant). ``owner``
    given: the task is leased to it for ``lease_seconds`` from now (database
    clock); without an owner any live owner may claim it
    (:func:`claim_expired_tasks`).
    """
    await db.execute(f"{TASK_INSERT} VALUES ({TASK_VALUES.format(total='$6')})",
                     *task_args(task_id, request, tenant_id, owner, lease_seconds), int(total))


#: The new-task row of :func:`create_task` and :func:`create_task_of_locations` ($1-$5: :func:`task_args`).
TASK_INSERT = "INSERT INTO forecast_tasks (task_id, request, tenant_id, owner, lease_expires_at, progress_total)"
TASK_VALUES = "$1::uuid, $2::jsonb, $3, $4, now() + $5::float8 * interval '1 second', {total}"


def task_args(task_id, request, tenant_id, owner, lease_seconds):
    return (str(task_id), to_json(request), tenant_id or keys.DEFAULT_TENANT, owner,
            None if owner is None else float(lease_seconds))


async def create_task_of_locations(db, task_id, request, location_ids, *, tenant_id=None, owner=None,
                                   lease_seconds=None, running=False):
    """The plants of ``location_ids`` (:func:`fetch_locations`) and, when every one is known, their new task.

    One statement (one round trip): the task row of :func:`create_task`
    (``progress_total``: the plants found) is inserted only if no id is
    unknown or another tenant's; else nothing is written and the caller
    finds the missing ids in the frame returned. ``running``: the row is
    created 'running' with ``started_at`` now (a task its creator starts at
    once: what :func:`update_task` with status 'running' would record next),
    else 'queued'. :func:`create_tasks_of_locations` of one task.

    Returns
    -------
    DataFrame
        Locations frame of the known ids, ordered by id.
    """
    return (await create_tasks_of_locations(db, [(task_id, request, location_ids, tenant_id, owner, lease_seconds,
                                                   running)]))[0]


async def create_tasks_of_locations(db, tasks):
    """:func:`create_task_of_locations` of several tasks in one statement (one round trip).

    Parameters
    ----------
    tasks : list of tuple
        (task_id, request, location_ids, tenant_id, owner, lease_seconds, running) of each task, as the
        arguments of :func:`create_task_of_locations`. Each is recorded, or not, on its own.

    Returns
    -------
    list of DataFrame
        Per task, the locations frame of its known ids, ordered by id.
    """
    return [found for found, _ in await insert_tasks(db, tasks, None)]


async def create_tasks_within(db, tasks, most):
    """:func:`create_tasks_of_locations` of asynchronous tasks (``wait`` false), each refused when its tenant would
    then have more than ``most`` unfinished ones (one transaction).

    Unfinished: 'queued' or 'running', of a request whose ``wait`` is not true (a ``wait=true`` task is bounded by
    its client's request, not by this). The tenants' rows are locked (``FOR NO KEY UPDATE``, in tenant order)
    before their tasks are counted, as in :func:`write_plants_within`: concurrent creations of one tenant (other
    Ingress replicas, other statements) are counted one after the other and together never pass ``most``; the
    tasks of one call are counted in their order. Other tenants' creations, task updates and ``wait=true`` task
    creations do not wait.

    Returns
    -------
    list of tuple
        Per task (locations frame as :func:`create_tasks_of_locations`, None) when recorded or refused for an
        unknown plant (the frame lacks it), else (frame, unfinished tasks of its tenant before it): not recorded.
    """
    if not tasks:
        return []
    async with connection(db) as conn, conn.transaction():
        await conn.execute("SELECT 1 FROM tenants WHERE tenant_id = ANY($1::text[]) ORDER BY tenant_id "
                           "FOR NO KEY UPDATE", sorted({t[3] or keys.DEFAULT_TENANT for t in tasks}))
        return await insert_tasks(conn, tasks, int(most))


async def insert_tasks(db, tasks, most):
    """The statement of :func:`create_tasks_of_locations` (``most`` None) and :func:`create_tasks_within`.

    Returns, per task, (locations frame, None) or, refused by ``most``, (frame, unfinished tasks of its tenant).
    """
    if not tasks:
        return []
    req = list(zip(*[(k, str(t), to_json(request), tenant or keys.DEFAULT_TENANT, owner,
                      None if owner is None else float(lease), bool(running), tenant)
                     for k, (t, request, _, tenant, owner, lease, running) in enumerate(tasks)]))
    asked = [(k, int(i)) for k, task in enumerate(tasks) for i in task[2]]
    rows = await db.fetch(f"""
        WITH req AS (
            SELECT * FROM unnest($1::int[], $2::uuid[], $3::jsonb[], $4::text[], $5::text[], $6::float8[],
                                 $7::bool[], $8::text[]) AS r(k, task_id, request, tenant, owner, lease_s, running, scope)),
        asked AS (SELECT DISTINCT k, location_id FROM unnest($9::int[], $10::bigint[]) AS a(k, location_id)),
        found AS (
            SELECT a.k, {", ".join(f"l.{c}" for c in LOCATION_COLUMNS)}
            FROM asked a JOIN req r USING (k) JOIN locations l ON l.location_id = a.location_id
            WHERE r.scope IS NULL OR l.tenant_id = r.scope),
        counts AS (
            SELECT r.k, (SELECT count(*) FROM asked a WHERE a.k = r.k) AS asked,
                   (SELECT count(*) FROM found f WHERE f.k = r.k) AS found FROM req r),
        unfinished AS (  -- only with a bound: the tenants' asynchronous tasks queued or running (forecast_tasks_open)
            SELECT t.tenant_id AS tenant, count(*) AS n FROM forecast_tasks t
            WHERE $11::int IS NOT NULL AND t.status IN ('queued', 'running') AND t.tenant_id = ANY($4::text[])
              AND (t.request->>'wait') IS DISTINCT FROM 'true'
            GROUP BY t.tenant_id),
        ranked AS (  -- the tasks of every plant known, numbered in their order within their tenant
            SELECT r.k, coalesce(u.n, 0) AS before, row_number() OVER (PARTITION BY r.tenant ORDER BY r.k) AS nth
            FROM req r JOIN counts c USING (k) LEFT JOIN unfinished u ON u.tenant = r.tenant WHERE c.asked = c.found),
        task AS (
            {TASK_INSERT[:-1]}, status, started_at)
            SELECT r.task_id, r.request, r.tenant, r.owner, now() + r.lease_s * interval '1 second', c.found,
                   CASE WHEN r.running THEN 'running' ELSE 'queued' END, CASE WHEN r.running THEN now() END
            FROM req r JOIN counts c USING (k) JOIN ranked n USING (k)
            WHERE $11::int IS NULL OR n.before + n.nth <= $11::int)
        SELECT r.k, CASE WHEN n.before + n.nth > $11::int THEN n.before + n.nth - 1 END AS refused, f.*
        FROM req r LEFT JOIN ranked n USING (k) LEFT JOIN found f USING (k) ORDER BY r.k, f.location_id""",
        *[list(c) for c in req], [a[0] for a in asked], [a[1] for a in asked], most)
    out, refused = [[] for _ in tasks], [None] * len(tasks)
    for r in rows:  # a task of no plant found: one row, its plant's columns null
        if r[3] is not None:
            out[r[0]].append(tuple(r)[3:])
        refused[r[0]] = r[1]
    return [(location_frame(part), None if n is None else int(n)) for part, n in zip(out, refused)]


async def update_task(db, task_id, *, status=None, progress_done=None, run_ids=None, errors=None, timings=None,
                      clear_errors=None):
    """Change the given fields of a task; the others stay.

    ``run_ids``, ``errors`` and ``timings`` are merged into the stored
    objects (a key given again replaces its value); ``errors`` {location_id
    or "task": ``engine.validation.plant_error``}; ``clear_errors`` (keys)
    are removed from ``errors`` first (plants forecast again). Status
    'running' sets ``started_at`` (once); a final status (succeeded,
    partial, failed) sets ``finished_at`` and ends the lease.

    Raises
    ------
    ValueError
        Unknown status.
    LookupError
        Unknown task.
    """
    if status is not None and status not in TASK_STATUSES:
        raise ValueError(f"status must be one of {list(TASK_STATUSES)}, got {status!r}")
    merged = [None if d is None else to_json({str(k): v for k, v in d.items()}) for d in (run_ids, errors, timings)]
    result = await db.execute("""
        UPDATE forecast_tasks SET
            status = coalesce($2, status),
            progress_done = coalesce($3, progress_done),
            run_ids = run_ids || coalesce($4::jsonb, '{}'),
            errors = (errors - coalesce($8::text[], '{}')) || coalesce($5::jsonb, '{}'),
            timings = timings || coalesce($6::jsonb, '{}'),
            started_at = CASE WHEN $2 = 'running' THEN coalesce(started_at, now()) ELSE started_at END,
            finished_at = CASE WHEN $2 = ANY($7::text[]) THEN now() ELSE finished_at END,
            owner = CASE WHEN $2 = ANY($7::text[]) THEN NULL ELSE owner END,
            lease_expires_at = CASE WHEN $2 = ANY($7::text[]) THEN NULL ELSE lease_expires_at END
        WHERE task_id = $1::uuid""",
        str(task_id), status, None if progress_done is None else int(progress_done), *merged, list(FINAL_STATUSES),
        None if clear_errors is None else [str(k) for k in clear_errors])
    if result.split()[-1] == "0":
        raise LookupError(f"task_id {task_id} is unknown")


async def finish_tasks(db, tasks):
    """Record the end of several tasks in one statement (one round trip).

    Each task gets what :func:`update_task` with its final ``status``,
    ``errors``, ``timings`` and ``clear_errors=["task"]`` records: the status,
    the errors merged after removing the key ``"task"``, the timings merged,
    ``finished_at`` now, the lease ended.

    Parameters
    ----------
    tasks : list of (task_id, status, errors, timings)
        ``status`` one of ``FINAL_STATUSES``; ``errors`` {location_id or "task": ``engine.validation.plant_error``};
        ``timings`` {stage: s}.

    Returns
    -------
    set of str
        The task ids recorded (an unknown task is absent).

    Raises
    ------
    ValueError
        A status that is not final.
    """
    bad = [status for _, status, _, _ in tasks if status not in FINAL_STATUSES]
    if bad:
        raise ValueError(f"status must be one of {list(FINAL_STATUSES)}, got {bad[0]!r}")
    columns = list(zip(*[(str(t), status, to_json({str(k): v for k, v in errors.items()}),
                          to_json({str(k): v for k, v in timings.items()})) for t, status, errors, timings in tasks]))
    rows = await db.fetch("""
        UPDATE forecast_tasks t SET status = u.status, errors = (t.errors - 'task'::text) || u.errors,
            timings = t.timings || u.timings, finished_at = now(), owner = NULL, lease_expires_at = NULL
        FROM unnest($1::uuid[], $2::text[], $3::jsonb[], $4::jsonb[]) AS u(task_id, status, errors, timings)
        WHERE t.task_id = u.task_id
        RETURNING t.task_id::text""", *[list(c) for c in columns])
    return {r[0] for r in rows}


async def task_runs(db, task_id):
    """The stored runs of a task: {location_id: run_id} (each run complete)."""
    rows = await db.fetch("SELECT location_id, run_id FROM forecast_runs WHERE task_id = $1::uuid", str(task_id))
    return {int(r["location_id"]): int(r["run_id"]) for r in rows}


async def read_task(db, task_id, *, tenant_id=None):
    """A task as a JSON-ready dict, computed from what is stored; None when unknown.

    ``run_ids`` are the task's stored runs (not what a process said it
    wrote), ``errors`` the errors of its plants without a run (and key
    ``task``), ``progress_done`` their count; a finished task's status is
    :func:`task_status` of its stored runs. Unknown, not a uuid or another
    tenant's: None.

    Returns
    -------
    dict or None
        task_id, status, progress_done, progress_total, run_ids
        {location_id: run_id}, errors {location_id or "task": {"code", "message"}}
        (``engine.validation.plant_error``; tasks stored before codes: code ``legacy``, 0015_task_error_codes.sql),
        timings {stage: s}, request, created_at, started_at, finished_at,
        lease_expires_at (ISO-8601 UTC or None), attempts, tenant_id.
    """
    try:
        row = await db.fetchrow("""
            SELECT t.task_id, t.status, t.request, t.progress_total, t.errors, t.timings, t.created_at,
                   t.started_at, t.finished_at, t.lease_expires_at, t.attempts, t.tenant_id,
                   coalesce((SELECT jsonb_object_agg(r.location_id::text, r.run_id) FROM forecast_runs r
                             WHERE r.task_id = t.task_id), '{}') AS run_ids
            FROM forecast_tasks t WHERE t.task_id = $1::uuid AND ($2::text IS NULL OR t.tenant_id = $2)""",
            str(task_id), tenant_id)
    except asyncpg.DataError:  # not a uuid: no such task
        return None
    if row is None:
        return None
    task = dict(row)
    task["task_id"] = str(task["task_id"])
    for key in ("request", "run_ids", "errors", "timings"):
        task[key] = json.loads(task[key])
    task["errors"] = {k: v for k, v in task["errors"].items() if k not in task["run_ids"]}
    task["progress_done"] = min(task["progress_total"], len(task["run_ids"]) + len(set(task["errors"]) - {"task"}))
    if task["status"] in FINAL_STATUSES:
        task["status"] = task_status(len(task["run_ids"]), task["progress_total"])
    for key in ("created_at", "started_at", "finished_at", "lease_expires_at"):
        task[key] = None if task[key] is None else task[key].isoformat()
    return task


async def renew_leases(db, owner, task_ids, lease_seconds):
    """Extend the leases of ``owner``'s open tasks to ``lease_seconds`` from now; the ids it still holds.

    A task of ``task_ids`` whose lease expired and was not claimed by
    another owner is taken back; one claimed by another owner (or finished)
    is not in the result: ``owner`` must stop working on it.
    """
    rows = await db.fetch("""
        UPDATE forecast_tasks SET owner = $1, lease_expires_at = now() + $3::float8 * interval '1 second'
        WHERE task_id = ANY($2::uuid[]) AND status IN ('queued', 'running')
          AND (owner = $1 OR owner IS NULL OR lease_expires_at IS NULL OR lease_expires_at < now())
        RETURNING task_id""", owner, [str(t) for t in task_ids], float(lease_seconds))
    return [str(r["task_id"]) for r in rows]


async def release_task(db, task_id, owner, error):
    """``owner`` gives up an open task (its lease ends now) with ``error`` (``engine.validation.plant_error``)
    under key ``task``.

    The task stays open: the next claimer resumes it (:func:`claim_expired_tasks`).
    """
    await db.execute("""
        UPDATE forecast_tasks SET lease_expires_at = now(), errors = errors || jsonb_build_object('task', $3::jsonb)
        WHERE task_id = $1::uuid AND owner = $2 AND status IN ('queued', 'running')""", str(task_id), owner,
        to_json(error))


async def claim_expired_tasks(db, owner, lease_seconds, limit=16):
    """Lease to ``owner`` the open tasks whose lease expired (or that never had one), oldest first.

    Concurrent claimers never get the same task (``FOR UPDATE SKIP LOCKED``);
    each claim adds one to ``attempts``.

    Returns
    -------
    list of dict
        task_id, request, progress_total, tenant_id, attempts of each claimed task.
    """
    rows = await db.fetch("""
        UPDATE forecast_tasks SET owner = $1, lease_expires_at = now() + $2::float8 * interval '1 second',
                                  attempts = attempts + 1
        WHERE task_id IN (SELECT task_id FROM forecast_tasks
                          WHERE status IN ('queued', 'running')
                            AND (lease_expires_at IS NULL OR lease_expires_at < now())
                          ORDER BY created_at LIMIT $3 FOR UPDATE SKIP LOCKED)
        RETURNING task_id, request, progress_total, tenant_id, attempts""", owner, float(lease_seconds), int(limit))
    return [{**dict(r), "task_id": str(r["task_id"]), "request": json.loads(r["request"])} for r in rows]


# --- tenants and API keys -------------------------------------------------------------------
# Every plant belongs to a tenant (0002_tenants_keys.sql); the functions above that take
# ``tenant_id`` show a tenant only its own plants and what hangs off them, and refuse another
# tenant's ids exactly like unknown ones. tenant_id None: unscoped (CLI, admin).

TENANT_OWNS = "({0}::text IS NULL OR location_id IN (SELECT location_id FROM locations WHERE tenant_id = {0}))"
KEY_FIELDS = ("key_id", "tenant_id", "scopes", "description", "created_at", "revoked_at", "last_used_at")
KEY_TOUCH_INTERVAL = "1 minute"  # api_keys.last_used_at is written at most this often per key


async def refuse_other_tenants(conn, location_ids, tenant_id):
    """Refuse, like unknown locations, ids that are not plants of ``tenant_id`` (None: no check).

    Raises
    ------
    LookupError
        Code ``unknown_location``, field ``location_id``: the refusal of an
        unknown id, so a tenant cannot tell another tenant's plant from none.
    """
    if tenant_id is None:
        return
    ids = np.unique(np.asarray(location_ids, dtype="int64"))
    missing = await conn.fetchval("""
        SELECT array_agg(i ORDER BY i) FROM unnest($1::bigint[]) AS i
        WHERE NOT EXISTS (SELECT 1 FROM locations l WHERE l.location_id = i AND l.tenant_id = $2)""",
        ids.tolist(), tenant_id)
    if missing:
        raise validation.field_error("location_id", f"not a known location (ids {missing[:10]})", LookupError,
                                     code="unknown_location")


def key_dict(row):
    """An api_keys row as a dict (scopes a tuple; never the hash)."""
    return {k: tuple(row[k]) if k == "scopes" else row[k] for k in KEY_FIELDS}


async def create_key(db, tenant_id, scopes, description=""):
    """Create an API key of ``tenant_id`` (the tenant is created if new); only its hash is stored.

    Parameters
    ----------
    db : asyncpg.Connection or asyncpg.Pool
    tenant_id : str
        See :func:`engine.keys.check_tenant`.
    scopes : str or sequence of str
        ``"read,write"`` or ``["read", "write"]`` (:data:`engine.keys.SCOPES`).
    description : str, optional

    Returns
    -------
    dict
        ``key`` (the plaintext: shown once, never stored) and the stored
        fields :data:`KEY_FIELDS`.

    Raises
    ------
    ValueError
        Bad tenant id or scopes.
    """
    keys.check_tenant(tenant_id)
    scopes = keys.parse_scopes(scopes if isinstance(scopes, str) else ",".join(scopes))
    key_id, key = keys.generate_key()
    async with connection(db) as conn, conn.transaction():
        await conn.execute("INSERT INTO tenants (tenant_id) VALUES ($1) ON CONFLICT DO NOTHING", tenant_id)
        row = await conn.fetchrow(f"""
            INSERT INTO api_keys (key_id, tenant_id, key_sha256, scopes, description) VALUES ($1, $2, $3, $4, $5)
            RETURNING {", ".join(KEY_FIELDS)}""", key_id, tenant_id, keys.hash_key(key), list(scopes), str(description))
    return {"key": key, **key_dict(row)}


async def revoke_key(db, key_id):
    """Revoke a key (idempotent: a revoked key keeps its first ``revoked_at``).

    Returns
    -------
    dict
        The key's fields :data:`KEY_FIELDS`.

    Raises
    ------
    LookupError
        Unknown key_id.
    """
    row = await db.fetchrow(f"""
        UPDATE api_keys SET revoked_at = coalesce(revoked_at, now()) WHERE key_id = $1
        RETURNING {", ".join(KEY_FIELDS)}""", str(key_id))
    if row is None:
        raise LookupError(f"key_id {key_id} is unknown")
    return key_dict(row)


async def list_keys(db, tenant_id=None):
    """Keys (never their hashes) of one tenant, or of all when ``tenant_id`` is None, oldest first.

    Returns
    -------
    list of dict
        Fields :data:`KEY_FIELDS`.
    """
    rows = await db.fetch(f"""
        SELECT {", ".join(KEY_FIELDS)} FROM api_keys WHERE $1::text IS NULL OR tenant_id = $1
        ORDER BY tenant_id, created_at, key_id""", tenant_id)
    return [key_dict(r) for r in rows]


async def key_principal(db, key):
    """Who a presented API key is: (tenant_id, scopes), or None for a malformed, unknown or revoked key.

    Looks the key up by its SHA-256 (unique index) and stamps ``last_used_at``
    at most once per :data:`KEY_TOUCH_INTERVAL` (one statement either way).

    Parameters
    ----------
    db : asyncpg.Connection or asyncpg.Pool
    key : str
        The key as presented (e.g. :func:`engine.keys.bearer_key` of the header).

    Returns
    -------
    tuple of (str, tuple of str) or None
    """
    key_id = keys.key_id_of(key)
    if key_id is None:
        return None
    row = await db.fetchrow(f"""
        WITH k AS (SELECT key_id, tenant_id, scopes, last_used_at FROM api_keys
                   WHERE key_sha256 = $1 AND key_id = $2 AND revoked_at IS NULL),
             touched AS (UPDATE api_keys a SET last_used_at = now() FROM k
                         WHERE a.key_id = k.key_id
                           AND (k.last_used_at IS NULL OR k.last_used_at < now() - interval '{KEY_TOUCH_INTERVAL}'))
        SELECT tenant_id, scopes FROM k""", keys.hash_key(key), key_id)
    return None if row is None else (row["tenant_id"], tuple(row["scopes"]))


# --- plant calibrations (issue 10, migration 0005) ------------------------------------------

CALIBRATION_FIELDS = ("location_id", "version", "cutoff", "window_start", "window_end", "n_samples", "dc_scale",
                      "capacity_dc_kw", "clip_kw", "orientation", "bands", "intraday", "diagnostics", "created_at",
                      "shading")


def calibration_versions(runs):
    """The runs' ``calibration_version`` column as a list of int or None (absent column: all None)."""
    if "calibration_version" not in runs:
        return [None] * len(runs)
    return [None if v is None or v != v else int(v) for v in runs["calibration_version"]]


def finite_json(value):
    """JSON text of ``value`` with NaN/inf as null (jsonb refuses NaN)."""
    def clean(v):
        if isinstance(v, dict):
            return {str(k): clean(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [clean(x) for x in v]
        if isinstance(v, np.generic):
            v = v.item()
        return None if isinstance(v, float) and not np.isfinite(v) else v
    return to_json(clean(value))


def calibration_dict(row):
    """A plant_calibrations row as a JSON-ready dict (times stay datetimes)."""
    out = dict(row)
    for key in ("orientation", "bands", "intraday", "diagnostics", "shading"):
        out[key] = None if out[key] is None else json.loads(out[key])
    out["intraday"].setdefault("blend", None)  # stored before fitted intraday blends: the prior serves
    return out


async def write_calibration(db, location_id, calibration, *, tenant_id=None):
    """Store a fitted calibration (``engine.adaptation.fit_calibration``, ``ok``) as the location's next version.

    The location's latest refusal (:func:`write_refusal`) is removed: the new version supersedes it.

    Parameters
    ----------
    db : asyncpg.Connection or asyncpg.Pool
    location_id : int
    calibration : dict
        ``cutoff``, ``window_start``, ``window_end``, ``n_samples``,
        ``dc_scale``, ``capacity_dc_kw``, ``clip_kw`` (None: none),
        ``orientation`` (optional; None: not fitted), ``shading`` (optional; None: not fitted,
        ``engine.shading.fit_shading``), ``bands``, ``intraday``, ``diagnostics``.
    tenant_id : str, optional
        Refuse another tenant's location (like an unknown one); None: any.

    Returns
    -------
    int
        The version written (1 for the first calibration of the location).

    Raises
    ------
    ValueError
        The calibration is not a successful fit.
    LookupError
        Unknown location (or another tenant's).
    """
    if not calibration.get("ok", False):
        raise ValueError(f"calibration: not a successful fit ({calibration.get('reason')})")
    async with connection(db) as conn, conn.transaction():
        await refuse_other_tenants(conn, [location_id], tenant_id)
        locked = await conn.fetchval("SELECT location_id FROM locations WHERE location_id = $1 FOR UPDATE",
                                     int(location_id))  # one writer per location at a time: versions 1, 2, ...
        if locked is None:
            raise validation.field_error("location_id", f"{location_id} is unknown", LookupError,
                                         code="unknown_location")
        await conn.execute("DELETE FROM plant_calibration_refusals WHERE location_id = $1", int(location_id))
        return await conn.fetchval("""
            INSERT INTO plant_calibrations (location_id, version, cutoff, window_start, window_end, n_samples,
                                            dc_scale, capacity_dc_kw, clip_kw, bands, intraday, diagnostics,
                                            orientation, shading)
            SELECT $1, coalesce(max(version), 0) + 1, $2, $3, $4, $5, $6, $7, $8, $9::jsonb, $10::jsonb, $11::jsonb,
                   $12::jsonb, $13::jsonb
            FROM plant_calibrations WHERE location_id = $1
            RETURNING version""",
            int(location_id), utc(calibration["cutoff"], "cutoff"), utc(calibration["window_start"], "window_start"),
            utc(calibration["window_end"], "window_end"), int(calibration["n_samples"]),
            float(calibration["dc_scale"]), float(calibration["capacity_dc_kw"]),
            None if calibration["clip_kw"] is None else float(calibration["clip_kw"]),
            finite_json(calibration["bands"]), finite_json(calibration["intraday"]),
            finite_json(calibration["diagnostics"]),
            None if calibration.get("orientation") is None else finite_json(calibration["orientation"]),
            None if calibration.get("shading") is None else finite_json(calibration["shading"]))


async def write_refusal(db, location_id, cutoff, reason, diagnostics, *, code, tenant_id=None):
    """Keep a refused fit (``engine.adaptation.fit_calibration`` not ``ok``) as the location's latest refusal.

    Parameters
    ----------
    db : asyncpg.Connection or asyncpg.Pool
    location_id : int
    cutoff : tz-aware Timestamp
        The fit's cutoff.
    reason : str
        Why it was refused (a sentence).
    diagnostics : dict
        What the fit measured before refusing.
    code : str
        The reason's code, one of ``engine.tuning.REFUSAL_CODES``.
    tenant_id : str, optional
        Refuse another tenant's location (like an unknown one); None: any.

    Raises
    ------
    LookupError
        Unknown location, or another tenant's (:func:`refuse_other_tenants`).
    ValueError
        A code not in ``REFUSAL_CODES``.
    """
    if code not in REFUSAL_CODES:
        raise ValueError(f"code: {code!r} is not one of {REFUSAL_CODES}")
    async with connection(db) as conn, conn.transaction():
        await refuse_other_tenants(conn, [location_id], tenant_id)
        kept = await conn.fetchval("""
            INSERT INTO plant_calibration_refusals (location_id, cutoff, reason, diagnostics, code)
            SELECT $1, $2, $3, $4::jsonb, $5 WHERE EXISTS (SELECT 1 FROM locations WHERE location_id = $1)
            ON CONFLICT (location_id) DO UPDATE
            SET refused_at = now(), cutoff = EXCLUDED.cutoff, reason = EXCLUDED.reason,
                diagnostics = EXCLUDED.diagnostics, code = EXCLUDED.code
            RETURNING location_id""",
            int(location_id), utc(cutoff, "cutoff"), str(reason), finite_json(diagnostics), str(code))
        if kept is None:
            raise LookupError(f"location_id {location_id} is unknown")


async def read_refusal(db, location_id, *, tenant_id=None):
    """The location's latest refused fit since its latest stored version, or None.

    Returns
    -------
    dict or None
        ``refused_at``, ``cutoff`` (datetimes), ``code`` (``engine.tuning.REFUSAL_CODES``; None: stored
        before codes), ``reason``, ``diagnostics`` (decoded).
    """
    row = await db.fetchrow(f"""
        SELECT refused_at, cutoff, code, reason, diagnostics FROM plant_calibration_refusals
        WHERE location_id = $1 AND {TENANT_OWNS.format("$2")}""", int(location_id), tenant_id)
    return None if row is None else {**dict(row), "diagnostics": json.loads(row["diagnostics"])}


async def read_calibration(db, location_id, version=None, *, tenant_id=None):
    """A location's calibration: the latest, or ``version``; None when there is none.

    Returns
    -------
    dict or None
        :data:`CALIBRATION_FIELDS` (``bands``, ``intraday``, ``diagnostics`` decoded).
    """
    row = await db.fetchrow(f"""
        SELECT {", ".join(CALIBRATION_FIELDS)} FROM plant_calibrations
        WHERE location_id = $1 AND ($2::int IS NULL OR version = $2) AND {TENANT_OWNS.format("$3")}
        ORDER BY version DESC LIMIT 1""", int(location_id), None if version is None else int(version), tenant_id)
    return None if row is None else calibration_dict(row)


async def read_calibrations(db, location_ids, issue_time=None, *, tenant_id=None):
    """The calibration of each location that has one for a forecast issued at ``issue_time`` (one query).

    A forecast issued at T never sees actuals at or after T: it uses, among
    the calibrations whose actuals all precede T, the one fitted on the
    latest (ties: the latest version), never one refitted later on actuals
    after T (a past issue time forecast again, a hindcast). Whether a
    calibration's actuals precede T: its ``diagnostics.actuals_end`` (the
    last actual the fit read, recorded by the service) < T; without it, its
    cutoff <= T (a fit reads actuals before its cutoff).

    Parameters
    ----------
    db : asyncpg.Connection or asyncpg.Pool
    location_ids : sequence of int
    issue_time : tz-aware Timestamp, optional
        None: the latest version, whatever its actuals.

    Returns
    -------
    dict
        location_id -> calibration dict (:func:`read_calibration`).
    """
    data_end = "coalesce((diagnostics->>'actuals_end')::timestamptz, cutoff)"
    rows = await db.fetch(f"""
        SELECT DISTINCT ON (location_id) {", ".join(CALIBRATION_FIELDS)} FROM plant_calibrations
        WHERE location_id = ANY($1::bigint[]) AND {TENANT_OWNS.format("$2")}
          AND ($3::timestamptz IS NULL OR CASE WHEN diagnostics ? 'actuals_end'
                                               THEN (diagnostics->>'actuals_end')::timestamptz < $3::timestamptz
                                               ELSE cutoff <= $3::timestamptz END)
        ORDER BY location_id, CASE WHEN $3::timestamptz IS NULL THEN NULL ELSE {data_end} END DESC NULLS LAST,
                 version DESC""",
        [int(i) for i in location_ids], tenant_id, utc(issue_time, "issue_time"))
    return {int(r["location_id"]): calibration_dict(r) for r in rows}


async def read_actuals(db, location_ids, start, end, *, tenant_id=None):
    """Measured power of many locations over the half-open window ``[start, end)``, one frame.

    The end is exclusive: a forecast issued at T reads actuals with time < T
    by passing ``end = T``, and a calibration with cutoff C reads those
    before C (``None``: unbounded on that side).

    Returns
    -------
    DataFrame
        ``location_id``, ``time`` (UTC, end of the period), ``power_kw`` (kW), ``period_minutes``
        (0: instantaneous), sorted by location_id, time.
    """
    rows = await db.fetch(f"""
        SELECT location_id, time, power_kw, period_minutes FROM actuals
        WHERE location_id = ANY($1::bigint[]) AND time >= coalesce($2::timestamptz, '-infinity')
          AND time < coalesce($3::timestamptz, 'infinity') AND {TENANT_OWNS.format("$4")}
        ORDER BY location_id, time""", [int(i) for i in location_ids], utc(start, "start"), utc(end, "end"), tenant_id)
    return frame(rows, ("location_id", "time", "power_kw", "period_minutes"), times=("time",),
                 ints=("location_id", "period_minutes"), floats=("power_kw",))


async def count_actuals_after(db, location_ids, *, tenant_id=None):
    """Daylight actuals (``power_kw > 0``) ingested after each location's latest calibration was stored.

    A location without a calibration counts all its daylight actuals. What
    counts is arrival, not measurement time: actuals measured before a
    cutoff but sent after the fit (yesterday's data sent the next day) are
    new to the next fit, and a client replaying a past period after a fit
    with a cutoff past its last actual still reaches the threshold.

    :func:`refit_counts` has the hours these values stand for, which the
    refit policy (``adaptation.refit_after_daylight_hours`` of the service
    settings) compares with its threshold.

    Returns
    -------
    dict
        location_id -> count (locations without actuals: 0).
    """
    rows = await db.fetch("""
        SELECT l.location_id, count(a.time) AS n FROM locations l
        LEFT JOIN LATERAL (SELECT max(created_at) AS created_at FROM plant_calibrations c
                           WHERE c.location_id = l.location_id) c ON true
        LEFT JOIN actuals a ON a.location_id = l.location_id AND a.ingested_at > coalesce(c.created_at, '-infinity')
                               AND a.power_kw > 0
        WHERE l.location_id = ANY($1::bigint[]) AND ($2::text IS NULL OR l.tenant_id = $2)
        GROUP BY l.location_id""", [int(i) for i in location_ids], tenant_id)
    return {int(r["location_id"]): int(r["n"]) for r in rows}


async def refit_counts(db, location_ids, *, tenant_id=None):
    """What the refit policy decides on, per location, in one query.

    Parameters
    ----------
    db : asyncpg.Connection or asyncpg.Pool
    location_ids : sequence of int
    tenant_id : str, optional
        Only this tenant's locations; None: any.

    Returns
    -------
    DataFrame
        ``location_id``; ``new_daylight``: daylight actuals (``power_kw > 0``)
        ingested after the latest calibration was stored (all of them without
        one: :func:`count_actuals_after`); ``new_daylight_hours``: the hours they
        stand for, h (a period mean: its ``period_minutes``; an instantaneous
        sample: the spacing to the previous new actual, at most 1 h, the first
        one 0); ``calibrated`` (bool): the location
        has a calibration; ``tuned`` (bool): its latest calibration is tuned
        (``diagnostics.tuned``; a calibration from before untuned ones existed
        counts as tuned), False without one; ``daylight_days``: of a location
        without a calibration, the distinct local days (the plant's ``timezone``)
        with daylight actuals (the days a first fit could use:
        ``engine.adaptation.MIN_BAND_DAYS``); of one whose latest calibration is
        untuned (``engine.adaptation.untuned_description``), those local days
        after the local day of its last actual (``diagnostics.actuals_end``):
        the new days the tuning may now have; 0 for a tuned one (its actuals are
        not scanned); ``last_time``: its latest actual (UTC, NaT without
        actuals). Unknown locations have no row.
    """
    rows = await db.fetch("""
        SELECT l.location_id, coalesce(n.n, 0) AS new_daylight, coalesce(n.hours, 0)::float8 AS new_daylight_hours,
               c.created_at IS NOT NULL AS calibrated, coalesce(c.tuned, false) AS tuned,
               coalesce(d.days, 0) AS daylight_days, t.last_time
        FROM locations l
        LEFT JOIN LATERAL (SELECT c.created_at, coalesce((c.diagnostics->>'tuned')::boolean, true) AS tuned,
                                  (c.diagnostics->>'actuals_end')::timestamptz AS actuals_end
                           FROM plant_calibrations c WHERE c.location_id = l.location_id
                           ORDER BY c.version DESC LIMIT 1) c ON true
        LEFT JOIN LATERAL (SELECT count(*) FILTER (WHERE a.power_kw > 0) AS n,
                                  coalesce(sum(a.hours) FILTER (WHERE a.power_kw > 0), 0) AS hours
                           FROM (SELECT a.power_kw,  -- h a value stands for: its period, else its spacing (<= 1 h)
                                        CASE WHEN a.period_minutes > 0 THEN a.period_minutes / 60.0
                                             ELSE least(coalesce(extract(epoch FROM a.time - lag(a.time)
                                                                         OVER (ORDER BY a.time)), 0) / 3600.0, 1.0)
                                             END AS hours
                                 FROM actuals a WHERE a.location_id = l.location_id
                                   AND a.ingested_at > coalesce(c.created_at, '-infinity')) a) n ON true
        LEFT JOIN LATERAL (SELECT count(DISTINCT (a.time AT TIME ZONE l.timezone)::date) AS days FROM actuals a
                           WHERE a.location_id = l.location_id AND a.power_kw > 0
                             AND (c.created_at IS NULL OR NOT c.tuned)  -- a tuned plant's actuals are not scanned
                             AND (c.created_at IS NULL OR (a.time > c.actuals_end AND (a.time AT TIME ZONE l.timezone)::date
                                                           > (c.actuals_end AT TIME ZONE l.timezone)::date))) d ON true
        LEFT JOIN LATERAL (SELECT max(a.time) AS last_time FROM actuals a
                           WHERE a.location_id = l.location_id) t ON true  -- the primary key's last entry
        WHERE l.location_id = ANY($1::bigint[]) AND ($2::text IS NULL OR l.tenant_id = $2)
        ORDER BY l.location_id""", [int(i) for i in location_ids], tenant_id)
    return frame(rows, ("location_id", "new_daylight", "new_daylight_hours", "calibrated", "tuned", "daylight_days",
                        "last_time"), times=("last_time",), ints=("location_id", "new_daylight", "daylight_days"),
                 floats=("new_daylight_hours",), bools=("calibrated", "tuned"))


async def try_refit_lock(conn, location_id):
    """Take the session advisory lock of ``location_id``'s refit on ``conn``; False when another session holds it.

    One refit of a plant at a time across every Forecaster replica (the lock
    key is a 64-bit hash of the plant, ``hashtextextended``). Released by
    :func:`refit_unlock`, or when the connection's session ends (a failed
    call of either ends it: pooled connections go back without a reset
    query, :func:`release_as_is`).
    """
    try:
        return await conn.fetchval("SELECT pg_try_advisory_lock(hashtextextended('pvcast.refit', $1::bigint))",
                                   int(location_id))
    except BaseException:  # the lock may have been taken (a timeout, a cancellation): end its session
        conn.terminate()
        raise


async def refit_unlock(conn, location_id):
    """Release the lock of :func:`try_refit_lock`; when that fails, end the connection's session (which
    releases it): a pool's connection never goes back holding it (:func:`release_as_is`)."""
    try:
        await conn.fetchval("SELECT pg_advisory_unlock(hashtextextended('pvcast.refit', $1::bigint))",
                            int(location_id))
    except BaseException:
        conn.terminate()
        raise
