//! `--compare A,B`: the same workload against two brokers in alternation, per-round figures,
//! medians and ratios A/B. Absolute figures drift on a shared machine; ratios of runs
//! interleaved in time drift much less.
//!
//! The table is built by pure functions ([`CompareReport::build`]); [`run`] only sequences
//! the rounds.

use std::fmt;

use serde::Serialize;

use crate::cli::Pair;
use crate::error::BenchError;
use crate::report::{fmt_num, median, Measured, Metric};

/// Which of the two targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Side {
    A,
    B,
}

impl Side {
    pub fn suffix(self) -> &'static str {
        match self {
            Side::A => "a",
            Side::B => "b",
        }
    }
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Side::A => "A",
            Side::B => "B",
        })
    }
}

/// Order of the targets in `round` (0-based): A first in even rounds, B first in odd ones,
/// so neither always runs on a machine warmed (or tired) by the other.
pub fn order(round: u32) -> [Side; 2] {
    if round.is_multiple_of(2) {
        [Side::A, Side::B]
    } else {
        [Side::B, Side::A]
    }
}

/// Topic of one run: `base-a-r2` (per round) or `base-a` (per target).
pub fn topic_for(base: &str, side: Side, round: Option<u32>) -> String {
    match round {
        Some(r) => format!("{base}-{}-r{}", side.suffix(), r + 1),
        None => format!("{base}-{}", side.suffix()),
    }
}

/// One run of one target.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RoundRow {
    /// 1-based.
    pub round: u32,
    pub side: Side,
    pub values: Vec<Option<f64>>,
}

/// The comparison table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CompareReport {
    pub a: String,
    pub b: String,
    pub metrics: Vec<&'static str>,
    pub rows: Vec<RoundRow>,
    pub median_a: Vec<Option<f64>>,
    pub median_b: Vec<Option<f64>>,
    /// median A / median B per metric.
    pub ratio: Vec<Option<f64>>,
}

/// `a / b` when both are known and `b` is not zero.
pub fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b != 0.0 => Some(a / b),
        _ => None,
    }
}

impl CompareReport {
    /// Tabulates `runs` of (1-based round, side, metrics); the metric names come from the
    /// first run (every run of one workload reports the same ones).
    pub fn build(a: &str, b: &str, runs: &[(u32, Side, Vec<Metric>)]) -> Self {
        // Metrics no run measured (e.g. broker CPU without pids) are left out.
        let metrics: Vec<&'static str> = runs
            .first()
            .map(|(_, _, first)| {
                first
                    .iter()
                    .map(|m| m.name)
                    .filter(|name| {
                        runs.iter()
                            .any(|(_, _, m)| m.iter().any(|x| x.name == *name && x.value.is_some()))
                    })
                    .collect()
            })
            .unwrap_or_default();
        let rows: Vec<RoundRow> = runs
            .iter()
            .map(|(round, side, m)| RoundRow {
                round: *round,
                side: *side,
                values: metrics
                    .iter()
                    .map(|name| m.iter().find(|x| x.name == *name).and_then(|x| x.value))
                    .collect(),
            })
            .collect();
        let medians = |side: Side| -> Vec<Option<f64>> {
            (0..metrics.len())
                .map(|i| {
                    let values: Vec<f64> = rows
                        .iter()
                        .filter(|r| r.side == side)
                        .filter_map(|r| r.values.get(i).copied().flatten())
                        .collect();
                    median(&values)
                })
                .collect()
        };
        let median_a = medians(Side::A);
        let median_b = medians(Side::B);
        let ratio = median_a
            .iter()
            .zip(&median_b)
            .map(|(a, b)| ratio(*a, *b))
            .collect();
        Self {
            a: a.into(),
            b: b.into(),
            metrics,
            rows,
            median_a,
            median_b,
            ratio,
        }
    }
}

