//! HTTP API sources against a real HTTP server on 127.0.0.1 (`http_server`): every
//! pagination style, retries (429 with `Retry-After`, 500, resets, timeouts), errors that name
//! the URL with secrets masked, the rate limit and the concurrency bound as the server counts
//! them, landing and replay, incremental parameters, and the weather example.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;

use crate::http_server::{Reply, Req, TestServer};
use crate::util::*;

fn rows(ids: std::ops::Range<usize>) -> serde_json::Value {
    json!(
        ids.map(|i| json!({"id": i, "name": format!("n{i}")}))
            .collect::<Vec<_>>()
    )
}

fn ids(f: &Fixture, file: &str) -> Vec<usize> {
    let mut v: Vec<usize> = read_csv(&f.path().join(file), &["id"])
        .into_iter()
        .map(|r| r[0].parse().unwrap())
        .collect();
    v.sort();
    v
}

/// Runs a pipeline reading `source` (an HTTP source's YAML, indented by 4) into `out.csv`.
fn run_source(f: &Fixture, source: &str, args: &[&str]) -> Run {
    f.file(
        "p.yaml",
        &format!(
            "sources:\n  api:\n{source}\nsinks:\n  out: {{ from: api, type: csv, path: out.csv }}\n"
        ),
    );
    let mut all = vec!["run", "p.yaml"];
    all.extend_from_slice(args);
    f.run(&all)
}

#[test]
fn page_pagination_reads_every_page_and_stops_at_the_empty_one() {
    let s = TestServer::start(|r| {
        let page: usize = r.param("page").unwrap().parse().unwrap();
        assert_eq!(r.param("per_page"), Some("2"));
        let items = if page <= 3 {
            rows(page * 10..page * 10 + 2)
        } else {
            json!([])
        };
        Reply::json(json!({ "data": { "items": items } }))
    });
    let f = Fixture::new();
    let src = format!(
        "    type: http\n    url: {}/items\n    records: data.items\n    paginate: {{ type: page, size_param: per_page, size: 2 }}",
        s.url
    );
    let r = run_source(&f, &src, &[]).expect_code(0);
    assert_eq!(ids(&f, "out.csv"), [10, 11, 20, 21, 30, 31]);
    let pages: Vec<String> = s
        .requests()
        .iter()
        .map(|r| r.param("page").unwrap().to_string())
        .collect();
    assert_eq!(pages, ["1", "2", "3", "4"]);
    assert!(
        r.stdout.contains("4 requests, 0 retries, 3 pages"),
        "{}",
        r.stdout
    );
}

#[test]
fn offset_pagination_fetches_pages_ahead_and_keeps_them_in_order() {
    let s = TestServer::start(|r| {
        let offset: usize = r.param("offset").unwrap().parse().unwrap();
        let limit: usize = r.param("limit").unwrap().parse().unwrap();
        let end = (offset + limit).min(7);
        let items = if offset < 7 {
            rows(offset..end)
        } else {
            json!([])
        };
        Reply::json(json!({ "results": items })).after(Duration::from_millis(150))
    });
    let f = Fixture::new();
    let src = format!(
        "    type: http\n    url: {}/o\n    records: results\n    concurrency: 3\n    paginate: {{ type: offset, size: 2 }}",
        s.url
    );
    run_source(&f, &src, &[]).expect_code(0);
    assert_eq!(
        ids(&f, "out.csv"),
        (0..7).collect::<Vec<_>>(),
        "every record once"
    );
    assert_eq!(s.max_in_flight(), 3, "three pages at a time");
    // Four pages of records, the empty one, and at most `concurrency` - 1 asked for ahead
    // of it (a sliding window keeps three requests in flight).
    assert!(
        s.requests().len() <= 4 + 1 + 2,
        "{} requests",
        s.requests().len()
    );
}

#[test]
fn cursor_pagination_follows_the_cursor_in_the_body() {
    let s = TestServer::start(|r| {
        let (items, next) = match r.param("cursor") {
            None => (rows(0..2), json!("c2")),
            Some("c2") => (rows(2..4), json!("c3")),
            Some("c3") => (rows(4..5), json!(null)),
            other => panic!("unexpected cursor {other:?}"),
        };
        Reply::json(json!({ "results": items, "next": { "cursor": next } }))
    });
    let f = Fixture::new();
    let src = format!(
        "    type: http\n    url: {}/c\n    records: results\n    paginate: {{ type: cursor, cursor_path: next.cursor, cursor_param: cursor, size_param: limit, size: 2 }}",
        s.url
    );
    run_source(&f, &src, &[]).expect_code(0);
    assert_eq!(ids(&f, "out.csv"), [0, 1, 2, 3, 4]);
    let reqs = s.requests();
    assert_eq!(reqs.len(), 3);
    assert!(reqs.iter().all(|r| r.param("limit") == Some("2")));
}

