//! The command line: subcommands, flags, their defaults and the checks clap cannot express.
//!
//! Owns parsing only; the workloads read these structs and never touch `std::env`.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use clap::error::ErrorKind;
use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};
use serde::Serialize;

/// `brook-bench`: drives any Kafka-compatible broker with librdkafka and reports throughput,
/// latency percentiles and (given its pid) the broker's CPU time and memory.
#[derive(Debug, Parser)]
#[command(name = "brook-bench", version, about, max_term_width = 100)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

impl Cli {
    /// Parses `args` (program name first) and applies the checks between flags that clap's
    /// attributes do not cover.
    pub fn parse_checked<I, T>(args: I) -> Result<Self, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        let cli = Self::try_parse_from(args)?;
        cli.validate()
            .map_err(|msg| Self::command().error(ErrorKind::ArgumentConflict, msg))?;
        Ok(cli)
    }

    fn validate(&self) -> Result<(), String> {
        match &self.command {
            Command::Produce(c) => c.workload.validate(),
            Command::Consume(c) => c.workload.validate(&c.common),
            Command::E2e(c) => c.workload.validate(),
            Command::Startup(_) | Command::StreamRead(_) | Command::Connect(_) => Ok(()),
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Produce records and report throughput and per-record delivery latency.
    Produce(ProduceCmd),
    /// Read a topic from the beginning of every partition and report throughput.
    Consume(ConsumeCmd),
    /// Produce at a fixed rate and consume in the same process: produce-to-consume latency.
    E2e(E2eCmd),
    /// Start a broker command repeatedly: time to the first answered ApiVersions, idle RSS.
    Startup(StartupOpts),
    /// Read whole aggregates through Brook's HTTP stream API: latency per read.
    StreamRead(StreamReadOpts),
    /// Open connections (TCP, TLS, ApiVersions, SASL) and close them: new authenticated
    /// connections per second and the time each took.
    Connect(ConnectOpts),
}

#[derive(Debug, Clone, Args)]
pub struct ConnectOpts {
    /// Bootstrap address of the broker under test.
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:9092")]
    pub bootstrap: String,
    /// Measured connections.
    #[arg(long, default_value_t = 2_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub connections: u64,
    /// Connections opened at once (each opener connects, authenticates, closes, repeats).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..))]
    pub concurrency: u64,
    /// Connections before the measured ones.
    #[arg(long, default_value_t = 100)]
    pub warmup: u64,
    /// CA certificate (PEM) of the broker: turns TLS on.
    #[arg(long, value_name = "FILE")]
    pub tls_ca: Option<std::path::PathBuf>,
    /// SASL mechanism: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (with --sasl-user).
    #[arg(long, default_value = "SCRAM-SHA-256")]
    pub sasl_mechanism: String,
    /// SASL user (no SASL without it).
    #[arg(long, requires = "sasl_password")]
    pub sasl_user: Option<String>,
    #[arg(long)]
    pub sasl_password: Option<String>,
    /// Pid of the broker: report its CPU time over the measured phase.
    #[arg(long, value_name = "PID")]
    pub broker_pid: Option<u32>,
    /// Also print one machine-readable JSON line with the result.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Args)]
pub struct StreamReadOpts {
    /// Address of Brook's HTTP listener.
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:8081")]
    pub http: String,
    /// Topic (with `brook.key.index=true`).
    #[arg(long, default_value = "brook-bench")]
    pub topic: String,
    /// Keys are `<prefix><n>` with n below this (as `produce --keys` writes them).
    #[arg(long, value_name = "N", default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub keys: u64,
    /// The keys' prefix.
    #[arg(long, default_value = "key-")]
    pub key_prefix: String,
    /// Measured reads, each of a key drawn at random.
    #[arg(long, default_value_t = 2_000)]
    pub requests: u64,
    /// Reads before the measured ones.
    #[arg(long, default_value_t = 200)]
    pub warmup: u64,
    /// Events per read at most (the API's `limit`).
    #[arg(long, default_value_t = 1_000)]
    pub limit: u64,
    /// Also print one machine-readable JSON line with the result.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ProduceCmd {
    #[command(flatten)]
    pub common: CommonArgs,
    #[command(flatten)]
    pub workload: ProduceOpts,
}

#[derive(Debug, Args)]
pub struct ConsumeCmd {
    #[command(flatten)]
    pub common: CommonArgs,
    #[command(flatten)]
    pub workload: ConsumeOpts,
}

#[derive(Debug, Args)]
pub struct E2eCmd {
    #[command(flatten)]
    pub common: CommonArgs,
    #[command(flatten)]
    pub workload: E2eOpts,
}

/// Flags every broker-driving subcommand has: where the broker is and how to report.
#[derive(Debug, Clone, Args)]
pub struct CommonArgs {
    /// Bootstrap address of the broker under test.
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:9092")]
    pub bootstrap: String,
    /// Topic to use. In --compare mode a suffix per target (and per round for produce/e2e)
    /// is appended.
    #[arg(long, default_value = "brook-bench")]
    pub topic: String,
    /// Pid of the broker: report its CPU time and RSS over the measured phase.
    #[arg(long, value_name = "PID", conflicts_with = "compare")]
    pub broker_pid: Option<u32>,
    /// Run the workload against two bootstrap addresses in alternation and print ratios A/B.
    #[arg(long, value_name = "A,B", value_parser = parse_pair::<String>, conflicts_with = "bootstrap")]
    pub compare: Option<Pair<String>>,
    /// Rounds of --compare (each round runs A and B once; the order alternates).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..), requires = "compare")]
    pub rounds: u32,
    /// Broker pids of the two --compare targets.
    #[arg(long, value_name = "PIDA,PIDB", value_parser = parse_pair::<u32>, requires = "compare")]
    pub broker_pids: Option<Pair<u32>>,
    /// Also print one machine-readable JSON line with the result.
    #[arg(long)]
    pub json: bool,
    /// A librdkafka property for every client, e.g. `-X security.protocol=SSL
    /// -X ssl.ca.location=ca.pem` (repeatable; TLS needs a build with `--features tls`).
    /// With `--client brook` only the security ones are taken (security.protocol, ssl.ca.location,
    /// ssl.certificate.location, ssl.key.location, sasl.mechanism, sasl.username,
    /// sasl.password), and TLS needs no feature.
    #[arg(short = 'X', long = "client-property", value_name = "KEY=VALUE", value_parser = parse_property)]
    pub client_properties: Vec<(String, String)>,
}

fn parse_property(text: &str) -> Result<(String, String), String> {
    let (key, value) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?} is not KEY=VALUE"))?;
    Ok((key.trim().to_string(), value.to_string()))
}

/// `produce`: the producer workload.
#[derive(Debug, Clone, Args)]
pub struct ProduceOpts {
    /// Create the topic with --partitions if it does not exist (always done in --compare mode).
    #[arg(long)]
    pub create_topic: bool,
    /// Partitions of a topic created by this tool.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(i32).range(1..=100_000))]
    pub partitions: i32,
    /// Record payload size in bytes (records have no key).
    #[arg(long, value_name = "BYTES", default_value_t = 1024, value_parser = parse_record_size)]
    pub record_size: usize,
    /// Stop after this many measured records (after the warm-up).
    #[arg(long, conflicts_with = "duration", value_parser = clap::value_parser!(u64).range(1..))]
    pub count: Option<u64>,
    /// Measure for this many seconds (after the warm-up); 10 s if neither --count nor
    /// --duration is given.
    #[arg(long, value_name = "SECS", value_parser = parse_positive_secs, allow_negative_numbers = true)]
    pub duration: Option<Duration>,
    /// Acknowledgements: 0, 1 or all (-1).
    #[arg(long, value_enum, default_value_t = Acks::One, allow_hyphen_values = true)]
    pub acks: Acks,
    /// Producer threads, each with its own librdkafka producer.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub producers: u32,
    /// librdkafka linger.ms.
    #[arg(long, value_name = "MS", default_value_t = 5.0, value_parser = parse_non_negative, allow_negative_numbers = true)]
    pub linger_ms: f64,
    /// librdkafka batch.size in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = 1_000_000, value_parser = clap::value_parser!(u32).range(1..=2_147_483_647))]
    pub batch_size: u32,
    /// Compression codec.
    #[arg(long, value_enum, default_value_t = Compression::None)]
    pub compression: Compression,
    /// enable.idempotence=true (needs --acks all).
    #[arg(long)]
    pub idempotence: bool,
    /// Total rate in records/s across all producers, paced; unlimited if absent.
    #[arg(long, value_name = "RECORDS_PER_SEC", value_parser = parse_positive, allow_negative_numbers = true)]
    pub rate: Option<f64>,
    /// librdkafka queue.buffering.max.kbytes per producer: how much may wait unsent. When
    /// unpaced, delivery latency is mostly time in this queue (32 MiB, like the Java
    /// client's buffer.memory).
    #[arg(long, value_name = "KIB", default_value_t = 32_768, value_parser = clap::value_parser!(u32).range(1..=2_147_483_647))]
    pub queue_kbytes: u32,
    /// Seconds of producing before the measured phase starts.
    #[arg(long, value_name = "SECS", default_value = "1", value_parser = parse_secs, allow_negative_numbers = true)]
    pub warmup: Duration,
    /// Produce in transactions of this many records per producer (each producer has its own
    /// transactional id; needs --acks all; linger.ms is 0, as each transaction ends with a
    /// flush). Reports transactions per second and the commit latency (flush and commit).
    #[arg(long, value_name = "RECORDS", value_parser = clap::value_parser!(u32).range(1..))]
    pub transaction_records: Option<u32>,
    /// With --transaction-records: the share of transactions aborted instead of committed,
    /// in percent (spread evenly).
    #[arg(long, value_name = "PERCENT", default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=100))]
    pub abort_percent: u8,
    /// Give every record a key, `key-<n>` with n drawn in turn from this many keys (so each
    /// key is rewritten every N records: what a compacted topic's cleaner removes). Without
    /// it records have no key.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub keys: Option<u64>,
    /// Conditional appends (needs --keys and a topic with `brook.key.index=true`): every
    /// record carries `brook.expected.revision` with its key's current revision, which the
    /// producer tracks itself; producers get disjoint key ranges, so nothing contends. A
    /// refused condition counts as a delivery error.
    #[arg(long)]
    pub conditional: bool,
    /// With --keys: draw each record's key uniformly at random instead of in turn (a batch
    /// may then hold one key several times).
    #[arg(long, requires = "keys")]
    pub random_keys: bool,
    /// A config of the topic this tool creates, KEY=VALUE (repeatable), e.g.
    /// `--topic-config cleanup.policy=compact`.
    #[arg(long = "topic-config", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub topic_configs: Vec<(String, String)>,
    /// Frame every value as Confluent's serializers do: magic byte 0 and this schema id
    /// first (for topics with `confluent.value.schema.validation=true`).
    #[arg(long, value_name = "ID")]
    pub value_schema_id: Option<i32>,
    /// The client library: librdkafka, or Brook's own Rust client (`brook-client`).
    #[arg(long, value_enum, default_value_t = Client::Librdkafka)]
    pub client: Client,
}

/// Which Kafka client a workload runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Client {
    Librdkafka,
    Brook,
}

