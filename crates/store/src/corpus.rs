//! Text sources: where documents come from.
//!
//! A [`TextSource`] yields [`Document`]s one at a time, never holding the corpus in memory:
//! local JSONL (one JSON object per line, text field configurable), plain text (whole file, lines
//! or blank-line-separated paragraphs), Parquet (the HF datasets layout: a `text` column of
//! strings, or a `tokens`/`input_ids` column of pre-tokenised ids) and HF hub datasets (their
//! Parquet or JSONL files, found through the hub or the local HF cache).

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Result, StoreError};
use crate::hub_dataset::HubDataset;

/// One corpus record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Document {
    /// Raw text, to be tokenised.
    Text(String),
    /// Pre-tokenised ids (SAELens's pretokenised datasets): used as they are, cut to the
    /// context size, with no packing.
    Tokens(Vec<u32>),
}

/// How a plain-text file is cut into documents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum TextSplit {
    /// The whole file is one document.
    WholeFile,
    /// Every non-empty line is a document.
    Lines,
    /// Blank lines separate documents.
    #[default]
    Paragraphs,
}

/// Where documents come from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
#[non_exhaustive]
pub enum TextSource {
    /// JSON Lines: one object per line; `field` holds the text (a string) or token ids (an
    /// array of integers).
    Jsonl {
        /// The file.
        path: PathBuf,
        /// The field (default `text`).
        field: String,
    },
    /// A plain-text file.
    PlainText {
        /// The file.
        path: PathBuf,
        /// How it is cut into documents.
        split: TextSplit,
    },
    /// Parquet files read in order; `column` holds strings or lists of integers.
    Parquet {
        /// The files.
        paths: Vec<PathBuf>,
        /// The column (default `text`).
        column: String,
    },
    /// A dataset on the HuggingFace hub (or in the local HF cache).
    Hub(HubDataset),
}

/// The text field used when none is named.
pub const DEFAULT_TEXT_FIELD: &str = "text";

impl TextSource {
    /// A name of this source for run fingerprints: the file(s) and field, or the hub dataset
    /// with its revision, split and column. Whether the hub may be reached is left out, so an
    /// offline rerun of an online run has the same name.
    pub fn identity(&self) -> String {
        match self {
            TextSource::Jsonl { path, field } => format!("{}#{field}", path.display()),
            TextSource::PlainText { path, split } => format!("{}#{split:?}", path.display()),
            TextSource::Parquet { paths, column } => {
                let p: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
                format!("{}#{column}", p.join(";"))
            }
            TextSource::Hub(h) => format!("hf:{}@{}/{}#{}", h.repo, h.revision, h.split, h.column),
        }
    }

    /// A local file, its kind chosen by extension: `.jsonl`/`.json`/`.ndjson` → JSONL,
    /// `.parquet` → Parquet, anything else → plain text split into paragraphs. A directory
    /// means all its `.parquet` files, sorted (the HF datasets layout).
    pub fn from_path(path: impl AsRef<Path>, field: Option<&str>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let field = field.unwrap_or(DEFAULT_TEXT_FIELD).to_string();
        if path.is_dir() {
            let mut paths = Vec::new();
            let entries = std::fs::read_dir(&path).map_err(|e| StoreError::io(&path, e))?;
            for entry in entries {
                let p = entry.map_err(|e| StoreError::io(&path, e))?.path();
                if p.extension().is_some_and(|e| e == "parquet") {
                    paths.push(p);
                }
            }
            paths.sort();
            if paths.is_empty() {
                return Err(StoreError::Corpus {
                    path,
                    line: 0,
                    message: "directory holds no .parquet files".into(),
                });
            }
            return Ok(TextSource::Parquet {
                paths,
                column: field,
            });
        }
        if !path.exists() {
            return Err(StoreError::io(
                &path,
                std::io::Error::new(std::io::ErrorKind::NotFound, "corpus file not found"),
            ));
        }
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .unwrap_or("")
            .to_ascii_lowercase();
        Ok(match ext.as_str() {
            "jsonl" | "json" | "ndjson" => TextSource::Jsonl { path, field },
            "parquet" => TextSource::Parquet {
                paths: vec![path],
                column: field,
            },
            _ => TextSource::PlainText {
                path,
                split: TextSplit::Paragraphs,
            },
        })
    }

    /// A short description, stored in cache manifests.
    pub fn describe(&self) -> String {
        match self {
            TextSource::Jsonl { path, field } => format!("jsonl:{}#{field}", path.display()),
            TextSource::PlainText { path, split } => format!("text:{}#{split:?}", path.display()),
            TextSource::Parquet { paths, column } => {
                let names: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
                format!("parquet:{}#{column}", names.join(","))
            }
            TextSource::Hub(h) => h.describe(),
        }
    }

