"""Reference for `cargo xtask bench logit-lens`.

    python benches/python/logit_lens_ref.py DIR --repeats 3 --threads 2 --k 10 --batch 1000

DIR holds what the Rust side wrote: w_dec.npy [n, d], w_u.npy [d, vocab] and ours_ids.npy
([n, 2k]: each latent's top-k token ids, largest first, then its bottom-k, smallest first).
Computes the same with torch (`(W_dec[batch] @ W_U).topk(k)` and `topk(k, largest=False)`, as
the tutorial's `W_dec @ W_U` then `topk`), in the same latent batches; prints one JSON line with
the times and the share of latents whose lists are identical.
"""

import argparse, json, os, statistics, time

import numpy as np


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--batch", type=int, default=1000)
    a = ap.parse_args()
    import torch

    torch.set_num_threads(a.threads)
    w_dec = torch.from_numpy(np.load(os.path.join(a.dir, "w_dec.npy")))
    w_u = torch.from_numpy(np.load(os.path.join(a.dir, "w_u.npy")))
    ours = np.load(os.path.join(a.dir, "ours_ids.npy")).astype(np.int64)
    times = []
    for _ in range(a.repeats):
        t0 = time.perf_counter()
        top, bottom = [], []
        with torch.no_grad():
            for s in range(0, w_dec.shape[0], a.batch):
                logits = w_dec[s : s + a.batch] @ w_u
                top.append(logits.topk(a.k, dim=1).indices)
                bottom.append(logits.topk(a.k, dim=1, largest=False).indices)
        top, bottom = torch.cat(top).numpy(), torch.cat(bottom).numpy()
        times.append(time.perf_counter() - t0)
    k = a.k
    print(
        json.dumps(
            {
                "torch": torch.__version__,
                "median_s": statistics.median(times),
                "all_seconds": times,
                "top_identical": float((ours[:, :k] == top).all(1).mean()),
                "bottom_identical": float((ours[:, k:] == bottom).all(1).mean()),
            }
        )
    )


if __name__ == "__main__":
    main()
