//! Broker (and generator) resource readings from `/proc`: CPU time from `/proc/{pid}/stat`
//! (utime + stime in clock ticks) and resident memory from `/proc/{pid}/status` (`VmRSS`).
//! Readings are taken at the start and end of the measurement interval only, so set-up
//! (connects, subscribes) is excluded from the per-message CPU figure.

use std::process::Command;

/// Clock ticks per second for `/proc/*/stat` times, read once from `getconf CLK_TCK` (no
/// `unsafe` sysconf call); Linux uses 100 everywhere in practice, which is the fallback.
pub fn clock_ticks_per_sec() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .filter(|&t: &u64| t > 0)
        .unwrap_or(100)
}

/// utime + stime in ticks from the text of `/proc/{pid}/stat`.
pub fn parse_stat_ticks(stat: &str) -> Option<u64> {
    // The command name (field 2) may contain spaces or ')', so split after the last ')'.
    let after = &stat[stat.rfind(')')? + 1..];
    let mut fields = after.split_whitespace();
    // `after` starts at field 3 (state); utime is field 14, stime field 15.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// `VmRSS` in KiB from the text of `/proc/{pid}/status`.
pub fn parse_status_rss_kib(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// A process whose CPU time and memory we sample (`None` pid = not measured).
#[derive(Debug, Clone, Copy)]
pub struct Probe {
    pid: Option<u32>,
    ticks_per_sec: u64,
}

impl Probe {
    pub fn new(pid: Option<u32>) -> Probe {
        Probe {
            pid,
            ticks_per_sec: clock_ticks_per_sec(),
        }
    }

    /// Probe for this process itself (to show the generator was not the bottleneck).
    pub fn this_process() -> Probe {
        Probe::new(Some(std::process::id()))
    }

    /// CPU seconds (user + system, all threads) so far.
    pub fn cpu_secs(&self) -> Option<f64> {
        let pid = self.pid?;
        let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        Some(parse_stat_ticks(&text)? as f64 / self.ticks_per_sec as f64)
    }

    /// Resident set size in KiB.
    pub fn rss_kib(&self) -> Option<u64> {
        let pid = self.pid?;
        parse_status_rss_kib(&std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?)
    }

    /// Whether a pid was given and the process exists.
    pub fn check(&self) -> Result<(), String> {
        match self.pid {
            Some(pid) if self.cpu_secs().is_none() => {
                Err(format!("cannot read /proc/{pid}/stat: no such process?"))
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_spaces_in_command_name() {
        let stat = "1234 (my (weird) broker) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 4 0 1000 0 0";
        assert_eq!(parse_stat_ticks(stat), Some(300));
    }

    #[test]
    fn parses_vmrss_from_status() {
        let status = "Name:\tmosquitto\nVmPeak:\t  9000 kB\nVmRSS:\t    6120 kB\nThreads:\t1\n";
        assert_eq!(parse_status_rss_kib(status), Some(6120));
        assert_eq!(parse_status_rss_kib("Name: x\n"), None);
    }

    #[test]
    fn reads_own_process() {
        let p = Probe::this_process();
        assert!(p.cpu_secs().is_some());
        assert!(p.rss_kib().unwrap_or(0) > 0);
        assert!(Probe::new(None).cpu_secs().is_none());
    }
}
