//! The feature-splitting study end to end on synthetic SAEs whose wider decoders split the
//! narrower ones' directions: table columns, cross-width families, Parquet/CSV/HTML/PNG outputs,
//! and the HTML checked in headless Chromium (no script errors, every point drawn).
#![allow(clippy::unwrap_used, clippy::panic, clippy::expect_used, missing_docs)]

use std::path::Path;

use latent_geometry::plot::{ColorBy, PlotLabels, figure, write_html, write_png};
use latent_geometry::splitting::{SplittingConfig, SplittingInput, feature_splitting};
use latent_geometry::table::{write_csv, write_parquet};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

const D: usize = 32;

fn unit(v: Vec<f32>) -> Vec<f32> {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.into_iter().map(|x| x / n).collect()
}

/// Width w_k = 40·2^k; every latent of SAE k+1 is a perturbation of a latent of SAE k.
fn saes() -> Vec<SplittingInput> {
    let mut rng = StdRng::seed_from_u64(11);
    let mut prev: Vec<Vec<f32>> = (0..40)
        .map(|_| unit((0..D).map(|_| rng.random_range(-1.0f32..1.0)).collect()))
        .collect();
    let mut out = Vec::new();
    for k in 0..3 {
        let width = prev.len();
        out.push(SplittingInput {
            width,
            w_dec: prev.concat(),
            descriptions: (0..width)
                .map(|i| format!("latent {i} of \"{width}\", with <b>markup</b>"))
                .collect(),
            top_token_strs: (0..width).map(|i| format!("'tok{i}', ' the'")).collect(),
        });
        if k < 2 {
            prev = prev
                .iter()
                .flat_map(|p| {
                    (0..2)
                        .map(|_| {
                            unit(
                                p.iter()
                                    .map(|x| x + 0.15 * rng.random_range(-1.0f32..1.0))
                                    .collect(),
                            )
                        })
                        .collect::<Vec<_>>()
                })
                .collect();
        }
    }
    out
}

/// Loads the page headless; returns (points drawn, script errors, console errors in the log).
fn check_in_chromium(html: &Path) -> (usize, usize, Vec<String>) {
    use latent_geometry::headless::{chromium_binary, load_page};
    let p = load_page(&chromium_binary(), html).unwrap_or_else(|e| {
        panic!("headless Chromium is needed for this test (.ci/run installs the Debian package `chromium`): {e}")
    });
    let attr = |name: &str| {
        p.attr(name)
            .unwrap_or_else(|| panic!("no {name} in the DOM:\n{}", &p.dom[..p.dom.len().min(500)]))
    };
    (
        attr("data-points-drawn"),
        attr("data-errors"),
        p.console.clone(),
    )
}

