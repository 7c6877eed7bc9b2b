//! Documents from Parquet files (the HF datasets layout), read row by row with only the text
//! column decoded.

use std::fs::File;
use std::path::PathBuf;

use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::record::reader::RowIter;
use parquet::record::{Field, Row};
use parquet::schema::types::Type;

use crate::corpus::Document;
use crate::error::{Result, StoreError};

/// Runs a call into the parquet crate, turning a panic into an error: parquet 57 panics on some
/// malformed files (an `unwrap` in its thrift metadata decoder, found by `cargo xtask fuzz`), and
/// a corrupt corpus file must be an error naming the file, not a crash.
fn guarded<T>(path: &std::path::Path, f: impl FnOnce() -> Result<T>) -> Result<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|p| {
        let what = p
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| (*s).to_string()))
            .unwrap_or_default();
        Err(StoreError::Parquet {
            path: path.to_path_buf(),
            message: format!("malformed file (the parquet reader gave up: {what})"),
        })
    })
}

/// Streams one column of several Parquet files as documents.
pub(crate) struct ParquetDocuments {
    paths: std::vec::IntoIter<PathBuf>,
    column: String,
    current: Option<(PathBuf, RowIter<'static>)>,
    row: usize,
}

impl ParquetDocuments {
    pub(crate) fn new(paths: Vec<PathBuf>, column: String) -> Self {
        Self {
            paths: paths.into_iter(),
            column,
            current: None,
            row: 0,
        }
    }

    fn open(&self, path: &std::path::Path) -> Result<RowIter<'static>> {
        guarded(path, || self.open_unguarded(path))
    }

    fn open_unguarded(&self, path: &std::path::Path) -> Result<RowIter<'static>> {
        let perr = |message: String| StoreError::Parquet {
            path: path.to_path_buf(),
            message,
        };
        let f = File::open(path).map_err(|e| StoreError::io(path, e))?;
        let reader = SerializedFileReader::new(f).map_err(|e| perr(e.to_string()))?;
        let schema = reader.metadata().file_metadata().schema();
        let field = schema
            .get_fields()
            .iter()
            .find(|f| f.name() == self.column)
            .cloned()
            .ok_or_else(|| {
                let names: Vec<&str> = schema.get_fields().iter().map(|f| f.name()).collect();
                perr(format!(
                    "no column `{}` (columns: {})",
                    self.column,
                    names.join(", ")
                ))
            })?;
        let projection = Type::group_type_builder("schema")
            .with_fields(vec![field])
            .build()
            .map_err(|e| perr(e.to_string()))?;
        let reader: Box<dyn FileReader> = Box::new(reader);
        RowIter::from_file_into(reader)
            .project(Some(projection))
            .map_err(|e| perr(e.to_string()))
    }

    fn document(&self, path: &std::path::Path, row: &Row) -> Result<Document> {
        let err = |message: String| StoreError::Corpus {
            path: path.to_path_buf(),
            line: self.row,
            message,
        };
        let (_, field) = row
            .get_column_iter()
            .next()
            .ok_or_else(|| err("empty row".into()))?;
        match field {
            Field::Str(s) => Ok(Document::Text(s.clone())),
            Field::ListInternal(list) => list
                .elements()
                .iter()
                .map(field_as_u32)
                .collect::<Option<Vec<u32>>>()
                .map(Document::Tokens)
                .ok_or_else(|| err(format!("column `{}` holds a non-token list", self.column))),
            other => Err(err(format!(
                "column `{}` is neither a string nor a list of token ids: {other}",
                self.column
            ))),
        }
    }
}

fn field_as_u32(f: &Field) -> Option<u32> {
    match *f {
        Field::Byte(v) => u32::try_from(v).ok(),
        Field::Short(v) => u32::try_from(v).ok(),
        Field::Int(v) => u32::try_from(v).ok(),
        Field::Long(v) => u32::try_from(v).ok(),
        Field::UByte(v) => Some(u32::from(v)),
        Field::UShort(v) => Some(u32::from(v)),
        Field::UInt(v) => Some(v),
        Field::ULong(v) => u32::try_from(v).ok(),
        _ => None,
    }
}

impl Iterator for ParquetDocuments {
    type Item = Result<Document>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.current.is_none() {
                let path = self.paths.next()?;
                match self.open(&path) {
                    Ok(it) => {
                        self.current = Some((path, it));
                        self.row = 0;
                    }
                    Err(e) => return Some(Err(e)),
                }
            }
            let (path, rows) = self.current.as_mut()?;
            let path = path.clone();
            let next = guarded(&path, || Ok(rows.next()));
            match next {
                Err(e) => {
                    // The reader's state is unknown after a panic: this file ends here.
                    self.current = None;
                    return Some(Err(e));
                }
                Ok(None) => self.current = None,
                Ok(Some(Err(e))) => {
                    return Some(Err(StoreError::Parquet {
                        path,
                        message: e.to_string(),
                    }));
                }
                Ok(Some(Ok(row))) => {
                    self.row += 1;
                    return Some(self.document(&path, &row));
                }
            }
        }
    }
}
