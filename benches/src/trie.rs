//! `hubmq-bench trie`: an in-process micro-benchmark of `hubmq_core::trie::TopicTrie`, the
//! per-worker wildcard index of Event Grid mode. It builds a trie of N filters shaped like an
//! IoT fleet's subscriptions, times M lookups of realistic topic names and reports ns per
//! lookup. No broker and no network are involved; it is bounded to a few seconds by default.

use clap::Args;
use hubmq_core::trie::TopicTrie;
use serde_json::{json, Map, Value};
use std::hint::black_box;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

#[derive(Args, Debug)]
pub struct TrieArgs {
    /// Filters in the trie: 80% exact `devices/{i}/telemetry`, 10% `devices/+/alerts/{i}`,
    /// 10% `fleet/{i}/#`, one value each (at most a million: a few hundred MiB).
    #[arg(long, default_value_t = 10_000,
          value_parser = clap::value_parser!(u32).range(10..=1_000_000))]
    filters: u32,
    /// Topic lookups timed (at most 100 million: about ten seconds).
    #[arg(long, default_value_t = 1_000_000,
          value_parser = clap::value_parser!(u64).range(1..=100_000_000))]
    lookups: u64,
    /// Scenario label for reports.
    #[arg(long)]
    label: Option<String>,
    /// Write the result as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
}

/// Distinct topic names cycled through by the timed loop: enough to defeat a warm branch
/// predictor on one path, few enough (a few hundred KiB) to stay in cache like a busy
/// worker's hot topics.
const TOPICS: usize = 4096;

pub fn run(a: TrieArgs) -> ExitCode {
    let n = a.filters;
    let filters: Vec<String> = (0..n).map(filter).collect();

    let started = Instant::now();
    let mut trie = TopicTrie::new();
    for (i, f) in filters.iter().enumerate() {
        trie.insert(f, i as u32);
    }
    let build = started.elapsed();

    let mut rng = 0x2545_f491_4f6c_dd1d_u64;
    let topics: Vec<String> = (0..TOPICS).map(|_| topic(&mut rng, n)).collect();

    // Warm-up: one pass over the topics so page faults and first-touch misses are not timed.
    let mut sink = 0u64;
    for t in &topics {
        trie.for_each_match(t, |v| sink = sink.wrapping_add(u64::from(v)));
    }

    let mut matches = 0u64;
    let started = Instant::now();
    for i in 0..a.lookups {
        // `TOPICS` is a power of two: the mask is the cheap modulo.
        let t = black_box(topics[(i as usize) & (TOPICS - 1)].as_str());
        trie.for_each_match(t, |v| {
            matches += 1;
            sink = sink.wrapping_add(u64::from(v));
        });
    }
    let lookup = started.elapsed();
    black_box(sink);

    let started = Instant::now();
    let mut removed = 0u64;
    for (i, f) in filters.iter().enumerate() {
        removed += u64::from(trie.remove(f, i as u32));
    }
    let teardown = started.elapsed();

    let ns_per_lookup = lookup.as_nanos() as f64 / a.lookups as f64;
    let r1 = |v: f64| (v * 10.0).round() / 10.0;
    let r3 = |v: f64| (v * 1000.0).round() / 1000.0;
    let mut m = Map::new();
    m.insert("scenario".into(), json!("trie"));
    m.insert("label".into(), json!(a.label));
    m.insert("filters".into(), json!(n));
    m.insert("lookups".into(), json!(a.lookups));
    m.insert("ns_per_lookup".into(), json!(r1(ns_per_lookup)));
    m.insert("matches".into(), json!(matches));
    m.insert(
        "matches_per_lookup".into(),
        json!(r3(matches as f64 / a.lookups as f64)),
    );
    m.insert(
        "ops_per_sec".into(),
        json!((a.lookups as f64 / lookup.as_secs_f64().max(1e-9)).round()),
    );
    m.insert("build_ms".into(), json!(r1(build.as_secs_f64() * 1e3)));
    m.insert("remove_ms".into(), json!(r1(teardown.as_secs_f64() * 1e3)));
    println!(
        "trie {}: {n} filters, {} lookups: {:.1} ns/lookup, {matches} matches ({:.3}/lookup), build {:.1} ms, remove {:.1} ms",
        a.label.as_deref().unwrap_or("-"),
        a.lookups,
        ns_per_lookup,
        matches as f64 / a.lookups as f64,
        build.as_secs_f64() * 1e3,
        teardown.as_secs_f64() * 1e3,
    );

    if removed != u64::from(n) || !trie.is_empty() {
        eprintln!(
            "hubmq-bench: trie removed {removed} of {n} entries, {} left",
            trie.len()
        );
        return ExitCode::FAILURE;
    }
    if let Some(path) = &a.json {
        let text = serde_json::to_string_pretty(&Value::Object(m)).unwrap_or_default();
        if let Err(e) = std::fs::write(path, text + "\n") {
            eprintln!("hubmq-bench: cannot write {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}

/// The `i`th filter: every tenth is `devices/+/alerts/{i}`, the next `fleet/{i}/#`, the rest
/// exact device telemetry. All distinct, so every topic below matches at most one filter.
fn filter(i: u32) -> String {
    match i % 10 {
        8 => format!("devices/+/alerts/{i}"),
        9 => format!("fleet/{i}/#"),
        _ => format!("devices/{i}/telemetry"),
    }
}

/// A topic a device or service would publish: a quarter each of device telemetry (a hit when
/// the device has an exact filter; the walk also tries the `+` branch), an alert (a hit
/// through `+` while the literal device branch is tried too), a fleet message four levels
/// under a `#` filter, and a miss in another tree.
fn topic(rng: &mut u64, n: u32) -> String {
    let r = next(rng);
    let pick = |k: u32| ((r >> 8) % u64::from(n / 10)) as u32 * 10 + k;
    let device = (r >> 40) as u32 % n;
    match r % 4 {
        0 => format!("devices/{device}/telemetry"),
        1 => format!("devices/{device}/alerts/{}", pick(8)),
        2 => format!("fleet/{}/truck/{device}/gps", pick(9)),
        _ => format!("plant/{device}/telemetry"),
    }
}

/// xorshift64: a fixed sequence so runs compare like for like.
fn next(s: &mut u64) -> u64 {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    *s
}
