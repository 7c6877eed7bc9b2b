"""hdbscan library reference for `cargo xtask bench hdbscan`.

    python benches/python/hdbscan_ref.py Y.npy --min-cluster-size 3 --out labels.npy \
        [--repeats 5] [--threads 2]

Times hdbscan.HDBSCAN(min_cluster_size=...).fit(Y) (its default algorithm "best": Borůvka on a
kd-tree for dim ≤ 60, approximate MST), with `core_dist_n_jobs` = the thread count, and prints
one JSON line with the median and every fit's seconds.

Warm-up: one untimed fit on the whole input first. Above 16 384 points the library computes
core distances in a joblib process pool, and the first such fit in a process also starts the
pool (about 2.3 s on the benchmark machine); a warm-up on a small input does not start it.
This is the library's steady state, as umap-learn is timed with numba already compiled.
"""

import argparse
import json
import resource
import statistics
import time

import hdbscan
import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("y")
    ap.add_argument("--min-cluster-size", type=int, default=3)
    ap.add_argument("--out", required=True)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=4, help="core_dist_n_jobs (library default 4)")
    a = ap.parse_args()
    y = np.load(a.y).astype(np.float64)

    def fit():
        return hdbscan.HDBSCAN(min_cluster_size=a.min_cluster_size, core_dist_n_jobs=a.threads).fit(y)

    t0 = time.perf_counter()
    fit()
    cold = time.perf_counter() - t0
    times = []
    for _ in range(max(a.repeats, 1)):
        t0 = time.perf_counter()
        c = fit()
        times.append(time.perf_counter() - t0)
    np.save(a.out, c.labels_.astype(np.int64))
    print(json.dumps({
        "impl": f"hdbscan {getattr(hdbscan, '__version__', '0.8')}",
        "seconds": statistics.median(times),
        "all_seconds": times,
        "cold_seconds": cold,
        "threads": a.threads,
        "clusters": int(c.labels_.max() + 1),
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }))


if __name__ == "__main__":
    main()