#[test]
fn link_header_pagination_follows_absolute_and_relative_links() {
    let url = Arc::new(Mutex::new(String::new()));
    let base = url.clone();
    let s = TestServer::start(move |r| {
        let p: usize = r.param("p").unwrap_or("1").parse().unwrap();
        let reply = Reply::json(rows(p * 10..p * 10 + 2));
        match p {
            1 => reply.header(
                "Link",
                &format!("<{}/l?p=2>; rel=\"next\"", base.lock().unwrap()),
            ),
            2 => reply.header("Link", "</l?p=1>; rel=\"prev\", </l?p=3>; rel=\"next\""),
            _ => reply,
        }
    });
    *url.lock().unwrap() = s.url.clone();
    let f = Fixture::new();
    let src = format!(
        "    type: http\n    url: {}/l\n    paginate: {{ type: link_header }}",
        s.url
    );
    run_source(&f, &src, &[]).expect_code(0);
    assert_eq!(ids(&f, "out.csv"), [10, 11, 20, 21, 30, 31]);
}

#[test]
fn next_url_pagination_stops_at_max_pages_and_says_so() {
    let s = TestServer::start(|r| {
        let page: usize = r.param("page").unwrap_or("1").parse().unwrap();
        Reply::json(json!({
            "items": rows(page * 10..page * 10 + 1),
            "links": { "next": format!("/n?page={}", page + 1) }
        }))
    });
    let f = Fixture::new();
    let src = format!(
        "    type: http\n    url: {}/n\n    records: items\n    paginate: {{ type: next_url, next_url_path: links.next, max_pages: 3 }}",
        s.url
    );
    let r = run_source(&f, &src, &[]).expect_code(0);
    assert_eq!(ids(&f, "out.csv"), [10, 20, 30]);
    assert_eq!(s.requests().len(), 3);
    assert!(
        r.stdout.contains("stopped at max_pages (3)"),
        "{}",
        r.stdout
    );
}

#[test]
fn a_cursor_seen_twice_is_an_error_not_an_endless_loop() {
    let s = TestServer::start(|_| Reply::json(json!({ "r": rows(0..1), "next": "same" })));
    let f = Fixture::new();
    let src = format!(
        "    type: http\n    url: {}/x\n    records: r\n    paginate: {{ type: cursor, cursor_path: next }}",
        s.url
    );
    let r = run_source(&f, &src, &[]).expect_code(1);
    assert!(r.stderr.contains("same next page twice"), "{}", r.stderr);
    assert_eq!(s.requests().len(), 2);
}

#[test]
fn a_429_with_retry_after_is_waited_for() {
    let n = AtomicUsize::new(0);
    let s = TestServer::start(move |_| {
        if n.fetch_add(1, Ordering::SeqCst) == 0 {
            Reply::status(429, "slow down").header("Retry-After", "1")
        } else {
            Reply::json(rows(0..2))
        }
    });
    let f = Fixture::new();
    let src = format!(
        "    type: http\n    url: {}/r\n    retries: {{ max: 3, initial_backoff: 10ms }}",
        s.url
    );
    let r = run_source(&f, &src, &[]).expect_code(0);
    assert_eq!(ids(&f, "out.csv"), [0, 1]);
    let reqs = s.requests();
    assert_eq!(reqs.len(), 2);
    assert!(
        reqs[1].at - reqs[0].at >= Duration::from_millis(990),
        "{:?}",
        reqs[1].at - reqs[0].at
    );
    assert!(r.stdout.contains("2 requests, 1 retry"), "{}", r.stdout);
}

#[test]
fn a_retry_after_longer_than_max_backoff_fails_clearly() {
    let s = TestServer::start(|_| Reply::status(503, "maintenance").header("Retry-After", "3600"));
    let f = Fixture::new();
    let src = format!(
        "    type: http\n    url: {}/m\n    retries: {{ max_backoff: 5s }}",
        s.url
    );
    let r = run_source(&f, &src, &[]).expect_code(1);
    assert!(r.stderr.contains("retry after 3600s"), "{}", r.stderr);
    assert_eq!(s.requests().len(), 1);
}

