//! Neuronpedia explanation exports (`/api/explanation/export?modelId=…&saeId=…`), read as the
//! tutorial's `load_and_process_autointerp_dfs` does: `index` parsed as an integer, duplicates
//! by index dropped keeping the first, every latent of the SAE present, missing descriptions
//! filled with "".

use std::path::Path;

use crate::error::{GeometryError, Result};

/// One description per latent, `width` of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Descriptions {
    /// `descriptions[i]` describes latent i ("" when the export has none).
    pub descriptions: Vec<String>,
    /// Latents the export did not describe.
    pub missing: usize,
    /// Entries dropped as duplicates of an earlier index.
    pub duplicates: usize,
}

/// Parses an export (a JSON array of objects with `index` — a string or a number — and
/// `description`) for an SAE of `width` latents. Indices outside the SAE are an error.
pub fn parse_explanations(json: &str, width: usize, source: &str) -> Result<Descriptions> {
    let err = |message: String| GeometryError::InvalidInput {
        what: source.to_string(),
        message,
    };
    let value: serde_json::Value =
        serde_json::from_str(json).map_err(|e| err(format!("not JSON: {e}")))?;
    let items = value
        .as_array()
        .ok_or_else(|| err("expected a JSON array of explanations".into()))?;
    let mut out: Vec<Option<String>> = vec![None; width];
    let mut duplicates = 0;
    for (n, item) in items.iter().enumerate() {
        let index = match item.get("index") {
            Some(serde_json::Value::String(s)) => s.trim().parse::<usize>().ok(),
            Some(serde_json::Value::Number(x)) => x.as_u64().map(|v| v as usize),
            _ => None,
        }
        .ok_or_else(|| err(format!("entry {n} has no integer `index`")))?;
        if index >= width {
            return Err(err(format!(
                "entry {n}: index {index} is outside the SAE's {width} latents"
            )));
        }
        let description = match item.get("description") {
            Some(serde_json::Value::String(s)) => s.clone(),
            _ => String::new(),
        };
        if out[index].is_some() {
            duplicates += 1;
        } else {
            out[index] = Some(description);
        }
    }
    let missing = out
        .iter()
        .filter(|d| d.as_deref().is_none_or(str::is_empty))
        .count();
    Ok(Descriptions {
        descriptions: out.into_iter().map(Option::unwrap_or_default).collect(),
        missing,
        duplicates,
    })
}

/// Reads an export file.
pub fn load_explanations(path: &Path, width: usize) -> Result<Descriptions> {
    let text = std::fs::read_to_string(path).map_err(|e| GeometryError::InvalidInput {
        what: path.display().to_string(),
        message: e.to_string(),
    })?;
    let d = parse_explanations(&text, width, &path.display().to_string())?;
    if d.missing > 0 {
        tracing::warn!(path = %path.display(), missing = d.missing, width, "latents missing descriptions");
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::parse_explanations;

    #[test]
    fn as_the_tutorial() {
        let json = r#"[
            {"modelId": "gpt2-small", "layer": "8-res_fs768-jb", "index": "2", "description": "first"},
            {"index": "0", "description": " the word 'the'"},
            {"index": 2, "description": "duplicate, dropped"},
            {"index": "3"}
        ]"#;
        let d = parse_explanations(json, 4, "export").unwrap();
        assert_eq!(d.descriptions, vec![" the word 'the'", "", "first", ""]);
        assert_eq!(d.duplicates, 1);
        assert_eq!(d.missing, 2);
        assert!(parse_explanations(r#"[{"index": "9", "description": "x"}]"#, 4, "e").is_err());
        assert!(parse_explanations(r#"{"index": 1}"#, 4, "e").is_err());
    }
}
