"""umap-learn reference for `cargo xtask bench umap`.

    NUMBA_NUM_THREADS=2 python benches/python/umap_ref.py X.npy --dim 2 --out Y.npy [--seed S] [--repeats R]

Compiles numba first (fits on 600 and 5000 points, so both the exact and the NN-descent paths are
compiled), then times R fits on X (cosine, 15 neighbours, the tutorial's settings): parallel when
no seed is given, serial and deterministic with one. Prints one JSON line with the median time,
every time and the peak RSS; saves the last embedding.
"""

import argparse
import json
import resource
import time

import numpy as np
import umap


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("x")
    ap.add_argument("--dim", type=int, default=2)
    ap.add_argument("--seed", type=int)
    ap.add_argument("--out", required=True)
    ap.add_argument("--repeats", type=int, default=1)
    a = ap.parse_args()
    x = np.load(a.x)
    for m in (600, 5000):
        umap.UMAP(n_neighbors=15, n_components=a.dim, metric="cosine", random_state=a.seed).fit_transform(x[:m])
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    times = []
    for _ in range(a.repeats):
        t0 = time.perf_counter()
        y = umap.UMAP(n_neighbors=15, n_components=a.dim, metric="cosine", random_state=a.seed).fit_transform(x)
        times.append(time.perf_counter() - t0)
    secs = float(np.median(times))
    np.save(a.out, y.astype(np.float32))
    import numba

    print(json.dumps({
        "impl": f"umap-learn {umap.__version__} (numba {numba.__version__}, compiled)",
        "threads": numba.get_num_threads(),
        "seconds": secs,
        "all_seconds": times,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "rss_before_fit_mib": rss_before,
    }))


if __name__ == "__main__":
    main()
