"""transformers reference for `cargo xtask bench gpt2`.

    python benches/python/gpt2_ref.py make DIR            # random-weight GPT-2 small (seed 0)
    python benches/python/gpt2_ref.py bench DIR --tokens T.json --threads 2 --decode-tokens 32 \
        --out-logits L.npy

`bench` runs the forward pass on the token batch in T.json (median of 3 after a warm-up) and
KV-cached greedy decoding (batch 1, first row's first 16 tokens as prompt), then prints one JSON
line: forward and decode tokens/s, load time and peak RSS; it saves the last-position logits of
every row for the parity check.
"""

import argparse
import json
import resource
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from transformers import GPT2Config, GPT2LMHeadModel


def make(d: Path) -> None:
    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config()).eval()
    model.save_pretrained(d, safe_serialization=True)
    print(f"wrote {d}")


def bench(a) -> None:
    torch.set_num_threads(a.threads)
    t0 = time.perf_counter()
    model = GPT2LMHeadModel.from_pretrained(a.dir, torch_dtype=torch.float32).eval()
    load_s = time.perf_counter() - t0
    rows = json.loads(Path(a.tokens).read_text())
    x = torch.tensor(rows)
    b, t = x.shape
    times = []
    with torch.inference_mode():
        logits = model(x).logits
        for _ in range(3):
            t0 = time.perf_counter()
            logits = model(x).logits
            times.append(time.perf_counter() - t0)
        np.save(a.out_logits, logits[:, -1, :].float().numpy())
        prompt = x[:1, :16]
        model.generate(prompt, max_new_tokens=4, do_sample=False, pad_token_id=0)  # warm-up
        model.generation_config.eos_token_id = None  # plain greedy, exactly decode_tokens steps
        t0 = time.perf_counter()
        out = model.generate(prompt, max_new_tokens=a.decode_tokens, do_sample=False, pad_token_id=0)
        dec_s = time.perf_counter() - t0
    res = {
        "impl": f"transformers / torch {torch.__version__} CPU",
        "threads": torch.get_num_threads(),
        "load_s": load_s,
        "forward_s": statistics.median(times),
        "forward_tokens_per_s": b * t / statistics.median(times),
        "decode_tokens_per_s": a.decode_tokens / dec_s,
        "greedy": out[0, 16:].tolist(),
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    print(json.dumps(res))


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("cmd", choices=["make", "bench"])
    ap.add_argument("dir")
    ap.add_argument("--tokens")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--decode-tokens", type=int, default=32)
    ap.add_argument("--out-logits")
    a = ap.parse_args()
    if a.cmd == "make":
        make(Path(a.dir))
    else:
        bench(a)
    sys.exit(0)
