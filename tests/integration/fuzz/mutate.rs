//! Seeded mutations of pipeline files: a tiny xorshift PRNG and edits at the text level, so
//! a mutation can break the YAML itself as well as the values in it.

/// xorshift64: small, fast and the same on every platform.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    pub fn pick<'a>(&mut self, items: &'a [&'a str]) -> &'a str {
        items[self.below(items.len())]
    }

    pub fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

const NUMBERS: &[&str] = &[
    "0",
    "-1",
    "1",
    "-0",
    "4294967296",
    "10000000",
    "1000000000",
    "9223372036854775807",
    "-9223372036854775808",
    "18446744073709551616",
    "99999999999999999999999",
    "1e308",
    "1.5",
    ".nan",
    "-.inf",
    "0x10",
    "1_000_000",
];

const SCALARS: &[&str] = &[
    "",
    "''",
    "~",
    "true",
    "[]",
    "{}",
    "[1, [2, [3]]]",
    "{a: {b: c}}",
    "[a, b]",
    "\"ünï©ødé ✓ 🚀\"",
    "\"\\0\\u0001\\u202e\"",
    "'  '",
    "\"a\\nb\"",
    "!!binary aGVsbG8=",
    "*undefined_alias",
    "&anchor value",
    "'{{'",
    "\"; DROP TABLE x; --\"",
    "\"\\\"\"",
    "overwrite",
    "append",
    "error_if_exists",
    "skip",
    "quarantine",
];

const TEMPLATES: &[&str] = &[
    "\"{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}\"",
    "\"{{ ([1] * 1000) * 1000000 }}\"",
    "\"{{ (([1] * 1000) * 1000000) | join(',') }}\"",
    "\"{{ (([1] * 1000) * 1000000) | sum }}\"",
    "\"{{ ([1, 2, 3] * 9223372036854775807) | length }}\"",
    "\"{{ 'x' * 100000000 }}\"",
    "\"{{ ds | date_add(9999999999) }}\"",
    "\"{{ ds | date_add(9223372036854775807) }}\"",
    "\"{{ ds | date_add(-9223372036854775808) }}\"",
    "\"{{ ds | month_end | date_format('%Y-%m-%d %Q') }}\"",
    "\"{{ prev_ds | month_start }}/{{ next_ds }}\"",
    "\"{{ undefined_name }}\"",
    "\"{{\"",
    "\"{% if %}\"",
    "\"{{ 1 / 0 }}\"",
    "\"{{ 1 // 0 }}\"",
    "\"{{ env('HOME') }}\"",
    "\"{{ env('ETL_FUZZ_UNSET') }}\"",
    "\"{{ vars }}\"",
    "\"{{ [vars, vars, [vars, [vars]]] }}\"",
    "\"{{ range(100000) | list }}\"",
    "\"{% set x = 'a' * 1000000 %}{{ x ~ x ~ x ~ x ~ x }}\"",
    "\"{{ pipeline.name | sql_quote }}{{ run_id | sql_ident }}\"",
    "\"{{ 99999999999999999999 * 99999999999999999999 }}\"",
];

const TYPES: &[&str] = &[
    "binary",
    "time",
    "date",
    "timestamptz",
    "decimal(76,10)",
    "decimal(0,0)",
    "decimal(38,40)",
    "uint",
    "tinyint",
    "struct<a: int>",
    "array<string>",
    "varchar(99999999999)",
    "\"\"",
    "weird",
];

const PATHS: &[&str] = &[
    "/",
    "/**/*.csv",
    "/**",
    "/dev/zero",
    "/dev/null",
    "/proc/self/mem",
    ".",
    "..",
    "../../..",
    "\"*\"",
    "data",
    "data/**",
    "\"\"",
    "nope/*.csv",
    "data/../../../../etc/passwd",
    "http://127.0.0.1:9/x.csv",
    "file:///etc/passwd",
    "\"[\"",
];

const MEMORY: &[&str] = &[
    "0",
    "1",
    "1MiB",
    "10x",
    "99999999999999999999999t",
    "-1GB",
    "0.5k",
    "2PiB",
    "''",
];
const CHARS: &[&str] = &[
    "''", "ab", "\"\\n\"", "\"\\t\"", "é", "\",\"", "'\"'", "\"\\r\"",
];
const COMPRESSIONS: &[&str] = &[
    "zstd(999)",
    "gzip(10)",
    "brotli(12)",
    "\"zstd(\"",
    "\"\"",
    "snappy(2)",
    "zstd(-1)",
    "lz4_raw",
    "ZSTD",
    "gzip",
    "xz",
];

