//! `connect`: opens connections the way a client fleet does at startup (TCP, TLS when
//! asked, ApiVersions, SASL) and closes them, `concurrency` at a time, and reports new
//! authenticated connections per second and the time each took (its p99 is the "time to
//! authenticate" a client sees). Connections go through `brook-client`, whose SCRAM client
//! is the same RFC 5802 exchange librdkafka runs.

use std::fmt;
use std::time::{Duration, Instant};

use brook_client::{Connection, SaslConfig, SaslMechanism, Security, TlsConfig};
use serde::Serialize;

use crate::cli::ConnectOpts;
use crate::error::BenchError;
use crate::latency::{LatencyHistogram, Percentiles};
use crate::procfs::{BrokerUsage, Probe};

/// What a run measured.
#[derive(Debug, Clone, Serialize)]
pub struct ConnectReport {
    pub connections: u64,
    pub concurrency: u64,
    pub tls: bool,
    /// The SASL mechanism, if any.
    pub sasl: Option<String>,
    pub seconds: f64,
    pub per_second: f64,
    /// Connect to authenticated, per connection.
    pub latency: Percentiles,
    pub broker: Option<BrokerUsage>,
}

impl fmt::Display for ConnectReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let l = &self.latency;
        writeln!(
            f,
            "connect ({}{}): {} connections, {} at a time, in {:.2} s: {:.0} connections/s",
            if self.tls { "TLS" } else { "plaintext" },
            self.sasl
                .as_deref()
                .map_or(String::new(), |m| format!(" + SASL {m}")),
            self.connections,
            self.concurrency,
            self.seconds,
            self.per_second
        )?;
        writeln!(
            f,
            "  time to authenticated   p50 {:.0}  p99 {:.0}  p99.9 {:.0}  max {:.0}  (µs)",
            l.p50_us, l.p99_us, l.p999_us, l.max_us
        )?;
        if let Some(b) = &self.broker {
            writeln!(
                f,
                "  broker cpu {:.2} s ({:.0} µs per connection)",
                b.cpu_seconds,
                b.cpu_seconds * 1e6 / self.connections.max(1) as f64
            )?;
        }
        Ok(())
    }
}

fn security(opts: &ConnectOpts) -> Result<Security, BenchError> {
    let sasl = match (&opts.sasl_user, &opts.sasl_password) {
        (Some(user), Some(password)) => Some(SaslConfig {
            mechanism: SaslMechanism::from_name(&opts.sasl_mechanism).ok_or_else(|| {
                BenchError::Failed(format!(
                    "--sasl-mechanism {:?}: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512",
                    opts.sasl_mechanism
                ))
            })?,
            username: user.clone(),
            password: password.clone(),
        }),
        _ => None,
    };
    Ok(Security {
        tls: opts.tls_ca.as_ref().map(|ca| TlsConfig {
            ca_file: Some(ca.clone()),
            ..TlsConfig::default()
        }),
        sasl,
    })
}

/// Opens `count` connections one after another; the time each took.
async fn open(
    addr: String,
    security: Security,
    count: u64,
) -> Result<LatencyHistogram, BenchError> {
    let mut histogram = LatencyHistogram::new();
    for _ in 0..count {
        let started = Instant::now();
        let connection =
            Connection::connect(&addr, &security, "brook-bench", Duration::from_secs(30))
                .await
                .map_err(|e| BenchError::Failed(e.to_string()))?;
        histogram.record_ns(u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX));
        drop(connection);
    }
    Ok(histogram)
}

/// `concurrency` openers sharing `total` connections.
async fn fleet(
    opts: &ConnectOpts,
    security: &Security,
    total: u64,
) -> Result<LatencyHistogram, BenchError> {
    let per = total / opts.concurrency;
    let extra = total % opts.concurrency;
    let mut tasks = Vec::new();
    for i in 0..opts.concurrency {
        let count = per + u64::from(i < extra);
        tasks.push(tokio::spawn(open(
            opts.bootstrap.clone(),
            security.clone(),
            count,
        )));
    }
    let mut histogram = LatencyHistogram::new();
    for task in tasks {
        let part = task
            .await
            .map_err(|e| BenchError::Failed(format!("an opener failed: {e}")))??;
        histogram.merge(&part);
    }
    Ok(histogram)
}

/// Runs the connections of `opts`.
pub fn run(opts: &ConnectOpts) -> Result<ConnectReport, BenchError> {
    let security = security(opts)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(|e| BenchError::io("starting the runtime", e))?;
    runtime.block_on(async {
        fleet(opts, &security, opts.warmup).await?;
        let probe = Probe::start(opts.broker_pid)?;
        let started = Instant::now();
        let histogram = fleet(opts, &security, opts.connections).await?;
        let seconds = started.elapsed().as_secs_f64();
        let broker = match probe {
            Some(p) => Some(p.finish(0)?),
            None => None,
        };
        Ok(ConnectReport {
            connections: opts.connections,
            concurrency: opts.concurrency,
            tls: security.tls.is_some(),
            sasl: security
                .sasl
                .as_ref()
                .map(|s| s.mechanism.name().to_string()),
            seconds,
            per_second: opts.connections as f64 / seconds.max(1e-9),
            latency: histogram.percentiles(),
            broker,
        })
    })
}
