//! Writing the feature-splitting table where researchers open it: CSV, Parquet (snappy), JSON.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use parquet::basic::Compression;
use parquet::data_type::{ByteArray, ByteArrayType, FloatType, Int64Type};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::parser::parse_message_type;

use crate::error::{GeometryError, Result};
use crate::splitting::SplittingRow;

fn io_err(path: &Path, e: impl std::fmt::Display) -> GeometryError {
    GeometryError::InvalidInput {
        what: path.display().to_string(),
        message: e.to_string(),
    }
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// `sae_width,latent_idx,umap_x,umap_y,description,top_token_strs[,cluster][,family,family_evidence]`
/// (RFC 4180 quoting; the optional columns when any row has them).
pub fn write_csv(rows: &[SplittingRow], path: &Path) -> Result<()> {
    let with_cluster = rows.iter().any(|r| r.cluster.is_some());
    let with_family = rows.iter().any(|r| r.family.is_some());
    let mut w = sae_core::atomic::AtomicFile::create(path)?;
    let mut header = String::from("sae_width,latent_idx,umap_x,umap_y,description,top_token_strs");
    if with_cluster {
        header.push_str(",cluster");
    }
    if with_family {
        header.push_str(",family,family_evidence");
    }
    writeln!(w, "{header}").map_err(|e| io_err(path, e))?;
    for r in rows {
        write!(
            w,
            "{},{},{},{},{},{}",
            r.sae_width,
            r.latent_idx,
            r.umap_x,
            r.umap_y,
            csv_field(&r.description),
            csv_field(&r.top_token_strs)
        )
        .map_err(|e| io_err(path, e))?;
        if with_cluster {
            write!(
                w,
                ",{}",
                r.cluster.map(|c| c.to_string()).unwrap_or_default()
            )
            .map_err(|e| io_err(path, e))?;
        }
        if with_family {
            write!(
                w,
                ",{},{}",
                csv_field(r.family.as_deref().unwrap_or("")),
                csv_field(r.family_evidence.as_deref().unwrap_or(""))
            )
            .map_err(|e| io_err(path, e))?;
        }
        writeln!(w).map_err(|e| io_err(path, e))?;
    }
    Ok(w.commit()?)
}

/// One row per family member: `narrow_width,parent,wide_width,member,decoder_cosine,jaccard,
/// correlation,description_similarity,evidence` (absent measures empty; evidence `|`-joined).
pub fn write_families_csv(families: &[crate::families::EvidenceFamily], path: &Path) -> Result<()> {
    let mut w = sae_core::atomic::AtomicFile::create(path)?;
    writeln!(
        w,
        "narrow_width,parent,wide_width,member,decoder_cosine,jaccard,correlation,description_similarity,evidence"
    )
    .map_err(|e| io_err(path, e))?;
    let opt = |v: Option<f64>| v.map(|x| format!("{x:.6}")).unwrap_or_default();
    for f in families {
        for m in &f.members {
            let evidence: Vec<String> = m
                .evidence
                .iter()
                .map(|e| {
                    serde_json::to_value(e)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_string))
                        .unwrap_or_default()
                })
                .collect();
            writeln!(
                w,
                "{},{},{},{},{:.6},{},{},{},{}",
                f.narrow_width,
                f.parent,
                f.wide_width,
                m.latent,
                m.decoder_cosine,
                opt(m.jaccard),
                opt(m.correlation),
                opt(m.description_similarity),
                evidence.join("|")
            )
            .map_err(|e| io_err(path, e))?;
        }
    }
    Ok(w.commit()?)
}

/// The same columns as Parquet (one row group, snappy), readable by pandas / polars / DuckDB.
pub fn write_parquet(rows: &[SplittingRow], path: &Path) -> Result<()> {
    let schema = Arc::new(
        parse_message_type(
            "message splitting {
                REQUIRED INT64 sae_width;
                REQUIRED INT64 latent_idx;
                REQUIRED FLOAT umap_x;
                REQUIRED FLOAT umap_y;
                REQUIRED BYTE_ARRAY description (UTF8);
                REQUIRED BYTE_ARRAY top_token_strs (UTF8);
                OPTIONAL INT64 cluster;
                OPTIONAL BYTE_ARRAY family (UTF8);
                OPTIONAL BYTE_ARRAY family_evidence (UTF8);
            }",
        )
        .map_err(|e| io_err(path, e))?,
    );
    let props = Arc::new(
        WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .build(),
    );
    let f = sae_core::atomic::AtomicFile::create(path)?;
    let mut writer = SerializedFileWriter::new(f, schema, props).map_err(|e| io_err(path, e))?;
    let mut rg = writer.next_row_group().map_err(|e| io_err(path, e))?;
    let mut col_idx = 0;
    while let Some(mut col) = rg.next_column().map_err(|e| io_err(path, e))? {
        let r = match col_idx {
            0 => col.typed::<Int64Type>().write_batch(
                &rows.iter().map(|r| r.sae_width as i64).collect::<Vec<_>>(),
                None,
                None,
            ),
            1 => col.typed::<Int64Type>().write_batch(
                &rows.iter().map(|r| r.latent_idx as i64).collect::<Vec<_>>(),
                None,
                None,
            ),
            2 => col.typed::<FloatType>().write_batch(
                &rows.iter().map(|r| r.umap_x).collect::<Vec<_>>(),
                None,
                None,
            ),
            3 => col.typed::<FloatType>().write_batch(
                &rows.iter().map(|r| r.umap_y).collect::<Vec<_>>(),
                None,
                None,
            ),
            4 => col.typed::<ByteArrayType>().write_batch(
                &rows
                    .iter()
                    .map(|r| ByteArray::from(r.description.as_str()))
                    .collect::<Vec<_>>(),
                None,
                None,
            ),
            5 => col.typed::<ByteArrayType>().write_batch(
                &rows
                    .iter()
                    .map(|r| ByteArray::from(r.top_token_strs.as_str()))
                    .collect::<Vec<_>>(),
                None,
                None,
            ),
            7 | 8 => {
                fn get(r: &SplittingRow, family: bool) -> Option<&str> {
                    if family {
                        r.family.as_deref()
                    } else {
                        r.family_evidence.as_deref()
                    }
                }
                let fam = col_idx == 7;
                let vals: Vec<ByteArray> = rows
                    .iter()
                    .filter_map(|r| get(r, fam))
                    .map(ByteArray::from)
                    .collect();
                let defs: Vec<i16> = rows
                    .iter()
                    .map(|r| i16::from(get(r, fam).is_some()))
                    .collect();
                col.typed::<ByteArrayType>()
                    .write_batch(&vals, Some(&defs), None)
            }
            _ => {
                let vals: Vec<i64> = rows.iter().filter_map(|r| r.cluster).collect();
                let defs: Vec<i16> = rows
                    .iter()
                    .map(|r| i16::from(r.cluster.is_some()))
                    .collect();
                col.typed::<Int64Type>()
                    .write_batch(&vals, Some(&defs), None)
            }
        };
        r.map_err(|e| io_err(path, e))?;
        col.close().map_err(|e| io_err(path, e))?;
        col_idx += 1;
    }
    rg.close().map_err(|e| io_err(path, e))?;
    writer.into_inner().map_err(|e| io_err(path, e))?.commit()?;
    Ok(())
}

/// Any serialisable value as pretty JSON.
pub fn write_json<T: serde::Serialize>(value: &T, path: &Path) -> Result<()> {
    let bytes = serde_json::to_vec_pretty(value).map_err(|e| io_err(path, e))?;
    Ok(sae_core::atomic::write(path, &bytes)?)
}