/// One mutated pipeline file.
pub fn mutate(original: &str, seed: u64) -> String {
    let mut rng = Rng::new(seed);
    let mut lines: Vec<String> = original.lines().map(str::to_string).collect();
    for _ in 0..1 + rng.below(3) {
        apply(&mut lines, &mut rng);
    }
    let mut text = lines.join("\n");
    text.push('\n');
    if rng.chance(5) {
        text = truncate(&text, &mut rng);
    }
    text
}

fn apply(lines: &mut Vec<String>, rng: &mut Rng) {
    match rng.below(16) {
        0..=3 => replace_value(lines, rng, None),
        4 => replace_value(lines, rng, Some(TEMPLATES)),
        5 => replace_value(lines, rng, Some(NUMBERS)),
        6 => structure(lines, rng),
        7 => unicode(lines, rng),
        8 => rename_key(lines, rng),
        9 => replace_typed(lines, rng, "path:", PATHS),
        10 => replace_typed(lines, rng, ": ", TYPES),
        11 => insert_options(lines, rng),
        12 => insert_engine(lines, rng),
        13 => insert_partition_by(lines, rng),
        14 => deep_nesting(lines, rng),
        _ => alias_bomb(lines, rng),
    }
}

/// Lines of the form `key: value` (block style), as (index, indent + key part).
fn key_value_lines(lines: &[String]) -> Vec<(usize, String)> {
    lines
        .iter()
        .enumerate()
        .filter_map(|(i, l)| {
            let t = l.trim_start();
            if t.starts_with('#') {
                return None;
            }
            let colon = t.find(": ")?;
            let key = &t[..colon];
            let ok = !key.is_empty() && !key.contains(['{', '[', '"', '\'']);
            ok.then(|| (i, l[..l.len() - t.len() + colon + 2].to_string()))
        })
        .collect()
}

fn replace_value(lines: &mut [String], rng: &mut Rng, corpus: Option<&[&str]>) {
    let candidates = key_value_lines(lines);
    if candidates.is_empty() {
        return;
    }
    let (i, head) = &candidates[rng.below(candidates.len())];
    let value = match corpus {
        Some(c) => rng.pick(c).to_string(),
        None => match rng.below(6) {
            0 => rng.pick(NUMBERS).to_string(),
            1 => rng.pick(TEMPLATES).to_string(),
            2 => "x".repeat(1 + rng.below(20_000)),
            3 => deep_sql(rng),
            _ => rng.pick(SCALARS).to_string(),
        },
    };
    lines[*i] = format!("{head}{value}");
}

/// Replaces the value of a line whose text contains `marker`.
fn replace_typed(lines: &mut [String], rng: &mut Rng, marker: &str, corpus: &[&str]) {
    let candidates: Vec<(usize, String)> = key_value_lines(lines)
        .into_iter()
        .filter(|(i, _)| lines[*i].contains(marker))
        .collect();
    if candidates.is_empty() {
        return replace_value(lines, rng, Some(corpus));
    }
    let (i, head) = &candidates[rng.below(candidates.len())];
    lines[*i] = format!("{head}{}", rng.pick(corpus));
}

/// A long chain of `AND` (an expression as deep as it is long), as a check's `expect` or
/// inside a query.
fn deep_sql(rng: &mut Rng) -> String {
    let n = [500, 1001, 5000, 50_000][rng.below(4)];
    let chain = vec!["1 = 1"; n].join(" AND ");
    if rng.chance(50) {
        format!("\"{chain}\"")
    } else {
        format!("\"SELECT * FROM (SELECT 1 AS one) WHERE {chain}\"")
    }
}

fn structure(lines: &mut Vec<String>, rng: &mut Rng) {
    if lines.len() < 2 {
        return;
    }
    let i = rng.below(lines.len() - 1);
    match rng.below(5) {
        0 => {
            lines.remove(i);
        }
        1 => {
            let l = lines[i].clone();
            lines.insert(i, l);
        }
        2 => lines.swap(i, i + 1),
        3 => lines[i] = format!("  {}", lines[i]),
        _ => lines[i] = lines[i].trim_start().to_string(),
    }
}

fn unicode(lines: &mut [String], rng: &mut Rng) {
    const BITS: &[&str] = &[
        "\u{0}", "\t", "\u{feff}", "é", "🚀", "\u{202e}", "\r", "ﬁ", "\u{7f}",
    ];
    let i = rng.below(lines.len());
    let chars: Vec<char> = lines[i].chars().collect();
    let at = rng.below(chars.len() + 1);
    let mut s: String = chars[..at].iter().collect();
    s.push_str(rng.pick(BITS));
    s.extend(&chars[at..]);
    lines[i] = s;
}

