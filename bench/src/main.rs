//! The `brook-bench` binary: parse, run, print. See the library for the workloads.

use std::process::ExitCode;

use brook_bench::cli::Cli;

fn main() -> ExitCode {
    let cli = match Cli::parse_checked(std::env::args_os()) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    match brook_bench::app::execute(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("brook-bench: {e}");
            ExitCode::FAILURE
        }
    }
}