#[test]
fn a_500_then_a_success_and_a_reset_connection_are_retried() {
    let n = Arc::new(AtomicUsize::new(0));
    let count = n.clone();
    let s =
        TestServer::start(
            move |r| match (r.path.as_str(), count.fetch_add(1, Ordering::SeqCst)) {
                ("/a", 0) => Reply::status(500, "oops"),
                ("/b", _) if r.param("try").is_none() => Reply::Reset,
                _ => Reply::json(rows(0..3)),
            },
        );
    let f = Fixture::new();
    let src = format!(
        "    type: http\n    url: {}/a\n    retries: {{ initial_backoff: 10ms }}",
        s.url
    );
    let r = run_source(&f, &src, &[]).expect_code(0);
    assert_eq!(ids(&f, "out.csv"), [0, 1, 2]);
    assert!(r.stdout.contains("2 requests, 1 retry"), "{}", r.stdout);

    // Reset on every attempt: the retries give up and say why.
    let src = format!(
        "    type: http\n    url: {}/b\n    retries: {{ max: 2, initial_backoff: 10ms }}",
        s.url
    );
    let r = run_source(&f, &src, &[]).expect_code(1);
    assert!(r.stderr.contains("after 3 attempts"), "{}", r.stderr);
    assert!(r.stderr.contains(&format!("{}/b", s.url)), "{}", r.stderr);
}

#[test]
fn a_body_that_breaks_off_is_retried() {
    let n = AtomicUsize::new(0);
    let s = TestServer::start(move |_| {
        if n.fetch_add(1, Ordering::SeqCst) == 0 {
            Reply::BreakOff(b"[{\"id\": 1}, {\"id\"".to_vec())
        } else {
            Reply::json(rows(0..2))
        }
    });
    let f = Fixture::new();
    let src = format!(
        "    type: http\n    url: {}/x\n    retries: {{ initial_backoff: 10ms }}",
        s.url
    );
    run_source(&f, &src, &[]).expect_code(0);
    assert_eq!(ids(&f, "out.csv"), [0, 1]);
    assert_eq!(s.requests().len(), 2);
}

#[test]
fn a_slow_response_times_out_then_the_retry_succeeds_or_the_run_fails() {
    let n = AtomicUsize::new(0);
    let s = TestServer::start(move |r| {
        let first = n.fetch_add(1, Ordering::SeqCst) == 0;
        if r.path == "/always" || first {
            Reply::json(rows(0..1)).after(Duration::from_secs(2))
        } else {
            Reply::json(rows(0..2))
        }
    });
    let f = Fixture::new();
    let src = format!(
        "    type: http\n    url: {}/once\n    timeout: 300ms\n    retries: {{ initial_backoff: 10ms }}",
        s.url
    );
    run_source(&f, &src, &[]).expect_code(0);
    assert_eq!(ids(&f, "out.csv"), [0, 1]);
    let src = format!(
        "    type: http\n    url: {}/always\n    timeout: 300ms\n    retries: {{ max: 1, initial_backoff: 10ms }}",
        s.url
    );
    let r = run_source(&f, &src, &[]).expect_code(1);
    assert!(r.stderr.contains("timed out after 300ms"), "{}", r.stderr);
    assert!(r.stderr.contains("after 2 attempts"), "{}", r.stderr);
    assert!(
        r.stderr.contains("help: check that the API is up"),
        "{}",
        r.stderr
    );
}

#[test]
fn a_404_fails_at_once_with_the_status_the_url_and_the_body() {
    let s = TestServer::start(|_| Reply::status(404, "no such city: Atlantis"));
    let f = Fixture::new();
    let src = format!(
        "    type: http\n    url: {}/cities/atlantis\n    retries: {{ max: 5 }}",
        s.url
    );
    let r = run_source(&f, &src, &[]).expect_code(1);
    assert_eq!(s.requests().len(), 1, "not retried");
    for want in [
        "404 Not Found",
        "/cities/atlantis",
        "no such city: Atlantis",
        "p.yaml:4:10",
        "help: the API refused the request",
    ] {
        assert!(r.stderr.contains(want), "{want}: {}", r.stderr);
    }
}

