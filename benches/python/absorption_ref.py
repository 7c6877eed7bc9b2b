"""scikit-learn reference for `cargo xtask bench absorption`.

    python benches/python/absorption_ref.py X.npy LABELS.npy TRAIN.npy COEF.npy --threads 2

Fits the 26 one-vs-rest first-letter probes as latent_geometry::absorption does
(LogisticRegression(C=1, class_weight="balanced"), solver newton-cholesky, and lbfgs as SAEBench's
k-sparse probes use) on the training rows, times each solver, and compares the coefficients with
ours (COEF.npy, [26, d + 1], the intercept last) and the objective
C·Σ s_i·logloss_i + ½‖w‖² each solution reaches (lower is better). Prints one JSON line.
"""

import argparse
import json
import time

import numpy as np
import sklearn
from sklearn.linear_model import LogisticRegression
from threadpoolctl import threadpool_limits


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("x")
    ap.add_argument("labels")
    ap.add_argument("train")
    ap.add_argument("coef")
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    x = np.load(a.x)
    labels = np.load(a.labels)
    train = np.load(a.train)
    ours_full = np.load(a.coef).astype(np.float64)
    ours = ours_full[:, :-1]
    xt, yt = x[train].astype(np.float64), labels[train]

    def objective(w, b, y):
        n, npos = len(y), y.sum()
        s = np.where(y == 1, n / (2 * npos), n / (2 * (n - npos)))
        z = xt @ w + b
        return float((s * (np.logaddexp(0, z) - y * z)).sum() + 0.5 * w @ w)

    ys = [(yt == letter).astype(np.int64) for letter in range(26)]
    out_ours = sum(objective(ours_full[l, :-1], ours_full[l, -1], ys[l]) for l in range(26))
    out = {"impl": f"scikit-learn {sklearn.__version__}", "threads": a.threads}
    with threadpool_limits(a.threads):
        for solver in ["newton-cholesky", "lbfgs"]:
            t0 = time.perf_counter()
            coefs, obj = [], 0.0
            models = []
            for letter in range(26):
                m = LogisticRegression(C=1.0, class_weight="balanced", solver=solver,
                                       max_iter=1000).fit(xt, ys[letter])
                models.append(m)
            out[f"{solver}_s"] = time.perf_counter() - t0
            for letter, m in enumerate(models):
                coefs.append(m.coef_[0])
                obj += objective(m.coef_[0], m.intercept_[0], ys[letter])
            out[f"{solver}_objective"] = obj
            c = np.array(coefs)
            out[f"{solver}_max_rel_coef_diff"] = float(
                np.abs(c - ours).max() / np.abs(c).max())
    out["ours_objective"] = out_ours
    print(json.dumps(out))


if __name__ == "__main__":
    main()
