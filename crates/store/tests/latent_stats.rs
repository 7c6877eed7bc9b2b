//! Streaming top-k windows equal a brute-force computation (the tutorial's
//! get_k_largest_indices / index_with_buffer); merging per-shard summaries equals one pass.
#![allow(clippy::unwrap_used, clippy::panic, clippy::expect_used, missing_docs)]

use activation_store::{LatentStats, StatsConfig};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed};

#[derive(Debug, Clone)]
struct Data {
    ctx: usize,
    n_lat: usize,
    tokens: Vec<u32>,
    acts: Vec<f32>,
}

impl Data {
    fn n_seq(&self) -> usize {
        self.tokens.len() / self.ctx
    }
    fn act(&self, s: usize, p: usize, j: usize) -> f32 {
        self.acts[(s * self.ctx + p) * self.n_lat + j]
    }
    fn slice(&self, s0: usize, s1: usize) -> (Vec<u32>, Vec<f32>) {
        (
            self.tokens[s0 * self.ctx..s1 * self.ctx].to_vec(),
            self.acts[s0 * self.ctx * self.n_lat..s1 * self.ctx * self.n_lat].to_vec(),
        )
    }
}

fn data() -> impl Strategy<Value = Data> {
    (1usize..10, prop_oneof![Just(9usize), Just(12)], 1usize..5).prop_flat_map(
        |(n_seq, ctx, n_lat)| {
            let value = prop_oneof![
                6 => Just(0.0f32),
                1 => Just(0.5f32),
                1 => Just(1.0f32),
                1 => Just(-0.25f32),
                2 => 0.0f32..3.0,
            ];
            (
                proptest::collection::vec(0u32..50, n_seq * ctx),
                proptest::collection::vec(value, n_seq * ctx * n_lat),
            )
                .prop_map(move |(tokens, acts)| Data {
                    ctx,
                    n_lat,
                    tokens,
                    acts,
                })
        },
    )
}

fn config() -> impl Strategy<Value = StatsConfig> {
    (
        1usize..5,
        0usize..4,
        any::<bool>(),
        0usize..6,
        0usize..7,
        any::<u64>(),
    )
        .prop_map(
            |(k, buffer, no_overlap, n_samples, n_random, seed)| StatsConfig {
                k,
                buffer,
                no_overlap,
                n_samples,
                n_quantiles: 3,
                n_random,
                seed,
            },
        )
}

/// The tutorial's selection over everything at once: sort all valid positive positions by
/// value (ties: earlier sequence, earlier position), greedily drop overlaps in a sequence.
fn brute_top(d: &Data, j: usize, cfg: &StatsConfig) -> Vec<(u64, u32, f32)> {
    let b = cfg.buffer;
    let mut all = Vec::new();
    for s in 0..d.n_seq() {
        for p in b..d.ctx - b {
            let v = d.act(s, p, j);
            if v > 0.0 {
                all.push((v, s as u64, p as u32));
            }
        }
    }
    all.sort_by(|x, y| y.0.total_cmp(&x.0).then((x.1, x.2).cmp(&(y.1, y.2))));
    let mut picked: Vec<(u64, u32, f32)> = Vec::new();
    for (v, s, p) in all {
        if picked.len() == cfg.k {
            break;
        }
        if cfg.no_overlap
            && picked
                .iter()
                .any(|&(s2, p2, _)| s2 == s && p2.abs_diff(p) as usize <= b)
        {
            continue;
        }
        picked.push((s, p, v));
    }
    picked
}

fn one_pass(d: &Data, cfg: StatsConfig) -> LatentStats {
    let latents: Vec<usize> = (0..d.n_lat).map(|j| 100 + j).collect();
    let mut st = LatentStats::new(cfg, &latents, d.ctx).unwrap();
    st.update(0, &d.tokens, &d.acts).unwrap();
    st
}

