//! A broker in a process of its own, for tests that look at it from outside: its memory and
//! open files in /proc, or a SIGKILL. Reads a TOML config (the `brook --config` format) from
//! the file named by its one argument, prints the bootstrap address (and the HTTP listener's,
//! if any, after a space) on stdout, and stops
//! cleanly when its standard input closes.

use std::io::Read;

use brook_broker::{BrokerConfig, EmbeddedBroker};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args_os()
        .nth(1)
        .ok_or("usage: brook-test-broker CONFIG.toml")?;
    let config = BrokerConfig::from_file(std::path::Path::new(&path))?;
    let broker = EmbeddedBroker::start(config)?;
    match broker.http_addr() {
        Some(http) => println!("{} {http}", broker.bootstrap()),
        None => println!("{}", broker.bootstrap()),
    }
    let mut rest = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut rest);
    broker.shutdown();
    Ok(())
}
