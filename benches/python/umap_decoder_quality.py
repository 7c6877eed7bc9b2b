"""UMAP quality on trained SAE decoders: ours (the `sae-geometry umap` CLI) beside umap-learn.

    SAE_GEOMETRY_BIN=target/release/sae-geometry python benches/python/umap_decoder_quality.py SAE_DIR [SAE_DIR ...]

For each SAE directory (SAELens layout) and for 2-D and 10-D, both embed W_dec (cosine, 15
neighbours, seed 0) and report scikit-learn's trustworthiness (k = 15, cosine) and 15-NN recall.
"""
import json, os, subprocess, sys
import numpy as np
from safetensors.numpy import load_file
import umap, sklearn.manifold
from sklearn.neighbors import NearestNeighbors

def recall(x, y, k=15):
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    a = NearestNeighbors(n_neighbors=k + 1, metric="cosine").fit(xn).kneighbors(xn, return_distance=False)[:, 1:]
    b = NearestNeighbors(n_neighbors=k + 1).fit(y).kneighbors(y, return_distance=False)[:, 1:]
    return float(np.mean([len(set(a[i]) & set(b[i])) / k for i in range(len(x))]))

out = {}
for d in sys.argv[1:]:
    w = load_file(f"{d}/sae_weights.safetensors")["W_dec"].astype(np.float32)
    np.save("/tmp/wdec.npy", w)
    for dim in (2, 10):
        subprocess.run([os.environ.get("SAE_GEOMETRY_BIN", "target/release/sae-geometry"), "--log", "warn", "umap", "--input", "/tmp/wdec.npy", "--n-components", str(dim), "--metric", "cosine", "--seed", "0", "--out", "/tmp/ours.npy"], check=True)
        ours = np.load("/tmp/ours.npy")
        theirs = umap.UMAP(n_components=dim, metric="cosine", random_state=0).fit_transform(w)
        r = {}
        for name, y in (("ours", ours), ("umap_learn", theirs)):
            r[name] = {"trustworthiness": float(sklearn.manifold.trustworthiness(w, y, n_neighbors=15, metric="cosine")), "recall15": recall(w, y)}
        out[f"{d.split('/')[-1]} {dim}-D"] = r
        print(f"{d.split('/')[-1]} {dim}-D", json.dumps(r), flush=True)
json.dump(out, open("/tmp/umap_decoder_check.json", "w"), indent=1)