fn rename_key(lines: &mut [String], rng: &mut Rng) {
    let candidates = key_value_lines(lines);
    if candidates.is_empty() {
        return;
    }
    let (i, head) = &candidates[rng.below(candidates.len())];
    let indent = head.len() - head.trim_start().len();
    let key = head.trim().trim_end_matches(':');
    let new = match rng.below(4) {
        0 => format!("{key}x"),
        1 => key.chars().rev().collect(),
        2 => "ключ".to_string(),
        _ => "''".to_string(),
    };
    let rest = lines[*i][head.len()..].to_string();
    lines[*i] = format!("{}{new}: {rest}", " ".repeat(indent));
}

/// Inserts a format `options:` mapping under a source's or sink's `type:` line.
fn insert_options(lines: &mut Vec<String>, rng: &mut Rng) {
    let types: Vec<usize> = (0..lines.len())
        .filter(|i| lines[*i].trim_start().starts_with("type: "))
        .collect();
    if types.is_empty() {
        return;
    }
    let i = types[rng.below(types.len())];
    let indent = lines[i].len() - lines[i].trim_start().len();
    let mut opts = Vec::new();
    if lines[i].contains("parquet") {
        opts.push(format!("row_group_size: {}", rng.pick(NUMBERS)));
        opts.push(format!("compression: {}", rng.pick(COMPRESSIONS)));
    } else {
        for key in ["delimiter", "quote", "escape", "comment"] {
            if rng.chance(30) {
                opts.push(format!("{key}: {}", rng.pick(CHARS)));
            }
        }
        opts.push(format!("infer_rows: {}", rng.pick(NUMBERS)));
        if rng.chance(50) {
            opts.push(format!("null_values: [{}, NA, '']", rng.pick(SCALARS)));
        }
        if rng.chance(50) {
            opts.push(format!(
                "extension: {}",
                rng.pick(&["''", ".csv", "/", "*", "csv"])
            ));
        }
    }
    let line = format!("{}options: {{ {} }}", " ".repeat(indent), opts.join(", "));
    lines.insert(i + 1, line);
}

fn insert_engine(lines: &mut Vec<String>, rng: &mut Rng) {
    let mut parts = Vec::new();
    if rng.chance(70) {
        parts.push(format!("batch_size: {}", rng.pick(NUMBERS)));
    }
    if rng.chance(70) {
        parts.push(format!("target_partitions: {}", rng.pick(NUMBERS)));
    }
    if rng.chance(50) {
        parts.push(format!("memory_limit: {}", rng.pick(MEMORY)));
    }
    lines.push(format!("engine: {{ {} }}", parts.join(", ")));
}

fn insert_partition_by(lines: &mut Vec<String>, rng: &mut Rng) {
    const COLUMNS: &[&str] = &[
        "ts",
        "amount",
        "tx_date",
        "hour",
        "error_rate",
        "day",
        "country",
        "nope",
        "card_id",
        "suspicious",
        "price",
        "window_start",
        "bytes_total",
        "hits",
    ];
    let sinks: Vec<usize> = (0..lines.len())
        .filter(|i| lines[*i].trim_start().starts_with("from: "))
        .collect();
    if sinks.is_empty() {
        return;
    }
    let i = sinks[rng.below(sinks.len())];
    let indent = lines[i].len() - lines[i].trim_start().len();
    let cols: Vec<&str> = (0..1 + rng.below(3)).map(|_| rng.pick(COLUMNS)).collect();
    lines.insert(
        i + 1,
        format!("{}partition_by: [{}]", " ".repeat(indent), cols.join(", ")),
    );
}

fn deep_nesting(lines: &mut Vec<String>, rng: &mut Rng) {
    let depth = [10, 70, 1000, 10_000][rng.below(4)];
    if rng.chance(50) {
        lines.push(format!("deep:\n  {}x", "- ".repeat(depth)));
    } else {
        lines.push(format!("deep: {}x{}", "[".repeat(depth), "]".repeat(depth)));
    }
}

fn alias_bomb(lines: &mut Vec<String>, rng: &mut Rng) {
    let levels = 2 + rng.below(8);
    lines.push("bomb:".into());
    lines.push("  l0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]".into());
    for l in 1..levels {
        let refs = vec![format!("*a{}", l - 1); 10].join(", ");
        lines.push(format!("  l{l}: &a{l} [{refs}]"));
    }
}

fn truncate(text: &str, rng: &mut Rng) -> String {
    let cut = rng.below(text.len());
    let cut = (0..=cut)
        .rev()
        .find(|c| text.is_char_boundary(*c))
        .unwrap_or(0);
    text[..cut].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mutations_are_deterministic() {
        let base = "name: p\nsources:\n  s:\n    type: csv\n    path: data/x.csv\n";
        for seed in 0..50 {
            assert_eq!(mutate(base, seed), mutate(base, seed));
        }
        assert_ne!(mutate(base, 1), mutate(base, 2));
    }
}
