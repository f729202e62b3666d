"""Memory of the processes of a running pvcast instance (PSS where readable), sampled in a thread.

The instance itself (scratch database, Ray head, ``serve run``) and the API key its clients
send come from ``bench/local_instance.py``, shared with the end-to-end tests.
"""

import contextlib
import threading

import psutil

from local_instance import (BIN, ROOT, api_key, bearer, edge_instance, scratch_database, serve_instance,  # noqa: F401
                            session_of)


def memory_bytes(sessions):
    """(total bytes, kind) over every process of the given sessions; PSS where readable, else RSS."""
    total, kind = 0, "PSS"
    for p in psutil.process_iter():
        if session_of(p.pid) not in sessions:
            continue
        try:
            total += p.memory_full_info().pss
        except (AttributeError, psutil.AccessDenied):
            with contextlib.suppress(psutil.Error):
                total += p.memory_info().rss
                kind = "RSS"
        except psutil.Error:
            pass
    return total, kind


@contextlib.contextmanager
def every(seconds, step):
    """Call ``step()`` every ``seconds`` s in a daemon thread while the block runs (joined on exit)."""
    done = threading.Event()

    def run():
        while not done.wait(seconds):
            step()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()


@contextlib.contextmanager
def sample_memory(sessions, interval=0.2):
    """Samples the memory of the sessions' processes every ``interval`` s in a thread.

    Yields a dict filled on exit: ``idle_bytes`` (sample before the block),
    ``peak_bytes``, ``kind`` ('PSS' or 'RSS'), ``samples``.
    """
    idle, kind = memory_bytes(sessions)
    out = {"idle_bytes": idle, "peak_bytes": idle, "kind": kind, "samples": 1}

    def sample():
        total, k = memory_bytes(sessions)
        out["peak_bytes"] = max(out["peak_bytes"], total)
        out["samples"] += 1
        if k == "RSS":
            out["kind"] = "RSS"

    with every(interval, sample):
        yield out


def process_group(p):
    """Name of a process' group in a CPU breakdown: Ray's title for its workers (``ray::Forecaster`` ...), the
    executable's name otherwise (``raylet``, ``gcs_server``, ``postgres: backend``)."""
    cmd = p.info["cmdline"] or [p.info["name"] or "?"]
    if cmd[0].startswith("ray::"):
        title = cmd[0].split()[0]
        return "ray::" + title.rsplit(":", 1)[-1].rsplit(".", 1)[-1] if "ServeReplica" in title else title
    if cmd[0].startswith("postgres:"):
        return "postgres: backend" if "127.0.0.1" in cmd[0] else "postgres: " + cmd[0].split(":", 1)[1].strip()
    return cmd[0].rsplit("/", 1)[-1] if not cmd[0].endswith("python") and "python" not in cmd[0] \
        else " ".join(c.rsplit("/", 1)[-1] for c in cmd[:2])


def cpu_seconds(sessions, database=None):
    """{pid: (group, CPU s)} of the sessions' processes and of the PostgreSQL server's processes serving
    ``database`` (its backends, by their title) or the whole server (its background writers)."""
    out = {}
    for p in psutil.process_iter(["name", "cmdline"]):
        cmd = " ".join(p.info["cmdline"] or [])
        ours = session_of(p.pid) in sessions
        pg = cmd.startswith("postgres:") and (database is None or database in cmd or "127.0.0.1" not in cmd)
        if not (ours or pg):
            continue
        with contextlib.suppress(psutil.Error):
            t = p.cpu_times()
            out[p.pid] = (process_group(p), t.user + t.system)
    return out


@contextlib.contextmanager
def sample_cpu(sessions, database=None, interval=0.25):
    """CPU seconds by process group over a block, and their time line (``interval`` s buckets), sampled in a thread.

    Yields a dict filled on exit: ``wall_s``, ``groups`` {group: CPU s}, ``timeline`` [(t_s, {group: CPU s})].
    PostgreSQL's background processes (WAL writer, checkpointer) serve every database of the server.
    """
    import time
    first = cpu_seconds(sessions, database)
    t0 = time.perf_counter()
    out = {"timeline": []}
    last = [first]

    def delta(a, b):
        groups = {}
        for pid, (group, cpu) in b.items():
            groups[group] = groups.get(group, 0.0) + cpu - a.get(pid, (group, 0.0))[1]
        return {g: v for g, v in groups.items() if v > 0.005}

    def sample():
        now = cpu_seconds(sessions, database)
        out["timeline"].append((time.perf_counter() - t0, delta(last[0], now)))
        last[0] = now

    try:
        with every(interval, sample):
            yield out
    finally:
        end = cpu_seconds(sessions, database)
        out["wall_s"] = time.perf_counter() - t0
        out["timeline"].append((out["wall_s"], delta(last[0], end)))
        out["groups"] = dict(sorted(delta(first, end).items(), key=lambda kv: -kv[1]))
