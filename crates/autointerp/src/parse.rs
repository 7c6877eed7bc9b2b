//! Parsing replies: explanations and lists of predicted example numbers.

use serde::{Deserialize, Serialize};

/// The tutorial's `parse_explanation`: the text after the last "activates on", without a
/// trailing period. A chain-of-thought reply is first cut to its last `Explanation:` line.
pub fn parse_explanation(reply: &str) -> String {
    let text = match reply.rfind("Explanation:") {
        Some(i) => &reply[i + "Explanation:".len()..],
        None => reply,
    };
    let after = text.rsplit("activates on").next().unwrap_or(text);
    after.trim_end().trim_end_matches('.').trim().to_string()
}

/// Why a predictions reply could not be read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[non_exhaustive]
pub enum PredictionParseError {
    /// The reply is empty.
    #[error("empty reply")]
    Empty,
    /// The reply holds no number and is not "None".
    #[error("no example numbers in {reply:?}")]
    NoNumbers {
        /// The raw reply.
        reply: String,
    },
    /// A number outside `1..=n`.
    #[error("example {number} out of range 1..={n} in {reply:?}")]
    OutOfRange {
        /// The number.
        number: usize,
        /// Examples shown.
        n: usize,
        /// The raw reply.
        reply: String,
    },
    /// Both "None" and numbers.
    #[error("both None and numbers in {reply:?}")]
    Contradictory {
        /// The raw reply.
        reply: String,
    },
}

