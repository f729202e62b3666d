"""Fleet throughput on one Ray node, then two (issue 12; docs/ARCHITECTURE.md "Scaling out").

pvcast deployed with ``serve deploy`` on a Ray head (``local_instance.cluster_instance`` (bench/local_instance.py):
token auth, loopback addresses, ``--head-cpus``) over a scratch database; the seeded fleet of
bench/bench_fleet.py (``--n`` plants, real weather) ingested through the API; an untimed warm-up,
then ``--repeat`` timed generate requests (ml, 48 h x 15 min, wait; rows counted in the database)
on the head alone. Then a worker node joins (``ray start --address``, ``--worker-cpus``) and, after
one untimed request that starts its workers, the same requests run on two nodes. Prints wall
time, plants/s and the feature tasks each node ran (Ray's state API). Stops everything it starts.

On this machine both nodes share the same 2 cores: the figure shows what a second node's
resources change when the CPU is already the limit, not what a second machine adds.

    .venv/bin/python bench/bench_nodes.py [--n 10000] [--repeat 2] [--head-cpus 2] [--worker-cpus 2]
"""

import argparse
import sys
import tempfile
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_fleet  # noqa: E402
import fleet  # noqa: E402

import local_instance as local  # noqa: E402

ROOT = local.ROOT


def feature_tasks(cluster):
    """Finished feature tasks per node role."""
    nodes = {n["node_id"]: ("head" if n["is_head_node"] else "worker") for n in local.ray_state(cluster, "nodes")}
    counts = {}
    for t in local.ray_state(cluster, "tasks", "name=feature_task", "state=FINISHED"):
        counts[nodes.get(t["node_id"], "?")] = counts.get(nodes.get(t["node_id"], "?"), 0) + 1
    return counts


def timed(client, url, sessions, ids, issues, label):
    walls = []
    for issue in issues:
        r = bench_fleet.generate(client, url, sessions, ids, issue)
        walls.append(r["wall_s"])
        print(f"{label}: N={len(ids):,} {r['wall_s']:.2f} s = {r['plants_per_s']:,.0f} plants/s; stages summed over "
              f"batches {({s: round(v, 1) for s, v in r['task_timings'].items()})}", flush=True)
    return walls


def main(args):
    settings = yaml.safe_load((ROOT / "configs/service.yaml").read_text())
    for s in fleet.SITES:
        fleet.site_weather(s, bench_fleet.WEATHER_START, bench_fleet.WEATHER_END)
    plants = fleet.plants(args.n, args.seed, list(fleet.SITES))
    issues = iter(bench_fleet.ISSUE + pd.Timedelta(minutes=k) for k in range(1000))  # new runs every request
    with local.scratch_database("pvcast_bench") as (url, _), tempfile.TemporaryDirectory() as work, \
            local.cluster_instance(url, work, head_cpus=args.head_cpus) as cluster:
        with httpx.Client(base_url=cluster["base"], timeout=1800) as client:
            ids, _ = bench_fleet.ingest(client, plants, settings)
            sessions = {cluster["head"].pid}
            bench_fleet.generate(client, url, sessions, ids[:2 * settings["forecast"]["batch_locations"]], next(issues))
            one = timed(client, url, sessions, ids, [next(issues) for _ in range(args.repeat)],
                        f"1 node ({args.head_cpus} CPUs)")
            tasks_one = feature_tasks(cluster)
            worker = local.add_worker(cluster, "worker", args.worker_cpus)
            try:
                sessions.add(worker.pid)
                bench_fleet.generate(client, url, sessions, ids, next(issues))  # untimed: the worker's processes start
                two = timed(client, url, sessions, ids, [next(issues) for _ in range(args.repeat)],
                            f"2 nodes ({args.head_cpus} + {args.worker_cpus} CPUs)")
                tasks_two = feature_tasks(cluster)
            finally:
                local.stop(worker)
    delta = {k: tasks_two.get(k, 0) - tasks_one.get(k, 0) for k in tasks_two}
    print(f"feature tasks by node: 1-node phase {tasks_one}; 2-node phase (incl. its warm-up) {delta}")
    print(f"N={args.n:,}: 1 node {np.mean(one):.2f} s ({args.n / np.mean(one):,.0f} plants/s), 2 nodes "
          f"{np.mean(two):.2f} s ({args.n / np.mean(two):,.0f} plants/s): x{np.mean(one) / np.mean(two):.2f} "
          f"(mean of {args.repeat}; machine: {bench_fleet.machine()['cpu_count']} cores shared by both nodes)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--head-cpus", type=int, default=2)
    parser.add_argument("--worker-cpus", type=int, default=2)
    parser.add_argument("--seed", type=int, default=20130630)
    main(parser.parse_args())
