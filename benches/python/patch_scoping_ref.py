"""Reference for `cargo xtask bench patch-scoping`: a 64-scale patch-scoping sweep on
gemma-3-270m (transformers loading the GGUF), the scales as the batch dimension, with the
tutorial's pre-hook on the prefill pass only, greedy decoding.

    python benches/python/patch_scoping_ref.py GGUF DIRECTION.npy THREADS MAX_NEW SCALES_CSV
"""

import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

TEMPLATE = '<start_of_turn>user\nWhat is the meaning of the word "{X}"?<end_of_turn>\n<start_of_turn>model\nThe meaning of the word "{X}" is "'


def main():
    p = Path(sys.argv[1])
    direction = np.load(sys.argv[2]).astype(np.float32)
    torch.set_num_threads(int(sys.argv[3]))
    max_new = int(sys.argv[4])
    scales = [float(s) for s in sys.argv[5].split(",")]
    tok = AutoTokenizer.from_pretrained(p.parent, gguf_file=p.name)
    model = AutoModelForCausalLM.from_pretrained(p.parent, gguf_file=p.name, dtype=torch.float32).eval()
    text = TEMPLATE.replace("{X}", tok.unk_token)
    ids = tok(text, return_tensors="pt").input_ids
    positions = [i for i, t in enumerate(ids[0].tolist()) if t == tok.unk_token_id]
    u = torch.tensor(direction, dtype=torch.float64)
    u = (u / u.norm()).to(torch.float32)
    vec = torch.stack([u * s for s in scales])

    def pre_hook(module, args, kwargs):
        hs = kwargs["hidden_states"] if "hidden_states" in kwargs else args[0]
        if hs.shape[1] > 1:
            hs = hs.clone()
            hs[:, positions] = vec[:, None, :]
            if "hidden_states" in kwargs:
                kwargs["hidden_states"] = hs
                return args, kwargs
            return (hs, *args[1:]), kwargs
        return None

    model.model.layers[2].register_forward_pre_hook(pre_hook, with_kwargs=True)
    batch = ids.repeat(len(scales), 1)
    times, out = [], None
    for _ in range(2):
        t0 = time.perf_counter()
        with torch.no_grad():
            out = model.generate(batch, max_new_tokens=max_new, min_new_tokens=max_new, do_sample=False,
                                 pad_token_id=tok.pad_token_id)
        times.append(time.perf_counter() - t0)
    new = out[:, ids.shape[1]:].tolist()
    print(json.dumps({"seconds": min(times), "generated": new}))


if __name__ == "__main__":
    main()
