"""HDBSCAN agreement sweep: ours (the `sae-geometry hdbscan` CLI) beside the hdbscan library on
10-D UMAP embeddings of decoder-like data, N = 3 000 … 49 152, and on the library's example
datasets (blobs, moons).

    SAE_GEOMETRY_BIN=target/release/sae-geometry python benches/python/hdbscan_ari_sweep.py [N ...]

The embedding is umap-learn's (cosine, 15 neighbours, 10-D, seed 0) of the data of
`umap_quality_sweep.py`; both sides cluster the same float32 file with min_cluster_size = 3 (the
tutorial's) and the library's defaults otherwise. One JSON line per input: adjusted Rand index,
cluster counts and noise counts, against the library's default (Borůvka with its approximate
MST) and its exact Prim (`algorithm="prims_kdtree"`), and the library's two against each other.

Tie sensitivity of the library itself: many mutual-reachability weights are equal, and the
library orders its tree's edges with numpy's unstable argsort before merging them. The columns
`library_tie_orders_*` give the ARI of the library's own labels against the labels its own
default tree yields under 30 other orders of the equal weights (a random permutation, then a
stable sort by weight; `hdbscan._hdbscan_linkage.label` and `hdbscan.hdbscan_._tree_to_labels`,
the library's own steps): min, 10th percentile and median.

Instruction-set dependence of the library itself: numpy picks its argsort at run time by CPU
(AVX-512, AVX2, or baseline x86-64-v2), and the sorts order equal keys differently. The columns
`library_isa` re-run the library (default algorithm and exact Prim) in subprocesses with numpy's
`NPY_DISABLE_CPU_FEATURES` switching the AVX-512 and then the AVX2 sort off, on the same machine
and the same file, and give the ARI of those runs against the native run, and ours against each.
"""
import json, os, subprocess, sys, tempfile, time
import numpy as np
import hdbscan, umap
from hdbscan._hdbscan_linkage import label
from hdbscan.hdbscan_ import _tree_to_labels
from sklearn.datasets import make_blobs, make_moons
from sklearn.metrics import adjusted_rand_score
from sklearn.preprocessing import StandardScaler
from sklearn.utils import shuffle

sys.path.insert(0, os.path.dirname(__file__))
from umap_quality_sweep import data  # noqa: E402


# numpy feature groups to switch off, cumulatively: the AVX-512 sorts, then the AVX2 ones.
ISA_LEVELS = [("no_avx512", ["AVX512_ICL", "AVX512_SPR", "X86_V4"]), ("baseline", ["X86_V3"])]

RUN_LIBRARY = """
import sys, numpy as np, hdbscan
y = np.load(sys.argv[1]).astype(np.float64)
for alg, out in (("best", sys.argv[3]), ("prims_kdtree", sys.argv[4])):
    np.save(out, hdbscan.HDBSCAN(min_cluster_size=int(sys.argv[2]), algorithm=alg).fit(y).labels_)
"""


def isa_runs(path, min_cluster_size, tmp):
    """The library's default and exact labels under each numpy instruction-set level that this
    CPU has, as {level: (default, exact)} (levels the CPU lacks are skipped)."""
    from numpy._core._multiarray_umath import __cpu_features__ as have
    runs, off = {}, []
    for level, features in ISA_LEVELS:
        present = [f for f in features if have.get(f)]
        if not present:
            continue
        off += present
        env = dict(os.environ, NPY_DISABLE_CPU_FEATURES=" ".join(off))
        subprocess.run([sys.executable, "-c", RUN_LIBRARY, path, str(min_cluster_size),
                        f"{tmp}/isa_d.npy", f"{tmp}/isa_e.npy"], check=True, env=env)
        runs[level] = (np.load(f"{tmp}/isa_d.npy"), np.load(f"{tmp}/isa_e.npy"))
    return runs


