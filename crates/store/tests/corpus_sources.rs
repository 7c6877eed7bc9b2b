//! Every text source yields the same documents: JSONL, Parquet (pyarrow-written), plain text,
//! and a hub dataset read from a local HF cache with the network off.
#![allow(
    clippy::unwrap_used,
    clippy::panic,
    clippy::expect_used,
    clippy::disallowed_methods,
    missing_docs
)]

use std::path::{Path, PathBuf};

use activation_store::{Document, HubDataset, StoreError, TextSource, TextSplit};

fn fx(p: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(p)
}

fn texts(src: &TextSource) -> Vec<String> {
    src.documents()
        .unwrap()
        .map(|d| match d.unwrap() {
            Document::Text(t) => t,
            Document::Tokens(t) => panic!("tokens {t:?}"),
        })
        .collect()
}

fn jsonl_texts() -> Vec<String> {
    std::fs::read_to_string(fx("packing/docs.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["text"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect()
}

#[test]
fn jsonl_and_parquet_agree() {
    let want = jsonl_texts();
    assert_eq!(want.len(), 9);
    assert_eq!(
        texts(&TextSource::from_path(fx("packing/docs.jsonl"), None).unwrap()),
        want
    );
    let pq = TextSource::from_path(fx("corpus/docs.parquet"), None).unwrap();
    assert!(matches!(pq, TextSource::Parquet { .. }));
    assert_eq!(texts(&pq), want);
}

#[test]
fn pretokenized_parquet() {
    let want: Vec<Vec<u32>> =
        serde_json::from_str(&std::fs::read_to_string(fx("corpus/tokens.json")).unwrap()).unwrap();
    let src = TextSource::from_path(fx("corpus/tokens.parquet"), Some("input_ids")).unwrap();
    let got: Vec<Vec<u32>> = src
        .documents()
        .unwrap()
        .map(|d| match d.unwrap() {
            Document::Tokens(t) => t,
            Document::Text(t) => panic!("text {t}"),
        })
        .collect();
    assert_eq!(got, want);
}

#[test]
fn plain_text_splits() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("book.txt");
    std::fs::write(&p, "First para\nline two\n\n\nSecond para\n").unwrap();
    let para = TextSource::PlainText {
        path: p.clone(),
        split: TextSplit::Paragraphs,
    };
    assert_eq!(texts(&para), vec!["First para\nline two", "Second para"]);
    let lines = TextSource::PlainText {
        path: p.clone(),
        split: TextSplit::Lines,
    };
    assert_eq!(texts(&lines), vec!["First para", "line two", "Second para"]);
    let whole = TextSource::PlainText {
        path: p,
        split: TextSplit::WholeFile,
    };
    assert_eq!(texts(&whole).len(), 1);
}

#[test]
fn bad_records_are_typed_errors() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("c.jsonl");
    std::fs::write(
        &p,
        "{\"text\": \"ok\"}\n{\"body\": \"no text\"}\nnot json\n",
    )
    .unwrap();
    let src = TextSource::from_path(&p, None).unwrap();
    let items: Vec<_> = src.documents().unwrap().collect();
    assert!(items[0].is_ok());
    match &items[1] {
        Err(StoreError::Corpus {
            line: 2, message, ..
        }) => assert!(message.contains("body"), "{message}"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(&items[2], Err(StoreError::Corpus { line: 3, .. })));
    let missing = TextSource::from_path(fx("corpus/docs.parquet"), Some("body")).unwrap();
    match missing.documents().unwrap().next() {
        Some(Err(StoreError::Parquet { message, .. })) => {
            assert!(message.contains("text"), "{message}")
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        TextSource::from_path(dir.path().join("absent.jsonl"), None),
        Err(StoreError::Io { .. })
    ));
}

fn fake_hf_cache(root: &Path) {
    // The layout huggingface_hub writes: refs/main → commit, snapshots/{commit}/files.
    let repo = root.join("datasets--NeelNanda--pile-10k");
    let snap = repo.join("snapshots/0123abcd/data");
    std::fs::create_dir_all(&snap).unwrap();
    std::fs::create_dir_all(repo.join("refs")).unwrap();
    std::fs::write(repo.join("refs/main"), "0123abcd").unwrap();
    std::fs::copy(
        fx("corpus/docs.parquet"),
        snap.join("train-00000-of-00001.parquet"),
    )
    .unwrap();
    std::fs::copy(
        fx("corpus/tokens.parquet"),
        snap.join("validation-00000-of-00001.parquet"),
    )
    .unwrap();
    std::fs::write(repo.join("snapshots/0123abcd/README.md"), "card").unwrap();
}

#[test]
fn hub_dataset_from_the_offline_cache() {
    let dir = tempfile::tempdir().unwrap();
    fake_hf_cache(dir.path());
    let mut ds = HubDataset::new("NeelNanda/pile-10k");
    ds.cache_dir = Some(dir.path().to_path_buf());
    ds.offline = true;
    assert_eq!(
        ds.split_files().unwrap(),
        vec!["data/train-00000-of-00001.parquet"]
    );
    assert_eq!(texts(&TextSource::Hub(ds.clone())), jsonl_texts());
    ds.split = "test".into();
    assert!(matches!(
        ds.split_files(),
        Err(StoreError::HubDataset { .. })
    ));
    let mut absent = HubDataset::new("Skylion007/openwebtext");
    absent.cache_dir = Some(dir.path().to_path_buf());
    absent.offline = true;
    assert!(absent.split_files().is_err());
}
