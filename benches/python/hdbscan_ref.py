"""hdbscan library reference for `cargo xtask bench hdbscan`.

    python benches/python/hdbscan_ref.py Y.npy --min-cluster-size 3 --out labels.npy

Times hdbscan.HDBSCAN(min_cluster_size=...).fit(Y) (its default algorithm "best": Borůvka on a
kd-tree for dim ≤ 60, approximate MST) after a warm-up fit on 2000 points; prints one JSON line.
"""

import argparse
import json
import resource
import time

import hdbscan
import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("y")
    ap.add_argument("--min-cluster-size", type=int, default=3)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    y = np.load(a.y).astype(np.float64)
    hdbscan.HDBSCAN(min_cluster_size=a.min_cluster_size).fit(y[:2000])
    t0 = time.perf_counter()
    c = hdbscan.HDBSCAN(min_cluster_size=a.min_cluster_size).fit(y)
    secs = time.perf_counter() - t0
    np.save(a.out, c.labels_.astype(np.int64))
    print(json.dumps({
        "impl": f"hdbscan {getattr(hdbscan, '__version__', '0.8')}",
        "seconds": secs,
        "clusters": int(c.labels_.max() + 1),
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }))


if __name__ == "__main__":
    main()