proptest! {
    #![proptest_config(Config { cases: 200, rng_seed: RngSeed::Fixed(20261125), ..Config::default() })]

    #[test]
    fn top_k_equals_brute_force(d in data(), cfg in config()) {
        prop_assume!(d.ctx > 2 * cfg.buffer);
        let st = one_pass(&d, cfg);
        for j in 0..d.n_lat {
            let want = brute_top(&d, j, &cfg);
            let got: Vec<(u64, u32, f32)> = st.latents[j].top.iter().map(|w| (w.seq, w.pos, w.value)).collect();
            prop_assert_eq!(&got, &want, "latent {}", j);
            for w in &st.latents[j].top {
                let (s, p, b) = (w.seq as usize, w.pos as usize, cfg.buffer);
                prop_assert_eq!(&w.tokens[..], &d.tokens[s * d.ctx + p - b..s * d.ctx + p + b + 1]);
                let vals: Vec<f32> = (p - b..=p + b).map(|q| d.act(s, q, j)).collect();
                prop_assert_eq!(&w.values, &vals);
            }
            let fired = (0..d.n_seq()).flat_map(|s| (0..d.ctx).map(move |p| (s, p))).filter(|&(s, p)| d.act(s, p, j) > 0.0).count();
            prop_assert_eq!(st.latents[j].n_fired, fired as u64);
            let max = (0..d.n_seq()).flat_map(|s| (0..d.ctx).map(move |p| (s, p))).map(|(s, p)| d.act(s, p, j)).fold(f32::NEG_INFINITY, f32::max);
            prop_assert_eq!(st.latents[j].max, max);
            let sum: f64 = (0..d.n_seq()).flat_map(|s| (0..d.ctx).map(move |p| (s, p))).map(|(s, p)| f64::from(d.act(s, p, j))).sum();
            let mean = st.latents[j].mean(st.n_tokens);
            prop_assert!((mean - sum / st.n_tokens as f64).abs() < 1e-9);
            // Samples are activating windows with their true values.
            for w in st.latents[j].samples() {
                prop_assert!(w.value > 0.0);
                prop_assert_eq!(w.value, d.act(w.seq as usize, w.pos as usize, j));
            }
        }
        for (slot, _) in st.latents.iter().enumerate() {
            for w in st.random_windows_for(slot) {
                let (s, p, b) = (w.seq as usize, w.pos as usize, cfg.buffer);
                let vals: Vec<f32> = (p - b..=p + b).map(|q| d.act(s, q, slot)).collect();
                prop_assert_eq!(&w.values, &vals);
            }
        }
    }

    #[test]
    fn merged_shards_equal_one_pass(d in data(), cfg in config(), cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..4), order in any::<u64>()) {
        prop_assume!(d.ctx > 2 * cfg.buffer);
        let whole = one_pass(&d, cfg);
        let n = d.n_seq();
        let mut bounds: Vec<usize> = cuts.iter().map(|i| i.index(n + 1)).collect();
        bounds.push(0);
        bounds.push(n);
        bounds.sort_unstable();
        bounds.dedup();
        let latents: Vec<usize> = (0..d.n_lat).map(|j| 100 + j).collect();
        // Streaming through the chunks in order…
        let mut streamed = LatentStats::new(cfg, &latents, d.ctx).unwrap();
        let mut parts = Vec::new();
        for w in bounds.windows(2) {
            let (t, a) = d.slice(w[0], w[1]);
            streamed.update(w[0] as u64, &t, &a).unwrap();
            let mut part = LatentStats::new(cfg, &latents, d.ctx).unwrap();
            part.update(w[0] as u64, &t, &a).unwrap();
            parts.push(part);
        }
        prop_assert_eq!(&streamed, &whole);
        // …and merging per-shard summaries in any order, through JSON (as Slurm tasks would).
        let k = parts.len();
        parts.rotate_left((order as usize) % k);
        if order % 2 == 1 { parts.reverse(); }
        let dir = tempfile::tempdir().unwrap();
        let mut merged = LatentStats::new(cfg, &latents, d.ctx).unwrap();
        for (i, p) in parts.into_iter().enumerate() {
            let path = dir.path().join(format!("{i}.json"));
            p.save(&path).unwrap();
            merged.merge(LatentStats::load(&path).unwrap()).unwrap();
        }
        prop_assert_eq!(&merged, &whole);
    }
}

#[test]
fn bad_shapes_and_merges_are_errors() {
    let cfg = StatsConfig {
        buffer: 2,
        ..StatsConfig::default()
    };
    assert!(
        LatentStats::new(cfg, &[0], 4).is_err(),
        "buffer too large for the context"
    );
    let mut a = LatentStats::new(cfg, &[0, 1], 8).unwrap();
    assert!(
        a.update(0, &[0; 8], &[0.0; 8]).is_err(),
        "acts must be tokens × latents"
    );
    let b = LatentStats::new(cfg, &[0, 2], 8).unwrap();
    assert!(a.merge(b).is_err());
    let c = LatentStats::new(StatsConfig { k: 3, ..cfg }, &[0, 1], 8).unwrap();
    assert!(a.merge(c).is_err());
}
