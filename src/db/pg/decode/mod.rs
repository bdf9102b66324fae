//! Decoding PostgreSQL's binary COPY format (`COPY ... TO STDOUT (FORMAT binary)`) straight
//! into Arrow builders.
//!
//! The stream is a header, then one tuple per row (a field count, then per field a length
//! and the value's binary send format), then a trailer. The server sends whole tuples per
//! message, but the decoder keeps a carry-over buffer so any split works. Values that Arrow
//! cannot hold faithfully (numeric NaN, infinite dates) are errors naming the column.

mod builder;

use std::sync::Arc;

use builder::Builder;
use datafusion::arrow::array::{ArrayRef, ListArray};
use datafusion::arrow::buffer::{NullBuffer, OffsetBuffer};
use datafusion::arrow::datatypes::{Field, SchemaRef, i256};
use datafusion::arrow::record_batch::RecordBatch;

use super::types::PgType;

/// Seconds between 1970-01-01 and 2000-01-01, Postgres' epoch.
pub const PG_EPOCH_DAYS: i32 = 10_957;
/// The same in microseconds.
pub const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;

const SIGNATURE: &[u8] = b"PGCOPY\n\xff\r\n\0";

/// A value or stream that does not decode.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}{reason}", column.as_ref().map(|c| format!("column `{c}`: ")).unwrap_or_default())]
pub struct DecodeError {
    /// The column, when the problem is a value.
    pub column: Option<String>,
    /// Why.
    pub reason: String,
}

fn err(reason: impl Into<String>) -> DecodeError {
    DecodeError {
        column: None,
        reason: reason.into(),
    }
}

/// Turns binary COPY bytes into record batches of a fixed schema.
pub struct CopyDecoder {
    schema: SchemaRef,
    cols: Vec<ColDecoder>,
    carry: Vec<u8>,
    header_done: bool,
    trailer_seen: bool,
    rows: usize,
    batch_size: usize,
}

impl CopyDecoder {
    /// A decoder for columns of these types; `schema` is what [`arrow_field`] gives for them.
    ///
    /// [`arrow_field`]: super::types::arrow_field
    pub fn new(schema: SchemaRef, types: &[PgType], batch_size: usize) -> Self {
        let cols = types
            .iter()
            .zip(schema.fields())
            .map(|(t, f)| ColDecoder::new(t, f))
            .collect();
        Self {
            schema,
            cols,
            carry: Vec::new(),
            header_done: false,
            trailer_seen: false,
            rows: 0,
            batch_size: batch_size.max(1),
        }
    }

    /// Feeds bytes; returns the batches that filled up.
    pub fn push(&mut self, chunk: &[u8]) -> Result<Vec<RecordBatch>, DecodeError> {
        let mut out = Vec::new();
        if self.carry.is_empty() {
            let used = self.parse(chunk, &mut out)?;
            self.carry.extend_from_slice(&chunk[used..]);
        } else {
            self.carry.extend_from_slice(chunk);
            let carry = std::mem::take(&mut self.carry);
            let used = self.parse(&carry, &mut out)?;
            self.carry = carry[used..].to_vec();
        }
        Ok(out)
    }

    /// The last, partly filled batch; errors if the stream was cut short.
    pub fn finish(&mut self) -> Result<Option<RecordBatch>, DecodeError> {
        if !self.carry.is_empty() || (self.header_done && !self.trailer_seen) {
            return Err(err("the COPY stream ended in the middle of a row"));
        }
        if self.rows == 0 {
            return Ok(None);
        }
        self.flush().map(Some)
    }

    /// Parses as many whole tuples as `buf` holds; returns the bytes used.
    fn parse(&mut self, buf: &[u8], out: &mut Vec<RecordBatch>) -> Result<usize, DecodeError> {
        let mut pos = 0;
        if !self.header_done {
            if buf.len() < 19 {
                return Ok(0);
            }
            if &buf[..11] != SIGNATURE {
                return Err(err("not a binary COPY stream (bad signature)"));
            }
            let ext = be_i32(&buf[15..19]) as usize;
            if buf.len() < 19 + ext {
                return Ok(0);
            }
            pos = 19 + ext;
            self.header_done = true;
        }
        while pos + 2 <= buf.len() {
            let nfields = i16::from_be_bytes([buf[pos], buf[pos + 1]]);
            if nfields == -1 {
                self.trailer_seen = true;
                return Ok(buf.len());
            }
            if nfields as usize != self.cols.len() {
                return Err(err(format!(
                    "a row has {nfields} fields, expected {}",
                    self.cols.len()
                )));
            }
            // Check the tuple is complete before decoding any of it.
            let mut p = pos + 2;
            for _ in 0..nfields {
                if p + 4 > buf.len() {
                    return Ok(pos);
                }
                let len = be_i32(&buf[p..p + 4]);
                p += 4 + len.max(0) as usize;
                if p > buf.len() {
                    return Ok(pos);
                }
            }
            let mut p = pos + 2;
            for col in &mut self.cols {
                let len = be_i32(&buf[p..p + 4]);
                p += 4;
                if len < 0 {
                    col.push(None)?;
                } else {
                    let end = p + len as usize;
                    col.push(Some(&buf[p..end]))?;
                    p = end;
                }
            }
            pos = p;
            self.rows += 1;
            if self.rows == self.batch_size {
                out.push(self.flush()?);
            }
        }
        Ok(pos)
    }