/// When the measured phase of a produce run ends.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Stop {
    Count(u64),
    After(Duration),
}

impl ProduceOpts {
    /// The end of the measured phase: `--count`, `--duration` or 10 s.
    pub fn stop(&self) -> Stop {
        match (self.count, self.duration) {
            (Some(n), _) => Stop::Count(n),
            (None, Some(d)) => Stop::After(d),
            (None, None) => Stop::After(Duration::from_secs(10)),
        }
    }

    fn validate(&self) -> Result<(), String> {
        if self.idempotence && self.acks != Acks::All {
            return Err("--idempotence needs --acks all".into());
        }
        if self.transaction_records.is_some() && self.acks != Acks::All {
            return Err("--transaction-records needs --acks all".into());
        }
        if self.abort_percent > 0 && self.transaction_records.is_none() {
            return Err("--abort-percent needs --transaction-records".into());
        }
        if self.conditional && self.keys.is_none() {
            return Err("--conditional needs --keys".into());
        }
        if self.value_schema_id.is_some() && self.record_size < 5 {
            return Err("--value-schema-id needs --record-size of at least 5".into());
        }
        if self.client == Client::Brook && (self.rate.is_some() || self.value_schema_id.is_some()) {
            return Err("--client brook has no --rate or --value-schema-id yet".into());
        }
        Ok(())
    }

