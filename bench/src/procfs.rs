//! A broker process seen through `/proc`: CPU ticks, RSS and peak RSS, and its descendants.
//!
//! Parsing is pure (text in, numbers out) and unit-tested; [`sample`] and friends only read
//! the files. Nothing here signals or changes a process.

use std::process::Command;
use std::sync::OnceLock;

use serde::Serialize;

use crate::error::BenchError;

/// utime + stime, in clock ticks, from the text of `/proc/PID/stat`.
///
/// The command name (field 2) may contain spaces and parentheses, so fields are counted
/// from the last `)`: state is the first field after it, utime the 12th, stime the 13th.
pub fn parse_stat_cpu_ticks(stat: &str) -> Option<u64> {
    let fields = stat_fields_after_comm(stat)?;
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// The parent pid (field 4) from the text of `/proc/PID/stat`.
pub fn parse_stat_ppid(stat: &str) -> Option<u32> {
    stat_fields_after_comm(stat)?.get(1)?.parse().ok()
}

fn stat_fields_after_comm(stat: &str) -> Option<Vec<&str>> {
    let end = stat.rfind(')')?;
    Some(stat.get(end + 1..)?.split_whitespace().collect())
}

/// A `kB` value such as `VmRSS: 12345 kB` from the text of `/proc/PID/status`, in KiB.
pub fn parse_status_kib(status: &str, key: &str) -> Option<u64> {
    status.lines().find_map(|line| {
        let rest = line.strip_prefix(key)?.strip_prefix(':')?;
        let mut parts = rest.split_whitespace();
        let value = parts.next()?.parse().ok()?;
        match parts.next() {
            Some("kB") | None => Some(value),
            Some(_) => None,
        }
    })
}

/// One reading of a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ProcSample {
    /// utime + stime in clock ticks.
    pub cpu_ticks: u64,
    pub rss_kib: u64,
    /// Peak RSS over the process's life so far (VmHWM).
    pub hwm_kib: u64,
    /// Anonymous part of the RSS (heap, stacks); the rest is mostly mapped files, such as
    /// log segments read through mmap. None on kernels before 4.5.
    pub rss_anon_kib: Option<u64>,
}

impl ProcSample {
    /// Parses the texts of `/proc/PID/stat` and `/proc/PID/status`.
    pub fn parse(stat: &str, status: &str) -> Option<Self> {
        Some(Self {
            cpu_ticks: parse_stat_cpu_ticks(stat)?,
            rss_kib: parse_status_kib(status, "VmRSS")?,
            hwm_kib: parse_status_kib(status, "VmHWM")?,
            rss_anon_kib: parse_status_kib(status, "RssAnon"),
        })
    }
}

fn read_proc(pid: u32, file: &str) -> Result<String, BenchError> {
    let path = format!("/proc/{pid}/{file}");
    std::fs::read_to_string(&path).map_err(|e| BenchError::io(path, e))
}

/// Reads the CPU time and memory of `pid` now.
pub fn sample(pid: u32) -> Result<ProcSample, BenchError> {
    let stat = read_proc(pid, "stat")?;
    let status = read_proc(pid, "status")?;
    ProcSample::parse(&stat, &status).ok_or_else(|| BenchError::Proc {
        pid,
        what: "unexpected format of stat or status".into(),
    })
}

/// VmRSS of `pid` now, in KiB.
pub fn rss_kib(pid: u32) -> Result<u64, BenchError> {
    let status = read_proc(pid, "status")?;
    parse_status_kib(&status, "VmRSS").ok_or_else(|| BenchError::Proc {
        pid,
        what: "no VmRSS in status (a zombie?)".into(),
    })
}

/// Clock ticks per second (`getconf CLK_TCK`; 100, Linux's value everywhere, if that fails).
pub fn clock_ticks_per_sec() -> u64 {
    static TICKS: OnceLock<u64> = OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|out| String::from_utf8(out.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .filter(|&t: &u64| t > 0)
            .unwrap_or(100)
    })
}

