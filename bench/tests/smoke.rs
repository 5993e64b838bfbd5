//! Smoke run of the workloads against an in-process ephemeral Brook: the counts add up and
//! the reports are sane. No figure is asserted beyond "non-zero and ordered".

#![allow(clippy::unwrap_used, clippy::expect_used)]

use brook_bench::cli::{Cli, Command, ConsumeOpts, E2eOpts, ProduceOpts};
use brook_bench::{consume, e2e, produce};
use brook_broker::EmbeddedBroker;

fn parse(args: &[&str]) -> Command {
    let all = std::iter::once("brook-bench").chain(args.iter().copied());
    Cli::parse_checked(all).unwrap().command
}

fn produce_opts(args: &[&str]) -> ProduceOpts {
    let mut all = vec!["produce"];
    all.extend_from_slice(args);
    match parse(&all) {
        Command::Produce(c) => c.workload,
        other => panic!("{other:?}"),
    }
}

fn consume_opts(args: &[&str]) -> ConsumeOpts {
    let mut all = vec!["consume"];
    all.extend_from_slice(args);
    match parse(&all) {
        Command::Consume(c) => c.workload,
        other => panic!("{other:?}"),
    }
}

fn e2e_opts(args: &[&str]) -> E2eOpts {
    let mut all = vec!["e2e"];
    all.extend_from_slice(args);
    match parse(&all) {
        Command::E2e(c) => c.workload,
        other => panic!("{other:?}"),
    }
}

#[test]
fn produce_consume_e2e_against_ephemeral_brook() {
    let broker = EmbeddedBroker::ephemeral().unwrap();
    let bootstrap = broker.bootstrap();
    let me = Some(std::process::id());

    // produce: an exact count after a short warm-up, two producers, three partitions.
    let opts = produce_opts(&[
        "--create-topic",
        "--partitions",
        "3",
        "--count",
        "5000",
        "--record-size",
        "200",
        "--producers",
        "2",
        "--warmup",
        "0.2",
        "--linger-ms",
        "1",
    ]);
    let p = produce::run(&bootstrap, "smoke-produce", &opts, me).unwrap();
    println!("{p}");
    assert_eq!(p.records, 5000);
    assert_eq!(p.bytes, 5000 * 200);
    assert_eq!(p.errors, 0);
    assert!(p.seconds > 0.0 && p.records_per_sec > 0.0 && p.mb_per_sec > 0.0);
    assert!(p.latency.is_ordered(), "{:?}", p.latency);
    assert_eq!(p.latency.count, 5000);
    // The "broker" is this process.
    let usage = p.broker.unwrap();
    assert!(usage.peak_rss_kib > 0 && usage.cpu_seconds >= 0.0);

    // consume: everything produced above (warm-up included), to the end offsets.
    let c = consume::run(&bootstrap, "smoke-produce", &consume_opts(&[]), None).unwrap();
    println!("{c}");
    assert_eq!(c.partitions, 3);
    assert!(c.records > 5000, "{} records", c.records);
    assert_eq!(c.bytes, c.records * 200);
    assert!(c.records_per_sec > 0.0 && c.mb_per_sec > 0.0);

    // consume --fill into a fresh topic, then --count stops early.
    let fill = consume_opts(&[
        "--fill",
        "3000",
        "--partitions",
        "2",
        "--record-size",
        "100",
    ]);
    let c = consume::run(&bootstrap, "smoke-fill", &fill, None).unwrap();
    assert_eq!((c.records, c.bytes, c.filled), (3000, 300_000, Some(3000)));
    let c = consume::run(
        &bootstrap,
        "smoke-fill",
        &consume_opts(&["--count", "1000"]),
        None,
    )
    .unwrap();
    assert_eq!(c.records, 1000);

    // e2e: one second at 2000 rec/s.
    let opts = e2e_opts(&[
        "--rate",
        "2000",
        "--duration",
        "1",
        "--warmup",
        "0.2",
        "--record-size",
        "64",
        "--partitions",
        "2",
    ]);
    let e = e2e::run(&bootstrap, "smoke-e2e", &opts, me).unwrap();
    println!("{e}");
    assert!(e.sent > 1000, "{} sent", e.sent);
    assert_eq!(e.received, e.sent);
    assert_eq!(e.errors, 0);
    assert!(e.latency.is_ordered(), "{:?}", e.latency);
    assert!(e.delivery_latency.is_ordered(), "{:?}", e.delivery_latency);
    assert_eq!(e.latency.count, e.received);
    assert!(e.records_per_sec > 200.0, "{}", e.records_per_sec);

    // A paced produce keeps to its rate.
    let opts = produce_opts(&[
        "--rate",
        "1000",
        "--duration",
        "0.5",
        "--warmup",
        "0",
        "--create-topic",
    ]);
    let p = produce::run(&bootstrap, "smoke-paced", &opts, None).unwrap();
    assert!(
        (250..=510).contains(&p.records),
        "{} records at 1000/s for 0.5 s",
        p.records
    );

    broker.shutdown();
}