#[test]
fn malformed_json_names_the_url_and_the_byte_offset_and_keeps_the_body() {
    let body = br#"{"data": [{"a": 1}, {"a": tru}]}"#.to_vec();
    let served = body.clone();
    let s = TestServer::start(move |_| Reply::bytes(200, "application/json", served.clone()));
    let f = Fixture::new();
    let src = format!(
        "    type: http\n    url: {}/bad\n    records: data\n    land: {{ path: raw }}",
        s.url
    );
    let r = run_source(&f, &src, &[]).expect_code(1);
    assert!(
        r.stderr.contains("malformed JSON at byte 29"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains(&format!("{}/bad", s.url)), "{}", r.stderr);
    let kept: Vec<String> = files_below(&f.path().join("raw"))
        .into_iter()
        .filter(|p| p.ends_with(".json.gz"))
        .collect();
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert!(r.stderr.contains(&kept[0]), "{}", r.stderr);
    let mut out = Vec::new();
    use std::io::Read;
    flate2::read::GzDecoder::new(std::fs::File::open(f.path().join("raw").join(&kept[0])).unwrap())
        .read_to_end(&mut out)
        .unwrap();
    assert_eq!(out, body, "kept as fetched");
}

#[test]
fn a_records_path_that_is_not_there_lists_what_is() {
    let s = TestServer::start(|_| Reply::json(json!({ "data": { "items": [] }, "meta": {} })));
    let f = Fixture::new();
    let src = format!(
        "    type: http\n    url: {}/x\n    records: data.itmes",
        s.url
    );
    let r = run_source(&f, &src, &[]).expect_code(1);
    assert!(r.stderr.contains("`data` has items"), "{}", r.stderr);
}

#[test]
fn the_rate_limit_is_honoured_as_the_server_counts() {
    let s = TestServer::start(|r| {
        Reply::json(json!([{ "id": r.param("id").unwrap().parse::<usize>().unwrap() }]))
    });
    let f = Fixture::new();
    let items: Vec<String> = (0..12).map(|i| format!("{{ id: {i} }}")).collect();
    let src = format!(
        "    type: http\n    url: {}/r\n    params: {{ id: \"{{{{ item.id }}}}\" }}\n    for_each: [{}]\n    concurrency: 4\n    rate_limit: {{ requests: 4, per: second }}",
        s.url,
        items.join(", ")
    );
    let t = std::time::Instant::now();
    run_source(&f, &src, &[]).expect_code(0);
    assert_eq!(ids(&f, "out.csv"), (0..12).collect::<Vec<_>>());
    assert!(
        s.max_per_window(Duration::from_secs(1)) <= 4,
        "{}",
        s.max_per_window(Duration::from_secs(1))
    );
    assert!(t.elapsed() >= Duration::from_secs(2), "{:?}", t.elapsed());
}

#[test]
fn fan_out_runs_at_most_concurrency_requests_at_once() {
    let s = TestServer::start(|r| {
        let id: usize = r.param("id").unwrap().parse().unwrap();
        Reply::json(json!([{ "n": id }])).after(Duration::from_millis(200))
    });
    let f = Fixture::new();
    let src = format!(
        "    type: http\n    url: {}/f\n    params: {{ id: \"{{{{ item }}}}\" }}\n    for_each: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]\n    item_columns: {{ id: . }}\n    concurrency: 3",
        s.url
    );
    run_source(&f, &src, &[]).expect_code(0);
    assert_eq!(ids(&f, "out.csv"), (1..11).collect::<Vec<_>>());
    assert_eq!(s.max_in_flight(), 3);
}

fn weather_server() -> TestServer {
    TestServer::start(|r: &Req| {
        let lat: f64 = r.param("latitude").unwrap().parse().unwrap();
        Reply::json(json!({
            "latitude": lat,
            "hourly_units": { "time": "iso8601", "temperature_2m": "°C" },
            "hourly": {
                "time": ["2024-06-01T00:00", "2024-06-01T01:00", "2024-06-01T02:00"],
                "temperature_2m": [lat / 10.0, null, 1.5]
            }
        }))
    })
}

const WEATHER: &str = r#"
vars:
  cities:
    - { name: Berlin, lat: 52.5 }
    - { name: Paris, lat: 48.8 }
sources:
  hourly:
    type: http
    url: "{{ base }}/v1/forecast"
    params: { latitude: "{{ item.lat }}", hourly: temperature_2m }
    for_each: "{{ cities }}"
    item_columns: { city: name }
    records: hourly
    schema: { time: timestamp, temperature_2m: double }
    land: { path: "raw/{{ ds }}" }
sinks:
  out: { from: hourly, type: csv, path: out.csv }
"#;

#[test]
fn parallel_arrays_item_columns_declared_types_landing_and_replay() {
    let s = weather_server();
    let f = Fixture::new();
    f.file("p.yaml", WEATHER);
    let base = format!("base={}", s.url);
    let args = ["run", "p.yaml", "--var", &base, "--date", "2024-06-01"];
    f.run(&args).expect_code(0);
    let first = read_csv(&f.path().join("out.csv"), &[]);
    assert_eq!(
        first,
        vec![
            vec!["2024-06-01T00:00:00", "4.88", "Paris"],
            vec!["2024-06-01T00:00:00", "5.25", "Berlin"],
            vec!["2024-06-01T01:00:00", "", "Berlin"],
            vec!["2024-06-01T01:00:00", "", "Paris"],
            vec!["2024-06-01T02:00:00", "1.5", "Berlin"],
            vec!["2024-06-01T02:00:00", "1.5", "Paris"],
        ]
    );
    let landed = files_below(&f.path().join("raw/2024-06-01"));
    assert_eq!(
        landed.iter().filter(|p| p.ends_with(".json.gz")).count(),
        2,
        "{landed:?}"
    );
    let manifest = landed
        .iter()
        .find(|p| p.ends_with("hourly.manifest.json"))
        .unwrap();
    let m: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(f.path().join("raw/2024-06-01").join(manifest)).unwrap(),
    )
    .unwrap();
    assert_eq!(m["complete"], json!(true));
    assert_eq!(m["items"][1]["name"], json!("Paris"));

    // Replay: the API is not called, and the output is the same.
    let before = s.requests().len();
    std::fs::remove_file(f.path().join("out.csv")).unwrap();
    let mut replay = args.to_vec();
    replay.push("--from-landed");
    let r = f.run(&replay).expect_code(0);
    assert_eq!(s.requests().len(), before, "no request on replay");
    assert_eq!(read_csv(&f.path().join("out.csv"), &[]), first);
    assert!(r.stdout.contains("replayed 2 pages"), "{}", r.stdout);
}

