//! Redaction of a registered secret in each form it can take in text.

use super::*;

/// A secret with characters that every encoder treats differently.
const AWKWARD: &str = "p@ss w/rd\"%!";

fn masked(text: &str) -> bool {
    register(AWKWARD);
    let r = redact(text);
    !contains_secret(&r) && r.contains(MASK)
}

/// Percent-encodes the characters of `s` that `encode` picks.
fn percent(s: &str, encode: impl Fn(char) -> bool, upper: bool, plus: bool) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if c == ' ' && plus {
            out.push('+');
        } else if encode(c) {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&if upper {
                    format!("%{b:02X}")
                } else {
                    format!("%{b:02x}")
                });
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[test]
fn raw_and_every_percent_encoding() {
    assert_eq!(redact(&format!("x={AWKWARD};")), "x=***;");
    assert!(masked(AWKWARD));
    let specials: Vec<char> = AWKWARD.chars().filter(|c| !c.is_alphanumeric()).collect();
    // Each subset of the special characters encoded, in both cases, space as %20 or +.
    for subset in 0..(1u32 << specials.len()) {
        for upper in [true, false] {
            for plus in [true, false] {
                let pick = |c: char| {
                    specials
                        .iter()
                        .position(|s| *s == c)
                        .is_some_and(|i| subset & (1 << i) != 0)
                };
                let form = percent(AWKWARD, pick, upper, plus);
                assert_eq!(redact(&format!("<{form}>")), "<***>", "{form}");
            }
        }
    }
    // Everything encoded, alphanumerics too; and encoded twice.
    assert!(masked(&percent(AWKWARD, |_| true, true, false)));
    let once = percent(AWKWARD, |c| !c.is_alphanumeric(), true, false);
    assert!(masked(&percent(&once, |c| c == '%', true, false)));
}

#[test]
fn as_url_libraries_print_it() {
    register(AWKWARD);
    let mut url = url::Url::parse("https://user@127.0.0.1:8080/data.csv").unwrap();
    url.set_password(Some(AWKWARD)).unwrap();
    url.path_segments_mut().unwrap().push(AWKWARD);
    url.query_pairs_mut().append_pair("token", AWKWARD);
    url.set_fragment(Some(AWKWARD));
    let text = url.to_string();
    assert_eq!(
        redact(&text),
        "https://user:***@127.0.0.1:8080/data.csv/***?token=***#***",
        "{text}"
    );
    let parsed = url::Url::parse(&format!("http://h/a?q={AWKWARD}#x")).unwrap();
    assert!(masked(parsed.as_str()), "{parsed}");
    let path = object_store::path::Path::from(format!("in/{AWKWARD}.csv"));
    assert!(masked(path.as_ref()), "{path}");
}

#[test]
fn json_and_debug_escapes_and_their_combinations() {
    register(AWKWARD);
    let json = serde_json::to_string(AWKWARD).unwrap();
    let debug = format!("{AWKWARD:?}");
    let slash = json.replace('/', "\\/");
    let unicode = "\"p\\u0040ss\\u0020w\\u002Frd\\u0022\\u0025\\u0021\"";
    let percent_in_json =
        serde_json::to_string(&percent(AWKWARD, |c| !c.is_alphanumeric(), false, true)).unwrap();
    let json_in_json = serde_json::to_string(&json).unwrap();
    let debug_of_json = format!("{json:?}");
    for form in [
        &json,
        &debug,
        &slash,
        unicode,
        &percent_in_json,
        &json_in_json,
        &debug_of_json,
    ] {
        assert!(masked(form), "{form}");
    }
    // Masking inside JSON text keeps it JSON.
    let doc = serde_json::json!({"url": format!("https://u:{AWKWARD}@h/"), "raw": AWKWARD});
    let text = redact(&doc.to_string()).into_owned();
    let back: serde_json::Value = serde_json::from_str(&text).expect(&text);
    assert_eq!(
        back,
        serde_json::json!({"url": "https://u:***@h/", "raw": "***"})
    );
}

#[test]
fn json_values_are_masked_in_strings_keys_and_numbers() {
    register("s3cr3t-token-value");
    register("31415926");
    let mut v = serde_json::json!({
        "a": ["x s3cr3t-token-value"],
        "s3cr3t-token-value": 1,
        "n": 31415926,
        "m": 2,
    });
    redact_json(&mut v);
    assert_eq!(
        v,
        serde_json::json!({"a": ["x ***"], "***": 1, "n": "***", "m": 2})
    );
    assert_eq!(
        json_line(serde_json::json!({"e": "x\"s3cr3t-token-value"})),
        r#"{"e":"x\"***"}"#
    );
}

#[test]
fn leaves_other_text_and_short_values_alone() {
    register(AWKWARD);
    register("ab");
    register("zq9-longer-secret");
    register("zq9");
    for text in [
        "nothing here",
        "p@ss w/rd",
        "p%40ss w%2Frd%22%25",
        "ab ab ab zq zq8",
        "%zz \\q &bogus; \\u{zz} \\ud800",
        "",
    ] {
        assert!(matches!(redact(text), Cow::Borrowed(_)), "{text}");
    }
    assert!(!contains_secret("p@ss w/rd\"%"));
    assert!(contains_secret("..p@ss w/rd\"%!.."));
    // A secret that contains another is masked whole.
    assert_eq!(redact("[zq9-longer-secret] zq9"), "[***] ***");
    // Non-ASCII text around a secret stays intact.
    assert_eq!(redact("é p%40ss+w%2frd%22%25%21 ü"), "é *** ü");
}
