//! The watermark an incremental HTTP source sends as `incremental.param`.
//!
//! Once the run has planned what each group of sinks reads, the build gets the group's
//! lower bound (the watermark, minus `lookback`). Before that (the first planning of a run),
//! the source works it out the same way from the saved watermarks: the lowest over the sinks
//! that read it, or none when one of them has none (read from the start). Either way the run
//! then filters the records to exactly its bounds, so an API that ignores the parameter, or a
//! watermark that changed in between, costs a larger fetch, never a wrong result.

use datafusion::arrow::datatypes::TimeUnit;
use datafusion::scalar::ScalarValue;

use crate::connector::BuildCx;
use crate::spec::source::IncrementalSpec;
use crate::state::watermark::Watermark;

/// The parameter's value, as text.
pub async fn param(cx: &BuildCx<'_>, inc: &IncrementalSpec) -> Option<String> {
    if let Some(b) = cx.options.bounds {
        return b.lower.as_ref().map(text);
    }
    if cx.options.full_refresh {
        return None;
    }
    let lowest = saved(cx).await?;
    let mut value = lowest.to_scalar_natural();
    if let Some(lb) = &inc.lookback {
        value = crate::state::watermark::step_back(&value, lb).ok()?;
    }
    Some(text(&value))
}

/// The lowest saved watermark over the sinks that read the source.
async fn saved(cx: &BuildCx<'_>) -> Option<Watermark> {
    let p = cx.pipeline;
    let name = &cx.source.name;
    let store = crate::state::store::StateStore::new(&p.state_dir, p.state_url.as_deref()).ok()?;
    let state = store.load(cx.ctx, &crate::state::key(&p.name)).await.ok()?;
    let marks: Vec<Watermark> = p
        .sinks_reading(name)
        .map(|k| state.get(name, k).map(|m| m.value.clone()))
        .collect::<Option<Vec<_>>>()?;
    marks.into_iter().min_by(|a, b| {
        a.to_scalar_natural()
            .partial_cmp(&b.to_scalar_natural())
            .unwrap_or(std::cmp::Ordering::Equal)
    })
}

/// A cursor value as an API expects it: digits, `YYYY-MM-DD`, ISO 8601 timestamps (`Z` for
/// zoned ones), strings as they are.
pub fn text(v: &ScalarValue) -> String {
    use ScalarValue as S;
    let ts = |n: Option<i64>, unit: TimeUnit, zoned: bool| {
        let nanos = n.and_then(|x| match unit {
            TimeUnit::Second => x.checked_mul(1_000_000_000),
            TimeUnit::Millisecond => x.checked_mul(1_000_000),
            TimeUnit::Microsecond => x.checked_mul(1_000),
            TimeUnit::Nanosecond => Some(x),
        });
        nanos
            .map(|n| {
                let t = chrono::DateTime::from_timestamp_nanos(n).naive_utc();
                let s = t.format("%Y-%m-%dT%H:%M:%S%.f").to_string();
                if zoned { format!("{s}Z") } else { s }
            })
            .unwrap_or_default()
    };
    match v {
        S::TimestampSecond(n, tz) => ts(*n, TimeUnit::Second, tz.is_some()),
        S::TimestampMillisecond(n, tz) => ts(*n, TimeUnit::Millisecond, tz.is_some()),
        S::TimestampMicrosecond(n, tz) => ts(*n, TimeUnit::Microsecond, tz.is_some()),
        S::TimestampNanosecond(n, tz) => ts(*n, TimeUnit::Nanosecond, tz.is_some()),
        S::Date32(Some(d)) => Watermark::Date { days: *d }.display(),
        S::Utf8(Some(s)) | S::LargeUtf8(Some(s)) | S::Utf8View(Some(s)) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_values_as_parameters() {
        assert_eq!(text(&ScalarValue::Int64(Some(42))), "42");
        assert_eq!(text(&ScalarValue::Date32(Some(19875))), "2024-06-01");
        assert_eq!(
            text(&ScalarValue::TimestampNanosecond(
                Some(1_717_246_800_000_000_000),
                None
            )),
            "2024-06-01T13:00:00"
        );
        assert_eq!(
            text(&ScalarValue::TimestampMicrosecond(
                Some(1_717_246_800_500_000),
                Some("UTC".into())
            )),
            "2024-06-01T13:00:00.500Z"
        );
        assert_eq!(text(&ScalarValue::Utf8(Some("abc".into()))), "abc");
    }
}