    /// The settings `consume --fill` uses: as fast as the client goes.
    pub fn fill(count: u64, record_size: usize, partitions: i32) -> Self {
        Self {
            create_topic: true,
            partitions,
            record_size,
            count: Some(count),
            duration: None,
            acks: Acks::One,
            producers: 1,
            linger_ms: 5.0,
            batch_size: 1_000_000,
            compression: Compression::None,
            idempotence: false,
            rate: None,
            queue_kbytes: 32_768,
            warmup: Duration::ZERO,
            transaction_records: None,
            abort_percent: 0,
            keys: None,
            conditional: false,
            random_keys: false,
            topic_configs: Vec::new(),
            value_schema_id: None,
            client: Client::Librdkafka,
        }
    }
}

/// `consume`: read a filled topic from the beginning.
#[derive(Debug, Clone, Args)]
pub struct ConsumeOpts {
    /// Stop after this many records instead of at the end offsets taken at the start.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub count: Option<u64>,
    /// First produce this many records (acks=1, linger 5 ms, 1 MB batches), creating the
    /// topic with --partitions if missing.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub fill: Option<u64>,
    /// Record size for --fill.
    #[arg(long, value_name = "BYTES", default_value_t = 1024, value_parser = parse_record_size)]
    pub record_size: usize,
    /// Partitions of a topic created by --fill.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(i32).range(1..=100_000))]
    pub partitions: i32,
    /// With --fill: produce in transactions of this many records (acks all).
    #[arg(long, value_name = "RECORDS", value_parser = clap::value_parser!(u32).range(1..))]
    pub fill_transaction_records: Option<u32>,
    /// With --fill-transaction-records: the share of fill transactions aborted, in percent.
    #[arg(long, value_name = "PERCENT", default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=100))]
    pub fill_abort_percent: u8,
    /// The consumer's isolation level: read_committed reads only committed transactions
    /// (and stops at the last stable offset).
    #[arg(long, value_enum, default_value_t = Isolation::ReadUncommitted)]
    pub isolation: Isolation,
    /// Give up when no record arrives for this long.
    #[arg(long, value_name = "SECS", default_value = "30", value_parser = parse_positive_secs, allow_negative_numbers = true)]
    pub idle_timeout: Duration,
    /// The client library reading (the fill always uses librdkafka).
    #[arg(long, value_enum, default_value_t = Client::Librdkafka)]
    pub client: Client,
}

