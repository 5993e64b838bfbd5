//! Runs a parsed command line: one workload or a `--compare`, printing results to stdout
//! (progress of a comparison goes to stderr).

use std::fmt::Display;

use serde::Serialize;

use crate::cli::{Cli, Command, CommonArgs, ConsumeCmd, E2eCmd, ProduceCmd};
use crate::compare::{self, topic_for, RunSpec, Side};
use crate::error::BenchError;
use crate::report::json_line;
use crate::{connect, consume, e2e, produce, startup, stream_read};

/// Runs `cli`'s command.
pub fn execute(cli: &Cli) -> Result<(), BenchError> {
    if let Command::Produce(ProduceCmd { common, .. })
    | Command::Consume(ConsumeCmd { common, .. })
    | Command::E2e(E2eCmd { common, .. }) = &cli.command
    {
        crate::kafka::set_client_properties(common.client_properties.clone());
    }
    match &cli.command {
        Command::Produce(c) => produce_cmd(c),
        Command::Consume(c) => consume_cmd(c),
        Command::E2e(c) => e2e_cmd(c),
        Command::StreamRead(opts) => {
            let report = stream_read::run(opts)?;
            emit("stream-read", &report, opts.json);
            Ok(())
        }
        Command::Startup(opts) => {
            let report = startup::run(opts)?;
            emit("startup", &report, opts.json);
            Ok(())
        }
        Command::Connect(opts) => {
            let report = connect::run(opts)?;
            emit("connect", &report, opts.json);
            Ok(())
        }
    }
}

fn emit<T: Display + Serialize>(command: &str, report: &T, json: bool) {
    print!("{report}");
    if json {
        println!("{}", json_line(command, report));
    }
}

fn progress<R: Display>(spec: RunSpec<'_>, result: &R) {
    eprint!(
        "[round {} {} = {}]\n{result}",
        spec.round + 1,
        spec.side,
        spec.bootstrap
    );
}

/// Runs a comparison of `command` and prints its table.
fn compare_cmd<R, F>(command: &str, common: &CommonArgs, run_one: F) -> Result<(), BenchError>
where
    R: crate::report::Measured + Display,
    F: FnMut(RunSpec<'_>) -> Result<R, BenchError>,
{
    let Some(targets) = &common.compare else {
        return Err(BenchError::Failed("--compare without targets".into()));
    };
    let report = compare::run(
        targets,
        common.broker_pids.as_ref(),
        common.rounds,
        run_one,
        progress,
    )?;
    println!("{command}, {} rounds", common.rounds);
    emit(command, &report, common.json);
    Ok(())
}

fn produce_cmd(c: &ProduceCmd) -> Result<(), BenchError> {
    let common = &c.common;
    if common.compare.is_none() {
        let report = produce::run(
            &common.bootstrap,
            &common.topic,
            &c.workload,
            common.broker_pid,
        )?;
        emit("produce", &report, common.json);
        return Ok(());
    }
    // Every run gets a fresh topic, so it must be created with the asked partitions.
    let mut workload = c.workload.clone();
    workload.create_topic = true;
    compare_cmd("produce", common, |spec| {
        let topic = topic_for(&common.topic, spec.side, Some(spec.round));
        produce::run(spec.bootstrap, &topic, &workload, spec.broker_pid)
    })
}

fn consume_cmd(c: &ConsumeCmd) -> Result<(), BenchError> {
    let common = &c.common;
    let Some(targets) = &common.compare else {
        let report = consume::run(
            &common.bootstrap,
            &common.topic,
            &c.workload,
            common.broker_pid,
        )?;
        emit("consume", &report, common.json);
        return Ok(());
    };
    // One topic per target, filled once; every round reads it from the beginning (reads do
    // not disturb each other, and later rounds read a warm log).
    let mut workload = c.workload.clone();
    if let Some(n) = workload.fill.take() {
        for (side, bootstrap) in [(Side::A, &targets.a), (Side::B, &targets.b)] {
            let topic = topic_for(&common.topic, side, None);
            eprintln!("filling {topic} on {bootstrap} with {n} records");
            consume::fill(bootstrap, &topic, n, &workload)?;
        }
    }
    compare_cmd("consume", common, |spec| {
        let topic = topic_for(&common.topic, spec.side, None);
        consume::run(spec.bootstrap, &topic, &workload, spec.broker_pid)
    })
}

fn e2e_cmd(c: &E2eCmd) -> Result<(), BenchError> {
    let common = &c.common;
    if common.compare.is_none() {
        let report = e2e::run(
            &common.bootstrap,
            &common.topic,
            &c.workload,
            common.broker_pid,
        )?;
        emit("e2e", &report, common.json);
        return Ok(());
    }
    compare_cmd("e2e", common, |spec| {
        let topic = topic_for(&common.topic, spec.side, Some(spec.round));
        e2e::run(spec.bootstrap, &topic, &c.workload, spec.broker_pid)
    })
}
