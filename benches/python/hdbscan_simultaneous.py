"""The hdbscan library with HDBSCAN*'s simultaneous merging of equal distances: the reference for
`Ties::Simultaneous` (crates/geometry/src/hdbscan/tree.rs, `condense_simultaneous`).

The library builds a binary single-linkage dendrogram and condenses it one merge at a time, so
edges of equal weight are split in whatever order numpy's unstable argsort left them. HDBSCAN*
(Campello, Moulavi, Zimek, Sander 2015) defines the hierarchy by levels: at each distance every
edge of that weight goes at once. `condense_tree_simultaneous` condenses the library's dendrogram
that way — merges at one distance are flattened into one n-ary split — and `patched()` makes the
library use it, everything else (MST, stability, selection, probabilities, GLOSH) unchanged.

    from hdbscan_simultaneous import patched
    with patched():
        labels = hdbscan.HDBSCAN(min_cluster_size=3, algorithm="prims_kdtree").fit(x).labels_

    python benches/python/hdbscan_simultaneous.py DIR [--ours-simultaneous L.npy]
        [--ours-sequential L.npy] [--orders 20]

on a directory written by `hdbscan_hierarchical.py` prints the agreement table of
docs/BENCHMARKS.md ("Hierarchical sphere data"): ours (both ways of merging ties) and the
library's labels against the library's exact labels, against the library's exact tree condensed
simultaneously, against the planted leaves, and the library's own spread under other orders of
its tied edges.
"""
import argparse
import contextlib
import json
import os

import numpy as np

CONDENSED = [("parent", np.intp), ("child", np.intp), ("lambda_val", np.float64),
             ("child_size", np.intp)]


def condense_tree_simultaneous(hierarchy, min_cluster_size=10):
    """The condensed tree of a scipy-format dendrogram ([left, right, distance, size] rows, node
    n + i made by row i), with all merges at one distance taken at once."""
    h = np.asarray(hierarchy)
    n = h.shape[0] + 1
    left = h[:, 0].astype(np.intp)
    right = h[:, 1].astype(np.intp)
    dist = h[:, 2]
    size = h[:, 3].astype(np.intp)

    def count(x):
        return int(size[x - n]) if x >= n else 1

    def flat_children(node):
        d = dist[node - n]
        out, stack = [], [right[node - n], left[node - n]]
        while stack:
            x = stack.pop()
            if x >= n and dist[x - n] == d:
                stack.append(right[x - n])
                stack.append(left[x - n])
            else:
                out.append(x)
        return out

    def points(x):
        out, stack = [], [x]
        while stack:
            y = stack.pop()
            if y >= n:
                stack.append(right[y - n])
                stack.append(left[y - n])
            else:
                out.append(y)
        return out

    rows, next_label = [], n + 1
    queue = [(2 * n - 2, n)]
    head = 0
    while head < len(queue):
        node, label = queue[head]
        head += 1
        d = dist[node - n]
        lam = 1.0 / d if d > 0 else np.inf
        children = flat_children(node)
        for c in children:
            if count(c) < min_cluster_size:
                rows.extend((label, p, lam, 1) for p in points(c))
        big = [c for c in children if count(c) >= min_cluster_size]
        if len(big) == 1:
            queue.append((big[0], label))
        elif len(big) >= 2:
            for c in big:
                rows.append((label, next_label, lam, count(c)))
                queue.append((c, next_label))
                next_label += 1
    return np.array(rows, dtype=CONDENSED)


@contextlib.contextmanager
def patched():
    """The library, with its condensing replaced by the simultaneous one."""
    import hdbscan.hdbscan_ as h
    original = h.condense_tree
    h.condense_tree = condense_tree_simultaneous
    try:
        yield
    finally:
        h.condense_tree = original


def main():
    import hdbscan
    from hdbscan._hdbscan_linkage import label
    from hdbscan.hdbscan_ import _tree_to_labels
    from sklearn.metrics import adjusted_rand_score as ari

    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--ours-simultaneous")
    ap.add_argument("--ours-sequential")
    ap.add_argument("--orders", type=int, default=20)
    ap.add_argument("--min-cluster-size", type=int, default=3)
    a = ap.parse_args()
    load = lambda f: np.load(os.path.join(a.dir, f))
    y = load("y.npy").astype(np.float64)
    planted, exact, default = load("planted.npy"), load("library_exact.npy"), load("library_default.npy")
    lib = hdbscan.HDBSCAN(min_cluster_size=a.min_cluster_size, algorithm="prims_kdtree",
                          gen_min_span_tree=True).fit(y)
    assert ari(lib.labels_, exact) == 1.0, "the library's exact labels changed since the file was written"
    with patched():
        simultaneous = hdbscan.HDBSCAN(min_cluster_size=a.min_cluster_size,
                                       algorithm="prims_kdtree").fit(y).labels_
    mst = lib.minimum_spanning_tree_._mst
    rng = np.random.default_rng(0)
    spread = []
    for _ in range(a.orders):
        m = mst[rng.permutation(len(mst))]
        m = m[np.argsort(m[:, 2], kind="stable")]
        spread.append(ari(exact, _tree_to_labels(y, label(m), min_cluster_size=a.min_cluster_size)[0]))
    out = {
        "n": len(y),
        "tied_weights": int(len(mst) - len(np.unique(mst[:, 2]))),
        "library_exact_vs_its_tie_orders": [min(spread), float(np.median(spread)), max(spread)],
        "library_default_vs_exact": ari(default, exact),
        "library_simultaneous_vs_exact": ari(simultaneous, exact),
        "planted": {"library_exact": ari(exact, planted), "library_default": ari(default, planted),
                    "library_simultaneous": ari(simultaneous, planted)},
        "clusters": {"library_exact": int(exact.max() + 1), "library_simultaneous": int(simultaneous.max() + 1)},
        "noise": {"library_exact": int((exact < 0).sum()), "library_simultaneous": int((simultaneous < 0).sum())},
    }
    for name, path in (("ours_simultaneous", a.ours_simultaneous), ("ours_sequential", a.ours_sequential)):
        if path:
            ours = np.load(path)
            out[name] = {"vs_library_exact": ari(ours, exact), "vs_library_default": ari(ours, default),
                         "vs_library_simultaneous": ari(ours, simultaneous), "planted": ari(ours, planted),
                         "clusters": int(ours.max() + 1), "noise": int((ours < 0).sum())}
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