/// Parses a detection reply into 1-based example numbers, sorted and deduplicated.
///
/// Accepts what the tutorial's parser accepts ("1, 4, 7", "None", "1, 4 and 7", a trailing
/// period) and more that models write: "Examples 1, 4.", "[1, 4]", "1 4 7", "none.", numbers
/// wrapped in markdown. Refuses, rather than guessing, a reply with no number and no "None",
/// a number outside `1..=n`, or "None" next to numbers. An unparseable reply is never taken
/// for "None".
pub fn parse_predictions(reply: &str, n: usize) -> Result<Vec<usize>, PredictionParseError> {
    let text = reply.trim();
    if text.is_empty() {
        return Err(PredictionParseError::Empty);
    }
    let mut numbers = Vec::new();
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut cur_is_digit = false;
    let flush =
        |cur: &mut String, is_digit: bool, numbers: &mut Vec<String>, words: &mut Vec<String>| {
            if !cur.is_empty() {
                if is_digit {
                    numbers.push(std::mem::take(cur));
                } else {
                    words.push(std::mem::take(cur).to_lowercase());
                }
            }
        };
    for c in text.chars() {
        if c.is_ascii_digit() {
            if !cur_is_digit {
                flush(&mut cur, false, &mut numbers, &mut words);
            }
            cur_is_digit = true;
            cur.push(c);
        } else if c.is_alphabetic() {
            if cur_is_digit {
                flush(&mut cur, true, &mut numbers, &mut words);
            }
            cur_is_digit = false;
            cur.push(c);
        } else {
            flush(&mut cur, cur_is_digit, &mut numbers, &mut words);
            cur_is_digit = false;
        }
    }
    flush(&mut cur, cur_is_digit, &mut numbers, &mut words);
    let says_none = words.iter().any(|w| w == "none");
    if numbers.is_empty() {
        return if says_none {
            Ok(Vec::new())
        } else {
            Err(PredictionParseError::NoNumbers {
                reply: reply.to_string(),
            })
        };
    }
    if says_none {
        return Err(PredictionParseError::Contradictory {
            reply: reply.to_string(),
        });
    }
    let mut out = Vec::with_capacity(numbers.len());
    for s in numbers {
        let number = s.parse::<usize>().unwrap_or(usize::MAX);
        if number == 0 || number > n {
            return Err(PredictionParseError::OutOfRange {
                number,
                n,
                reply: reply.to_string(),
            });
        }
        out.push(number);
    }
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

/// Why a sequence-writing reply could not be read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[non_exhaustive]
pub enum SequenceParseError {
    /// No numbered line (`1. …` or `1) …`) with text.
    #[error("no numbered sequences in {reply:?}")]
    NoSequences {
        /// The raw reply.
        reply: String,
    },
}

/// Parses a sequence-writing reply: the text of each numbered line (`1. …`, `2) …`), with
/// surrounding quotes removed, at most `n`. Unnumbered lines (a preamble) are skipped.
pub fn parse_sequences(reply: &str, n: usize) -> Result<Vec<String>, SequenceParseError> {
    let mut out = Vec::new();
    for line in reply.lines() {
        let t = line.trim_start();
        let digits = t.chars().take_while(char::is_ascii_digit).count();
        if digits == 0 {
            continue;
        }
        let rest = &t[digits..];
        let Some(rest) = rest.strip_prefix('.').or_else(|| rest.strip_prefix(')')) else {
            continue;
        };
        let text = rest
            .trim()
            .trim_matches(|c| c == '"' || c == '“' || c == '”')
            .trim();
        if !text.is_empty() {
            out.push(text.to_string());
        }
        if out.len() == n {
            break;
        }
    }
    if out.is_empty() {
        return Err(SequenceParseError::NoSequences {
            reply: reply.to_string(),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explanations() {
        assert_eq!(
            parse_explanation("This neuron activates on the word 'new' in rules."),
            "the word 'new' in rules"
        );
        assert_eq!(parse_explanation("  plain text  "), "plain text");
        assert_eq!(
            parse_explanation(
                "Step 1: x activates on y\nStep 4: ...\nExplanation: This neuron activates on dates."
            ),
            "dates"
        );
    }

    #[test]
    fn predictions_accepted() {
        let ok = |s: &str| parse_predictions(s, 12).unwrap();
        assert_eq!(ok("1, 4, 7"), vec![1, 4, 7]);
        assert_eq!(ok("None"), Vec::<usize>::new());
        assert_eq!(ok("none."), Vec::<usize>::new());
        assert_eq!(ok("1, 4 and 7"), vec![1, 4, 7]);
        assert_eq!(ok("1, 4, 7."), vec![1, 4, 7]);
        assert_eq!(ok("Examples 2, 12."), vec![2, 12]);
        assert_eq!(ok("[3, 1, 3]"), vec![1, 3]);
        assert_eq!(ok("**5** 6"), vec![5, 6]);
    }

    #[test]
    fn predictions_refused() {
        assert_eq!(parse_predictions("", 12), Err(PredictionParseError::Empty));
        assert!(matches!(
            parse_predictions("I am not sure", 12),
            Err(PredictionParseError::NoNumbers { .. })
        ));
        assert!(matches!(
            parse_predictions("1, 13", 12),
            Err(PredictionParseError::OutOfRange { number: 13, .. })
        ));
        assert!(matches!(
            parse_predictions("0", 12),
            Err(PredictionParseError::OutOfRange { number: 0, .. })
        ));
        assert!(matches!(
            parse_predictions("None, 3", 12),
            Err(PredictionParseError::Contradictory { .. })
        ));
        assert!(matches!(
            parse_predictions("99999999999999999999999", 12),
            Err(PredictionParseError::OutOfRange { .. })
        ));
    }

    #[test]
    fn sequences() {
        let reply = "Here are some:\n1. The cat sat.\n2) \"A dog barked.\"\n\n3.   \n4. Birds sing\nnot numbered";
        assert_eq!(
            parse_sequences(reply, 10).unwrap(),
            ["The cat sat.", "A dog barked.", "Birds sing"]
        );
        assert_eq!(parse_sequences(reply, 2).unwrap().len(), 2);
        assert!(matches!(
            parse_sequences("I like turtles", 3),
            Err(SequenceParseError::NoSequences { .. })
        ));
        assert!(parse_sequences("", 3).is_err());
    }
}
