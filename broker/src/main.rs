//! The `brook` binary: parse flags, load the config file, start the broker, stop on a signal.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use brook_broker::{Broker, BrokerConfig};
use clap::Parser;

mod commands;

/// Request frames are large, short-lived buffers. glibc maps and unmaps each of them, so every
/// produce request paid for fresh zeroed pages (about 14% of broker CPU under load);
/// mimalloc keeps freed memory for reuse.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Brook: a Kafka-compatible event log broker in one small binary. Without a command it
/// serves.
#[derive(Debug, Parser)]
#[command(name = "brook", version, about)]
struct Args {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Serve (what `brook` without a command does)
    Serve(ServeArgs),
    /// TLS certificates for development
    #[command(subcommand)]
    Tls(commands::tls::TlsCommand),
    /// SCRAM users, in a stopped broker's data directory or through a running broker
    #[command(subcommand)]
    User(commands::user::UserCommand),
    /// ACLs of a running broker
    #[command(subcommand)]
    Acl(commands::acl::AclCommand),
    /// Topics of a running broker
    #[command(subcommand)]
    Topic(commands::topic::TopicCommand),
    /// The cluster a broker belongs to: info, and health for scripts
    #[command(subcommand)]
    Cluster(commands::cluster::ClusterCommand),
    /// Send records to a topic: one per line from stdin or --file
    Produce(commands::produce::ProduceArgs),
    /// Print a topic's records (kcat-style template or JSON lines)
    Consume(commands::consume::ConsumeArgs),
    /// Consumer groups: list, describe with lag, seek, delete
    #[command(subcommand)]
    Group(commands::group::GroupCommand),
    /// Copy topics, records, group offsets and schemas to another cluster
    Mirror(commands::mirror::MirrorArgs),
    /// Schemas of a schema registry: list, get, register, check, delete
    #[command(subcommand)]
    Schema(commands::schemas::SchemaCommand),
}

/// The server's flags.
#[derive(Debug, clap::Args)]
struct ServeArgs {
    /// Address to listen on for Kafka clients [default: 127.0.0.1:9092]
    #[arg(long, value_name = "HOST:PORT")]
    listen: Option<SocketAddr>,
    /// Address announced to clients [default: the listen address]
    #[arg(long, value_name = "HOST:PORT")]
    advertise: Option<String>,
    /// Directory for logs and metadata [default: ./brook-data]
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Keep data in a temporary directory that is removed on exit
    #[arg(long)]
    ephemeral: bool,
    /// Address of the HTTP listener (schema registry, metrics, health), or `off`
    /// [default: 127.0.0.1:8081]
    #[arg(long, value_name = "HOST:PORT|off")]
    http_listen: Option<String>,
    /// TOML file with the same settings; flags given on the command line win
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Never fsync: acknowledged data survives a broker crash but not power loss (tests only)
    #[arg(long)]
    unsafe_disable_fsync: bool,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_target(false)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let args = Args::parse();
    let outcome = match args.command {
        None => serve(args.serve),
        Some(Command::Serve(serve_args)) => serve(serve_args),
        Some(Command::Tls(command)) => commands::tls::run(command),
        Some(Command::User(command)) => commands::user::run(command),
        Some(Command::Acl(command)) => commands::acl::run(command),
        Some(Command::Topic(command)) => commands::topic::run(command),
        Some(Command::Produce(args)) => commands::produce::run(args),
        Some(Command::Consume(args)) => commands::consume::run(args),
        Some(Command::Group(command)) => commands::group::run(command),
        Some(Command::Mirror(args)) => commands::mirror::run(args),
        Some(Command::Schema(command)) => match commands::schemas::run(command) {
            Ok(true) => Ok(()),
            Ok(false) => return ExitCode::FAILURE,
            Err(e) => Err(e),
        },
        Some(Command::Cluster(command)) => match commands::cluster::run(command) {
            Ok(true) => Ok(()),
            Ok(false) => return ExitCode::FAILURE,
            Err(e) => Err(e),
        },
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("brook: {e}");
            ExitCode::FAILURE
        }
    }
}

fn serve(args: ServeArgs) -> Result<(), Box<dyn std::error::Error>> {
    let mut config = match &args.config {
        Some(path) => BrokerConfig::from_file(path)?,
        None => BrokerConfig::default(),
    };
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    if let Some(advertise) = args.advertise {
        config.advertise = Some(advertise);
    }
    if let Some(dir) = args.data_dir {
        config.data_dir = dir;
    }
    if args.ephemeral {
        config.ephemeral = true;
    }
    if let Some(http) = args.http_listen {
        config.http_listen = http;
    }
    if args.unsafe_disable_fsync {
        config.unsafe_disable_fsync = true;
    }
    // For containers: the initial admin user from the environment.
    if let Ok(user) = std::env::var("BROOK_ADMIN_USER") {
        config.brook_admin_user = Some(user);
    }
    if let Ok(password) = std::env::var("BROOK_ADMIN_PASSWORD") {
        config.brook_admin_password = Some(password);
    }
    config.validate()?;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .thread_name("brook")
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        // Install the handlers before announcing the broker: a SIGTERM sent as soon as the
        // startup line appears must shut down cleanly, not kill the process.
        let mut stop = StopSignals::install()?;
        let ephemeral = config.ephemeral;
        let broker = Broker::start(config).await?;
        let data = std::fs::canonicalize(broker.data_dir())
            .unwrap_or_else(|_| broker.data_dir().to_owned());
        let data = if ephemeral {
            format!("{} (ephemeral: removed on exit)", data.display())
        } else {
            data.display().to_string()
        };
        let http = broker
            .http_addr()
            .map_or("off".to_string(), |a| format!("http://{a}"));
        let listening = match broker.listener_addrs() {
            [(_, one)] => one.to_string(),
            many => many
                .iter()
                .map(|(name, addr)| format!("{name}://{addr}"))
                .collect::<Vec<_>>()
                .join(", "),
        };
        tracing::info!(
            "brook {} listening on {}, HTTP {}, data in {}, cluster id {}",
            env!("CARGO_PKG_VERSION"),
            listening,
            http,
            data,
            broker.cluster_id()
        );
        loop {
            match stop.wait().await {
                Signal::Stop => break,
                Signal::Reload => match broker.reload_tls() {
                    Ok(()) => tracing::info!("SIGHUP: TLS files reloaded"),
                    Err(e) => tracing::warn!(error = %e, "SIGHUP: TLS files cannot be used; keeping the previous ones"),
                },
            }
        }
        tracing::info!("shutting down");
        broker.shutdown().await;
        Ok::<_, Box<dyn std::error::Error>>(())
    })?;
    Ok(())
}

/// SIGINT and SIGTERM, both meaning "shut down cleanly", and SIGHUP, "reload the TLS files".
struct StopSignals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

enum Signal {
    Stop,
    Reload,
}

impl StopSignals {
    fn install() -> std::io::Result<Self> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Self {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
            hup: signal(SignalKind::hangup())?,
        })
    }

    async fn wait(&mut self) -> Signal {
        tokio::select! {
            _ = self.term.recv() => Signal::Stop,
            _ = self.int.recv() => Signal::Stop,
            _ = self.hup.recv() => Signal::Reload,
        }
    }
}
