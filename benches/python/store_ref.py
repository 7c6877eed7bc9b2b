"""SAELens + TransformerLens reference for `cargo xtask bench store`.

    python benches/python/store_ref.py GGUF --corpus C.jsonl --tokens 16384 --threads 2 \
        --d-sae 2560 --k 32 --batch 4096 --steps 10

gemma-3-270m is loaded from the GGUF through transformers (dequantised to f32) and wrapped in
TransformerLens's HookedTransformer (no processing, as our Gemma runs its checkpoint's weights).
Activation caching: SAELens's ActivationsStore over the same JSONL corpus (its `text` field),
hook blocks.6.hook_resid_post, context 128, BOS, BOS separators, 8 prompts per batch — the
tokens/s of get_batch_tokens + get_activations (the work CacheActivationsRunner does before
writing). Training: SAELens's TopKTrainingSAE (640 → d_sae, k) trained as SAETrainer does
(training_forward_pass, backward, clip_grad_norm 1.0, Adam) on batches of those activations;
steps/s over `--steps` steps after 2 warm-up steps. Prints one JSON line.
"""

import argparse
import json
import os
import resource
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import datasets
import torch
from sae_lens.saes.sae import TrainStepInput
from sae_lens.saes.topk_sae import TopKTrainingSAE, TopKTrainingSAEConfig
from sae_lens.training.activations_store import ActivationsStore
from transformer_lens import HookedTransformer
from transformers import AutoModelForCausalLM, AutoTokenizer


def load_gemma(gguf: Path):
    hf = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32).eval()
    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    # The weights are dequantised already; TransformerLens refuses a config that still says GGUF.
    if hasattr(hf.config, "quantization_config"):
        delattr(hf.config, "quantization_config")
    hf.hf_quantizer = None
    hf.is_quantized = False
    return HookedTransformer.from_pretrained_no_processing(
        "google/gemma-3-270m", hf_model=hf, tokenizer=tok, hf_config=hf.config, device="cpu", dtype=torch.float32
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("gguf")
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--tokens", type=int, default=16384)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--d-sae", type=int, default=2560)
    ap.add_argument("--k", type=int, default=32)
    ap.add_argument("--batch", type=int, default=4096)
    ap.add_argument("--steps", type=int, default=10)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    model = load_gemma(Path(a.gguf))
    ds = datasets.load_dataset("json", data_files=a.corpus, split="train")
    store = ActivationsStore(
        model=model, dataset=ds, streaming=False, hook_name="blocks.6.hook_resid_post", hook_head_index=None,
        context_size=128, d_in=640, n_batches_in_buffer=8, total_training_tokens=10**9,
        store_batch_size_prompts=8, train_batch_size_tokens=a.batch, prepend_bos=True,
        normalize_activations="none", device=torch.device("cpu"), dtype="float32",
    )
    n_batches = a.tokens // (8 * 128)
    with torch.no_grad():
        store.get_activations(store.get_batch_tokens())  # warm-up
        acts = []
        t0 = time.perf_counter()
        for _ in range(n_batches):
            acts.append(store.get_activations(store.get_batch_tokens()).reshape(-1, 640))
        cache_s = time.perf_counter() - t0
    x = torch.cat(acts)
    cfg = TopKTrainingSAEConfig(d_in=640, d_sae=a.d_sae, k=a.k)
    sae = TopKTrainingSAE(cfg)
    opt = torch.optim.Adam(sae.parameters(), lr=3e-4, betas=(0.9, 0.999))
    dead = torch.zeros(a.d_sae, dtype=torch.bool)

    def step(i):
        rows = torch.randint(0, x.shape[0], (a.batch,), generator=torch.Generator().manual_seed(i))
        out = sae.training_forward_pass(TrainStepInput(
            sae_in=x[rows], coefficients={}, dead_neuron_mask=dead, n_training_steps=i, is_logging_step=False))
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(sae.parameters(), 1.0)
        opt.step()
        opt.zero_grad()

    for i in range(2):
        step(i)
    t0 = time.perf_counter()
    for i in range(a.steps):
        step(i + 2)
    train_s = time.perf_counter() - t0
    print(json.dumps({
        "impl": f"SAELens + TransformerLens / torch {torch.__version__} CPU",
        "threads": torch.get_num_threads(),
        "cache_tokens_per_s": n_batches * 8 * 128 / cache_s,
        "train_steps_per_s": a.steps / train_s,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }))


if __name__ == "__main__":
    main()
