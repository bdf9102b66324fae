//! `store_failures`: a failed check's rows as Parquet, one file per run.
//!
//! `<state dir>/failures/<check file name>/<run id>.parquet`, written to a hidden temporary
//! name first and renamed, so a reader never sees half a file. The file name never holds a
//! templated value, and text cells holding a secret are masked, as in quarantine files.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, AsArray, LargeStringArray, RecordBatch, StringArray, StringViewArray,
};
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::error::DataFusionError;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::prelude::DataFrame;
use futures::StreamExt;

use super::exec::CheckError;
use crate::model::Check;

/// Streams a check's failing rows into its file; returns the file.
pub(super) async fn write_rows(
    dir: &Path,
    check: &Check,
    run_id: &str,
    failing: DataFrame,
) -> Result<PathBuf, CheckError> {
    let path = file_for(dir, check, run_id);
    let result = async {
        let mut stream = failing.execute_stream().await?;
        let mut writer = Writer::create(&path, stream.schema())?;
        while let Some(batch) = stream.next().await {
            writer.write(&batch?)?;
        }
        writer.finish()
    }
    .await;
    result.map_err(|error| CheckError::Store {
        path: path.clone(),
        error,
    })?;
    Ok(path)
}

/// Writes one batch (the outcome of a check on the whole table) as the check's file.
pub(super) fn write_batch(
    dir: &Path,
    check: &Check,
    run_id: &str,
    batch: RecordBatch,
) -> Result<PathBuf, CheckError> {
    let path = file_for(dir, check, run_id);
    let result = Writer::create(&path, batch.schema()).and_then(|mut w| {
        w.write(&batch)?;
        w.finish()
    });
    result.map_err(|error| CheckError::Store {
        path: path.clone(),
        error,
    })?;
    Ok(path)
}

fn file_for(dir: &Path, check: &Check, run_id: &str) -> PathBuf {
    dir.join(&check.file_name).join(format!("{run_id}.parquet"))
}

/// A Parquet file being written under a temporary name.
struct Writer {
    tmp: PathBuf,
    path: PathBuf,
    inner: ArrowWriter<File>,
}

impl Writer {
    fn create(path: &Path, schema: SchemaRef) -> Result<Self, DataFusionError> {
        let dir = path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir)?;
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        let tmp = dir.join(format!(".{name}.tmp"));
        let inner = ArrowWriter::try_new(File::create(&tmp)?, schema, None)?;
        Ok(Self {
            tmp,
            path: path.to_path_buf(),
            inner,
        })
    }

    fn write(&mut self, batch: &RecordBatch) -> Result<(), DataFusionError> {
        self.inner.write(&masked(batch)?)?;
        Ok(())
    }

    fn finish(self) -> Result<(), DataFusionError> {
        self.inner.close()?;
        std::fs::rename(&self.tmp, &self.path)?;
        Ok(())
    }
}

/// The batch with every text cell that holds a secret masked.
fn masked(batch: &RecordBatch) -> Result<RecordBatch, DataFusionError> {
    let mask = |v: Option<&str>| v.map(|s| crate::secrets::redact(s).into_owned());
    let has_secret = |mut it: Box<dyn Iterator<Item = Option<&str>> + '_>| {
        it.any(|v| v.is_some_and(crate::secrets::contains_secret))
    };
    let mut changed = false;
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(batch.num_columns());
    for col in batch.columns() {
        let new: Option<ArrayRef> = match col.data_type() {
            DataType::Utf8 => {
                let a = col.as_string::<i32>();
                has_secret(Box::new(a.iter()))
                    .then(|| Arc::new(a.iter().map(mask).collect::<StringArray>()) as ArrayRef)
            }
            DataType::LargeUtf8 => {
                let a = col.as_string::<i64>();
                has_secret(Box::new(a.iter()))
                    .then(|| Arc::new(a.iter().map(mask).collect::<LargeStringArray>()) as ArrayRef)
            }
            DataType::Utf8View => {
                let a = col.as_string_view();
                has_secret(Box::new(a.iter()))
                    .then(|| Arc::new(a.iter().map(mask).collect::<StringViewArray>()) as ArrayRef)
            }
            _ => None,
        };
        changed |= new.is_some();
        columns.push(new.unwrap_or_else(|| Arc::clone(col)));
    }
    if !changed {
        return Ok(batch.clone());
    }
    Ok(RecordBatch::try_new(batch.schema(), columns)?)
}