impl fmt::Display for CompareReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cell = |v: &Option<f64>| v.map_or_else(|| "-".to_string(), fmt_num);
        let mut lines: Vec<(String, Vec<String>)> = Vec::new();
        for row in &self.rows {
            lines.push((
                format!("round {} {}", row.round, row.side),
                row.values.iter().map(cell).collect(),
            ));
        }
        lines.push(("median A".into(), self.median_a.iter().map(cell).collect()));
        lines.push(("median B".into(), self.median_b.iter().map(cell).collect()));
        lines.push((
            "ratio A/B".into(),
            self.ratio
                .iter()
                .map(|r| r.map_or_else(|| "-".into(), |r| format!("{r:.2}x")))
                .collect(),
        ));
        let label_width = lines
            .iter()
            .map(|(l, _)| l.chars().count())
            .max()
            .unwrap_or(0);
        let widths: Vec<usize> = self
            .metrics
            .iter()
            .enumerate()
            .map(|(i, name)| {
                lines
                    .iter()
                    .filter_map(|(_, cells)| cells.get(i))
                    .map(|c| c.chars().count())
                    .chain([name.chars().count()])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        writeln!(f, "A = {}   B = {}", self.a, self.b)?;
        write!(f, "{:label_width$}", "")?;
        for (name, w) in self.metrics.iter().zip(&widths) {
            write!(f, "  {name:>w$}")?;
        }
        writeln!(f)?;
        for (i, (label, cells)) in lines.iter().enumerate() {
            if i == self.rows.len() {
                writeln!(f)?;
            }
            write!(f, "{label:label_width$}")?;
            for (c, w) in cells.iter().zip(&widths) {
                write!(f, "  {c:>w$}")?;
            }
            writeln!(f)?;
        }
        Ok(())
    }
}

/// What one run of a comparison is told.
#[derive(Debug, Clone, Copy)]
pub struct RunSpec<'a> {
    /// 0-based.
    pub round: u32,
    pub side: Side,
    pub bootstrap: &'a str,
    pub broker_pid: Option<u32>,
}