#[test]
fn replay_needs_a_landing() {
    let f = Fixture::new();
    let src = "    type: http\n    url: http://127.0.0.1:9/x";
    let r = run_source(&f, src, &["--from-landed"]).expect_code(2);
    assert!(r.stderr.contains("has no `land:`"), "{}", r.stderr);
    f.file("p.yaml", WEATHER);
    let r = f
        .run(&[
            "run",
            "p.yaml",
            "--var",
            "base=http://127.0.0.1:9",
            "--from-landed",
        ])
        .expect_code(1);
    assert!(
        r.stderr.contains("no landing of source `hourly`"),
        "{}",
        r.stderr
    );
}

#[test]
fn secrets_stay_masked_in_urls_headers_params_and_bodies() {
    let secret = "tok-9f8e7d6c5b4a";
    let s = TestServer::start(move |r| {
        let key = r.param("api_key").unwrap_or("").to_string();
        Reply::status(401, &format!("bad key {key} for {}", r.path))
    });
    let f = Fixture::new();
    f.file(
        "p.yaml",
        &format!(
            r#"
sources:
  api:
    type: http
    url: "{}/v1/{{{{ env('API_TOKEN') }}}}/data"
    params: {{ api_key: "{{{{ env('API_TOKEN') }}}}" }}
    headers: {{ Authorization: "Bearer {{{{ env('API_TOKEN') }}}}" }}
sinks:
  out: {{ from: api, type: csv, path: out.csv }}
"#,
            s.url
        ),
    );
    let r = etl_env(f.path(), &["run", "p.yaml"], &[("API_TOKEN", secret)]).expect_code(1);
    let req = &s.requests()[0];
    assert_eq!(
        req.header("authorization"),
        Some(format!("Bearer {secret}").as_str()),
        "the API got the token"
    );
    let all = format!("{}{}", r.stdout, r.stderr);
    assert!(all.contains("401"), "{all}");
    assert!(
        !all.contains(secret) && !all.contains("tok%2D9f8e"),
        "{all}"
    );
    assert!(
        all.contains("/v1/***/data") && all.contains("api_key=***"),
        "{all}"
    );
    for rec in files_below(&f.path().join(".etl/runs")) {
        let text = std::fs::read_to_string(f.path().join(".etl/runs").join(rec)).unwrap();
        assert!(!text.contains(secret), "{text}");
    }
    // A connection error names the URL too, masked.
    f.file(
        "p2.yaml",
        r#"
sources:
  api:
    type: http
    url: "http://127.0.0.1:9/v1/{{ env('API_TOKEN') }}/data"
    retries: { max: 0 }
sinks:
  out: { from: api, type: csv, path: out.csv }
"#,
    );
    let r = etl_env(f.path(), &["run", "p2.yaml"], &[("API_TOKEN", secret)]).expect_code(1);
    assert!(
        r.stderr.contains("cannot connect") && r.stderr.contains("/v1/***/data"),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains(secret), "{}", r.stderr);
}