impl ConsumeOpts {
    fn validate(&self, common: &CommonArgs) -> Result<(), String> {
        if common.compare.is_some() && self.fill.is_none() {
            return Err("consume --compare needs --fill (each target gets its own topic)".into());
        }
        Ok(())
    }
}

/// `e2e`: a paced producer and a consumer in one process.
#[derive(Debug, Clone, Args)]
pub struct E2eOpts {
    /// Total rate in records/s.
    #[arg(long, value_name = "RECORDS_PER_SEC", default_value_t = 1000.0, value_parser = parse_positive, allow_negative_numbers = true)]
    pub rate: f64,
    /// Measured seconds (after the warm-up).
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = parse_positive_secs, allow_negative_numbers = true)]
    pub duration: Duration,
    /// Seconds of producing and consuming before the measured phase starts.
    #[arg(long, value_name = "SECS", default_value = "1", value_parser = parse_secs, allow_negative_numbers = true)]
    pub warmup: Duration,
    /// Record payload size in bytes (at least 8: the send time travels in the first 8).
    #[arg(long, value_name = "BYTES", default_value_t = 1024, value_parser = parse_e2e_record_size)]
    pub record_size: usize,
    /// Partitions of the topic, created if missing.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(i32).range(1..=100_000))]
    pub partitions: i32,
    /// Acknowledgements: 0, 1 or all (-1).
    #[arg(long, value_enum, default_value_t = Acks::One, allow_hyphen_values = true)]
    pub acks: Acks,
    /// librdkafka linger.ms of the producer.
    #[arg(long, value_name = "MS", default_value_t = 0.0, value_parser = parse_non_negative, allow_negative_numbers = true)]
    pub linger_ms: f64,
    /// Compression codec.
    #[arg(long, value_enum, default_value_t = Compression::None)]
    pub compression: Compression,
    /// Give up waiting for the last records this long after the producer has finished.
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = parse_positive_secs, allow_negative_numbers = true)]
    pub drain_timeout: Duration,
}

