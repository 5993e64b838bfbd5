//! Results of the workloads, how they read as text and JSON, and the metrics `--compare`
//! tabulates. Pure: no I/O beyond formatting.
//!
//! Units: MB = 10^6 bytes of record payload (keys, headers and protocol overhead are not
//! counted); latencies in microseconds; memory in KiB (shown as MiB).

use std::fmt::{self, Write as _};

use serde::Serialize;

use crate::cli::{Acks, Client, Compression, Isolation};
use crate::latency::Percentiles;
use crate::procfs::BrokerUsage;

/// One named figure of a result; `None` when not measured (e.g. no broker pid).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Metric {
    pub name: &'static str,
    pub value: Option<f64>,
}

impl Metric {
    pub fn new(name: &'static str, value: f64) -> Self {
        Self {
            name,
            value: Some(value),
        }
    }
}

/// A result that `--compare` can put in a table.
pub trait Measured {
    fn metrics(&self) -> Vec<Metric>;
}

/// records/s and MB/s of `records` records with `bytes` payload bytes in `seconds`.
pub fn rates(records: u64, bytes: u64, seconds: f64) -> (f64, f64) {
    if seconds > 0.0 {
        (records as f64 / seconds, bytes as f64 / 1e6 / seconds)
    } else {
        (0.0, 0.0)
    }
}

/// Result of `produce`.
#[derive(Debug, Clone, Serialize)]
pub struct ProduceReport {
    pub bootstrap: String,
    pub topic: String,
    pub client: Client,
    pub acks: Acks,
    pub producers: u32,
    pub record_size: usize,
    pub compression: Compression,
    pub linger_ms: f64,
    pub batch_size: u32,
    pub idempotence: bool,
    pub rate_limit: Option<f64>,
    /// Records acknowledged in the measured phase.
    pub records: u64,
    pub bytes: u64,
    /// Failed deliveries over the whole run (warm-up included).
    pub errors: u64,
    pub seconds: f64,
    pub records_per_sec: f64,
    pub mb_per_sec: f64,
    /// Send to delivery report, per record.
    pub latency: Percentiles,
    /// `--transaction-records`: records per transaction, and the share aborted.
    pub transaction_records: Option<u32>,
    pub abort_percent: u8,
    /// Transactions ended in the measured phase.
    pub transactions: u64,
    pub transactions_per_sec: f64,
    /// The `commit_transaction` (or abort) call, per transaction.
    pub commit_latency: Option<Percentiles>,
    pub broker: Option<BrokerUsage>,
}

/// Result of `consume`.
#[derive(Debug, Clone, Serialize)]
pub struct ConsumeReport {
    pub bootstrap: String,
    pub topic: String,
    pub client: Client,
    pub partitions: usize,
    /// Records written by `--fill` before reading.
    pub filled: Option<u64>,
    pub isolation: Isolation,
    pub records: u64,
    pub bytes: u64,
    pub seconds: f64,
    pub records_per_sec: f64,
    pub mb_per_sec: f64,
    pub broker: Option<BrokerUsage>,
}

/// Result of `e2e`.
#[derive(Debug, Clone, Serialize)]
pub struct E2eReport {
    pub bootstrap: String,
    pub topic: String,
    pub rate: f64,
    pub record_size: usize,
    pub acks: Acks,
    /// Records acknowledged in the measured phase.
    pub sent: u64,
    /// Of those, records consumed.
    pub received: u64,
    pub errors: u64,
    pub seconds: f64,
    pub records_per_sec: f64,
    pub mb_per_sec: f64,
    /// Send to consume, per record.
    pub latency: Percentiles,
    /// Send to delivery report, per record.
    pub delivery_latency: Percentiles,
    pub broker: Option<BrokerUsage>,
}

/// One start of `startup`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct StartupRun {
    pub start_ms: f64,
    pub rss_kib: u64,
}

/// min, median and max of a series.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct Spread {
    pub min: f64,
    pub median: f64,
    pub max: f64,
}

