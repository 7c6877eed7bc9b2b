"""Hierarchical decoder-like data for HDBSCAN agreement (issue #24): families of leaves on the
sphere plus a uniform background, embedded in 10-D by umap-learn, clustered by the hdbscan
library three ways.

    python benches/python/hdbscan_hierarchical.py N OUT_DIR [--seed 0]

Data (d = 64, unit rows): 120 parent directions; each parent has 2–6 leaf directions at cosine
≈ 0.7 to it; each non-background point is a leaf plus Gaussian noise (σ = 0.25 / √d per
coordinate), renormalised; 15 % of points are uniform on the sphere (background). Leaf sizes are
Zipf-like. The 10-D embedding is umap-learn's (cosine, n_neighbors 15, min_dist 0.1,
random_state = seed), as the feature-splitting study's clustering UMAP.

Writes to OUT_DIR: y.npy (float32 [N, 10]), planted.npy (int64 leaf id, −1 background),
library_default.npy (HDBSCAN(min_cluster_size=3) — algorithm "best", approximate MST),
library_exact.npy (algorithm "prims_kdtree": the exact MST), and meta.json.
"""
import argparse, json, os, time
import numpy as np


def data(n, seed, d=64, parents=120, leaf_cos=0.7, bg=0.15, noise=0.25):
    rng = np.random.default_rng(seed)
    P = rng.standard_normal((parents, d))
    P /= np.linalg.norm(P, axis=1, keepdims=True)
    leaves = []
    for p in P:
        for _ in range(rng.integers(2, 7)):
            r = rng.standard_normal(d)
            r -= (r @ p) * p
            r /= np.linalg.norm(r)
            leaves.append(leaf_cos * p + np.sqrt(1 - leaf_cos ** 2) * r)
    L = np.array(leaves)
    n_bg = int(bg * n)
    w = 1.0 / np.arange(1, len(L) + 1) ** 0.8
    w /= w.sum()
    lab = rng.choice(len(L), size=n - n_bg, p=w)
    X = L[lab] + rng.standard_normal((n - n_bg, d)) * (noise / np.sqrt(d))
    B = rng.standard_normal((n_bg, d))
    X = np.vstack([X, B])
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    planted = np.concatenate([lab, -np.ones(n_bg, dtype=np.int64)])
    perm = rng.permutation(n)
    return X[perm].astype(np.float32), planted[perm].astype(np.int64)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("n", type=int)
    ap.add_argument("out")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--d", type=int, default=64)
    ap.add_argument("--parents", type=int, default=120)
    ap.add_argument("--leaf-cos", type=float, default=0.7)
    ap.add_argument("--background", type=float, default=0.15)
    ap.add_argument("--noise", type=float, default=0.25)
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    import hdbscan, umap
    X, planted = data(a.n, a.seed, a.d, a.parents, a.leaf_cos, a.background, a.noise)
    t0 = time.perf_counter()
    y = umap.UMAP(n_components=10, n_neighbors=15, min_dist=0.1, metric="cosine",
                  random_state=a.seed).fit_transform(X).astype(np.float32)
    t_umap = time.perf_counter() - t0
    np.save(os.path.join(a.out, "y.npy"), y)
    np.save(os.path.join(a.out, "planted.npy"), planted)
    y64 = y.astype(np.float64)
    secs = {}
    for name, alg in (("library_default", "best"), ("library_exact", "prims_kdtree")):
        t0 = time.perf_counter()
        lab = hdbscan.HDBSCAN(min_cluster_size=3, algorithm=alg).fit(y64).labels_
        secs[name] = time.perf_counter() - t0
        np.save(os.path.join(a.out, f"{name}.npy"), lab.astype(np.int64))
    json.dump({"n": a.n, "seed": a.seed, "d": a.d, "parents": a.parents, "leaf_cos": a.leaf_cos,
               "background": a.background, "noise": a.noise, "umap_seconds": t_umap, "hdbscan_seconds": secs,
               "hdbscan": hdbscan.__version__ if hasattr(hdbscan, "__version__") else "0.8.44",
               "umap": umap.__version__}, open(os.path.join(a.out, "meta.json"), "w"))


if __name__ == "__main__":
    main()
