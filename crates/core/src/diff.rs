//! What differs between the settings a run was started with and those a rerun asks for.
//!
//! Every resumable computation (activation caches, SAE training, statistics, autointerp) records
//! its settings as JSON and, on resume, refuses other settings with an error that lists each
//! difference as `path: recorded X, requested Y`. This is the one comparison they share.

use serde_json::Value;

/// The differences between two JSON values, one line per differing leaf
/// (`configs[1].lr: recorded 0.0003, requested 0.001`). Empty when they are equal.
pub fn json_differences(recorded: &Value, requested: &Value) -> Vec<String> {
    let mut out = Vec::new();
    walk("", recorded, requested, &mut out);
    out
}

fn walk(path: &str, a: &Value, b: &Value, out: &mut Vec<String>) {
    let at = |p: &str| {
        if p.is_empty() {
            "settings".to_string()
        } else {
            p.to_string()
        }
    };
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                match (x.get(k), y.get(k)) {
                    (Some(u), Some(v)) => walk(&p, u, v, out),
                    (Some(u), None) => out.push(format!("{p}: recorded {u}, not requested")),
                    (None, Some(v)) => out.push(format!("{p}: not recorded, requested {v}")),
                    (None, None) => {}
                }
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (u, v)) in x.iter().zip(y).enumerate() {
                walk(&format!("{path}[{i}]"), u, v, out);
            }
        }
        (Value::Array(x), Value::Array(y)) => out.push(format!(
            "{}: recorded {} entries, requested {}",
            at(path),
            x.len(),
            y.len()
        )),
        _ if a != b => out.push(format!("{}: recorded {a}, requested {b}", at(path))),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn lists_each_leaf_that_differs() {
        let a = json!({"configs": [{"lr": 3e-4, "k": 32}, {"lr": 3e-4, "k": 32}], "batch": 4096});
        assert!(json_differences(&a, &a).is_empty());
        let b = json!({"configs": [{"lr": 1e-3, "k": 32}, {"lr": 3e-4, "k": 16}], "batch": 4096, "x": 1});
        assert_eq!(
            json_differences(&a, &b),
            vec![
                "configs[0].lr: recorded 0.0003, requested 0.001",
                "configs[1].k: recorded 32, requested 16",
                "x: not recorded, requested 1",
            ]
        );
        let c = json!({"configs": [{"lr": 3e-4, "k": 32}], "batch": 4096});
        assert_eq!(
            json_differences(&a, &c),
            vec!["configs: recorded 2 entries, requested 1"]
        );
        assert_eq!(
            json_differences(&json!(1), &json!(2)),
            vec!["settings: recorded 1, requested 2"]
        );
    }
}
