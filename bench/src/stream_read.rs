//! `stream-read`: reads whole aggregates through Brook's HTTP stream API
//! (`GET /v1/streams/{topic}/{key}`) over one keep-alive connection, keys drawn at random,
//! and reports the latency of each read and the events it returned.
//!
//! A plain HTTP/1.1 client on a `TcpStream`: the figure is the broker's (index lookup,
//! record reads, JSON), not a client library's.

use std::fmt;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::cli::StreamReadOpts;
use crate::error::BenchError;
use crate::latency::{LatencyHistogram, Percentiles};

/// What a run measured.
#[derive(Debug, Clone, Serialize)]
pub struct StreamReadReport {
    pub topic: String,
    pub requests: u64,
    /// Events per read, on average.
    pub events_per_read: f64,
    /// Body bytes per read, on average.
    pub bytes_per_read: f64,
    pub latency: Percentiles,
}

impl fmt::Display for StreamReadReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let l = &self.latency;
        writeln!(
            f,
            "stream-read topic {}: {} reads, {:.1} events and {:.0} bytes per read",
            self.topic, self.requests, self.events_per_read, self.bytes_per_read
        )?;
        writeln!(
            f,
            "  latency    p50 {:.0}  p99 {:.0}  p99.9 {:.0}  max {:.0}  (µs)",
            l.p50_us, l.p99_us, l.p999_us, l.max_us
        )
    }
}

/// A small deterministic generator (xorshift64*): the same keys every run.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n.max(1)
    }
}

fn io(context: &str) -> impl FnOnce(std::io::Error) -> BenchError + '_ {
    move |source| BenchError::Io {
        context: context.to_string(),
        source,
    }
}

/// One GET on a keep-alive connection: (status, body).
fn get(
    writer: &mut TcpStream,
    reader: &mut BufReader<TcpStream>,
    host: &str,
    path: &str,
) -> Result<(u16, Vec<u8>), BenchError> {
    write!(writer, "GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n").map_err(io("sending"))?;
    let mut line = String::new();
    reader
        .read_line(&mut line)
        .map_err(io("reading the status"))?;
    let status = line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| BenchError::Failed(format!("not an HTTP response: {line:?}")))?;
    let mut length = None;
    loop {
        line.clear();
        reader.read_line(&mut line).map_err(io("reading headers"))?;
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse::<usize>().ok();
            }
        }
    }
    let length =
        length.ok_or_else(|| BenchError::Failed("a response without Content-Length".into()))?;
    let mut body = vec![0; length];
    reader
        .read_exact(&mut body)
        .map_err(io("reading the body"))?;
    Ok((status, body))
}

/// Runs the reads of `opts`.
pub fn run(opts: &StreamReadOpts) -> Result<StreamReadReport, BenchError> {
    let stream = TcpStream::connect(&opts.http).map_err(io("connecting to the HTTP listener"))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .map_err(io("setting a timeout"))?;
    stream
        .set_nodelay(true)
        .map_err(io("setting TCP_NODELAY"))?;
    let mut writer = stream.try_clone().map_err(io("cloning the socket"))?;
    let mut reader = BufReader::new(stream);
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut histogram = LatencyHistogram::new();
    let (mut events, mut bytes) = (0u64, 0u64);
    let total = opts.warmup + opts.requests;
    for i in 0..total {
        let key = rng.below(opts.keys);
        let path = format!(
            "/v1/streams/{}/{}{key}?limit={}",
            opts.topic, opts.key_prefix, opts.limit
        );
        let started = Instant::now();
        let (status, body) = get(&mut writer, &mut reader, &opts.http, &path)?;
        let elapsed = started.elapsed();
        if status != 200 {
            return Err(BenchError::Failed(format!(
                "GET {path}: {status} {}",
                String::from_utf8_lossy(&body)
            )));
        }
        if i < opts.warmup {
            continue;
        }
        histogram.record_ns(u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX));
        let doc: serde_json::Value = serde_json::from_slice(&body)
            .map_err(|e| BenchError::Failed(format!("GET {path}: not JSON: {e}")))?;
        events += doc["events"].as_array().map_or(0, |a| a.len() as u64);
        bytes += body.len() as u64;
    }
    let n = opts.requests.max(1) as f64;
    Ok(StreamReadReport {
        topic: opts.topic.clone(),
        requests: opts.requests,
        events_per_read: events as f64 / n,
        bytes_per_read: bytes as f64 / n,
        latency: histogram.percentiles(),
    })
}
