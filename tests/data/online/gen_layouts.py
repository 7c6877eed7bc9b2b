"""Checks the online fixtures (tests/src/online_fixtures.rs) against transformers itself.

    python tests/data/online/gen_layouts.py        # needs: pip install torch transformers

Starts `cargo xtask fixture-servers --online`, points huggingface_hub at it (HF_ENDPOINT) and
loads every served model the way the tutorial does: transformers' `from_pretrained` must find
every weight it expects (no missing keys; the only unexpected keys allowed are GPT-2's
`attn.bias` mask buffers, which the real hub file also holds), the tokenizers must load from
the served files, and a forward pass must give finite logits. Writes layouts.json beside this
script: transformers' version and, per repository, the files served and the tensor names,
shapes and dtypes transformers loaded from them.
"""

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]


def main() -> None:
    tmp = Path(tempfile.mkdtemp())
    ports = tmp / "ports"
    server = subprocess.Popen(
        ["cargo", "xtask", "fixture-servers", "--online", "--port-file", str(ports)], cwd=ROOT
    )
    try:
        while not ports.exists():
            if server.poll() is not None:
                sys.exit("fixture-servers exited")
            time.sleep(1)
        env = dict(line.split("=", 1) for line in ports.read_text().split())
        os.environ["HF_ENDPOINT"] = env["HF_ENDPOINT"]
        os.environ["HF_HOME"] = str(tmp / "hf")
        os.environ["HF_TOKEN"] = env["SAE_GEOMETRY_FIXTURE_TOKEN"]
        import torch
        import transformers
        from huggingface_hub import list_repo_files
        from transformers import AutoTokenizer, GemmaForCausalLM, GPT2LMHeadModel

        out = {"transformers": transformers.__version__, "repos": {}}
        for repo, cls, allowed_unexpected in [
            ("openai-community/gpt2", GPT2LMHeadModel, ".attn.bias"),
            ("google/gemma-2b-it", GemmaForCausalLM, None),
        ]:
            model, info = cls.from_pretrained(repo, output_loading_info=True)
            assert not info["missing_keys"], (repo, info["missing_keys"])
            bad = [k for k in info["unexpected_keys"]
                   if not (allowed_unexpected and k.endswith(allowed_unexpected))]
            assert not bad, (repo, bad)
            tok = AutoTokenizer.from_pretrained(repo)
            ids = tok("The meaning of the word", return_tensors="pt").input_ids
            with torch.no_grad():
                logits = model(ids).logits
            assert torch.isfinite(logits).all(), repo
            assert logits.shape[-1] == model.config.vocab_size, repo
            out["repos"][repo] = {
                "files": sorted(list_repo_files(repo)),
                "tokens": ids[0].tolist(),
                "tensors": {n: [list(p.shape), str(p.dtype)] for n, p in model.state_dict().items()},
            }
            print(repo, "OK:", len(out["repos"][repo]["tensors"]), "tensors")
        (HERE / "layouts.json").write_text(json.dumps(out, indent=1, sort_keys=True) + "\n")
    finally:
        server.terminate()


if __name__ == "__main__":
    main()
