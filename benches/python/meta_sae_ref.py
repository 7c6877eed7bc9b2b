"""Reference for `cargo xtask bench meta-sae`.

    python benches/python/meta_sae_ref.py ROWS.npy --threads 2 --d-meta 819 --k 4 --batch 1024 \
        --steps 1000 --lr 0.001

Trains SAELens's `BatchTopKTrainingSAE` (k on average per row, the threshold as an exponential
moving average of the smallest kept activation with rate 0.01, AuxK with coefficient 1/32 on
latents dead for 100 steps as SAELens's trainer counts them, decoder norms folded in by
`rescale_acts_by_decoder_norm`) on the rows — unit-normalised, as the meta-SAE sees them — with
Adam (the given lr, betas 0.9/0.999), gradient clipping at 1.0 and a reshuffle every epoch: the
settings of `activation_store::meta_sae::train_meta_sae`. Then runs every row through the
JumpReLU form SAELens saves (threshold = the learned batch-top-k threshold).

Prints one JSON line: steps/s, and the explained variance and L0 over all rows.
"""

import argparse, json, time

import numpy as np


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("rows")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--d-meta", type=int, required=True)
    ap.add_argument("--k", type=float, default=4.0)
    ap.add_argument("--batch", type=int, default=1024)
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--lr", type=float, default=1e-3)
    a = ap.parse_args()
    import sae_lens
    import torch
    from sae_lens import BatchTopKTrainingSAE, BatchTopKTrainingSAEConfig
    from sae_lens.saes.sae import TrainStepInput

    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    x = torch.from_numpy(np.load(a.rows))
    x = x / x.norm(dim=1, keepdim=True).clamp_min(1e-12)
    n, d = x.shape
    cfg = BatchTopKTrainingSAEConfig(
        d_in=d, d_sae=a.d_meta, k=a.k, aux_loss_coefficient=1 / 32, topk_threshold_lr=0.01,
        apply_b_dec_to_input=False,
    )
    sae = BatchTopKTrainingSAE(cfg)
    opt = torch.optim.Adam(sae.parameters(), lr=a.lr, betas=(0.9, 0.999))
    since_fired = torch.zeros(a.d_meta)
    gen = torch.Generator().manual_seed(0)
    order, at = torch.randperm(n, generator=gen), 0
    t0 = time.perf_counter()
    for i in range(a.steps):
        if at + a.batch > n:
            order, at = torch.randperm(n, generator=gen), 0
        batch = x[order[at : at + a.batch]]
        at += a.batch
        out = sae.training_forward_pass(TrainStepInput(
            sae_in=batch, coefficients={}, dead_neuron_mask=since_fired > 100,
            n_training_steps=i, is_logging_step=False))
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(sae.parameters(), 1.0)
        opt.step()
        opt.zero_grad()
        with torch.no_grad():
            since_fired += 1
            since_fired[(out.feature_acts > 0).any(0)] = 0
    secs = time.perf_counter() - t0
    with torch.no_grad():
        norms = sae.W_dec.norm(dim=1)
        pre = (x @ sae.W_enc + sae.b_enc) * norms  # rescale_acts_by_decoder_norm
        f = torch.where(pre > sae.topk_threshold.float(), pre, torch.zeros_like(pre)).relu()
        recon = f @ (sae.W_dec / norms[:, None]) + sae.b_dec
        ev = 1 - ((x - recon) ** 2).sum() / ((x - x.mean(0)) ** 2).sum()
        l0 = (f != 0).sum(1).float().mean()
    print(json.dumps({
        "impl": f"SAELens {sae_lens.__version__} BatchTopKTrainingSAE / torch {torch.__version__} CPU",
        "steps_per_s": a.steps / secs,
        "seconds": secs,
        "explained_variance": float(ev),
        "l0": float(l0),
    }))


if __name__ == "__main__":
    main()
