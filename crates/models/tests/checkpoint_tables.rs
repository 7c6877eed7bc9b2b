//! docs/ARCHITECTURE.md's "Checkpoint names" tables are the code's tables: every row of
//! `GPT2_CHECKPOINT_TABLE`, `GEMMA_CHECKPOINT_TABLE`, `LLAMA_CHECKPOINT_TABLE` and
//! `BERT_CHECKPOINT_TABLE`, in order, and
//! nothing else.
#![allow(
    clippy::unwrap_used,
    clippy::panic,
    clippy::disallowed_methods,
    missing_docs
)]

use gpt2_gemma_models::{
    BERT_CHECKPOINT_TABLE, GEMMA_CHECKPOINT_TABLE, GPT2_CHECKPOINT_TABLE, LLAMA_CHECKPOINT_TABLE,
};

/// The rows (cells without backticks) of the markdown table that follows `marker`.
fn doc_rows(doc: &str, marker: &str) -> Vec<Vec<String>> {
    let start = doc
        .find(marker)
        .unwrap_or_else(|| panic!("no {marker} in the doc"));
    doc[start..]
        .lines()
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .skip(2)
        .map(|l| {
            l.trim_matches('|')
                .split(" | ")
                .map(|c| c.trim().trim_matches('`').to_string())
                .collect()
        })
        .collect()
}

#[test]
fn the_architecture_doc_prints_the_code_tables() {
    let doc = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/ARCHITECTURE.md"),
    )
    .unwrap();
    let gpt2: Vec<Vec<String>> = GPT2_CHECKPOINT_TABLE
        .iter()
        .map(|(a, b)| vec![a.to_string(), b.to_string()])
        .collect();
    assert_eq!(doc_rows(&doc, "**GPT-2** (`GPT2_CHECKPOINT_TABLE`"), gpt2);
    let bert: Vec<Vec<String>> = BERT_CHECKPOINT_TABLE
        .iter()
        .map(|(a, b)| vec![a.to_string(), b.to_string()])
        .collect();
    assert_eq!(doc_rows(&doc, "**BERT** (`BERT_CHECKPOINT_TABLE`"), bert);
    for (marker, table) in [
        (
            "**Gemma 1/2/3** (`GEMMA_CHECKPOINT_TABLE`",
            GEMMA_CHECKPOINT_TABLE,
        ),
        (
            "**Llama 3.x, Qwen 2.5, Qwen 3** (`LLAMA_CHECKPOINT_TABLE`",
            LLAMA_CHECKPOINT_TABLE,
        ),
    ] {
        let want: Vec<Vec<String>> = table
            .iter()
            .map(|(a, b, c)| vec![a.to_string(), b.to_string(), c.to_string()])
            .collect();
        assert_eq!(doc_rows(&doc, marker), want, "{marker}");
    }
}