impl E2eOpts {
    fn validate(&self) -> Result<(), String> {
        Ok(())
    }
}

/// `startup`: spawn-to-first-answer time and idle RSS of a broker command.
#[derive(Debug, Clone, Args)]
pub struct StartupOpts {
    /// Shell command line that starts a broker; `{port}` becomes a free port and `{dir}` a new
    /// empty directory. Prefer `exec` in front of the broker; otherwise the deepest child
    /// process of the shell is measured.
    #[arg(long, value_name = "CMD")]
    pub command: String,
    /// Host the broker listens on.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// How many times to start the broker.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
    pub runs: u32,
    /// Idle time after the first answer before reading the RSS.
    #[arg(long, value_name = "SECS", default_value = "1", value_parser = parse_secs, allow_negative_numbers = true)]
    pub idle: Duration,
    /// Give up on a run after this long without an answer.
    #[arg(long, value_name = "SECS", default_value = "30", value_parser = parse_positive_secs, allow_negative_numbers = true)]
    pub timeout: Duration,
    /// Pause between connection attempts, in microseconds.
    #[arg(long, value_name = "MICROS", default_value_t = 200)]
    pub backoff_us: u64,
    /// Also print one machine-readable JSON line with the result.
    #[arg(long)]
    pub json: bool,
}

/// A consumer's `isolation.level`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
pub enum Isolation {
    #[value(name = "read_uncommitted")]
    #[serde(rename = "read_uncommitted")]
    ReadUncommitted,
    #[value(name = "read_committed")]
    #[serde(rename = "read_committed")]
    ReadCommitted,
}

impl Isolation {
    /// The librdkafka `isolation.level` value.
    pub fn as_config(self) -> &'static str {
        match self {
            Isolation::ReadUncommitted => "read_uncommitted",
            Isolation::ReadCommitted => "read_committed",
        }
    }
}

/// Producer acknowledgements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
pub enum Acks {
    #[value(name = "0")]
    #[serde(rename = "0")]
    Zero,
    #[value(name = "1")]
    #[serde(rename = "1")]
    One,
    #[value(name = "all", alias = "-1")]
    #[serde(rename = "all")]
    All,
}

impl Acks {
    /// The librdkafka `acks` value.
    pub fn as_config(self) -> &'static str {
        match self {
            Acks::Zero => "0",
            Acks::One => "1",
            Acks::All => "all",
        }
    }
}

/// Producer compression codec.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl Compression {
    /// The librdkafka `compression.type` value.
    pub fn as_config(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Snappy => "snappy",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        }
    }
}

/// Two values given as `A,B`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Pair<T> {
    pub a: T,
    pub b: T,
}

impl<T: fmt::Display> fmt::Display for Pair<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{},{}", self.a, self.b)
    }
}

