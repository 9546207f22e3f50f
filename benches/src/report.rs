//! Markdown tables from result JSON files: one table per scenario label, one row per broker,
//! with ratios against a baseline broker (mosquitto by default). Throughput ratios are
//! `x / baseline`; CPU ratios are `baseline / x`, so "> 1×" always means "better than baseline".

use serde_json::Value;
use std::path::PathBuf;
use std::process::ExitCode;

/// `1234567.0` → `1.23M`.
pub fn human_rate(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.2}M", v / 1e6)
    } else if v >= 1e3 {
        format!("{:.1}k", v / 1e3)
    } else {
        format!("{v:.0}")
    }
}

fn num(v: &Value, k: &str) -> Option<f64> {
    v.get(k).and_then(Value::as_f64)
}

fn text(v: &Value, k: &str) -> String {
    v.get(k).and_then(Value::as_str).unwrap_or("?").to_string()
}

fn opt(v: Option<f64>, fmt: impl Fn(f64) -> String) -> String {
    v.map(fmt).unwrap_or_else(|| "–".into())
}

fn ratio(x: Option<f64>, base: Option<f64>, invert: bool) -> String {
    match (x, base) {
        (Some(x), Some(b)) if x > 0.0 && b > 0.0 => {
            let r = if invert { b / x } else { x / b };
            format!("{r:.2}×")
        }
        _ => "–".into(),
    }
}

fn describe(v: &Value) -> String {
    let scenario = text(v, "scenario");
    let transport = text(v, "transport").to_uppercase();
    let rate = num(v, "rate")
        .map(|r| format!(", fixed {} msgs/s", human_rate(r)))
        .unwrap_or_default();
    match scenario.as_str() {
        "fanout" => format!(
            "QoS {} fan-out 1 → {} over {transport}, {} B{}",
            num(v, "qos").unwrap_or(0.0),
            num(v, "subscribers_per_topic").unwrap_or(0.0),
            num(v, "payload").unwrap_or(0.0),
            if rate.is_empty() {
                format!(", saturated (window {})", num(v, "window").unwrap_or(0.0))
            } else {
                rate
            }
        ),
        "pairs" => format!(
            "{} QoS {} pairs over {transport}, {} B{}",
            num(v, "topics").unwrap_or(0.0),
            num(v, "qos").unwrap_or(0.0),
            num(v, "payload").unwrap_or(0.0),
            if rate.is_empty() {
                format!(", saturated (window {})", num(v, "window").unwrap_or(0.0))
            } else {
                rate
            }
        ),
        "connect" => format!(
            "{} connects over {transport}, concurrency {}",
            num(v, "count").unwrap_or(0.0),
            num(v, "concurrency").unwrap_or(0.0)
        ),
        _ => "failed run".into(),
    }
}

/// Renders the tables for already-parsed results.
pub fn render(results: &[Value], baseline: &str) -> String {
    let mut labels: Vec<String> = Vec::new();
    for r in results {
        let l = text(r, "label");
        if !labels.contains(&l) {
            labels.push(l);
        }
    }
    let mut out = String::new();
    for label in labels {
        let rows: Vec<&Value> = results
            .iter()
            .filter(|r| text(r, "label") == label)
            .collect();
        let desc = rows
            .iter()
            .find(|r| r.get("error").is_none())
            .map(|r| describe(r))
            .unwrap_or_else(|| "every broker failed".into());
        let is_connect = rows.iter().any(|r| text(r, "scenario") == "connect");
        let base = rows
            .iter()
            .find(|r| text(r, "broker") == baseline && r.get("error").is_none());
        out.push_str(&format!("### {label}: {desc}\n\n"));
        let (rate_h, cpu_h) = if is_connect {
            ("connects/s", "CPU-µs/connect")
        } else {
            ("deliveries/s", "CPU-µs/delivery (= CPU-s/M)")
        };
        out.push_str(&format!(
            "| broker | {rate_h} | p50 µs | p99 µs | {cpu_h} | broker CPU-s | RSS MiB | lost | rate vs {baseline} | CPU efficiency vs {baseline} |\n"
        ));
        out.push_str("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
        for r in &rows {
            let broker = text(r, "broker");
            if let Some(e) = r.get("error").and_then(Value::as_str) {
                let e = e.replace('|', "/");
                out.push_str(&format!("| {broker} | failed: {e} | | | | | | | | |\n"));
                continue;
            }
            let errors = num(r, "errors").unwrap_or(0.0);
            let note = if errors > 0.0 {
                format!(" ({errors} conn errors)")
            } else {
                String::new()
            };
            out.push_str(&format!(
                "| {broker}{note} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
                opt(num(r, "ops_per_sec"), human_rate),
                opt(num(r, "p50_us"), |v| format!("{v:.0}")),
                opt(num(r, "p99_us"), |v| format!("{v:.0}")),
                opt(num(r, "cpu_us_per_op"), |v| format!("{v:.3}")),
                opt(num(r, "broker_cpu_secs"), |v| format!("{v:.2}")),
                opt(num(r, "broker_rss_kib"), |v| format!("{:.1}", v / 1024.0)),
                opt(num(r, "lost"), |v| format!("{v:.0}")),
                ratio(
                    num(r, "ops_per_sec"),
                    base.and_then(|b| num(b, "ops_per_sec")),
                    false
                ),
                ratio(
                    num(r, "cpu_us_per_op"),
                    base.and_then(|b| num(b, "cpu_us_per_op")),
                    true
                ),
            ));
        }
        out.push('\n');
    }
    out
}

/// `hubmq-bench report FILES…`: prints the tables to stdout.
pub fn print(files: &[PathBuf], baseline: &str) -> ExitCode {
    let mut results = Vec::new();
    for f in files {
        match std::fs::read_to_string(f)
            .map_err(|e| e.to_string())
            .and_then(|t| serde_json::from_str::<Value>(&t).map_err(|e| e.to_string()))
        {
            Ok(v) => results.push(v),
            Err(e) => eprintln!("hubmq-bench report: skipping {}: {e}", f.display()),
        }
    }
    print!("{}", render(&results, baseline));
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn formats_rates() {
        assert_eq!(human_rate(4_300_000.0), "4.30M");
        assert_eq!(human_rate(219_400.0), "219.4k");
        assert_eq!(human_rate(12.0), "12");
    }

    #[test]
    fn renders_ratios_against_baseline_and_failed_rows() {
        let rs = vec![
            json!({"label":"f","broker":"mosquitto","scenario":"fanout","transport":"ws","qos":0,
                   "subscribers_per_topic":1000,"payload":64,"window":32,"ops_per_sec":200000.0,
                   "cpu_us_per_op":4.0,"p50_us":100.0,"p99_us":900.0,"broker_cpu_secs":8.0,
                   "broker_rss_kib":10240,"lost":0,"errors":0}),
            json!({"label":"f","broker":"hubmq","scenario":"fanout","transport":"ws","qos":0,
                   "ops_per_sec":1000000.0,"cpu_us_per_op":0.5,"errors":0}),
            json!({"label":"f","broker":"rumqttd","error":"set-up failed: refused | x"}),
        ];
        let md = render(&rs, "mosquitto");
        assert!(md.contains("### f: QoS 0 fan-out 1 → 1000 over WS, 64 B, saturated (window 32)"));
        assert!(md.contains("| hubmq | 1.00M |"));
        assert!(md.contains("| 5.00× | 8.00× |"));
        assert!(md.contains("| rumqttd | failed: set-up failed: refused / x |"));
    }
}
