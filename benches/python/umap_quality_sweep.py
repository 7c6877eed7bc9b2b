"""UMAP quality sweep on decoder-like synthetic data, ours beside umap-learn, N = 3 000 … 49 152.

    SAE_GEOMETRY_BIN=target/release/sae-geometry python benches/python/umap_quality_sweep.py [N ...]

Data: unit vectors in 768-D, 300 random directions with Zipf-like cluster sizes and noise 0.6
plus 20 % background (the distribution of `cargo xtask bench umap`, drawn with numpy from a fixed
seed). For each N and for 2-D and 10-D both embed the same file (cosine, 15 neighbours, seed 0;
ours through the `sae-geometry umap` CLI) and are measured with exact trustworthiness (k = 15,
cosine on the inputs; computed in row blocks so it fits in memory at N = 49 152, and checked
against scikit-learn's at the smallest N) and 15-NN recall (the fraction of each point's 15
input-space cosine neighbours among its 15 embedding neighbours). One JSON line per (N, dims).
"""
import json, os, subprocess, sys, tempfile, time
import numpy as np
import umap, sklearn.manifold
from sklearn.neighbors import NearestNeighbors

D, K = 768, 15


def data(n, seed=2024):
    rng = np.random.default_rng(seed)
    centers = rng.uniform(-1, 1, (300, D)).astype(np.float32)
    u = rng.uniform(0, 1, n)
    noise = rng.uniform(-1, 1, (n, D)).astype(np.float32)
    c = np.minimum(((np.clip(u - 0.2, 0, None) / 0.8) ** 2 * 300).astype(int), 299)
    x = np.where((u < 0.2)[:, None], noise, centers[c] + 0.6 * noise)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def input_knn(xn, k):
    """Each row's k nearest other rows by cosine (xn unit rows), in blocks."""
    out = np.empty((len(xn), k), dtype=np.int64)
    for a in range(0, len(xn), 1024):
        s = xn[a:a + 1024] @ xn.T
        s[np.arange(len(s)), np.arange(a, a + len(s))] = -np.inf
        idx = np.argpartition(-s, k, axis=1)[:, :k]
        out[a:a + 1024] = idx
    return out


def trustworthiness(xn, y, k=K):
    """scikit-learn's trustworthiness (cosine on xn), in row blocks: the rank of each embedding
    neighbour j of i is the number of points (i itself included) strictly closer to i than j."""
    n = len(xn)
    ye = NearestNeighbors(n_neighbors=k + 1).fit(y).kneighbors(y, return_distance=False)
    emb = np.array([[j for j in row if j != i][:k] for i, row in enumerate(ye)])
    t = 0.0
    for a in range(0, n, 512):
        d = 1.0 - xn[a:a + 512] @ xn.T  # cosine distances
        d[np.arange(len(d)), np.arange(a, a + len(d))] = 0.0
        dj = np.take_along_axis(d, emb[a:a + 512], axis=1)  # [b, k]
        ranks = (d[:, None, :] < dj[:, :, None]).sum(axis=2)  # [b, k]
        r = ranks - k
        t += r[r > 0].sum()
    return 1.0 - t * (2.0 / (n * k * (2.0 * n - 3.0 * k - 1.0)))


def recall(xn, y, k=K):
    a = input_knn(xn, k)
    b = NearestNeighbors(n_neighbors=k + 1).fit(y).kneighbors(y, return_distance=False)
    return float(np.mean([len(set(a[i]) & (set(b[i]) - {i})) / k for i in range(len(xn))]))


def main():
    sizes = [int(a) for a in sys.argv[1:]] or [3000, 6144, 12288, 24576, 49152]
    binary = os.environ.get("SAE_GEOMETRY_BIN", "target/release/sae-geometry")
    tmp = tempfile.mkdtemp()
    checked = False
    for n in sizes:
        x = data(n)
        np.save(f"{tmp}/x.npy", x)
        for dim in (2, 10):
            t0 = time.perf_counter()
            subprocess.run([binary, "--log", "warn", "umap", "--input", f"{tmp}/x.npy", "--n-components", str(dim),
                            "--metric", "cosine", "--seed", "0", "--out", f"{tmp}/ours.npy"], check=True)
            t_ours = time.perf_counter() - t0
            ours = np.load(f"{tmp}/ours.npy")
            t0 = time.perf_counter()
            theirs = umap.UMAP(n_components=dim, metric="cosine", random_state=0).fit_transform(x)
            t_theirs = time.perf_counter() - t0
            row = {"n": n, "dims": dim, "seconds": {"ours": round(t_ours, 2), "umap_learn": round(t_theirs, 2)}}
            for name, y in (("ours", ours), ("umap_learn", theirs)):
                row[name] = {"trustworthiness": round(float(trustworthiness(x, y)), 4), "recall15": round(recall(x, y), 4)}
                if not checked:
                    ref = sklearn.manifold.trustworthiness(x, y, n_neighbors=K, metric="cosine")
                    assert abs(ref - row[name]["trustworthiness"]) < 1e-4, (ref, row[name])
            checked = True
            row["delta"] = {m: round(row["ours"][m] - row["umap_learn"][m], 4) for m in ("trustworthiness", "recall15")}
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