/// Parses `A,B` (exactly two non-empty items).
pub fn parse_pair<T>(s: &str) -> Result<Pair<T>, String>
where
    T: FromStr,
    T::Err: fmt::Display,
{
    let mut items = s.split(',').map(str::trim);
    match (items.next(), items.next(), items.next()) {
        (Some(a), Some(b), None) if !a.is_empty() && !b.is_empty() => Ok(Pair {
            a: a.parse().map_err(|e| format!("{a:?}: {e}"))?,
            b: b.parse().map_err(|e| format!("{b:?}: {e}"))?,
        }),
        _ => Err(format!("expected two items as A,B, got {s:?}")),
    }
}

fn parse_f64(s: &str) -> Result<f64, String> {
    let v: f64 = s.trim().parse().map_err(|e| format!("{s:?}: {e}"))?;
    if v.is_finite() {
        Ok(v)
    } else {
        Err(format!("{s:?} is not a finite number"))
    }
}

fn parse_non_negative(s: &str) -> Result<f64, String> {
    let v = parse_f64(s)?;
    if v >= 0.0 {
        Ok(v)
    } else {
        Err(format!("{s:?} is negative"))
    }
}

fn parse_positive(s: &str) -> Result<f64, String> {
    let v = parse_f64(s)?;
    if v > 0.0 {
        Ok(v)
    } else {
        Err(format!("{s:?} must be greater than 0"))
    }
}

/// Seconds as a decimal number, 0 allowed.
pub fn parse_secs(s: &str) -> Result<Duration, String> {
    let v = parse_non_negative(s)?;
    Duration::try_from_secs_f64(v).map_err(|e| format!("{s:?}: {e}"))
}

/// Seconds as a decimal number, greater than 0.
pub fn parse_positive_secs(s: &str) -> Result<Duration, String> {
    let v = parse_positive(s)?;
    Duration::try_from_secs_f64(v).map_err(|e| format!("{s:?}: {e}"))
}

/// Largest record payload accepted (librdkafka's message.max.bytes ceiling is 1,000,000,000).
const MAX_RECORD_SIZE: usize = 64 << 20;

fn parse_key_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("expected KEY=VALUE, got {s:?}")),
    }
}

fn parse_record_size(s: &str) -> Result<usize, String> {
    let v: usize = s.trim().parse().map_err(|e| format!("{s:?}: {e}"))?;
    if (1..=MAX_RECORD_SIZE).contains(&v) {
        Ok(v)
    } else {
        Err(format!("record size must be 1..={MAX_RECORD_SIZE}"))
    }
}