#[test]
fn the_brook_client_runs_produce_and_consume() {
    let broker = EmbeddedBroker::ephemeral().unwrap();
    let bootstrap = broker.bootstrap();
    let opts = produce_opts(&[
        "--client",
        "brook",
        "--create-topic",
        "--partitions",
        "2",
        "--count",
        "4000",
        "--record-size",
        "100",
        "--producers",
        "2",
        "--warmup",
        "0.2",
        "--acks",
        "all",
        "--idempotence",
        "--compression",
        "lz4",
    ]);
    let p = produce::run(&bootstrap, "smoke-brook", &opts, None).unwrap();
    println!("{p}");
    assert!(p.to_string().contains("with brook-client"));
    assert_eq!((p.records, p.bytes, p.errors), (4000, 400_000, 0));
    assert!(p.latency.is_ordered(), "{:?}", p.latency);
    assert_eq!(p.latency.count, 4000);
    // Everything, warm-up included, read back by brook-client to the end offsets.
    let c = consume::run(
        &bootstrap,
        "smoke-brook",
        &consume_opts(&["--client", "brook"]),
        None,
    )
    .unwrap();
    println!("{c}");
    assert_eq!(c.partitions, 2);
    assert!(c.records >= 4000, "{} records", c.records);
    assert_eq!(c.bytes, c.records * 100);
    let c = consume::run(
        &bootstrap,
        "smoke-brook",
        &consume_opts(&["--client", "brook", "--count", "1500"]),
        None,
    )
    .unwrap();
    assert_eq!(c.records, 1500);
    // Options brook-client's workload does not have yet are refused, not ignored.
    let all = [
        "brook-bench",
        "produce",
        "--client",
        "brook",
        "--rate",
        "10",
    ];
    assert!(brook_bench::cli::Cli::parse_checked(all).is_err());
    broker.shutdown();
}

#[test]
fn transactional_produce_and_read_committed_consume() {
    let broker = EmbeddedBroker::ephemeral().unwrap();
    let bootstrap = broker.bootstrap();
    // 100 transactions of 10 records, 10% aborted.
    let opts = produce_opts(&[
        "--create-topic",
        "--count",
        "1000",
        "--record-size",
        "100",
        "--acks",
        "all",
        "--warmup",
        "0",
        "--transaction-records",
        "10",
        "--abort-percent",
        "10",
    ]);
    let p = produce::run(&bootstrap, "smoke-txn", &opts, None).unwrap();
    println!("{p}");
    assert_eq!(p.transactions, 100);
    assert!(p.transactions_per_sec > 0.0);
    assert!(p.commit_latency.unwrap().is_ordered());
    let committed = consume::run(
        &bootstrap,
        "smoke-txn",
        &consume_opts(&["--isolation", "read_committed"]),
        None,
    )
    .unwrap();
    println!("{committed}");
    assert_eq!(committed.records, 900, "the aborted 10% are not read");
    let all = consume::run(&bootstrap, "smoke-txn", &consume_opts(&[]), None).unwrap();
    assert_eq!(all.records, 1000);
    // --fill with transactions, read back committed.
    let filled = consume::run(
        &bootstrap,
        "smoke-txn-fill",
        &consume_opts(&[
            "--fill",
            "500",
            "--fill-transaction-records",
            "50",
            "--fill-abort-percent",
            "20",
            "--isolation",
            "read_committed",
        ]),
        None,
    )
    .unwrap();
    assert_eq!(filled.records, 400);
    // The same with brook-client, producing and reading.
    let mut opts = opts;
    opts.client = brook_bench::cli::Client::Brook;
    let p = produce::run(&bootstrap, "smoke-txn-brook", &opts, None).unwrap();
    println!("{p}");
    assert_eq!((p.records, p.errors), (1000, 0));
    assert_eq!(p.transactions, 100);
    assert!(p.commit_latency.unwrap().is_ordered());
    let committed = consume::run(
        &bootstrap,
        "smoke-txn-brook",
        &consume_opts(&["--isolation", "read_committed", "--client", "brook"]),
        None,
    )
    .unwrap();
    assert_eq!(committed.records, 900, "the aborted 10% are not read");
    broker.shutdown();
}

