"""Reference for `cargo xtask bench latent-stats`.

    python benches/python/latent_stats_ref.py DIR --repeats 3 --threads 2 --k 20 --buffer 10 \
        --topk 32 --batch-seqs 64

DIR holds what the Rust side wrote: acts.npy [windows, context, d_in] (the cached activations),
tokens.npy [windows, context], the TopK SAE's w_enc.npy [d_in, d_sae], b_enc.npy, b_dec.npy, and
ours_top.json (per latent its top windows as [sequence, position, activation], best first).

Runs the tutorial's `AutoInterp.gather_data` on those activations: per batch of windows the SAE's
activations (SAELens's TopK encode: `(x - b_dec) @ W_enc + b_enc`, top k, ReLU), then for every
latent ARENA's `get_k_largest_indices` (no positions within `buffer` of either end,
`no_overlap=False` as the tutorial's default) and `index_with_buffer` on the tokens and the
activations, concatenated over batches; at the end each latent's `topk` by the centre
activation. Only the top windows: no frequencies, samples or random windows, which ours also
gathers in its timed pass.

Prints one JSON line with the times and the share of latents whose top lists (positive
activations, by position) equal ours.
"""

import argparse, json, os, statistics, time

import numpy as np


def get_k_largest_indices(x, k, buffer=0, no_overlap=False):
    """ARENA's helper: the (batch, seqpos) indices of the k largest elements of x."""
    import torch as t

    if buffer > 0:
        x = x[:, buffer:-buffer]
    indices = x.flatten().argsort(-1, descending=True)
    rows = indices // x.size(1)
    cols = indices % x.size(1) + buffer
    if no_overlap:
        unique_indices = t.empty((0, 2), device=x.device).long()
        while len(unique_indices) < k:
            unique_indices = t.cat((unique_indices, t.tensor([[rows[0], cols[0]]], device=x.device)))
            is_overlapping_mask = (rows == rows[0]) & ((cols - cols[0]).abs() <= buffer)
            rows = rows[~is_overlapping_mask]
            cols = cols[~is_overlapping_mask]
        return unique_indices
    return t.stack((rows, cols), dim=1)[:k]


def index_with_buffer(x, indices, buffer=None):
    """ARENA's helper: x at the indices, with `buffer` positions each side."""
    import einops
    import torch as t

    rows, cols = indices.unbind(dim=-1)
    if buffer is not None:
        rows = einops.repeat(rows, "k -> k buffer", buffer=buffer * 2 + 1)
        cols = cols.clone()
        cols[cols < buffer] = buffer
        cols[cols > x.size(1) - buffer - 1] = x.size(1) - buffer - 1
        cols = einops.repeat(cols, "k -> k buffer", buffer=buffer * 2 + 1) + t.arange(
            -buffer, buffer + 1, device=cols.device
        )
    return x[rows, cols]


def gather(acts, tokens, w_enc, b_enc, b_dec, topk, k, buffer, batch_seqs):
    import torch as t

    n_seq, ctx, d = acts.shape
    d_sae = w_enc.shape[1]
    data = {
        l: {
            "top_toks": t.empty(0, 1 + 2 * buffer, dtype=t.int64),
            "top_values": t.empty(0, dtype=t.float32),
            "top_where": t.empty(0, 2, dtype=t.int64),
        }
        for l in range(d_sae)
    }
    with t.no_grad():
        for s in range(0, n_seq, batch_seqs):
            x = acts[s : s + batch_seqs]
            toks = tokens[s : s + batch_seqs]
            pre = (x.reshape(-1, d) - b_dec) @ w_enc + b_enc
            v, i = pre.topk(topk, dim=-1)
            f = t.zeros_like(pre).scatter(-1, i, v.relu()).reshape(x.shape[0], ctx, d_sae)
            for l in range(d_sae):
                top_indices = get_k_largest_indices(f[..., l], k=k, buffer=buffer)
                top_toks = index_with_buffer(toks, top_indices, buffer=buffer)
                top_values = index_with_buffer(f[..., l], top_indices, buffer=buffer)
                where = top_indices + t.tensor([s, 0])
                dl = data[l]
                dl["top_toks"] = t.cat((dl["top_toks"], top_toks), dim=0)
                dl["top_values"] = t.cat((dl["top_values"], top_values), dim=0)
                dl["top_where"] = t.cat((dl["top_where"], where), dim=0)
    out = []
    for l in range(d_sae):
        dl = data[l]
        best = dl["top_values"][:, buffer].topk(k).indices
        out.append(
            [
                (int(dl["top_where"][j, 0]), int(dl["top_where"][j, 1]), float(dl["top_values"][j, buffer]))
                for j in best
            ]
        )
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--k", type=int, default=20)
    ap.add_argument("--buffer", type=int, default=10)
    ap.add_argument("--topk", type=int, default=32)
    ap.add_argument("--batch-seqs", type=int, default=64)
    a = ap.parse_args()
    import torch

    torch.set_num_threads(a.threads)
    load = lambda name: torch.from_numpy(np.load(os.path.join(a.dir, name)))
    acts, w_enc, b_enc, b_dec = load("acts.npy"), load("w_enc.npy"), load("b_enc.npy"), load("b_dec.npy")
    tokens = load("tokens.npy").long()
    with open(os.path.join(a.dir, "ours_top.json")) as f:
        ours = json.load(f)
    times = []
    for _ in range(a.repeats):
        t0 = time.perf_counter()
        theirs = gather(acts, tokens, w_enc, b_enc, b_dec, a.topk, a.k, a.buffer, a.batch_seqs)
        times.append(time.perf_counter() - t0)
    same, max_diff = 0, 0.0
    for o, r in zip(ours, theirs):
        r = [w for w in r if w[2] > 0]
        if [(s, p) for s, p, _ in o] == [(s, p) for s, p, _ in r]:
            same += 1
        ro = {(s, p): v for s, p, v in r}
        for s, p, v in o:
            if (s, p) in ro:
                max_diff = max(max_diff, abs(v - ro[(s, p)]))
    print(
        json.dumps(
            {
                "torch": torch.__version__,
                "median_s": statistics.median(times),
                "all_seconds": times,
                "identical": same / len(ours),
                "max_abs_diff": max_diff,
            }
        )
    )


if __name__ == "__main__":
    main()
