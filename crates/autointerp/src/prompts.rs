//! Generation, detection and fuzzing prompts. The defaults are the tutorial's, byte for byte.

use serde::{Deserialize, Serialize};

use crate::config::AutoInterpConfig;
use crate::example::Example;

/// Who speaks a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The system prompt.
    System,
    /// The user.
    User,
    /// The model (few-shot answers).
    Assistant,
}

/// One chat message.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Message {
    /// Who speaks.
    pub role: Role,
    /// What is said.
    pub content: String,
}

impl Message {
    fn new(role: Role, content: impl Into<String>) -> Self {
        Self {
            role,
            content: content.into(),
        }
    }
}

/// A chat conversation.
pub type Messages = Vec<Message>;

/// How the explainer is asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ExplainerStyle {
    /// The tutorial's single-sentence prompt.
    #[default]
    Tutorial,
    /// The tutorial's bonus chain of thought (steps 1–4, the explanation last).
    ChainOfThought,
}

/// Options on top of the tutorial's prompts. `PromptOptions::default()` gives its prompts
/// exactly.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PromptOptions {
    /// Prompt style.
    pub style: ExplainerStyle,
    /// Prepend worked examples as user/assistant turns (token-level, substring-level and
    /// concept-level latents).
    pub few_shot: bool,
    /// Show the latent's top logit-lens tokens (when the run has them).
    pub logit_tokens: bool,
    /// After each example, list its active tokens with activations quantised to 0–9
    /// (EleutherAI's delphi).
    pub quantised_activations: bool,
}

const GEN_SYSTEM: &str = "We're studying neurons in a neural network. Each neuron activates on some particular word/words or concept in a short document. The activating words in each document are indicated with << ... >>. Look at the parts of the document the neuron activates for and summarize in a single sentence what the neuron is activating on. Try to be specific in your explanations, although don't be so specific that you exclude some of the examples from matching your explanation. Pay attention to things like the capitalization and punctuation of the activating words or concepts, if that seems relevant. Keep the explanation as short and simple as possible, limited to 20 words or less. Omit punctuation and formatting. You should avoid giving long lists of words.";

const GEN_EXAMPLES: &str = " Some examples: \"This neuron activates on the word 'knows' in rhetorical questions like 'Who knows ... ?'\", and \"This neuron activates on verbs related to decision-making and preferences\", and \"This neuron activates on the substring 'Ent' at the start of words like 'Entrepreneur' or 'Entire'.";

// The tutorial appends this without a separating space; kept as it is.
const GEN_FORM: &str = "Your response should be in the form \"This neuron activates on...\".";

const COT: &str = "\n\nThink step by step, in this format:\nStep 1: List a couple activating and contextual tokens you find interesting. Search for patterns in these tokens, if there are any. Don't list more than 5 tokens.\nStep 2: Write down general shared latents of the text examples.\nStep 3: List the tokens that the neuron boosts in the next token prediction.\nStep 4: Write an explanation.\nEnd with a final line of the form \"Explanation: This neuron activates on...\".";

/// `max_tokens` of a chain-of-thought explanation request.
pub const COT_MAX_TOKENS: u32 = 400;

const FEW_SHOT: [(&str, &str); 3] = [
    (
        "1. and then she said<< yes>> to him\n2. I would say<< yes>>, of course\n3. he nodded<< yes>> and left",
        "This neuron activates on the word 'yes' as an answer or agreement",
    ),
    (
        "1. the<< Ent>>repreneur was late\n2. the<< Ent>>ire city slept\n3. an<< ent>>ity of its own",
        "This neuron activates on the substring 'Ent' or 'ent' at the start of words",
    ),
    (
        "1. she felt<< sorrow and grief>>\n2. a<< mournful>> silence\n3. he<< wept>> for days",
        "This neuron activates on words expressing sadness and mourning",
    ),
];

