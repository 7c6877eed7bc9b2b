"""PyTorch eager reference for `cargo xtask gpu-check` (same GPU, same inputs, one run).

    python benches/python/gpu_ref.py make-gpt2 DIR      # random-weight GPT-2 small (seed 0)
    python benches/python/gpu_ref.py bench WORK --repeats 10 [--device cuda:0]

`--device cpu` runs the same script on the CPU (TF32 then changes nothing): how gpu-check's whole
pipeline is dry-run on a machine without a GPU.

WORK holds what gpu-check wrote: gpt2-small-random/ (from make-gpt2), tokens.npy ([64, 128] ids
as float32), sae/ (a standard SAE 768 -> 24576 in SAELens's layout), sae_x.npy ([16384, 768]).
`bench` times, with TF32 off (exact fp32) and then on (`torch.backends.cuda.matmul.allow_tf32`):

- SAE encode: relu((x - b_dec) @ W_enc + b_enc), SAELens's standard encode, TFLOP/s of the matmul;
- GPT-2 small forward on the [64, 128] batch (logits), tokens/s; KV-cached greedy decoding of 32
  tokens from the first row's first 16 (batch 1), tokens/s;
- one TopK SAE training step (768 -> 3072, k 32, batch 4096, Adam, AuxK as SAELens computes it
  when latents are dead: none are in 50 steps from a fresh start, as on our side);
- caching: GPT-2 run to blocks.6.hook_resid_pre (the first 6 blocks, no final norm) over
  2560 x 128 pre-tokenised ids in batches of 64, copied to the host and written as .npy shards of
  256 sequences (our side also tokenises the text).

It saves the fp32 outputs for ours to compare against (ref_sae_feats.npy: the first 64 rows of
the encode; ref_gpt2_last_logits.npy: each row's last-position logits) and prints one JSON line.
"""

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def make_gpt2(d: Path) -> None:
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config()).eval()
    model.save_pretrained(d, safe_serialization=True)
    print(json.dumps({"wrote": str(d)}))


DEVICE = torch.device("cuda:0")


def sync():
    if DEVICE.type == "cuda":
        torch.cuda.synchronize()


def timed(fn, repeats):
    fn()
    fn()
    sync()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def bench(a) -> None:
    from safetensors.torch import load_file
    from transformers import GPT2LMHeadModel
    import transformers

    global DEVICE
    DEVICE = dev = torch.device(a.device)
    work = Path(a.work)
    sae = {k: v.to(dev) for k, v in load_file(work / "sae" / "sae_weights.safetensors").items()}
    x = torch.from_numpy(np.load(work / "sae_x.npy")).to(dev)
    ids = torch.from_numpy(np.load(work / "tokens.npy")).long().to(dev)
    model = GPT2LMHeadModel.from_pretrained(work / "gpt2-small-random", torch_dtype=torch.float32).to(dev).eval()
    model.generation_config.eos_token_id = None
    res = {
        "impl": f"PyTorch {torch.__version__} eager, transformers {transformers.__version__}",
        "gpu": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu",
    }
    ref = {}
    for mode in ["fp32", "tf32"]:
        torch.backends.cuda.matmul.allow_tf32 = mode == "tf32"
        torch.backends.cudnn.allow_tf32 = mode == "tf32"
        r = {}
        with torch.inference_mode():
            enc = lambda: torch.relu((x - sae["b_dec"]) @ sae["W_enc"] + sae["b_enc"])
            s = timed(enc, a.repeats)
            feats = enc()[:64].float().cpu().numpy()
            n, d_in = x.shape
            d_sae = sae["W_enc"].shape[1]
            r["sae_encode"] = {"seconds": s, "tflops": 2 * n * d_in * d_sae / s / 1e12}
            s = timed(lambda: model(ids).logits, a.repeats)
            last = model(ids).logits[:, -1, :].float().cpu().numpy()
            prompt = ids[:1, :16]
            model.generate(prompt, max_new_tokens=4, do_sample=False, pad_token_id=0)
            sync()
            t0 = time.perf_counter()
            model.generate(prompt, max_new_tokens=32, do_sample=False, pad_token_id=0)
            sync()
            dec = 32 / (time.perf_counter() - t0)
            r["gpt2"] = {"forward_seconds": s, "forward_tokens_per_s": ids.numel() / s, "decode_tokens_per_s": dec}
        if mode == "fp32":
            np.save(work / "ref_sae_feats.npy", feats)
            np.save(work / "ref_gpt2_last_logits.npy", last)
            ref = {"feats": feats, "last": last}
        else:
            agree = float(np.mean(last.argmax(-1) == ref["last"].argmax(-1)))
            r["gpt2"]["max_abs_diff_vs_pytorch_fp32"] = float(np.abs(last - ref["last"]).max())
            r["gpt2"]["argmax_agreement_vs_pytorch_fp32"] = agree
            r["sae_encode"]["max_abs_diff_vs_pytorch_fp32"] = float(np.abs(feats - ref["feats"]).max())
        r["train"] = train(dev, a.repeats)
        r["cache"] = cache(model, dev)
        res[mode] = r
        print(mode, json.dumps(r), file=sys.stderr)
    print(json.dumps(res))