fn parse_e2e_record_size(s: &str) -> Result<usize, String> {
    let v = parse_record_size(s)?;
    if v >= 8 {
        Ok(v)
    } else {
        Err("e2e records need at least 8 bytes (the send time)".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::parse_checked(std::iter::once("brook-bench").chain(args.iter().copied()))
    }

    fn produce(args: &[&str]) -> ProduceCmd {
        let mut all = vec!["produce"];
        all.extend_from_slice(args);
        match parse(&all).unwrap().command {
            Command::Produce(p) => p,
            other => panic!("{other:?}"),
        }
    }

    fn rejected(args: &[&str]) -> ErrorKind {
        parse(args).unwrap_err().kind()
    }

    #[test]
    fn produce_defaults() {
        let p = produce(&[]);
        assert_eq!(p.common.bootstrap, "127.0.0.1:9092");
        assert_eq!(p.common.topic, "brook-bench");
        assert_eq!(p.common.rounds, 3);
        assert!(!p.common.json && p.common.compare.is_none());
        let w = p.workload;
        assert_eq!(w.record_size, 1024);
        assert_eq!(w.acks, Acks::One);
        assert_eq!(w.producers, 1);
        assert_eq!(w.linger_ms, 5.0);
        assert_eq!(w.batch_size, 1_000_000);
        assert_eq!(w.compression, Compression::None);
        assert_eq!(w.warmup, Duration::from_secs(1));
        assert_eq!(w.rate, None);
        assert_eq!(w.queue_kbytes, 32_768);
        assert_eq!(w.stop(), Stop::After(Duration::from_secs(10)));
    }

    #[test]
    fn produce_all_flags() {
        let p = produce(&[
            "--bootstrap",
            "10.0.0.1:9093",
            "--topic",
            "t",
            "--create-topic",
            "--partitions",
            "8",
            "--record-size",
            "100",
            "--count",
            "5000",
            "--acks",
            "all",
            "--producers",
            "4",
            "--linger-ms",
            "0.5",
            "--batch-size",
            "65536",
            "--compression",
            "zstd",
            "--idempotence",
            "--rate",
            "2500.5",
            "--queue-kbytes",
            "1024",
            "--warmup",
            "0.25",
            "--broker-pid",
            "42",
            "--json",
        ]);
        assert_eq!(p.common.bootstrap, "10.0.0.1:9093");
        assert_eq!(p.common.broker_pid, Some(42));
        assert!(p.common.json);
        let w = p.workload;
        assert!(w.create_topic && w.idempotence);
        assert_eq!(w.partitions, 8);
        assert_eq!(w.record_size, 100);
        assert_eq!(w.stop(), Stop::Count(5000));
        assert_eq!(w.acks, Acks::All);
        assert_eq!(w.producers, 4);
        assert_eq!(w.linger_ms, 0.5);
        assert_eq!(w.batch_size, 65536);
        assert_eq!(w.compression, Compression::Zstd);
        assert_eq!(w.rate, Some(2500.5));
        assert_eq!(w.queue_kbytes, 1024);
        assert_eq!(w.warmup, Duration::from_millis(250));
    }

    #[test]
    fn acks_values() {
        assert_eq!(produce(&["--acks", "0"]).workload.acks, Acks::Zero);
        assert_eq!(produce(&["--acks", "1"]).workload.acks, Acks::One);
        assert_eq!(produce(&["--acks", "-1"]).workload.acks, Acks::All);
        assert_eq!(produce(&["--acks=all"]).workload.acks.as_config(), "all");
        assert_eq!(
            rejected(&["produce", "--acks", "2"]),
            ErrorKind::InvalidValue
        );
    }

    #[test]
    fn duration_and_count() {
        let p = produce(&["--duration", "2.5"]);
        assert_eq!(p.workload.stop(), Stop::After(Duration::from_millis(2500)));
        assert_eq!(
            rejected(&["produce", "--count", "5", "--duration", "1"]),
            ErrorKind::ArgumentConflict
        );
        assert_eq!(
            rejected(&["produce", "--duration", "0"]),
            ErrorKind::ValueValidation
        );
        assert_eq!(
            rejected(&["produce", "--count", "0"]),
            ErrorKind::ValueValidation
        );
        assert_eq!(
            rejected(&["produce", "--warmup", "-1"]),
            ErrorKind::ValueValidation
        );
    }

    #[test]
    fn invalid_values() {
        for args in [
            &["produce", "--record-size", "0"][..],
            &["produce", "--record-size", "lots"],
            &["produce", "--producers", "0"],
            &["produce", "--partitions", "0"],
            &["produce", "--compression", "brotli"],
            &["produce", "--rate", "0"],
            &["produce", "--rate", "inf"],
            &["produce", "--linger-ms", "-1"],
            &["e2e", "--record-size", "7"],
            &["startup", "--command", "x", "--runs", "0"],
        ] {
            let kind = rejected(args);
            assert!(
                matches!(kind, ErrorKind::ValueValidation | ErrorKind::InvalidValue),
                "{args:?}: {kind:?}"
            );
        }
        assert_eq!(
            rejected(&["produce", "--bogus"]),
            ErrorKind::UnknownArgument
        );
        assert_eq!(rejected(&["startup"]), ErrorKind::MissingRequiredArgument);
        assert_eq!(
            rejected(&[]),
            ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
        );
    }

    #[test]
    fn idempotence_needs_acks_all() {
        assert_eq!(
            rejected(&["produce", "--idempotence"]),
            ErrorKind::ArgumentConflict
        );
        assert!(
            produce(&["--idempotence", "--acks", "all"])
                .workload
                .idempotence
        );
    }

    #[test]
    fn compare_flags() {
        let p = produce(&[
            "--compare",
            "127.0.0.1:9092,127.0.0.1:9093",
            "--rounds",
            "5",
            "--broker-pids",
            "10,20",
        ]);
        let targets = p.common.compare.unwrap();
        assert_eq!(targets.a, "127.0.0.1:9092");
        assert_eq!(targets.b, "127.0.0.1:9093");
        assert_eq!(p.common.rounds, 5);
        assert_eq!(p.common.broker_pids, Some(Pair { a: 10, b: 20 }));

        assert_eq!(
            rejected(&["produce", "--compare", "a:1"]),
            ErrorKind::ValueValidation
        );
        assert_eq!(
            rejected(&["produce", "--compare", "a:1,b:2,c:3"]),
            ErrorKind::ValueValidation
        );
        assert_eq!(
            rejected(&["produce", "--compare", "a:1,b:2", "--broker-pids", "1,x"]),
            ErrorKind::ValueValidation
        );
        assert_eq!(
            rejected(&["produce", "--rounds", "2"]),
            ErrorKind::MissingRequiredArgument
        );
        assert_eq!(
            rejected(&["produce", "--broker-pids", "1,2"]),
            ErrorKind::MissingRequiredArgument
        );
        assert_eq!(
            rejected(&["produce", "--compare", "a:1,b:2", "--broker-pid", "3"]),
            ErrorKind::ArgumentConflict
        );
        assert_eq!(
            rejected(&["produce", "--compare", "a:1,b:2", "--bootstrap", "c:3"]),
            ErrorKind::ArgumentConflict
        );
        assert_eq!(
            rejected(&["produce", "--compare", "a:1,b:2", "--rounds", "0"]),
            ErrorKind::ValueValidation
        );
    }

    #[test]
    fn consume_flags() {
        let cmd = parse(&["consume", "--topic", "t", "--fill", "1000", "--count", "10"]).unwrap();
        let Command::Consume(c) = cmd.command else {
            panic!("not consume")
        };
        assert_eq!(c.common.topic, "t");
        assert_eq!(c.workload.fill, Some(1000));
        assert_eq!(c.workload.count, Some(10));
        assert_eq!(c.workload.idle_timeout, Duration::from_secs(30));
        assert_eq!(
            rejected(&["consume", "--compare", "a:1,b:2"]),
            ErrorKind::ArgumentConflict
        );
        assert!(parse(&["consume", "--compare", "a:1,b:2", "--fill", "10"]).is_ok());
    }

    #[test]
    fn e2e_flags() {
        let cmd = parse(&["e2e", "--rate", "500", "--duration", "3", "--acks", "all"]).unwrap();
        let Command::E2e(e) = cmd.command else {
            panic!("not e2e")
        };
        assert_eq!(e.workload.rate, 500.0);
        assert_eq!(e.workload.duration, Duration::from_secs(3));
        assert_eq!(e.workload.acks, Acks::All);
        assert_eq!(e.workload.linger_ms, 0.0);
        assert_eq!(e.workload.record_size, 1024);
    }

    #[test]
    fn startup_flags() {
        let cmd = parse(&[
            "startup",
            "--command",
            "exec brook --listen 127.0.0.1:{port}",
        ])
        .unwrap();
        let Command::Startup(s) = cmd.command else {
            panic!("not startup")
        };
        assert_eq!(s.command, "exec brook --listen 127.0.0.1:{port}");
        assert_eq!(s.runs, 5);
        assert_eq!(s.idle, Duration::from_secs(1));
        assert_eq!(s.backoff_us, 200);
        assert_eq!(
            rejected(&["startup", "--command", "x", "--bootstrap", "a:1"]),
            ErrorKind::UnknownArgument
        );
    }

    #[test]
    fn pair_parsing() {
        assert_eq!(parse_pair::<u32>(" 1 , 2 ").unwrap(), Pair { a: 1, b: 2 });
        assert!(parse_pair::<u32>("1,").is_err());
        assert!(parse_pair::<u32>(",1").is_err());
        assert!(parse_pair::<String>("").is_err());
        assert_eq!(Pair { a: 1, b: 2 }.to_string(), "1,2");
    }

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
