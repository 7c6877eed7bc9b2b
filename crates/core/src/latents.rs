//! Latent selections as users write them: `all`, or ranges and indices such as `0-99,120`.

use crate::error::{Result, SaeError};

/// Parses `spec` against an SAE of `d_sae` latents: `Ok(None)` for `all`, else the indices in
/// the order written.
///
/// Every index and range end is checked against `d_sae` before a range is expanded, so
/// `0-4000000000` is an error, not a 32 GB allocation.
///
/// # Errors
/// [`SaeError::InvalidLatents`] naming the part that is malformed, empty or out of range.
pub fn parse_latents(spec: &str, d_sae: usize) -> Result<Option<Vec<usize>>> {
    let spec_t = spec.trim();
    if spec_t == "all" {
        return Ok(None);
    }
    let bad = |message: String| SaeError::InvalidLatents {
        spec: spec.to_string(),
        message,
    };
    let index = |s: &str, part: &str| -> Result<usize> {
        let i: usize = s
            .trim()
            .parse()
            .map_err(|_| bad(format!("`{part}`: `{}` is not a latent index", s.trim())))?;
        if i >= d_sae {
            return Err(bad(format!(
                "`{part}`: latent {i} is out of range (the SAE has {d_sae})"
            )));
        }
        Ok(i)
    };
    let mut v = Vec::new();
    for part in spec_t.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        if let Some((a, b)) = part.split_once('-') {
            let (a, b) = (index(a, part)?, index(b, part)?);
            if a > b {
                return Err(bad(format!("range `{part}` is empty")));
            }
            v.extend(a..=b);
        } else {
            v.push(index(part, part)?);
        }
        // Bounded: each part adds at most d_sae indices, but many parts could repeat ranges.
        if v.len() > d_sae.saturating_mul(4).max(1 << 20) {
            return Err(bad(format!(
                "selects {} latents of {d_sae}; list each at most a few times",
                v.len()
            )));
        }
    }
    if v.is_empty() {
        return Err(bad("selects no latent".to_string()));
    }
    Ok(Some(v))
}

/// Writes `latents` the way [`parse_latents`] reads them, in their order, runs of consecutive
/// indices as ranges: `[0, 1, 2, 7, 9]` → `0-2,7,9`. `parse_latents(&format_latents(v), n)`
/// gives `v` back for any non-empty `v` below `n`.
pub fn format_latents(latents: &[usize]) -> String {
    let mut parts = Vec::new();
    let mut i = 0;
    while i < latents.len() {
        let mut j = i;
        while j + 1 < latents.len() && latents[j].checked_add(1) == Some(latents[j + 1]) {
            j += 1;
        }
        parts.push(if j == i {
            latents[i].to_string()
        } else {
            format!("{}-{}", latents[i], latents[j])
        });
        i = j + 1;
    }
    parts.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        #[test]
        fn format_round_trips(v in proptest::collection::vec(0usize..50, 1..40)) {
            let s = format_latents(&v);
            proptest::prop_assert_eq!(parse_latents(&s, 50).unwrap(), Some(v));
        }
    }

    #[test]
    fn formats_runs_as_ranges() {
        assert_eq!(format_latents(&[0, 1, 2, 7, 9]), "0-2,7,9");
        assert_eq!(format_latents(&[3, 2, 2]), "3,2,2");
        assert_eq!(format_latents(&[]), "");
    }

    #[test]
    fn parses_ranges_and_rejects_before_expanding() {
        assert_eq!(parse_latents("all", 10).unwrap(), None);
        assert_eq!(
            parse_latents("0-2, 7,9", 10).unwrap(),
            Some(vec![0, 1, 2, 7, 9])
        );
        for (spec, says) in [
            (
                "0-4000000000",
                "latent 4000000000 is out of range (the SAE has 10)",
            ),
            ("0-18446744073709551615", "out of range"),
            ("0-99999999999999999999999", "is not a latent index"),
            ("5-2", "is empty"),
            ("10", "out of range"),
            ("x", "not a latent index"),
            ("", "selects no latent"),
            ("-3", "not a latent index"),
        ] {
            let e = parse_latents(spec, 10).unwrap_err();
            assert!(
                matches!(&e, SaeError::InvalidLatents { .. }) && e.to_string().contains(says),
                "{spec}: {e}"
            );
        }
        let many = vec!["0-9"; 200_000].join(","); // 2 million indices
        assert!(parse_latents(&many, 10).is_err());
    }
}
