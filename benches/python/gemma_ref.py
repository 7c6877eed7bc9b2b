"""transformers reference for `cargo xtask bench gemma`: gemma-3-270m loaded from the GGUF.

    python benches/python/gemma_ref.py GGUF --tokens T.json --threads 2 --decode-tokens 32 --out-logits L.npy

Forward on the token batch in T.json (median of 3 after a warm-up), KV-cached greedy decode
(batch 1, the first row's first 16 tokens as prompt); prints one JSON line with tokens/s, load
time and peak RSS, and saves the last-position logits of every row.
"""

import argparse
import json
import resource
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from transformers import AutoModelForCausalLM


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("gguf")
    ap.add_argument("--tokens", required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--decode-tokens", type=int, default=32)
    ap.add_argument("--out-logits", required=True)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    p = Path(a.gguf)
    t0 = time.perf_counter()
    model = AutoModelForCausalLM.from_pretrained(p.parent, gguf_file=p.name, dtype=torch.float32).eval()
    load_s = time.perf_counter() - t0
    x = torch.tensor(json.loads(Path(a.tokens).read_text()))
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
        # Plain greedy for exactly decode_tokens steps: no EOS stop, and no min_new_tokens (which
        # would mask EOS and so change the tokens).
        model.generation_config.eos_token_id = None
        model.generate(prompt, max_new_tokens=4, do_sample=False)
        t0 = time.perf_counter()
        out = model.generate(prompt, max_new_tokens=a.decode_tokens, do_sample=False)
        dec_s = time.perf_counter() - t0
    print(json.dumps({
        "impl": f"transformers (GGUF dequantised to f32) / torch {torch.__version__} CPU",
        "threads": torch.get_num_threads(),
        "load_s": load_s,
        "forward_tokens_per_s": b * t / statistics.median(times),
        "decode_tokens_per_s": a.decode_tokens / dec_s,
        "greedy": out[0, 16:].tolist(),
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }))


if __name__ == "__main__":
    main()