def train(dev, _repeats):
    torch.manual_seed(0)
    d_in, d_sae, k, batch, steps = 768, 3072, 32, 4096, 50
    w_dec = torch.nn.Parameter(torch.randn(d_sae, d_in, device=dev) / d_in**0.5)
    w_enc = torch.nn.Parameter(w_dec.detach().t().clone())
    b_enc = torch.nn.Parameter(torch.zeros(d_sae, device=dev))
    b_dec = torch.nn.Parameter(torch.zeros(d_in, device=dev))
    opt = torch.optim.Adam([w_enc, b_enc, w_dec, b_dec], lr=3e-4)
    since_fired = torch.zeros(d_sae, device=dev)
    batches = [torch.randn(batch, d_in, device=dev) for _ in range(4)]

    def step(xb):
        pre = (xb - b_dec) @ w_enc + b_enc
        vals, idx = pre.topk(k, dim=-1)
        acts = torch.zeros_like(pre).scatter(-1, idx, torch.relu(vals))
        recon = acts @ w_dec + b_dec
        err = recon - xb
        mse = err.pow(2).sum(-1).mean()
        fired = (acts > 0).any(0)
        since_fired.add_(1).masked_fill_(fired, 0)
        dead = since_fired > 1000
        loss = mse
        if bool(dead.any()):  # SAELens's AuxK (never true here, as on our side)
            k_aux = min(d_in // 2, int(dead.sum()))
            aux_pre = pre.masked_fill(~dead, float("-inf"))
            v, i = aux_pre.topk(k_aux, dim=-1)
            aux_recon = torch.zeros_like(pre).scatter(-1, i, torch.relu(v)) @ w_dec
            loss = loss + (aux_recon + err.detach()).pow(2).sum(-1).mean() / 32
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for i in range(4):
        step(batches[i])
    sync()
    t0 = time.perf_counter()
    for i in range(steps):
        step(batches[i % 4])
    sync()
    return {"steps_per_s": steps / (time.perf_counter() - t0), "steps": steps, "auxk": "computed when dead (never here)"}


def cache(model, dev):
    import copy

    # A deep copy: a shallow one shares `_modules` with the model, so truncating its blocks would
    # truncate the model's own (every later forward would run 6 blocks and no final norm).
    body = copy.deepcopy(model.transformer)
    body.h = body.h[:6]
    body.ln_f = torch.nn.Identity()
    seqs, b, t, shard = 2560, 64, 128, 256
    g = torch.Generator(device="cpu").manual_seed(0)
    ids = torch.randint(0, 50257, (seqs, t), generator=g)
    with tempfile.TemporaryDirectory() as d, torch.inference_mode():
        def run(n):
            buf = []
            for i in range(0, n, b):
                h = body(ids[i : i + b].to(dev)).last_hidden_state
                buf.append(h.float().cpu().numpy())
                if sum(len(x) for x in buf) >= shard:
                    np.save(Path(d) / f"shard{i}.npy", np.concatenate(buf))
                    buf = []
            if buf:
                np.save(Path(d) / "last.npy", np.concatenate(buf))

        run(2 * b)
        sync()
        t0 = time.perf_counter()
        run(seqs)
        sync()
        s = time.perf_counter() - t0
    return {"tokens_per_s": seqs * t / s, "includes": "forward to blocks.6.hook_resid_pre, host copy, .npy shards written (ids pre-tokenised)"}


def main() -> None:
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("make-gpt2")
    m.add_argument("dir")
    b = sub.add_parser("bench")
    b.add_argument("work")
    b.add_argument("--repeats", type=int, default=10)
    b.add_argument("--device", default="cuda:0")
    a = p.parse_args()
    if a.cmd == "make-gpt2":
        make_gpt2(Path(a.dir))
    else:
        bench(a)


if __name__ == "__main__":
    main()
