//! [`Example`]: one window of tokens with a latent's activations, as the tutorial's class.

use serde::{Deserialize, Serialize};

/// A window of tokens and one latent's activations on it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Example {
    /// Token ids.
    pub tokens: Vec<u32>,
    /// Each token's text (TransformerLens's `to_str_tokens`).
    pub str_tokens: Vec<String>,
    /// The latent's activation on each token.
    pub acts: Vec<f32>,
    /// Activation above which a token counts as active.
    pub act_threshold: f32,
}

impl Example {
    /// An example; `tokens`, `str_tokens` and `acts` must have one entry per token.
    pub fn new(
        tokens: Vec<u32>,
        str_tokens: Vec<String>,
        acts: Vec<f32>,
        act_threshold: f32,
    ) -> crate::Result<Self> {
        if str_tokens.len() != tokens.len() || acts.len() != tokens.len() {
            return Err(crate::AutoInterpError::invalid(
                "example",
                format!("{} strings and activations", tokens.len()),
                format!("{} strings, {} activations", str_tokens.len(), acts.len()),
            ));
        }
        Ok(Self {
            tokens,
            str_tokens,
            acts,
            act_threshold,
        })
    }

    /// Whether each token is active (`act > act_threshold`).
    pub fn toks_are_active(&self) -> Vec<bool> {
        self.acts.iter().map(|&a| a > self.act_threshold).collect()
    }

    /// Whether any token is active — what detection scoring predicts.
    pub fn is_active(&self) -> bool {
        self.acts.iter().any(|&a| a > self.act_threshold)
    }

    /// The tutorial's `to_str`: tokens joined, active ones in `<<…>>` when `mark_toks` (adjacent
    /// marks merged), U+FFFD removed and newlines shown as `↵`.
    pub fn to_str(&self, mark_toks: bool) -> String {
        let mut s = String::new();
        for (tok, &a) in self.str_tokens.iter().zip(&self.acts) {
            if mark_toks && a > self.act_threshold {
                s.push_str("<<");
                s.push_str(tok);
                s.push_str(">>");
            } else {
                s.push_str(tok);
            }
        }
        // The same replacements in the same order as the tutorial (so a token that itself
        // contains ">><<" behaves identically).
        s.replace(">><<", "")
            .replace('\u{FFFD}', "")
            .replace('\n', "↵")
    }

    /// The active tokens' texts, in order.
    pub fn active_str_tokens(&self) -> impl Iterator<Item = &str> {
        self.str_tokens
            .iter()
            .zip(&self.acts)
            .filter(|(_, a)| **a > self.act_threshold)
            .map(|(t, _)| t.as_str())
    }

    /// The largest activation in the window.
    pub fn max_act(&self) -> f32 {
        self.acts.iter().copied().fold(0.0, f32::max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tutorial_thursday_example() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let ex = Example::new(
            vec![
                1212, 1276, 307, 3635, 13, 314, 1239, 714, 651, 262, 8181, 286, 48971, 12545, 13,
            ],
            s(&[
                "This",
                " must",
                " be",
                " Thursday",
                ".",
                " I",
                " never",
                " could",
                " get",
                " the",
                " hang",
                " of",
                " Thurs",
                "days",
                ".",
            ]),
            vec![0., 0., 0., 1., 0., 0., 0., 0., 0., 0., 0., 0., 1., 1., 0.],
            0.5,
        )
        .unwrap();
        assert_eq!(
            ex.to_str(true),
            "This must be<< Thursday>>. I never could get the hang of<< Thursdays>>."
        );
        assert!(ex.is_active());
        assert_eq!(
            ex.to_str(false),
            "This must be Thursday. I never could get the hang of Thursdays."
        );
    }

    #[test]
    fn newlines_and_replacement_chars() {
        let ex = Example::new(
            vec![0, 1, 2],
            vec!["a\n".into(), "\u{FFFD}".into(), "b".into()],
            vec![0.0, 0.0, 2.0],
            1.0,
        )
        .unwrap();
        assert_eq!(ex.to_str(true), "a↵<<b>>");
    }
}