/// The broker's use of CPU and memory over a measured phase.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct BrokerUsage {
    pub pid: u32,
    pub cpu_seconds: f64,
    /// CPU core-seconds per 10^9 payload bytes moved in the phase (None when none moved).
    pub cpu_seconds_per_gb: Option<f64>,
    pub rss_start_kib: u64,
    pub rss_end_kib: u64,
    /// RssAnon at the end: the RSS without mapped files.
    pub rss_anon_end_kib: Option<u64>,
    /// VmHWM at the end: the process's peak RSS so far, including the measured phase.
    pub peak_rss_kib: u64,
}

impl BrokerUsage {
    pub fn between(
        pid: u32,
        start: &ProcSample,
        end: &ProcSample,
        ticks_per_sec: u64,
        payload_bytes: u64,
    ) -> Self {
        let ticks = end.cpu_ticks.saturating_sub(start.cpu_ticks);
        let cpu_seconds = ticks as f64 / ticks_per_sec.max(1) as f64;
        let cpu_seconds_per_gb =
            (payload_bytes > 0).then(|| cpu_seconds / (payload_bytes as f64 / 1e9));
        Self {
            pid,
            cpu_seconds,
            cpu_seconds_per_gb,
            rss_start_kib: start.rss_kib,
            rss_end_kib: end.rss_kib,
            rss_anon_end_kib: end.rss_anon_kib,
            peak_rss_kib: end.hwm_kib.max(start.hwm_kib),
        }
    }
}

/// Samples a broker at the start of a measured phase; [`Probe::finish`] at its end.
#[derive(Debug, Clone, Copy)]
pub struct Probe {
    pid: u32,
    start: ProcSample,
}

impl Probe {
    /// Samples `pid` now (`None`: nothing to sample).
    pub fn start(pid: Option<u32>) -> Result<Option<Self>, BenchError> {
        pid.map(|pid| {
            Ok(Self {
                pid,
                start: sample(pid)?,
            })
        })
        .transpose()
    }

    pub fn finish(&self, payload_bytes: u64) -> Result<BrokerUsage, BenchError> {
        let end = sample(self.pid)?;
        Ok(BrokerUsage::between(
            self.pid,
            &self.start,
            &end,
            clock_ticks_per_sec(),
            payload_bytes,
        ))
    }
}

/// The deepest descendant of `root` in a process table of `(pid, ppid)`: following the
/// first child (lowest pid) at each level, or `root` itself when it has no children.
/// A shell that runs `broker ...` without `exec` leaves the broker as its child.
pub fn deepest_descendant_in(table: &[(u32, u32)], root: u32) -> u32 {
    let mut current = root;
    // Bounded by the table size, so a corrupt table with a cycle cannot loop forever.
    for _ in 0..table.len() {
        let child = table
            .iter()
            .filter(|&&(pid, ppid)| ppid == current && pid != current)
            .map(|&(pid, _)| pid)
            .min();
        match child {
            Some(c) => current = c,
            None => break,
        }
    }
    current
}

/// `(pid, ppid)` of every process visible in `/proc`.
pub fn process_table() -> Vec<(u32, u32)> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            Some((pid, parse_stat_ppid(&stat)?))
        })
        .collect()
}

