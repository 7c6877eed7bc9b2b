"""Reference for `cargo xtask bench logit-enrichment`.

    python benches/python/logit_enrichment_ref.py DIR --repeats 3 --threads 2 --k 25 --batch 128

DIR holds what the Rust side wrote: w_dec.npy [n, d], w_u.npy [d, vocab], sets.npy ([S, vocab],
1.0 where a token is in the set) and ours.json (per latent: mean, variance, skewness, kurtosis and
per set hits, hypergeometric p, Mann-Whitney U and p).

Computes the same statistics with numpy/scipy, in the same latent batches, two ways:

- **vectorised** (the fastest Python we know): per batch `W_dec[b] @ W_U` in float32, moments with
  `scipy.stats.skew`/`kurtosis` (float64), the top k by a stable argsort, ranks once per row with
  `scipy.stats.rankdata`, every set's rank sum in one product `ranks @ sets.T`, the tie term from
  the sorted rows, then U and its one-sided p with scipy's tie and continuity corrections
  (`mannwhitneyu(method="asymptotic")`'s formula) and `hypergeom.sf`;
- **per set** (what the statistics read like in scipy): `mannwhitneyu(x[:, m], x[:, ~m], axis=1,
  alternative="greater", method="asymptotic")` once per set and batch — timed on the first
  `--per-set-latents` latents only (it ranks the whole row again for every set) and reported per
  latent.

Prints one JSON line with the times and the largest differences from ours.
"""

import argparse, json, os, statistics, time

import numpy as np


def vectorised(w_dec, w_u, sets, k, batch):
    from scipy import stats

    n_sets, vocab = sets.shape
    sizes = sets.sum(1).astype(np.float64)  # float32 products of sizes lose integers
    out = []
    for s in range(0, w_dec.shape[0], batch):
        logits = (w_dec[s : s + batch] @ w_u).astype(np.float64)
        mean = logits.mean(1)
        var = logits.var(1)
        skew = stats.skew(logits, axis=1)
        kurt = stats.kurtosis(logits, axis=1)
        top = np.argsort(-logits, axis=1, kind="stable")[:, :k]
        hits = sets[:, top].transpose(1, 0, 2).sum(2)  # [b, S]
        ranks = stats.rankdata(logits, axis=1)
        rank_sums = ranks @ sets.T.astype(np.float64)  # [b, S]
        srt = np.sort(logits, axis=1)
        tie = np.zeros(len(logits))
        for i, row in enumerate(srt):
            starts = np.flatnonzero(np.r_[True, row[1:] != row[:-1], True])
            t = np.diff(starts).astype(np.float64)
            tie[i] = (t**3 - t).sum()
        n1 = sizes[None, :]
        n2 = vocab - n1
        u = rank_sums - n1 * (n1 + 1) / 2
        mu = n1 * n2 / 2
        sigma = np.sqrt(n1 * n2 / 12 * ((vocab + 1) - tie[:, None] / (vocab * (vocab - 1))))
        p = stats.norm.sf((u - mu - 0.5) / sigma)
        hp = stats.hypergeom.sf(hits - 1, vocab, n1, k)
        for i in range(len(logits)):
            out.append((mean[i], var[i], skew[i], kurt[i], hits[i], hp[i], u[i], p[i]))
    return out


def per_set(w_dec, w_u, sets, k, batch):
    from scipy import stats

    masks = sets.astype(bool)
    out = []
    for s in range(0, w_dec.shape[0], batch):
        logits = (w_dec[s : s + batch] @ w_u).astype(np.float64)
        us, ps = [], []
        for m in masks:
            r = stats.mannwhitneyu(
                logits[:, m], logits[:, ~m], axis=1, alternative="greater", method="asymptotic"
            )
            us.append(r.statistic)
            ps.append(r.pvalue)
        out.append((np.stack(us, 1), np.stack(ps, 1)))
    return out


def rel(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-300)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--k", type=int, default=25)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--per-set-latents", type=int, default=16)
    a = ap.parse_args()
    import scipy

    w_dec = np.load(os.path.join(a.dir, "w_dec.npy"))
    w_u = np.load(os.path.join(a.dir, "w_u.npy"))
    sets = np.load(os.path.join(a.dir, "sets.npy"))
    with open(os.path.join(a.dir, "ours.json")) as f:
        ours = json.load(f)
    times = []
    for _ in range(a.repeats):
        t0 = time.perf_counter()
        res = vectorised(w_dec, w_u, sets, a.k, a.batch)
        times.append(time.perf_counter() - t0)
    m = min(a.per_set_latents, len(w_dec))
    t0 = time.perf_counter()
    ps = per_set(w_dec[:m], w_u, sets, a.k, a.batch)
    per_set_s = time.perf_counter() - t0
    ps_u = np.concatenate([u for u, _ in ps])
    ps_p = np.concatenate([p for _, p in ps])

    st = np.array([[r[0], r[1], r[2], r[3]] for r in res])
    hits = np.stack([r[4] for r in res])
    hp = np.stack([r[5] for r in res])
    u = np.stack([r[6] for r in res])
    p = np.stack([r[7] for r in res])
    o_st = np.array([[l["mean"], l["variance"], l["skewness"], l["kurtosis"]] for l in ours])
    o_hits = np.array([[e["hits"] for e in l["sets"]] for l in ours])
    o_hp = np.array([[e["hypergeom_p"] for e in l["sets"]] for l in ours])
    o_u = np.array([[e["mann_whitney_u"] for e in l["sets"]] for l in ours])
    o_p = np.array([[e["mann_whitney_p"] for e in l["sets"]] for l in ours])
    # p-values below 1e-300 compare as equal when both are.
    small = (o_p < 1e-300) & (p < 1e-300)
    print(
        json.dumps(
            {
                "scipy": scipy.__version__,
                "numpy": np.__version__,
                "median_s": statistics.median(times),
                "all_seconds": times,
                "per_set_latents": m,
                "per_set_s": per_set_s,
                "per_set_u_max_rel": rel(ps_u, u[:m]),
                "per_set_p_max_rel": rel(ps_p, p[:m]),
                "hits_identical": float((o_hits == hits).mean()),
                "moments_max_rel": [rel(o_st[:, j], st[:, j]) for j in range(4)],
                "hypergeom_p_max_rel": rel(o_hp, hp),
                "u_max_rel": rel(o_u, u),
                "p_max_rel": rel(np.where(small, 1.0, o_p), np.where(small, 1.0, p)),
            }
        )
    )


if __name__ == "__main__":
    main()
