"""SAELens reference for `cargo xtask bench eval-sae`.

    python benches/python/eval_sae_ref.py MODEL_DIR SAE_DIR TOKENS.json --threads 2 --batch 4

Loads the HF GPT-2 in MODEL_DIR into SAELens's HookedSAETransformer with TransformerLens's
processing (fold_ln, center_writing_weights, center_unembed, fold_value_biases — what
sae-geometry runs), the SAE with SAE.load_from_disk, and times sae_lens.evals'
get_downstream_reconstruction_metrics + get_sparsity_and_variance_metrics on the windows in
TOKENS.json (BOS = 50256 ignored, every metric on), after a one-batch warm-up. Prints one JSON
line: seconds, impl, threads, metrics.
"""

import argparse
import json
import time
from pathlib import Path

import torch
from transformers import GPT2LMHeadModel
from transformer_lens import HookedTransformerConfig
from transformer_lens.pretrained.weight_conversions.gpt2 import convert_gpt2_weights

import sae_lens
from sae_lens import SAE, HookedSAETransformer
from sae_lens.evals import get_downstream_reconstruction_metrics, get_sparsity_and_variance_metrics
from sae_lens.training.activation_scaler import ActivationScaler


class Batches:
    def __init__(self, batches):
        self.batches, self.i = batches, 0

    def get_batch_tokens(self, n):
        b = self.batches[self.i % len(self.batches)]
        self.i += 1
        return b


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("sae")
    ap.add_argument("tokens")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=4)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    hf = GPT2LMHeadModel.from_pretrained(a.model).eval()
    c = hf.config
    tcfg = HookedTransformerConfig(
        n_layers=c.n_layer, d_model=c.n_embd, d_head=c.n_embd // c.n_head, n_heads=c.n_head,
        d_mlp=c.n_embd * 4, d_vocab=c.vocab_size, n_ctx=c.n_positions, act_fn="gelu_new",
        normalization_type="LN", eps=c.layer_norm_epsilon, default_prepend_bos=True,
        positional_embedding_type="standard", device="cpu",
    )
    m = HookedSAETransformer(tcfg)
    m.load_and_process_state_dict(convert_gpt2_weights(hf, tcfg), fold_ln=True,
                                  center_writing_weights=True, center_unembed=True,
                                  fold_value_biases=True)
    m.cfg.normalization_type = "LNPre"
    m.eval()
    sae = SAE.load_from_disk(a.sae, device="cpu")
    toks = torch.tensor(json.loads(Path(a.tokens).read_text()))
    batches = list(toks.split(a.batch))
    n = len(batches)
    ign = [50256]

    def run(bs):
        k = len(bs)
        r = get_downstream_reconstruction_metrics(
            sae, m, Batches(bs), ActivationScaler(), compute_kl=True, compute_ce_loss=True,
            n_batches=k, eval_batch_size_prompts=a.batch, ignore_tokens=ign)
        s, _ = get_sparsity_and_variance_metrics(
            sae, m, Batches(bs), ActivationScaler(), n_batches=k, compute_l2_norms=True,
            compute_sparsity_metrics=True, compute_variance_metrics=True,
            compute_featurewise_density_statistics=True, eval_batch_size_prompts=a.batch,
            model_kwargs={}, ignore_tokens=ign)
        return {**r, **s}

    with torch.inference_mode():
        run(batches[:1])
        t0 = time.perf_counter()
        metrics = run(batches)
        secs = time.perf_counter() - t0
    print(json.dumps({
        "impl": f"SAELens {sae_lens.__version__} / torch {torch.__version__} CPU",
        "threads": torch.get_num_threads(), "seconds": secs, "batches": n, "metrics": metrics,
    }))


if __name__ == "__main__":
    main()
