//! Whole-number options with a checked range.
//!
//! A field declared with `deserialize_with = "crate::spec::range::bounded::<_, MIN, MAX>"`
//! accepts a whole number from MIN to MAX (written plainly, quoted, or with `_` separators)
//! and rejects anything else at load time with the range in the message, at the value's
//! line:col, so `validate` catches what the engine would only trip on while running.

use std::fmt;

use serde::Deserializer;
use serde::de::{self, Visitor};

/// Deserializes an optional whole number within `MIN..=MAX`.
pub fn bounded<'de, D, const MIN: u64, const MAX: u64>(d: D) -> Result<Option<usize>, D::Error>
where
    D: Deserializer<'de>,
{
    d.deserialize_option(Bounded::<MIN, MAX>)
}

struct Bounded<const MIN: u64, const MAX: u64>;

impl<const MIN: u64, const MAX: u64> Bounded<MIN, MAX> {
    fn check<E: de::Error>(n: i128, shown: &dyn fmt::Display) -> Result<Option<usize>, E> {
        if (i128::from(MIN)..=i128::from(MAX)).contains(&n) {
            usize::try_from(n).map(Some).map_err(E::custom)
        } else {
            Err(E::custom(format!(
                "`{shown}` is out of range: expected a whole number from {MIN} to {MAX}"
            )))
        }
    }
}

impl<'de, const MIN: u64, const MAX: u64> Visitor<'de> for Bounded<MIN, MAX> {
    type Value = Option<usize>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a whole number from {MIN} to {MAX}")
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Self::check(i128::from(v), &v)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Self::check(i128::from(v), &v)
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        if v.fract() == 0.0 && v.abs() < 1e30 {
            Self::check(v as i128, &v)
        } else {
            Err(E::invalid_value(de::Unexpected::Float(v), &self))
        }
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        match v.trim().replace('_', "").parse::<i128>() {
            Ok(n) => Self::check(n, &v),
            Err(_) => Err(E::invalid_value(de::Unexpected::Str(v), &self)),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use crate::yaml::{from_node, parse};

    #[derive(Debug, Deserialize)]
    struct Opts {
        #[serde(default, deserialize_with = "super::bounded::<_, 1, 1000>")]
        n: Option<usize>,
    }

    fn read(doc: &str) -> Result<Option<usize>, String> {
        let root = parse(doc).unwrap();
        from_node::<Opts>(&root, "")
            .map(|o| o.n)
            .map_err(|e| format!("{} at {:?}", e.message, e.pos))
    }

    #[test]
    fn accepts_the_range_and_places_what_it_rejects() {
        assert_eq!(read("n: 1\n"), Ok(Some(1)));
        assert_eq!(read("n: '1_000'\n"), Ok(Some(1000)));
        assert_eq!(read("n: 8.0\n"), Ok(Some(8)));
        assert_eq!(read("n: ~\n"), Ok(None));
        assert_eq!(read("{}\n"), Ok(None));
        for bad in [
            "0",
            "-1",
            "1001",
            "9223372036854775807",
            "18446744073709551616",
            "1e400",
        ] {
            let e = read(&format!("\n\nn: {bad}\n")).unwrap_err();
            assert!(e.contains("from 1 to 1000"), "{bad}: {e}");
            assert!(e.contains("line: 3, col: 4"), "{bad}: {e}");
        }
        for bad in ["[1]", "{a: 1}", "abc", "1.5", ".nan"] {
            let e = read(&format!("n: {bad}\n")).unwrap_err();
            assert!(e.contains("from 1 to 1000"), "{bad}: {e}");
        }
    }
}
