"""SAELens reference for `cargo xtask bench convert`.

    python benches/python/convert_ref.py --cache HF_HUB_CACHE --release R --sae-id ID \
        --threads 2 --repeats 3 [--check ours_w_enc_row0.npy]

Loads the same converted release (Gemma Scope's params.npz) from the same offline HF cache with
`SAE.from_pretrained`, and prints one JSON line: median / min seconds per load and, with --check,
the max |difference| of the first W_enc row against sae-geometry's.
"""

import argparse
import json
import os
import statistics
import time


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cache", required=True)
    ap.add_argument("--release", required=True)
    ap.add_argument("--sae-id", required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--check")
    args = ap.parse_args()
    os.environ["HF_HUB_CACHE"] = args.cache
    os.environ["HF_HUB_OFFLINE"] = "1"
    import numpy as np
    import torch
    import sae_lens
    from sae_lens import SAE

    torch.set_num_threads(args.threads)
    times = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        sae = SAE.from_pretrained(args.release, args.sae_id, device="cpu")
        times.append(time.perf_counter() - t0)
    out = {
        "impl": f"SAELens {sae_lens.__version__} / torch {torch.__version__} CPU",
        "threads": torch.get_num_threads(),
        "median_s": statistics.median(times),
        "min_s": min(times),
    }
    if args.check:
        ours = np.load(args.check)
        out["max_abs_diff_vs_ours"] = float(np.abs(sae.W_enc[0].detach().numpy() - ours).max())
    print(json.dumps(out))


if __name__ == "__main__":
    main()
