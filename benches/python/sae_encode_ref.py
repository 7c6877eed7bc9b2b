"""SAELens reference for `cargo xtask bench sae-encode`.

    python benches/python/sae_encode_ref.py --sae DIR --input X.npy --threads 2 --repeats 5 \
        [--check ours_first_rows.npy]

Loads the SAE that xtask saved with SAELens, encodes the same input on the PyTorch CPU backend
with the given thread count, and prints one JSON line: median / min seconds per encode and, with
--check, the max |difference| between SAELens's features and sae-geometry's on the first rows.
"""

import argparse
import json
import statistics
import time

import numpy as np
import torch
from sae_lens import SAE


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sae", required=True)
    ap.add_argument("--input", required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--check")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    sae = SAE.load_from_disk(args.sae, device="cpu")
    x = torch.from_numpy(np.load(args.input))
    times = []
    with torch.no_grad():
        sae.encode(x)  # warm-up
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            f = sae.encode(x)
            times.append(time.perf_counter() - t0)
    out = {
        "impl": f"SAELens {__import__('sae_lens').__version__} / torch {torch.__version__} CPU",
        "threads": torch.get_num_threads(),
        "median_s": statistics.median(times),
        "min_s": min(times),
    }
    if args.check:
        ours = np.load(args.check)
        out["max_abs_diff_vs_ours"] = float(np.abs(f[: ours.shape[0]].numpy() - ours).max())
    print(json.dumps(out))


if __name__ == "__main__":
    main()