def compare(name, y, binary, tmp, min_cluster_size=3):
    y = np.ascontiguousarray(y, dtype=np.float32)
    np.save(f"{tmp}/y.npy", y)
    t0 = time.perf_counter()
    subprocess.run([binary, "--log", "warn", "hdbscan", "--input", f"{tmp}/y.npy", "--min-cluster-size",
                    str(min_cluster_size), "--out", f"{tmp}/labels.npy"], check=True, stdout=subprocess.DEVNULL)
    t_ours = time.perf_counter() - t0
    ours = np.load(f"{tmp}/labels.npy")
    t0 = time.perf_counter()
    lib = hdbscan.HDBSCAN(min_cluster_size=min_cluster_size, gen_min_span_tree=True).fit(y.astype(np.float64))
    theirs = lib.labels_
    t_theirs = time.perf_counter() - t0
    tree = lib.minimum_spanning_tree_._mst
    rng = np.random.default_rng(0)
    reordered = []
    for _ in range(30):
        m = tree[rng.permutation(len(tree))]
        m = m[np.argsort(m[:, 2], kind="stable")]
        labels = _tree_to_labels(y.astype(np.float64), label(m), min_cluster_size=min_cluster_size)[0]
        reordered.append(adjusted_rand_score(theirs, labels))
    # The library's exact MST (its default, Borůvka with approx_min_span_tree=True, is not).
    exact = hdbscan.HDBSCAN(min_cluster_size=min_cluster_size, algorithm="prims_kdtree").fit(y.astype(np.float64)).labels_
    ari = lambda a, b: round(float(adjusted_rand_score(a, b)), 4)
    isa = {
        level: {
            "default_vs_native": ari(theirs, d), "exact_vs_native": ari(exact, e),
            "ours_vs_default": ari(d, ours), "ours_vs_exact": ari(e, ours),
        }
        for level, (d, e) in isa_runs(f"{tmp}/y.npy", min_cluster_size, tmp).items()
    }
    row = {
        "input": name, "n": len(y), "dims": y.shape[1],
        "ari": ari(theirs, ours),
        "ari_vs_library_exact": ari(exact, ours),
        "library_default_vs_exact": ari(theirs, exact),
        "library_tie_orders_min": round(float(np.min(reordered)), 4),
        "library_tie_orders_p10": round(float(np.quantile(reordered, 0.1)), 4),
        "library_tie_orders_median": round(float(np.median(reordered)), 4),
        "library_isa": isa,
        "tied_mst_edges": int(len(tree) - len(np.unique(tree[:, 2]))),
        "clusters": {"ours": int(ours.max() + 1), "hdbscan": int(theirs.max() + 1), "hdbscan_exact": int(exact.max() + 1)},
        "noise": {"ours": int((ours < 0).sum()), "hdbscan": int((theirs < 0).sum()), "hdbscan_exact": int((exact < 0).sum())},
        "identical_labels": bool((ours == theirs).all()),
        "seconds": {"ours": round(t_ours, 2), "hdbscan": round(t_theirs, 2)},
    }
    print(json.dumps(row), flush=True)
    return row


def main():
    sizes = [int(a) for a in sys.argv[1:]] or [3000, 6144, 12288, 24576, 49152]
    binary = os.environ.get("SAE_GEOMETRY_BIN", "target/release/sae-geometry")
    tmp = tempfile.mkdtemp()
    # The library's own examples: its test suite's blobs (200 points, standardised, default
    # min_cluster_size 5) and its documentation's moons-and-blobs (100 points).
    tb, _ = make_blobs(n_samples=200, random_state=10)
    tb = StandardScaler().fit_transform(shuffle(tb, random_state=7))
    compare("library-tests-blobs", tb, binary, tmp, min_cluster_size=5)
    dm, _ = make_moons(n_samples=50, noise=0.05, random_state=0)
    db, _ = make_blobs(n_samples=50, centers=[(-0.75, 2.25), (1.0, 2.0)], cluster_std=0.25, random_state=0)
    compare("library-docs-moons-blobs", np.vstack([dm, db]), binary, tmp, min_cluster_size=5)
    # Larger variants.
    blobs, _ = make_blobs(n_samples=2000, centers=6, cluster_std=0.8, random_state=0)
    compare("blobs", blobs, binary, tmp, min_cluster_size=10)
    moons, _ = make_moons(n_samples=2000, noise=0.06, random_state=0)
    compare("moons", moons, binary, tmp, min_cluster_size=10)
    for n in sizes:
        y = umap.UMAP(n_components=10, metric="cosine", random_state=0).fit_transform(data(n))
        compare(f"umap10-{n}", y, binary, tmp)


if __name__ == "__main__":
    main()