    /// The documents, streamed.
    pub fn documents(&self) -> Result<Box<dyn Iterator<Item = Result<Document>> + Send>> {
        match self {
            TextSource::Jsonl { path, field } => Ok(Box::new(JsonlDocuments::open(path, field)?)),
            TextSource::PlainText { path, split } => plain_text(path, *split),
            TextSource::Parquet { paths, column } => Ok(Box::new(
                crate::parquet_text::ParquetDocuments::new(paths.clone(), column.clone()),
            )),
            TextSource::Hub(h) => h.resolve()?.documents(),
        }
    }
}

struct JsonlDocuments {
    path: PathBuf,
    field: String,
    lines: std::io::Lines<BufReader<File>>,
    line: usize,
}

impl JsonlDocuments {
    fn open(path: &Path, field: &str) -> Result<Self> {
        let f = File::open(path).map_err(|e| StoreError::io(path, e))?;
        Ok(Self {
            path: path.to_path_buf(),
            field: field.to_string(),
            lines: BufReader::with_capacity(1 << 20, f).lines(),
            line: 0,
        })
    }

    fn parse(&self, text: &str) -> Result<Document> {
        let err = |message: String| StoreError::Corpus {
            path: self.path.clone(),
            line: self.line,
            message,
        };
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| err(format!("not JSON: {e}")))?;
        let field = value.get(&self.field).ok_or_else(|| {
            let keys: Vec<&str> = value
                .as_object()
                .map(|o| o.keys().map(String::as_str).collect())
                .unwrap_or_default();
            err(format!(
                "no `{}` field (fields: {})",
                self.field,
                keys.join(", ")
            ))
        })?;
        json_document(field).ok_or_else(|| {
            err(format!(
                "field `{}` is neither a string nor an array of token ids",
                self.field
            ))
        })
    }
}

/// A JSON value as a document: a string, or an array of non-negative integers.
pub(crate) fn json_document(v: &serde_json::Value) -> Option<Document> {
    match v {
        serde_json::Value::String(s) => Some(Document::Text(s.clone())),
        serde_json::Value::Array(a) => a
            .iter()
            .map(|x| x.as_u64().and_then(|n| u32::try_from(n).ok()))
            .collect::<Option<Vec<u32>>>()
            .map(Document::Tokens),
        _ => None,
    }
}

impl Iterator for JsonlDocuments {
    type Item = Result<Document>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let line = self.lines.next()?;
            self.line += 1;
            let line = match line {
                Ok(l) => l,
                Err(e) => return Some(Err(StoreError::io(&self.path, e))),
            };
            if line.trim().is_empty() {
                continue;
            }
            return Some(self.parse(&line));
        }
    }
}

fn plain_text(
    path: &Path,
    split: TextSplit,
) -> Result<Box<dyn Iterator<Item = Result<Document>> + Send>> {
    let f = File::open(path).map_err(|e| StoreError::io(path, e))?;
    let path = path.to_path_buf();
    match split {
        TextSplit::WholeFile => {
            let mut s = String::new();
            BufReader::new(f)
                .read_to_string(&mut s)
                .map_err(|e| StoreError::io(&path, e))?;
            Ok(Box::new(std::iter::once(Ok(Document::Text(s)))))
        }
        TextSplit::Lines => {
            let lines = BufReader::new(f).lines();
            Ok(Box::new(lines.filter_map(move |l| match l {
                Ok(l) if l.trim().is_empty() => None,
                Ok(l) => Some(Ok(Document::Text(l))),
                Err(e) => Some(Err(StoreError::io(&path, e))),
            })))
        }
        TextSplit::Paragraphs => Ok(Box::new(Paragraphs {
            lines: BufReader::new(f).lines(),
            path,
            done: false,
        })),
    }
}

struct Paragraphs {
    lines: std::io::Lines<BufReader<File>>,
    path: PathBuf,
    done: bool,
}

impl Iterator for Paragraphs {
    type Item = Result<Document>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let mut para = String::new();
        loop {
            match self.lines.next() {
                None => {
                    self.done = true;
                    return (!para.is_empty()).then_some(Ok(Document::Text(para)));
                }
                Some(Err(e)) => return Some(Err(StoreError::io(&self.path, e))),
                Some(Ok(l)) if l.trim().is_empty() => {
                    if !para.is_empty() {
                        return Some(Ok(Document::Text(para)));
                    }
                }
                Some(Ok(l)) => {
                    if !para.is_empty() {
                        para.push('\n');
                    }
                    para.push_str(&l);
                }
            }
        }
    }
}