impl Spread {
    pub fn of(values: &[f64]) -> Self {
        let mut sorted: Vec<f64> = values.iter().copied().filter(|v| !v.is_nan()).collect();
        sorted.sort_by(f64::total_cmp);
        match (sorted.first(), sorted.last()) {
            (Some(&min), Some(&max)) => Self {
                min,
                median: median_sorted(&sorted),
                max,
            },
            _ => Self::default(),
        }
    }
}

/// Median of a sorted, non-empty slice (mean of the middle two for an even length).
fn median_sorted(sorted: &[f64]) -> f64 {
    let n = sorted.len();
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    }
}

/// Median of the values present; `None` when there are none.
pub fn median(values: &[f64]) -> Option<f64> {
    let mut sorted: Vec<f64> = values.iter().copied().filter(|v| !v.is_nan()).collect();
    if sorted.is_empty() {
        return None;
    }
    sorted.sort_by(f64::total_cmp);
    Some(median_sorted(&sorted))
}

/// Result of `startup`.
#[derive(Debug, Clone, Serialize)]
pub struct StartupReport {
    /// The broker command line as given (placeholders unexpanded).
    pub broker_command: String,
    pub runs: Vec<StartupRun>,
    pub start_ms: Spread,
    pub rss_kib: Spread,
}

impl StartupReport {
    pub fn new(broker_command: String, runs: Vec<StartupRun>) -> Self {
        let start: Vec<f64> = runs.iter().map(|r| r.start_ms).collect();
        let rss: Vec<f64> = runs.iter().map(|r| r.rss_kib as f64).collect();
        Self {
            broker_command,
            start_ms: Spread::of(&start),
            rss_kib: Spread::of(&rss),
            runs,
        }
    }
}

/// `1234567` → `1,234,567`.
pub fn fmt_count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A figure for a table: thousands separators from 1000 up, more decimals when small.
pub fn fmt_num(v: f64) -> String {
    if !v.is_finite() {
        return "-".into();
    }
    let a = v.abs();
    if a >= 1000.0 {
        let s = fmt_count(a.round() as u64);
        if v < 0.0 {
            format!("-{s}")
        } else {
            s
        }
    } else if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else if a >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

/// KiB as `12.3 MiB`.
pub fn fmt_mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

fn fmt_latency(p: &Percentiles) -> String {
    format!(
        "p50 {}  p99 {}  p99.9 {}  max {}  (µs, {} samples)",
        fmt_num(p.p50_us),
        fmt_num(p.p99_us),
        fmt_num(p.p999_us),
        fmt_num(p.max_us),
        fmt_count(p.count)
    )
}

fn fmt_broker(f: &mut fmt::Formatter<'_>, broker: &Option<BrokerUsage>, per: &str) -> fmt::Result {
    if let Some(b) = broker {
        let per_gb = b
            .cpu_seconds_per_gb
            .map_or_else(|| "-".into(), |v| format!("{v:.3}"));
        let anon = b
            .rss_anon_end_kib
            .map(|a| format!(" (anon {})", fmt_mib(a)))
            .unwrap_or_default();
        writeln!(
            f,
            "  broker pid {}  cpu {:.3} s ({per_gb} core-s/GB {per})  rss {} -> {}{anon}  peak {}",
            b.pid,
            b.cpu_seconds,
            fmt_mib(b.rss_start_kib),
            fmt_mib(b.rss_end_kib),
            fmt_mib(b.peak_rss_kib)
        )?;
    }
    Ok(())
}

/// Names the client when it is not the default one.
fn client_note(client: Client) -> &'static str {
    match client {
        Client::Librdkafka => "",
        Client::Brook => " with brook-client",
    }
}

