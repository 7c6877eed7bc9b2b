//! The default prompts equal the tutorial's, byte for byte, on real GPT-2 token strings
//! (fixture: `fixtures/prompts/gen_fixtures.py`, the tutorial's code run in Python).
#![allow(clippy::unwrap_used, clippy::panic, clippy::expect_used, missing_docs)]

use std::path::PathBuf;

use autointerp::{
    AutoInterpConfig, Example, PromptOptions, Role, generation_prompt, parse_explanation,
    scoring_prompt,
};
use gpt2_gemma_models::Gpt2Tokenizer;

#[derive(serde::Deserialize)]
struct Ex {
    tokens: Vec<u32>,
    str_tokens: Vec<String>,
    acts: Vec<f32>,
}

#[derive(serde::Deserialize)]
struct Msg {
    role: String,
    content: String,
}

#[derive(serde::Deserialize)]
struct Case {
    examples: Vec<Ex>,
    act_threshold: f32,
    use_examples_in_explanation_prompt: bool,
    marked: Vec<String>,
    is_active: Vec<bool>,
    generation: Vec<Msg>,
    explanation_raw: String,
    explanation: String,
    scoring: Vec<Msg>,
}

fn check(ours: &[autointerp::Message], theirs: &[Msg]) {
    assert_eq!(ours.len(), theirs.len());
    for (o, t) in ours.iter().zip(theirs) {
        let role = match o.role {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
        };
        assert_eq!(role, t.role);
        assert_eq!(o.content, t.content, "message differs");
    }
}

#[test]
fn default_prompts_equal_the_tutorials() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let tokdir = root.join("../models/tests/fixtures/gpt2-tokenizer");
    let tok =
        Gpt2Tokenizer::from_vocab_merges(tokdir.join("encoder.json"), tokdir.join("vocab.bpe"))
            .unwrap();
    let cases: Vec<Case> = serde_json::from_str(
        &std::fs::read_to_string(root.join("tests/fixtures/prompts/prompts.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(cases.len(), 6);
    for case in &cases {
        let examples: Vec<Example> = case
            .examples
            .iter()
            .map(|e| {
                // Our token strings are GPT-2's, as TransformerLens decodes them.
                let ours = tok.str_tokens(&e.tokens).unwrap();
                assert_eq!(ours, e.str_tokens);
                Example::new(e.tokens.clone(), ours, e.acts.clone(), case.act_threshold).unwrap()
            })
            .collect();
        for (ex, (marked, active)) in examples.iter().zip(case.marked.iter().zip(&case.is_active)) {
            assert_eq!(&ex.to_str(true), marked);
            assert_eq!(ex.is_active(), *active);
        }
        let cfg = AutoInterpConfig {
            use_examples_in_explanation_prompt: case.use_examples_in_explanation_prompt,
            ..AutoInterpConfig::default()
        };
        check(
            &generation_prompt(&cfg, &PromptOptions::default(), &examples[..10], None),
            &case.generation,
        );
        assert_eq!(parse_explanation(&case.explanation_raw), case.explanation);
        check(
            &scoring_prompt(&cfg, &case.explanation, &examples),
            &case.scoring,
        );
    }
}