/// The deepest descendant of `root` now.
pub fn deepest_descendant(root: u32) -> u32 {
    deepest_descendant_in(&process_table(), root)
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAT: &str = "4242 (my (odd) broker) S 1 4242 4242 0 -1 4194560 12345 0 3 0 \
        1500 250 0 0 20 0 9 0 123456 456789012 3000 18446744073709551615 1 1 0 0 0 0 0 \
        4096 17663 0 0 0 17 1 0 0 0 0 0";

    const STATUS: &str = "Name:\tbrook\nUmask:\t0022\nState:\tS (sleeping)\nPid:\t4242\n\
        VmPeak:\t  500000 kB\nVmSize:\t  446084 kB\nVmHWM:\t   20480 kB\nVmRSS:\t   12000 kB\n\
        RssAnon:\t    8000 kB\nThreads:\t9\n";

    #[test]
    fn stat_cpu_and_ppid() {
        assert_eq!(parse_stat_cpu_ticks(STAT), Some(1750));
        assert_eq!(parse_stat_ppid(STAT), Some(1));
        assert_eq!(parse_stat_cpu_ticks("garbage"), None);
        assert_eq!(parse_stat_cpu_ticks("1 (x) S 1 2 3"), None);
    }

    #[test]
    fn status_values() {
        assert_eq!(parse_status_kib(STATUS, "VmRSS"), Some(12000));
        assert_eq!(parse_status_kib(STATUS, "VmHWM"), Some(20480));
        assert_eq!(parse_status_kib(STATUS, "VmSwap"), None);
        // A key that is a prefix of another must not match it.
        assert_eq!(parse_status_kib(STATUS, "Vm"), None);
        assert_eq!(parse_status_kib("Threads:\t9\n", "Threads"), Some(9));
        assert_eq!(parse_status_kib("VmRSS:\t12 MB\n", "VmRSS"), None);
    }

    #[test]
    fn sample_parses_both_files() {
        let s = ProcSample::parse(STAT, STATUS).unwrap();
        assert_eq!(
            s,
            ProcSample {
                cpu_ticks: 1750,
                rss_kib: 12000,
                hwm_kib: 20480,
                rss_anon_kib: Some(8000),
            }
        );
        assert_eq!(ProcSample::parse(STAT, "Name:\tzombie\n"), None);
    }

    #[test]
    fn usage_between_samples() {
        let start = ProcSample {
            cpu_ticks: 1000,
            rss_kib: 10_000,
            hwm_kib: 12_000,
            rss_anon_kib: None,
        };
        let end = ProcSample {
            cpu_ticks: 1250,
            rss_kib: 30_000,
            hwm_kib: 40_000,
            rss_anon_kib: Some(25_000),
        };
        let u = BrokerUsage::between(7, &start, &end, 100, 5_000_000_000);
        assert_eq!(u.pid, 7);
        assert!((u.cpu_seconds - 2.5).abs() < 1e-9);
        assert!((u.cpu_seconds_per_gb.unwrap() - 0.5).abs() < 1e-9);
        assert_eq!(
            (u.rss_start_kib, u.rss_end_kib, u.peak_rss_kib),
            (10_000, 30_000, 40_000)
        );
        assert_eq!(u.rss_anon_end_kib, Some(25_000));
        let idle = BrokerUsage::between(7, &start, &start, 100, 0);
        assert_eq!(idle.cpu_seconds, 0.0);
        assert_eq!(idle.cpu_seconds_per_gb, None);
    }

    #[test]
    fn descendants() {
        // sh(10) -> broker(11) -> helper(12); an unrelated process 20 with parent 1.
        let table = [(1, 0), (10, 1), (11, 10), (12, 11), (20, 1), (13, 10)];
        assert_eq!(deepest_descendant_in(&table, 10), 12);
        assert_eq!(deepest_descendant_in(&table, 12), 12);
        assert_eq!(deepest_descendant_in(&table, 99), 99);
        // A cycle does not hang.
        assert!([5, 6].contains(&deepest_descendant_in(&[(5, 6), (6, 5)], 5)));
    }

    #[test]
    fn reads_this_process() {
        let me = std::process::id();
        let s = sample(me).unwrap();
        assert!(s.rss_kib > 0 && s.hwm_kib >= s.rss_kib);
        assert!(clock_ticks_per_sec() >= 1);
        assert!(process_table().iter().any(|&(pid, _)| pid == me));
        assert!(rss_kib(me).unwrap() > 0);
    }
}