impl fmt::Display for ProduceReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let rate = self
            .rate_limit
            .map_or_else(|| "unlimited".into(), |r| format!("{} rec/s", fmt_num(r)));
        writeln!(
            f,
            "produce {} topic {}{}: {} B records, acks {}, {} producer(s), linger {} ms, \
             batch {} B, compression {}{}, rate {rate}",
            self.bootstrap,
            self.topic,
            client_note(self.client),
            self.record_size,
            self.acks.as_config(),
            self.producers,
            self.linger_ms,
            self.batch_size,
            self.compression.as_config(),
            if self.idempotence { ", idempotent" } else { "" },
        )?;
        writeln!(
            f,
            "  records    {} in {:.3} s ({} errors)",
            fmt_count(self.records),
            self.seconds,
            fmt_count(self.errors)
        )?;
        writeln!(
            f,
            "  throughput {} rec/s  {} MB/s",
            fmt_num(self.records_per_sec),
            fmt_num(self.mb_per_sec)
        )?;
        writeln!(f, "  latency    {}", fmt_latency(&self.latency))?;
        if let (Some(n), Some(commit)) = (self.transaction_records, &self.commit_latency) {
            writeln!(
                f,
                "  transactions {} of {n} records ({}% aborted): {} txn/s",
                fmt_count(self.transactions),
                self.abort_percent,
                fmt_num(self.transactions_per_sec)
            )?;
            writeln!(f, "  commit     {}", fmt_latency(commit))?;
        }
        fmt_broker(f, &self.broker, "ingested")
    }
}

impl fmt::Display for ConsumeReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "consume {} topic {}{} ({} partitions{}, {})",
            self.bootstrap,
            self.topic,
            client_note(self.client),
            self.partitions,
            self.filled
                .map(|n| format!(", filled with {} records", fmt_count(n)))
                .unwrap_or_default(),
            self.isolation.as_config()
        )?;
        writeln!(
            f,
            "  records    {} ({} MB) in {:.3} s",
            fmt_count(self.records),
            fmt_num(self.bytes as f64 / 1e6),
            self.seconds
        )?;
        writeln!(
            f,
            "  throughput {} rec/s  {} MB/s",
            fmt_num(self.records_per_sec),
            fmt_num(self.mb_per_sec)
        )?;
        fmt_broker(f, &self.broker, "read")
    }
}

impl fmt::Display for E2eReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "e2e {} topic {}: {} rec/s of {} B records, acks {}",
            self.bootstrap,
            self.topic,
            fmt_num(self.rate),
            self.record_size,
            self.acks.as_config()
        )?;
        writeln!(
            f,
            "  records    {} sent, {} received in {:.3} s ({} errors)",
            fmt_count(self.sent),
            fmt_count(self.received),
            self.seconds,
            fmt_count(self.errors)
        )?;
        writeln!(
            f,
            "  throughput {} rec/s  {} MB/s",
            fmt_num(self.records_per_sec),
            fmt_num(self.mb_per_sec)
        )?;
        writeln!(f, "  end-to-end {}", fmt_latency(&self.latency))?;
        writeln!(f, "  delivery   {}", fmt_latency(&self.delivery_latency))?;
        fmt_broker(f, &self.broker, "ingested")
    }
}

impl fmt::Display for StartupReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "startup `{}`, {} runs",
            self.broker_command,
            self.runs.len()
        )?;
        let mut line = String::from("  runs       ");
        for r in &self.runs {
            let _ = write!(line, "{:.2} ms/{}  ", r.start_ms, fmt_mib(r.rss_kib));
        }
        writeln!(f, "{}", line.trim_end())?;
        writeln!(
            f,
            "  start      min {:.2} ms  median {:.2} ms  max {:.2} ms",
            self.start_ms.min, self.start_ms.median, self.start_ms.max
        )?;
        let mib = |kib: f64| fmt_mib(kib.round() as u64);
        writeln!(
            f,
            "  idle rss   min {}  median {}  max {}",
            mib(self.rss_kib.min),
            mib(self.rss_kib.median),
            mib(self.rss_kib.max)
        )
    }
}

