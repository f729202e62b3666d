"""Memory of the processes of a running pvcast instance (PSS where readable), sampled in a thread.

The instance itself (scratch database, Ray head, ``serve run``) and the API key its clients
send come from ``bench/local_instance.py``, shared with the end-to-end tests.
"""

import contextlib
import threading

import psutil

from local_instance import BIN, ROOT, api_key, bearer, scratch_database, serve_instance, session_of  # noqa: F401


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
def sample_memory(sessions, every=0.2):
    """Samples the memory of the sessions' processes every ``every`` s in a thread.

    Yields a dict filled on exit: ``idle_bytes`` (sample before the block),
    ``peak_bytes``, ``kind`` ('PSS' or 'RSS'), ``samples``.
    """
    idle, kind = memory_bytes(sessions)
    out = {"idle_bytes": idle, "peak_bytes": idle, "kind": kind, "samples": 1}
    done = threading.Event()

    def run():
        while not done.wait(every):
            total, k = memory_bytes(sessions)
            out["peak_bytes"] = max(out["peak_bytes"], total)
            out["samples"] += 1
            if k == "RSS":
                out["kind"] = "RSS"

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield out
    finally:
        done.set()
        thread.join()
