//! # gpt2-gemma-models
//!
//! Not implemented yet (issues 3 and 4). This crate will hold GPT-2 and Gemma 1/2/3 on burn, loaded
//! from HF safetensors and GGUF, with TransformerLens hook points (`blocks.{L}.hook_resid_pre`, …),
//! `run_with_cache`, `run_with_hooks`, KV-cached generation and the GPT-2 / Gemma tokenizers.
//! Nothing here pretends to work yet.