fn broker_metrics(broker: &Option<BrokerUsage>) -> [Metric; 2] {
    [
        Metric {
            name: "cpu s/GB",
            value: broker.and_then(|b| b.cpu_seconds_per_gb),
        },
        Metric {
            name: "peak MiB",
            value: broker.map(|b| b.peak_rss_kib as f64 / 1024.0),
        },
    ]
}

fn latency_metrics(p: &Percentiles) -> [Metric; 4] {
    [
        Metric::new("p50 µs", p.p50_us),
        Metric::new("p99 µs", p.p99_us),
        Metric::new("p99.9 µs", p.p999_us),
        Metric::new("max µs", p.max_us),
    ]
}

impl Measured for ProduceReport {
    fn metrics(&self) -> Vec<Metric> {
        let mut m = vec![
            Metric::new("rec/s", self.records_per_sec),
            Metric::new("MB/s", self.mb_per_sec),
        ];
        m.extend(latency_metrics(&self.latency));
        if let Some(c) = &self.commit_latency {
            m.push(Metric::new("txn/s", self.transactions_per_sec));
            m.push(Metric::new("commit p50 µs", c.p50_us));
            m.push(Metric::new("commit p99 µs", c.p99_us));
        }
        m.extend(broker_metrics(&self.broker));
        m
    }
}

impl Measured for ConsumeReport {
    fn metrics(&self) -> Vec<Metric> {
        let mut m = vec![
            Metric::new("rec/s", self.records_per_sec),
            Metric::new("MB/s", self.mb_per_sec),
        ];
        m.extend(broker_metrics(&self.broker));
        m
    }
}

impl Measured for E2eReport {
    fn metrics(&self) -> Vec<Metric> {
        let mut m = latency_metrics(&self.latency).to_vec();
        m.push(Metric::new("rec/s", self.records_per_sec));
        m.extend(broker_metrics(&self.broker));
        m
    }
}