#[test]
fn feature_splitting_study_and_outputs() {
    let inputs = saes();
    let cfg = SplittingConfig {
        find_clusters: true,
        random_state: Some(0),
        min_cluster_size: 3,
        ..SplittingConfig::default()
    };
    let r = feature_splitting(&inputs, D, &cfg).unwrap();
    assert_eq!(r.rows.len(), 40 + 80 + 160);
    assert!(
        r.rows
            .iter()
            .all(|row| row.cluster.is_some() && row.umap_x.is_finite())
    );
    assert!(
        r.rows.iter().any(|row| row.cluster.unwrap() >= 0),
        "some clusters found"
    );
    // Families: each latent of width 40 finds its two children among the 80.
    let fam: Vec<_> = r.families.iter().filter(|f| f.narrow_width == 40).collect();
    assert_eq!(fam.len(), 40);
    let hits = fam.iter().filter(|f| {
        let kids: Vec<usize> = f.children.iter().take(2).map(|c| c.0).collect();
        kids.contains(&(2 * f.latent_idx)) && kids.contains(&(2 * f.latent_idx + 1))
    });
    assert!(hits.count() >= 36);
    // Families with evidence (decoder cosine alone here): each latent of width 40 has its two
    // planted children first (at this small d, a chance neighbour may pass the threshold
    // behind them), and the rows say so.
    let ev: Vec<_> = r
        .evidence_families
        .iter()
        .filter(|f| f.narrow_width == 40)
        .collect();
    assert_eq!(ev.len(), 40);
    for f in &ev {
        let mut kids: Vec<usize> = f.members.iter().take(2).map(|m| m.latent).collect();
        kids.sort_unstable();
        assert_eq!(kids, [2 * f.parent, 2 * f.parent + 1], "{f:?}");
        assert!(
            f.members
                .iter()
                .all(|m| m.decoder_cosine >= 0.4 && m.jaccard.is_none())
        );
    }
    let row = |w: usize, i: usize| {
        r.rows
            .iter()
            .find(|x| x.sae_width == w && x.latent_idx == i)
            .unwrap()
    };
    assert_eq!(row(40, 3).family.as_deref(), Some("40/3"));
    assert_eq!(row(40, 3).family_evidence.as_deref(), Some("parent of 2"));
    assert_eq!(row(80, 7).family.as_deref(), Some("40/3"));
    assert!(
        row(80, 7)
            .family_evidence
            .as_deref()
            .unwrap()
            .starts_with("cos 0.")
    );
    // Same seed, same table.
    assert_eq!(feature_splitting(&inputs, D, &cfg).unwrap(), r);

    let dir = tempfile::tempdir().unwrap();
    write_csv(&r.rows, &dir.path().join("t.csv")).unwrap();
    let csv = std::fs::read_to_string(dir.path().join("t.csv")).unwrap();
    assert!(
        csv.starts_with(
            "sae_width,latent_idx,umap_x,umap_y,description,top_token_strs,cluster,family,family_evidence\n"
        )
    );
    assert!(csv.contains("\"latent 0 of \"\"40\"\", with <b>markup</b>\""));
    write_parquet(&r.rows, &dir.path().join("t.parquet")).unwrap();
    {
        use parquet::file::reader::{FileReader, SerializedFileReader};
        use parquet::record::RowAccessor;
        let f = std::fs::File::open(dir.path().join("t.parquet")).unwrap();
        let reader = SerializedFileReader::new(f).unwrap();
        assert_eq!(reader.metadata().file_metadata().num_rows(), 280);
        let names: Vec<String> = reader
            .metadata()
            .file_metadata()
            .schema()
            .get_fields()
            .iter()
            .map(|f| f.name().to_string())
            .collect();
        assert_eq!(
            names,
            [
                "sae_width",
                "latent_idx",
                "umap_x",
                "umap_y",
                "description",
                "top_token_strs",
                "cluster",
                "family",
                "family_evidence"
            ]
        );
        let first = reader.get_row_iter(None).unwrap().next().unwrap().unwrap();
        assert_eq!(first.get_long(0).unwrap(), 40);
        assert_eq!(first.get_string(4).unwrap(), &r.rows[0].description);
    }
    write_png(
        &r.rows,
        ColorBy::Width,
        PlotLabels::umap("Feature Splitting in SAEs"),
        &dir.path().join("t.png"),
    )
    .unwrap();
    assert!(
        std::fs::read(dir.path().join("t.png"))
            .unwrap()
            .starts_with(b"\x89PNG")
    );
    // The static figure: axes named, one legend entry per width (widest drawn first), every
    // latent drawn once.
    let fig = figure(&r.rows, ColorBy::Width, PlotLabels::umap("t"));
    let panel = &fig.panels[0];
    assert_eq!(
        (panel.x.label.as_str(), panel.y.label.as_str()),
        ("UMAP 1", "UMAP 2")
    );
    let mut labels: Vec<&str> = panel.layers.iter().filter_map(|l| l.label()).collect();
    let n_fams = r.evidence_families.len();
    assert_eq!(
        labels.remove(0),
        format!("family member → parent ({n_fams} families)")
    );
    let mut widths: Vec<usize> = r.rows.iter().map(|x| x.sae_width).collect();
    widths.sort_unstable();
    widths.dedup();
    let want: Vec<String> = widths
        .iter()
        .rev()
        .map(|w| {
            format!(
                "width {w} ({} latents)",
                r.rows.iter().filter(|x| x.sae_width == *w).count()
            )
        })
        .collect();
    assert_eq!(labels, want);
    for by in [ColorBy::Width, ColorBy::Cluster] {
        let html = dir.path().join("t.html");
        write_html(&r.rows, by, "Feature Splitting in SAEs </script>", &html).unwrap();
        let page = std::fs::read_to_string(&html).unwrap();
        assert!(
            !page.contains("http://") || page.matches("http://").count() == 1,
            "only the SVG namespace URI, no CDN"
        );
        let (drawn, errors, console) = check_in_chromium(&html);
        assert_eq!(drawn, 280, "points drawn");
        assert_eq!(errors, 0, "script errors");
        assert!(console.is_empty(), "console messages: {console:?}");
    }
}
