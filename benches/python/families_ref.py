"""Reference for `cargo xtask bench families`.

    python benches/python/families_ref.py DIR --repeats 3 --threads 2

DIR holds what the Rust side wrote: desc.json (descriptions) and ours_emb.npy (its embeddings),
a.npy / b.npy (activations [T, 640] / [T, 2560]) and ours_probe.npy (its Jaccard and correlation
of pairs (i, 4i mod 2560)). Embeds the descriptions with sentence-transformers on the packaged
all-MiniLM-L6-v2 and computes co-firing with numpy's dense products; prints one JSON line with
times and agreement.
"""

import argparse, json, os, statistics, tempfile, time, zipfile

import numpy as np


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    import torch
    torch.set_num_threads(a.threads)
    import sentence_transformers
    from all_minilm_l6_v2 import get_model_zip_path
    from sentence_transformers import SentenceTransformer

    desc = json.load(open(os.path.join(a.dir, "desc.json")))
    ours = np.load(os.path.join(a.dir, "ours_emb.npy"))
    d = tempfile.mkdtemp()
    t0 = time.perf_counter()
    zipfile.ZipFile(get_model_zip_path()).extractall(d)
    model = SentenceTransformer(d, device="cpu")
    load = time.perf_counter() - t0
    model.encode(desc[:32])
    times = []
    for _ in range(a.repeats):
        t0 = time.perf_counter()
        emb = model.encode(desc, convert_to_numpy=True)
        times.append(time.perf_counter() - t0)
    cos = (emb * ours).sum(1) / (np.linalg.norm(emb, axis=1) * np.linalg.norm(ours, axis=1))

    A = np.load(os.path.join(a.dir, "a.npy")).astype(np.float64)
    B = np.load(os.path.join(a.dir, "b.npy")).astype(np.float64)
    probe = np.load(os.path.join(a.dir, "ours_probe.npy"))
    ctimes = []
    for _ in range(a.repeats):
        t0 = time.perf_counter()
        fa, fb = (A > 0).astype(np.float64), (B > 0).astype(np.float64)
        both = fa.T @ fb
        na, nb = fa.sum(0), fb.sum(0)
        jac = both / np.maximum(na[:, None] + nb[None, :] - both, 1)
        n = A.shape[0]
        sab = A.T @ B
        sa, sb = A.sum(0), B.sum(0)
        va, vb = n * (A * A).sum(0) - sa * sa, n * (B * B).sum(0) - sb * sb
        corr = (n * sab - np.outer(sa, sb)) / np.sqrt(np.outer(va, vb))
        ctimes.append(time.perf_counter() - t0)
    i = np.arange(A.shape[1])
    j = (4 * i) % B.shape[1]
    print(json.dumps({
        "sentence_transformers": sentence_transformers.__version__,
        "load_seconds": load,
        "embed_seconds": statistics.median(times),
        "all_seconds": times,
        "max_abs_diff": float(np.abs(emb - ours).max()),
        "min_cosine": float(cos.min()),
        "cofiring_seconds": statistics.median(ctimes),
        "max_jaccard_diff": float(np.abs(jac[i, j] - probe[:, 0]).max()),
        "max_corr_diff": float(np.abs(corr[i, j] - probe[:, 1]).max()),
    }))


if __name__ == "__main__":
    main()