/// `{"command": ..., <fields of result>}` on one line.
pub fn json_line<T: Serialize>(command: &str, result: &T) -> String {
    #[derive(Serialize)]
    struct Tagged<'a, T> {
        command: &'a str,
        #[serde(flatten)]
        result: &'a T,
    }
    serde_json::to_string(&Tagged { command, result })
        .unwrap_or_else(|e| format!("{{\"command\":\"{command}\",\"error\":\"{e}\"}}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn produce_report() -> ProduceReport {
        ProduceReport {
            bootstrap: "127.0.0.1:9092".into(),
            topic: "t".into(),
            client: Client::Librdkafka,
            acks: Acks::One,
            producers: 2,
            record_size: 1024,
            compression: Compression::Lz4,
            linger_ms: 5.0,
            batch_size: 1_000_000,
            idempotence: false,
            rate_limit: None,
            records: 1_000_000,
            bytes: 1_024_000_000,
            errors: 0,
            seconds: 2.0,
            records_per_sec: 500_000.0,
            mb_per_sec: 512.0,
            latency: Percentiles {
                count: 1_000_000,
                mean_us: 900.0,
                p50_us: 812.3,
                p99_us: 2047.0,
                p999_us: 4095.0,
                max_us: 12_000.0,
            },
            transaction_records: None,
            abort_percent: 0,
            transactions: 0,
            transactions_per_sec: 0.0,
            commit_latency: None,
            broker: Some(BrokerUsage {
                pid: 77,
                cpu_seconds: 0.5,
                cpu_seconds_per_gb: Some(0.488),
                rss_start_kib: 10_240,
                rss_end_kib: 20_480,
                rss_anon_end_kib: Some(4096),
                peak_rss_kib: 30_720,
            }),
        }
    }

    #[test]
    fn rates_use_decimal_megabytes() {
        assert_eq!(rates(1000, 1_000_000, 0.5), (2000.0, 2.0));
        assert_eq!(rates(10, 10, 0.0), (0.0, 0.0));
    }

    #[test]
    fn counts_and_numbers() {
        assert_eq!(fmt_count(0), "0");
        assert_eq!(fmt_count(999), "999");
        assert_eq!(fmt_count(1000), "1,000");
        assert_eq!(fmt_count(1_234_567), "1,234,567");
        assert_eq!(fmt_num(1_234_567.4), "1,234,567");
        assert_eq!(fmt_num(512.4), "512");
        assert_eq!(fmt_num(51.24), "51.2");
        assert_eq!(fmt_num(5.124), "5.12");
        assert_eq!(fmt_num(0.5124), "0.512");
        assert_eq!(fmt_num(-2500.0), "-2,500");
        assert_eq!(fmt_num(f64::NAN), "-");
        assert_eq!(fmt_mib(1536), "1.5 MiB");
    }

    #[test]
    fn spread_and_median() {
        let s = Spread::of(&[5.0, 1.0, 3.0]);
        assert_eq!((s.min, s.median, s.max), (1.0, 3.0, 5.0));
        assert_eq!(Spread::of(&[4.0, 1.0, 3.0, 2.0]).median, 2.5);
        assert_eq!(Spread::of(&[]), Spread::default());
        assert_eq!(median(&[2.0, f64::NAN, 4.0]), Some(3.0));
        assert_eq!(median(&[]), None);
    }

    #[test]
    fn produce_text() {
        let text = produce_report().to_string();
        assert!(text.contains("1,000,000 in 2.000 s (0 errors)"), "{text}");
        assert!(text.contains("500,000 rec/s  512 MB/s"), "{text}");
        assert!(
            text.contains("p50 812  p99 2,047  p99.9 4,095  max 12,000"),
            "{text}"
        );
        assert!(text.contains("compression lz4"), "{text}");
        assert!(
            text.contains("cpu 0.500 s (0.488 core-s/GB ingested)"),
            "{text}"
        );
        assert!(
            text.contains("rss 10.0 MiB -> 20.0 MiB (anon 4.0 MiB)  peak 30.0 MiB"),
            "{text}"
        );
    }

    #[test]
    fn produce_metrics_and_json() {
        let r = produce_report();
        let names: Vec<_> = r.metrics().iter().map(|m| m.name).collect();
        assert_eq!(
            names,
            [
                "rec/s",
                "MB/s",
                "p50 µs",
                "p99 µs",
                "p99.9 µs",
                "max µs",
                "cpu s/GB",
                "peak MiB"
            ]
        );
        let json: serde_json::Value = serde_json::from_str(&json_line("produce", &r)).unwrap();
        assert_eq!(json["command"], "produce");
        assert_eq!(json["acks"], "1");
        assert_eq!(json["compression"], "lz4");
        assert_eq!(json["records"], 1_000_000);
        assert_eq!(json["latency"]["p999_us"], 4095.0);
        assert_eq!(json["broker"]["peak_rss_kib"], 30_720);
        let mut no_pid = r;
        no_pid.broker = None;
        assert_eq!(no_pid.metrics()[6].value, None);
        assert!(!no_pid.to_string().contains("broker"));
    }

    #[test]
    fn startup_summary() {
        let r = StartupReport::new(
            "brook".into(),
            vec![
                StartupRun {
                    start_ms: 4.0,
                    rss_kib: 6144,
                },
                StartupRun {
                    start_ms: 2.0,
                    rss_kib: 5120,
                },
                StartupRun {
                    start_ms: 9.0,
                    rss_kib: 7168,
                },
            ],
        );
        assert_eq!(
            r.start_ms,
            Spread {
                min: 2.0,
                median: 4.0,
                max: 9.0
            }
        );
        assert_eq!(r.rss_kib.median, 6144.0);
        let text = r.to_string();
        assert!(
            text.contains("min 2.00 ms  median 4.00 ms  max 9.00 ms"),
            "{text}"
        );
        assert!(text.contains("median 6.0 MiB"), "{text}");
        let json: serde_json::Value = serde_json::from_str(&json_line("startup", &r)).unwrap();
        assert_eq!(json["runs"].as_array().unwrap().len(), 3);
        assert_eq!(json["command"], "startup");
        assert_eq!(json["broker_command"], "brook");
    }
}
