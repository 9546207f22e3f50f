//! Standard `process_*` gauges read from `/proc/self`, for brokers run without a node exporter.
//!
//! Called from a cold path (the metrics route or a once-a-second tick), never per message.
//! On systems without `/proc` the gauges are simply not set. The parsers are pure functions over
//! the file text so they can be tested with fixed input.

use std::fs;

use crate::names;

/// Linux reports `/proc/*/stat` times in USER_HZ clock ticks, which the kernel fixes at 100
/// for user space on every mainstream architecture; reading sysconf would need `unsafe` libc.
const TICKS_PER_SECOND: f64 = 100.0;

/// Sets `process_cpu_seconds_total`, `process_resident_memory_bytes`, `process_open_fds` and
/// `process_max_fds` from `/proc/self`. Values that cannot be read are left unchanged.
pub fn process_metrics() {
    if let Some(ticks) = fs::read_to_string("/proc/self/stat")
        .ok()
        .as_deref()
        .and_then(cpu_ticks)
    {
        metrics::gauge!(names::PROCESS_CPU_SECONDS_TOTAL).set(ticks as f64 / TICKS_PER_SECOND);
    }
    // VmRSS in /proc/self/status is in kB, which spares us the page size that statm would need.
    if let Some(kb) = fs::read_to_string("/proc/self/status")
        .ok()
        .as_deref()
        .and_then(rss_kb)
    {
        metrics::gauge!(names::PROCESS_RESIDENT_MEMORY_BYTES).set((kb * 1024) as f64);
    }
    if let Ok(dir) = fs::read_dir("/proc/self/fd") {
        // The count includes the descriptor read_dir itself holds open; one off is accepted.
        metrics::gauge!(names::PROCESS_OPEN_FDS).set(dir.count() as f64);
    }
    if let Some(max) = fs::read_to_string("/proc/self/limits")
        .ok()
        .as_deref()
        .and_then(max_open_files)
    {
        metrics::gauge!(names::PROCESS_MAX_FDS).set(max as f64);
    }
}

/// utime + stime in clock ticks from `/proc/self/stat`. The command name (field 2) is in
/// parentheses and may itself contain spaces or `)`, so fields are counted after the last `)`.
fn cpu_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    // After the name: state is field 3, utime field 14, stime field 15 (proc(5)).
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// The `VmRSS:` line of `/proc/self/status`, in kB.
fn rss_kb(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line["VmRSS:".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// The soft limit of the `Max open files` line of `/proc/self/limits`.
fn max_open_files(limits: &str) -> Option<u64> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_ticks_counts_fields_after_a_name_with_spaces_and_parens() {
        let stat = "1234 (hub mq) x) S 1 1234 1234 0 -1 4194560 500 0 0 0 250 75 0 0 20 0 3 0 \
                    100 1000000 300 18446744073709551615";
        assert_eq!(cpu_ticks(stat), Some(325));
    }

    #[test]
    fn cpu_ticks_rejects_truncated_stat() {
        assert_eq!(cpu_ticks("1234 (hubmq) S 1 2"), None);
        assert_eq!(cpu_ticks("no parens"), None);
    }

    #[test]
    fn rss_and_fd_limit_parse_proc_text() {
        let status = "Name:\thubmq\nVmPeak:\t  20000 kB\nVmRSS:\t    5120 kB\nThreads:\t3\n";
        assert_eq!(rss_kb(status), Some(5120));
        let limits = "Limit                     Soft Limit           Hard Limit           Units     \n\
                      Max open files            1048576              1048576              files     \n";
        assert_eq!(max_open_files(limits), Some(1_048_576));
    }

    #[test]
    fn process_metrics_sets_gauges_on_linux() {
        let (recorder, exporter) = crate::build_recorder().expect("recorder builds");
        metrics::with_local_recorder(&recorder, process_metrics);
        let text = exporter.render();
        if std::path::Path::new("/proc/self/stat").exists() {
            for name in [
                names::PROCESS_CPU_SECONDS_TOTAL,
                names::PROCESS_RESIDENT_MEMORY_BYTES,
                names::PROCESS_OPEN_FDS,
            ] {
                assert!(
                    text.lines().any(|l| l.starts_with(&format!("{name} "))),
                    "{name}: {text}"
                );
            }
        }
    }
}