/// Numbers `1. …` to `n. …`, one example per line.
fn numbered(examples: &[Example], mark: bool, quantised: bool) -> String {
    examples
        .iter()
        .enumerate()
        .map(|(i, ex)| {
            let mut line = format!("{}. {}", i + 1, ex.to_str(mark));
            if quantised {
                line.push_str(&quantised_line(ex));
            }
            line
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// `\n   Activations: («tok», 9), («tok», 3)` with activations scaled to 0–9 by the window's max.
fn quantised_line(ex: &Example) -> String {
    let max = ex.max_act();
    if max <= 0.0 {
        return String::new();
    }
    let parts: Vec<String> = ex
        .str_tokens
        .iter()
        .zip(&ex.acts)
        .filter(|(_, a)| **a > ex.act_threshold)
        .map(|(t, a)| {
            let q = ((a / max) * 9.0).round().clamp(0.0, 9.0) as u32;
            format!("(\"{}\", {q})", t.replace('\n', "↵"))
        })
        .collect();
    format!("\n   Activations: {}", parts.join(", "))
}

/// The generation prompt for one latent: the tutorial's `get_generation_prompts` with the
/// default options. `logit_tokens` are shown when `options.logit_tokens`.
pub fn generation_prompt(
    cfg: &AutoInterpConfig,
    options: &PromptOptions,
    examples: &[Example],
    logit_tokens: Option<&[String]>,
) -> Messages {
    let mut system = GEN_SYSTEM.to_string();
    if cfg.use_examples_in_explanation_prompt {
        system.push_str(GEN_EXAMPLES);
    } else {
        system.push_str(GEN_FORM);
    }
    if options.quantised_activations {
        system.push_str(" After each document, its activating tokens are listed with their activation strength from 0 to 9.");
    }
    if options.style == ExplainerStyle::ChainOfThought {
        system.push_str(COT);
    }
    let mut user = format!(
        "The activating documents are given below:\n\n{}",
        numbered(examples, true, options.quantised_activations)
    );
    if options.logit_tokens
        && let Some(toks) = logit_tokens
    {
        let shown: Vec<String> = toks.iter().map(|t| format!("{t:?}")).collect();
        user.push_str(&format!(
            "\n\nThe tokens this neuron most boosts in the next-token prediction are: {}",
            shown.join(", ")
        ));
    }
    let mut messages = vec![Message::new(Role::System, system)];
    if options.few_shot {
        for (docs, answer) in FEW_SHOT {
            messages.push(Message::new(
                Role::User,
                format!("The activating documents are given below:\n\n{docs}"),
            ));
            messages.push(Message::new(Role::Assistant, answer));
        }
    }
    messages.push(Message::new(Role::User, user));
    messages
}

/// The detection prompt: the tutorial's `get_scoring_prompts` (examples unmarked).
pub fn scoring_prompt(cfg: &AutoInterpConfig, explanation: &str, examples: &[Example]) -> Messages {
    let system = format!(
        "We're studying neurons in a neural network. Each neuron activates on some particular word/words or concept in a short document. You will be given a short explanation of what this neuron activates for, and then be shown {} example sequences. You will have to return a comma-separated list of the examples where you think the neuron should activate at least once. For example, your response might look like \"1, 4, 7, 8\". If you think there are no examples where the neuron will activate, you should just respond with \"None\". You should include nothing else in your response other than comma-separated numbers or the word \"None\" - this is important.",
        cfg.n_ex_for_scoring()
    );
    let user = format!(
        "Here is the explanation: this neuron fires on {explanation}.\n\nHere are the examples:\n\n{}",
        numbered(examples, false, false)
    );
    vec![
        Message::new(Role::System, system),
        Message::new(Role::User, user),
    ]
}

/// The fuzzing prompt: examples with highlighted tokens, some correctly highlighted and some
/// decoys; the model lists those whose highlighting fits the explanation.
pub fn fuzzing_prompt(explanation: &str, examples: &[Example]) -> Messages {
    let system = format!(
        "We're studying neurons in a neural network. Each neuron activates on some particular word/words or concept in a short document. You will be given a short explanation of what this neuron activates for, and then be shown {} example sequences in which some tokens are highlighted with << ... >>. In some examples the highlighted tokens are the ones the neuron activates on; in others they were chosen at random. Return a comma-separated list of the examples whose highlighted tokens match the explanation. For example, your response might look like \"1, 4, 7\". If none match, respond with \"None\". You should include nothing else in your response other than comma-separated numbers or the word \"None\" - this is important.",
        examples.len()
    );
    let user = format!(
        "Here is the explanation: this neuron fires on {explanation}.\n\nHere are the examples:\n\n{}",
        numbered(examples, true, false)
    );
    vec![
        Message::new(Role::System, system),
        Message::new(Role::User, user),
    ]
}

/// The generation prompt with `negatives` appended to the last user turn as counter-examples
/// (unmarked): sequences that look related but do not activate the neuron. With no negatives
/// it is [`generation_prompt`] exactly.
pub fn contrastive_generation_prompt(
    cfg: &AutoInterpConfig,
    options: &PromptOptions,
    examples: &[Example],
    logit_tokens: Option<&[String]>,
    negatives: &[Example],
) -> Messages {
    let mut messages = generation_prompt(cfg, options, examples, logit_tokens);
    if !negatives.is_empty()
        && let Some(last) = messages.last_mut()
    {
        last.content.push_str(&format!(
            "\n\nThe neuron does NOT activate on the documents below, although they may look similar. Make your explanation specific enough to exclude them:\n\n{}",
            numbered(negatives, false, false)
        ));
    }
    messages
}

/// `max_tokens` per sequence asked of the sequence writer.
pub const SEQUENCE_TOKENS: usize = 48;

/// The generation-scoring prompt (EleutherAI): from an explanation, `n` new sequences on which
/// the neuron should activate, one per numbered line.
pub fn sequence_prompt(explanation: &str, n: usize) -> Messages {
    let system = format!(
        "We're studying neurons in a neural network. Each neuron activates on some particular word/words or concept in a short document. You will be given a short explanation of what this neuron activates for. Write {n} short, varied documents (one or two sentences each) on which you expect the neuron to activate. Write one document per line, numbered \"1.\" to \"{n}.\", and nothing else."
    );
    vec![
        Message::new(Role::System, system),
        Message::new(
            Role::User,
            format!("Here is the explanation: this neuron fires on {explanation}."),
        ),
    ]
}