#[test]
fn the_incremental_parameter_carries_the_watermark() {
    let events = Arc::new(Mutex::new(3usize));
    let total = events.clone();
    let s = TestServer::start(move |r| {
        let since: usize = r.param("since").map(|v| v.parse().unwrap()).unwrap_or(0);
        let n = *total.lock().unwrap();
        Reply::json(json!({ "events": rows(since + 1..n + 1) }))
    });
    let f = Fixture::new();
    f.file(
        "p.yaml",
        &format!(
            r#"
sources:
  events:
    type: http
    url: {}/events
    records: events
    schema: {{ id: bigint, name: string }}
    incremental: {{ cursor: id, param: since }}
sinks:
  out: {{ from: events, type: parquet, path: out, mode: append }}
"#,
            s.url
        ),
    );
    f.run(&["run", "p.yaml"]).expect_code(0);
    assert_eq!(
        s.requests()[0].param("since"),
        None,
        "the first run reads from the start"
    );
    *events.lock().unwrap() = 5;
    f.run(&["run", "p.yaml"]).expect_code(0);
    let last = s.requests().last().unwrap().clone();
    assert_eq!(last.param("since"), Some("3"));
    f.run(&["run", "p.yaml"]).expect_code(0);
    assert_eq!(s.requests().last().unwrap().param("since"), Some("5"));
    let out = read_parquet(&f.path().join("out"), &[], &["id"]);
    let got: Vec<usize> = out.iter().map(|r| r[0].parse().unwrap()).collect();
    let mut got = got;
    got.sort();
    assert_eq!(got, [1, 2, 3, 4, 5], "every event once");
}

#[test]
fn post_with_a_json_body_and_pagination_in_the_body() {
    let s = TestServer::start(|r| {
        assert_eq!(r.method, "POST");
        assert_eq!(r.header("content-type"), Some("application/json"));
        let body = r.json();
        let page = body["page"].as_u64().unwrap() as usize;
        assert_eq!(body["filter"]["lat"], json!(52.5), "typed from the item");
        let items = if page <= 2 {
            rows(page * 10..page * 10 + 2)
        } else {
            json!([])
        };
        Reply::json(json!({ "hits": items }))
    });
    let f = Fixture::new();
    let src = format!(
        "    type: http\n    method: POST\n    url: {}/search\n    body: {{ q: rain, filter: {{ lat: \"{{{{ item.lat }}}}\" }} }}\n    for_each: [{{ lat: 52.5 }}]\n    records: hits\n    paginate: {{ type: page }}",
        s.url
    );
    run_source(&f, &src, &[]).expect_code(0);
    assert_eq!(ids(&f, "out.csv"), [10, 11, 20, 21]);
}

#[test]
fn ndjson_and_csv_responses() {
    let s = TestServer::start(|r| match (r.path.as_str(), r.param("page")) {
        ("/nd", _) => Reply::bytes(
            200,
            "application/x-ndjson",
            b"{\"id\": 1}\n\n{\"id\": 2, \"x\": {\"y\": 3}}\n".to_vec(),
        ),
        ("/csv", Some("1")) => Reply::bytes(200, "text/csv", b"id,name\n1,a\n2,b\n".to_vec()),
        ("/csv", Some("2")) => Reply::bytes(200, "text/csv", b"id,name\n3,\"c, d\"\n".to_vec()),
        _ => Reply::bytes(200, "text/csv", b"id,name\n".to_vec()),
    });
    let f = Fixture::new();
    let src = format!(
        "    type: http\n    url: {}/nd\n    format: ndjson\n    flatten: true",
        s.url
    );
    run_source(&f, &src, &[]).expect_code(0);
    assert_eq!(
        read_csv(&f.path().join("out.csv"), &["id", "x_y"]),
        vec![vec!["1", ""], vec!["2", "3"]]
    );
    let src = format!(
        "    type: http\n    url: {}/csv\n    format: csv\n    paginate: {{ type: page }}\n    schema: {{ name: string, id: int }}",
        s.url
    );
    run_source(&f, &src, &[]).expect_code(0);
    assert_eq!(
        read_csv(&f.path().join("out.csv"), &["id", "name"]),
        vec![vec!["1", "a"], vec!["2", "b"], vec!["3", "c, d"]]
    );
}