/// Runs `run_one` for `rounds` rounds against both targets in alternating order, reporting
/// each run to `progress` as it finishes, and tabulates the results.
pub fn run<R, F, P>(
    targets: &Pair<String>,
    pids: Option<&Pair<u32>>,
    rounds: u32,
    mut run_one: F,
    mut progress: P,
) -> Result<CompareReport, BenchError>
where
    R: Measured,
    F: FnMut(RunSpec<'_>) -> Result<R, BenchError>,
    P: FnMut(RunSpec<'_>, &R),
{
    let mut runs = Vec::new();
    for round in 0..rounds {
        for side in order(round) {
            let (bootstrap, broker_pid) = match side {
                Side::A => (targets.a.as_str(), pids.map(|p| p.a)),
                Side::B => (targets.b.as_str(), pids.map(|p| p.b)),
            };
            let spec = RunSpec {
                round,
                side,
                bootstrap,
                broker_pid,
            };
            let result = run_one(spec)?;
            progress(spec, &result);
            runs.push((round + 1, side, result.metrics()));
        }
    }
    runs.sort_by_key(|(round, side, _)| (*round, *side == Side::B));
    Ok(CompareReport::build(&targets.a, &targets.b, &runs))
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fake(f64, Option<f64>);
    impl Measured for Fake {
        fn metrics(&self) -> Vec<Metric> {
            vec![
                Metric::new("MB/s", self.0),
                Metric {
                    name: "cpu s/GB",
                    value: self.1,
                },
            ]
        }
    }

    #[test]
    fn alternating_order_and_topics() {
        assert_eq!(order(0), [Side::A, Side::B]);
        assert_eq!(order(1), [Side::B, Side::A]);
        assert_eq!(order(2), [Side::A, Side::B]);
        assert_eq!(topic_for("t", Side::A, Some(0)), "t-a-r1");
        assert_eq!(topic_for("t", Side::B, Some(2)), "t-b-r3");
        assert_eq!(topic_for("t", Side::B, None), "t-b");
    }

    #[test]
    fn ratios() {
        assert_eq!(ratio(Some(3.0), Some(1.5)), Some(2.0));
        assert_eq!(ratio(Some(3.0), Some(0.0)), None);
        assert_eq!(ratio(None, Some(1.0)), None);
        assert_eq!(ratio(Some(1.0), None), None);
    }

    #[test]
    fn medians_and_ratio_per_metric() {
        let m = |v: f64, cpu: Option<f64>| Fake(v, cpu).metrics();
        let runs = vec![
            (1, Side::A, m(900.0, Some(0.4))),
            (1, Side::B, m(300.0, None)),
            (2, Side::A, m(1000.0, Some(0.5))),
            (2, Side::B, m(250.0, None)),
            (3, Side::A, m(800.0, Some(0.6))),
            (3, Side::B, m(400.0, None)),
        ];
        let r = CompareReport::build("x:1", "y:2", &runs);
        assert_eq!(r.metrics, ["MB/s", "cpu s/GB"]);
        assert_eq!(r.median_a, [Some(900.0), Some(0.5)]);
        assert_eq!(r.median_b, [Some(300.0), None]);
        assert_eq!(r.ratio, [Some(3.0), None]);
        let text = r.to_string();
        assert!(text.starts_with("A = x:1   B = y:2\n"), "{text}");
        assert!(text.contains("ratio A/B  3.00x         -"), "{text}");
        assert!(text.contains("round 2 B    250         -"), "{text}");
        assert!(text.contains("median A     900     0.500"), "{text}");
    }

    #[test]
    fn metrics_nobody_measured_are_left_out() {
        let runs = vec![
            (1, Side::A, Fake(2.0, None).metrics()),
            (1, Side::B, Fake(1.0, None).metrics()),
        ];
        let r = CompareReport::build("x:1", "y:2", &runs);
        assert_eq!(r.metrics, ["MB/s"]);
        assert_eq!(r.rows[0].values, [Some(2.0)]);
        assert_eq!(r.ratio, [Some(2.0)]);
        assert!(!r.to_string().contains("cpu"));
    }

    #[test]
    fn run_alternates_and_passes_pids() {
        let targets = Pair {
            a: "a:1".to_string(),
            b: "b:2".to_string(),
        };
        let pids = Pair { a: 11, b: 22 };
        let mut seen = Vec::new();
        let report = run(
            &targets,
            Some(&pids),
            3,
            |spec| {
                seen.push((
                    spec.round,
                    spec.side,
                    spec.bootstrap.to_string(),
                    spec.broker_pid,
                ));
                Ok(Fake(if spec.side == Side::A { 2.0 } else { 1.0 }, None))
            },
            |_, _| {},
        )
        .unwrap();
        assert_eq!(
            seen,
            [
                (0, Side::A, "a:1".into(), Some(11)),
                (0, Side::B, "b:2".into(), Some(22)),
                (1, Side::B, "b:2".into(), Some(22)),
                (1, Side::A, "a:1".into(), Some(11)),
                (2, Side::A, "a:1".into(), Some(11)),
                (2, Side::B, "b:2".into(), Some(22)),
            ]
        );
        // Rows are listed A then B within a round whatever the run order.
        let order: Vec<_> = report.rows.iter().map(|r| (r.round, r.side)).collect();
        assert_eq!(order[2], (2, Side::A));
        assert_eq!(report.ratio[0], Some(2.0));
    }

    #[test]
    fn a_failed_run_stops_the_comparison() {
        let targets = Pair {
            a: "a:1".to_string(),
            b: "b:2".to_string(),
        };
        let result = run(
            &targets,
            None,
            2,
            |spec| {
                if spec.side == Side::B {
                    Err(BenchError::Failed("down".into()))
                } else {
                    Ok(Fake(1.0, None))
                }
            },
            |_, _| {},
        );
        assert!(result.is_err());
    }
}