    fn flush(&mut self) -> Result<RecordBatch, DecodeError> {
        let arrays: Vec<ArrayRef> = self.cols.iter_mut().map(ColDecoder::finish).collect();
        let opts =
            datafusion::arrow::array::RecordBatchOptions::new().with_row_count(Some(self.rows));
        self.rows = 0;
        RecordBatch::try_new_with_options(self.schema.clone(), arrays, &opts)
            .map_err(|e| err(e.to_string()))
    }
}

pub(super) fn be_i32(b: &[u8]) -> i32 {
    i32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

pub(super) fn be_i64(b: &[u8]) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    i64::from_be_bytes(a)
}

pub(super) fn need(v: &[u8], n: usize) -> Result<(), String> {
    if v.len() < n {
        Err(format!(
            "a value of {} bytes where {n} were expected",
            v.len()
        ))
    } else {
        Ok(())
    }
}

/// One column: a scalar builder, or a list of one.
struct ColDecoder {
    name: String,
    values: Builder,
    list: Option<ListState>,
}

struct ListState {
    field: Arc<Field>,
    offsets: Vec<i32>,
    valid: Vec<bool>,
}

impl ColDecoder {
    fn new(t: &PgType, field: &Field) -> Self {
        let list = t.array.then(|| {
            let item = match field.data_type() {
                datafusion::arrow::datatypes::DataType::List(f) => f.clone(),
                _ => Arc::new(Field::new(
                    "item",
                    super::types::arrow_scalar(t.scalar),
                    true,
                )),
            };
            ListState {
                field: item,
                offsets: vec![0],
                valid: Vec::new(),
            }
        });
        Self {
            name: field.name().clone(),
            values: Builder::new(t.scalar, field),
            list,
        }
    }

    fn push(&mut self, v: Option<&[u8]>) -> Result<(), DecodeError> {
        let placed = |reason: String| DecodeError {
            column: Some(self.name.clone()),
            reason,
        };
        match (&mut self.list, v) {
            (None, None) => self.values.append_null(),
            (None, Some(v)) => self.values.append(v).map_err(placed)?,
            (Some(l), None) => {
                l.offsets.push(*l.offsets.last().unwrap_or(&0));
                l.valid.push(false);
            }
            (Some(_), Some(v)) => {
                let n = push_array(&mut self.values, v).map_err(placed)?;
                let l = self.list.as_mut().expect("list column");
                let last = *l.offsets.last().unwrap_or(&0);
                l.offsets.push(last + n as i32);
                l.valid.push(true);
            }
        }
        Ok(())
    }

    fn finish(&mut self) -> ArrayRef {
        let values = self.values.finish();
        match &mut self.list {
            None => values,
            Some(l) => {
                let offsets = OffsetBuffer::new(std::mem::replace(&mut l.offsets, vec![0]).into());
                let valid = std::mem::take(&mut l.valid);
                let nulls = valid.iter().any(|v| !v).then(|| NullBuffer::from(valid));
                Arc::new(ListArray::new(l.field.clone(), offsets, values, nulls))
            }
        }
    }
}

/// Appends the elements of a one-dimensional array value; returns how many.
fn push_array(values: &mut Builder, v: &[u8]) -> Result<usize, String> {
    need(v, 12)?;
    let ndim = be_i32(v);
    if ndim == 0 {
        return Ok(0);
    }
    if ndim != 1 {
        return Err(format!(
            "a {ndim}-dimensional array; only one-dimensional arrays can be read"
        ));
    }
    need(v, 20)?;
    let n = be_i32(&v[12..16]).max(0) as usize;
    let mut p = 20;
    let before = values.len();
    for _ in 0..n {
        need(&v[p..], 4)?;
        let len = be_i32(&v[p..p + 4]);
        p += 4;
        if len < 0 {
            values.append_null();
        } else {
            let end = p + len as usize;
            need(&v[p..], len as usize)?;
            values.append(&v[p..end])?;
            p = end;
        }
    }
    Ok(values.len() - before)
}