#[test]
fn validate_calls_no_api_and_places_item_template_errors() {
    let s = TestServer::start(|_| Reply::json(json!([])));
    let f = Fixture::new();
    f.file(
        "p.yaml",
        &format!(
            r#"
sources:
  api:
    type: http
    url: {}/x
    params:
      lat: "{{{{ item.lat }}}}"
    for_each: [{{ lat: 1 }}]
    schema: {{ a: int }}
transforms:
  t: {{ sql: SELECT a FROM api }}
sinks:
  out: {{ from: t, type: csv, path: out.csv }}
"#,
            s.url
        ),
    );
    f.run(&["validate", "p.yaml"]).expect_code(0);
    f.run(&["run", "p.yaml", "--dry-run"]).expect_code(0);
    assert_eq!(s.requests().len(), 0, "no request");
    let text = std::fs::read_to_string(f.path().join("p.yaml")).unwrap();
    f.file("p.yaml", &text.replace("item.lat", "item.latt"));
    let r = f.run(&["validate", "p.yaml"]).expect_code(2);
    assert!(r.stderr.contains("p.yaml:7:12"), "{}", r.stderr);
    assert!(r.stderr.contains("(item 0:"), "{}", r.stderr);
    f.file("p.yaml", &text.replace("    for_each: [{ lat: 1 }]\n", ""));
    let r = f.run(&["validate", "p.yaml"]).expect_code(2);
    assert!(
        r.stderr
            .contains("`item` is defined only in a source with `for_each`"),
        "{}",
        r.stderr
    );
}

#[test]
fn weather_example_matches_its_expected_output() {
    let data = repo().join("pipelines/data/weather");
    let s = TestServer::start(move |r| {
        let lat = r.param("latitude").unwrap();
        let name = match lat {
            "52.52" => "berlin",
            "48.85" => "paris",
            "40.42" => "madrid",
            other => panic!("no recorded response for latitude {other}"),
        };
        let body = std::fs::read(data.join(format!("{name}.json"))).unwrap();
        Reply::bytes(200, "application/json", body)
    });
    let out = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let file = repo().join("pipelines/weather.yaml");
    let vars = [
        format!("api_base={}", s.url),
        format!("out_dir={}", out.path().display()),
    ];
    etl_env(
        &repo(),
        &[
            "run",
            file.to_str().unwrap(),
            "--var",
            &vars[0],
            "--var",
            &vars[1],
            "--date",
            "2024-06-14",
        ],
        &[("ETL_STATE_DIR", state.path().to_str().unwrap())],
    )
    .expect_code(0);
    assert_eq!(s.requests().len(), 3, "one request per city");
    for (sink, cols) in [
        (
            "daily",
            vec!["city", "day", "min_c", "max_c", "avg_c", "hours"],
        ),
        ("rolling", vec!["city", "day", "avg_c", "avg_7d"]),
    ] {
        let expected = read_csv(
            &repo().join(format!("pipelines/expected/weather/{sink}.csv")),
            &cols,
        );
        let actual = read_parquet(&out.path().join("weather").join(sink), &["city"], &cols);
        assert_eq!(actual.len(), expected.len(), "{sink}: rows");
        assert_eq!(actual.len(), 42, "{sink}: 14 days of 3 cities");
        for (a, e) in actual.iter().zip(&expected) {
            for (x, y) in a.iter().zip(e) {
                let same = match (x.parse::<f64>(), y.parse::<f64>()) {
                    (Ok(x), Ok(y)) => (x - y).abs() < 1e-4,
                    _ => x == y,
                };
                assert!(same, "{sink}: {a:?} != {e:?}");
            }
        }
    }
    assert!(
        !files_below(&out.path().join("raw/weather/2024-06-14")).is_empty(),
        "landed"
    );
}
