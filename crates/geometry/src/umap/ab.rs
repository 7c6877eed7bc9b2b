//! umap-learn's `find_ab_params`: the curve 1 / (1 + a·x^(2b)) fitted by least squares
//! (Levenberg–Marquardt, as scipy's `curve_fit`) to the target membership — 1 below `min_dist`,
//! exp(−(x − min_dist)/spread) above — on 300 points over [0, 3·spread].

/// `(a, b)` for `spread` and `min_dist`.
pub fn find_ab_params(spread: f64, min_dist: f64) -> (f64, f64) {
    let xs: Vec<f64> = (0..300).map(|i| 3.0 * spread * i as f64 / 299.0).collect();
    let ys: Vec<f64> = xs
        .iter()
        .map(|&x| {
            if x < min_dist {
                1.0
            } else {
                (-(x - min_dist) / spread).exp()
            }
        })
        .collect();
    let residuals = |a: f64, b: f64| -> f64 {
        xs.iter()
            .zip(&ys)
            .map(|(&x, &y)| {
                let f = 1.0 / (1.0 + a * x.powf(2.0 * b));
                (f - y) * (f - y)
            })
            .sum()
    };
    let (mut a, mut b) = (1.0f64, 1.0f64);
    let mut lambda = 1e-3;
    let mut cost = residuals(a, b);
    for _ in 0..500 {
        // Normal equations JᵀJ δ = −Jᵀr with the Marquardt damping on the diagonal.
        let (mut jaa, mut jab, mut jbb, mut ga, mut gb) = (0.0, 0.0, 0.0, 0.0, 0.0);
        for (&x, &y) in xs.iter().zip(&ys) {
            let p = if x > 0.0 { x.powf(2.0 * b) } else { 0.0 };
            let den = 1.0 + a * p;
            let f = 1.0 / den;
            let r = f - y;
            let da = -p / (den * den);
            let db = if x > 0.0 {
                -a * p * 2.0 * x.ln() / (den * den)
            } else {
                0.0
            };
            jaa += da * da;
            jab += da * db;
            jbb += db * db;
            ga += da * r;
            gb += db * r;
        }
        let mut improved = false;
        for _ in 0..30 {
            let (m11, m22) = (jaa * (1.0 + lambda), jbb * (1.0 + lambda));
            let det = m11 * m22 - jab * jab;
            if det.abs() < 1e-300 {
                lambda *= 10.0;
                continue;
            }
            let da = -(m22 * ga - jab * gb) / det;
            let db = -(m11 * gb - jab * ga) / det;
            let (na, nb) = (a + da, b + db);
            let c = residuals(na, nb);
            if c.is_finite() && c < cost {
                let rel = (cost - c) / cost.max(1e-300);
                a = na;
                b = nb;
                cost = c;
                lambda = (lambda / 10.0).max(1e-12);
                improved = true;
                if rel < 1e-15 {
                    return (a, b);
                }
                break;
            }
            lambda *= 10.0;
        }
        if !improved {
            break;
        }
    }
    (a, b)
}

#[cfg(test)]
mod tests {
    use super::find_ab_params;

    #[test]
    fn matches_umap_learn() {
        // umap-learn 0.5.12 (scipy curve_fit): min_dist 0.1 → (1.57694, 0.89506),
        // 0.05 → (1.75022, 0.84206).
        let (a, b) = find_ab_params(1.0, 0.1);
        assert!(
            (a - 1.57694).abs() < 1e-4 && (b - 0.89506).abs() < 1e-4,
            "{a} {b}"
        );
        let (a, b) = find_ab_params(1.0, 0.05);
        assert!(
            (a - 1.75022).abs() < 1e-4 && (b - 0.84206).abs() < 1e-4,
            "{a} {b}"
        );
    }
}