/// A numeric payload as an unscaled integer at `scale`.
pub fn numeric_to_i256(b: &[u8], scale: i8) -> Result<i256, String> {
    need(b, 8)?;
    let nd = i16::from_be_bytes([b[0], b[1]]).max(0) as usize;
    let weight = i16::from_be_bytes([b[2], b[3]]) as i32;
    let sign = u16::from_be_bytes([b[4], b[5]]);
    match sign {
        0x0000 | 0x4000 => {}
        0xC000 => return Err("numeric NaN, which a decimal cannot hold".into()),
        _ => return Err("an infinite numeric, which a decimal cannot hold".into()),
    }
    need(b, 8 + 2 * nd)?;
    let overflow = || "a numeric value too large for its column".to_string();
    let ten_k = i256::from_i128(10_000);
    let mut acc = i256::ZERO;
    for i in 0..nd {
        let d = i16::from_be_bytes([b[8 + 2 * i], b[9 + 2 * i]]) as i128;
        acc = acc
            .checked_mul(ten_k)
            .and_then(|a| a.checked_add(i256::from_i128(d)))
            .ok_or_else(overflow)?;
    }
    let e = 4 * (weight - nd as i32 + 1) + scale as i32;
    let ten = i256::from_i128(10);
    let value = if e >= 0 {
        let p = ten.checked_pow(e as u32).ok_or_else(overflow)?;
        acc.checked_mul(p).ok_or_else(overflow)?
    } else {
        let p = ten.checked_pow((-e) as u32).ok_or_else(overflow)?;
        if acc.checked_rem(p) != Some(i256::ZERO) {
            return Err(format!(
                "a numeric value with more than {scale} decimal places; declare the precision and scale in the database (numeric(p,s)) or cast it in a `query:`"
            ));
        }
        acc.checked_div(p).ok_or_else(overflow)?
    };
    Ok(if sign == 0x4000 {
        value.wrapping_neg()
    } else {
        value
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::pg::types::PgScalar;
    use datafusion::arrow::array::{Array, AsArray};
    use datafusion::arrow::datatypes::{Decimal128Type, Int32Type, Schema};

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn numerics_decode_at_their_scale() {
        let v = hex("0003 0001 0000 0004 0001 0929 1a85");
        assert_eq!(
            numeric_to_i256(&v, 4).unwrap(),
            i256::from_i128(123_456_789)
        );
        let v = hex("0001 ffff 4000 0004 0001");
        assert_eq!(numeric_to_i256(&v, 4).unwrap(), i256::from_i128(-1));
        assert!(numeric_to_i256(&v, 2).is_err(), "scale loss is an error");
        assert!(numeric_to_i256(&hex("0000 0000 c000 0000"), 2).is_err());
        assert_eq!(
            numeric_to_i256(&hex("0000 0000 0000 0000"), 2).unwrap(),
            i256::ZERO
        );
    }

    #[test]
    fn decodes_rows_nulls_arrays_and_split_chunks() {
        let types = vec![
            PgType {
                scalar: PgScalar::Int4,
                array: false,
                elem_oid: 23,
            },
            PgType {
                scalar: PgScalar::Numeric {
                    precision: 10,
                    scale: 2,
                },
                array: false,
                elem_oid: 1700,
            },
            PgType {
                scalar: PgScalar::Int4,
                array: true,
                elem_oid: 23,
            },
        ];
        let fields: Vec<Field> = types
            .iter()
            .zip(["a", "b", "c"])
            .map(|(t, n)| super::super::types::arrow_field(n, t))
            .collect();
        let schema = Arc::new(Schema::new(fields));
        let mut stream = hex("5047434f50590aff0d0a00 00000000 00000000");
        // row 1: 7, 10.50, {1,NULL,3}
        stream.extend(hex(
            "0003 00000004 00000007 0000000c 0002 0000 0000 0002 000a 1388",
        ));
        stream.extend(hex("00000028 00000001 00000001 00000017 00000003 00000001 00000004 00000001 ffffffff 00000004 00000003"));
        // row 2: NULL, NULL, NULL
        stream.extend(hex("0003 ffffffff ffffffff ffffffff"));
        stream.extend(hex("ffff"));
        for split in [1, 7, stream.len()] {
            let mut d = CopyDecoder::new(schema.clone(), &types, 8192);
            let mut batches = Vec::new();
            for chunk in stream.chunks(split) {
                batches.extend(d.push(chunk).unwrap());
            }
            batches.extend(d.finish().unwrap());
            assert_eq!(batches.len(), 1);
            let b = &batches[0];
            assert_eq!(b.num_rows(), 2);
            assert_eq!(b.column(0).as_primitive::<Int32Type>().value(0), 7);
            assert!(b.column(0).is_null(1));
            assert_eq!(b.column(1).as_primitive::<Decimal128Type>().value(0), 1050);
            let list = b.column(2).as_list::<i32>();
            let first = list.value(0);
            assert_eq!(first.len(), 3);
            assert!(first.is_null(1));
            assert!(list.is_null(1));
        }
        let mut d = CopyDecoder::new(schema, &types, 8192);
        d.push(&stream[..30]).unwrap();
        assert!(d.finish().is_err(), "a cut stream is an error");
    }
}