#[test]
fn conditional_produce_with_random_keys_is_never_refused() {
    let broker = EmbeddedBroker::ephemeral().unwrap();
    // Few keys drawn at random: batches hold one key several times, and every record's
    // expected revision (tracked by the tool) must match what the broker counts.
    let opts = produce_opts(&[
        "--create-topic",
        "--topic-config",
        "brook.key.index=true",
        "--keys",
        "50",
        "--random-keys",
        "--conditional",
        "--count",
        "3000",
        "--warmup",
        "0",
        "--linger-ms",
        "5",
    ]);
    let p = produce::run(&broker.bootstrap(), "smoke-random-keys", &opts, None).unwrap();
    assert_eq!(p.records, 3000);
    assert_eq!(p.errors, 0, "a condition was refused");
    // The same with brook-client, two producers with key ranges of their own.
    let mut opts = opts;
    opts.client = brook_bench::cli::Client::Brook;
    opts.producers = 2;
    let p = produce::run(&broker.bootstrap(), "smoke-random-keys-brook", &opts, None).unwrap();
    assert_eq!(p.records, 3000);
    assert_eq!(p.errors, 0, "a condition was refused");
    // A wrong expectation is refused: the tool's revisions start at no-stream, which a
    // topic with records already breaks.
    let p = produce::run(&broker.bootstrap(), "smoke-random-keys-brook", &opts, None);
    let e = p.unwrap_err().to_string();
    assert!(
        e.contains("InvalidRecord: wrong expected revision") && e.contains("(record 0)"),
        "{e}"
    );
}

#[test]
fn connect_opens_authenticated_connections_over_sasl_ssl() {
    let dir = tempfile::tempdir().unwrap();
    let certs = brook_broker::auth::tls::dev_certificates(&["127.0.0.1".into()]).unwrap();
    std::fs::write(dir.path().join("server.pem"), &certs.server_pem).unwrap();
    std::fs::write(dir.path().join("ca.pem"), &certs.ca_pem).unwrap();
    let data = dir.path().join("data");
    brook_broker::auth::users::create_user(
        &data,
        "bench",
        "bench-secret",
        &[brook_broker::auth::scram::Mechanism::Sha256],
        4096,
    )
    .unwrap();
    let mut config = brook_broker::BrokerConfig::with_data_dir(&data);
    config.listeners = Some("SASL_SSL://127.0.0.1:0".into());
    config.ssl_keystore_location = Some(dir.path().join("server.pem"));
    let broker = EmbeddedBroker::start(config).unwrap();
    let addr = broker.listener_addr("SASL_SSL").unwrap().to_string();
    let ca = dir.path().join("ca.pem");
    let opts = match parse(&[
        "connect",
        "--bootstrap",
        &addr,
        "--connections",
        "40",
        "--warmup",
        "4",
        "--concurrency",
        "3",
        "--tls-ca",
        ca.to_str().unwrap(),
        "--sasl-user",
        "bench",
        "--sasl-password",
        "bench-secret",
        "--broker-pid",
        &std::process::id().to_string(),
    ]) {
        Command::Connect(o) => o,
        other => panic!("{other:?}"),
    };
    let report = brook_bench::connect::run(&opts).unwrap();
    assert_eq!(report.connections, 40);
    assert!(report.tls);
    assert_eq!(report.sasl.as_deref(), Some("SCRAM-SHA-256"));
    assert!(report.per_second > 0.0 && report.latency.is_ordered());
    assert!(report.broker.is_some());
    // A wrong password fails the run with the broker's message.
    let mut wrong = opts.clone();
    wrong.sasl_password = Some("wrong".into());
    let err = brook_bench::connect::run(&wrong).unwrap_err().to_string();
    assert!(err.contains("invalid credentials"), "{err}");
    broker.shutdown();
}
