//! `brook cluster info|health`: what a running broker (or cluster) says of itself; `health`
//! answers scripts with its exit code.

use brook_client::ClusterInfo;

use super::connect::{with_admin, BrokerArgs};

#[derive(Debug, clap::Subcommand)]
pub(crate) enum ClusterCommand {
    /// Cluster id, controller, brokers and topic count
    Info {
        /// `table` or `json`
        #[arg(long, default_value = "table")]
        format: String,
        #[command(flatten)]
        broker: BrokerArgs,
    },
    /// Healthy when the broker answers and every partition has a leader (exit code 0,
    /// otherwise 1)
    Health {
        /// `table` or `json`
        #[arg(long, default_value = "table")]
        format: String,
        #[command(flatten)]
        broker: BrokerArgs,
    },
}

fn fetch(broker: &BrokerArgs) -> Result<ClusterInfo, Box<dyn std::error::Error>> {
    with_admin(broker, async |a| a.cluster().await)
}

/// Runs `command`; `Ok(false)` when the cluster is unhealthy (exit code 1).
pub(crate) fn run(command: ClusterCommand) -> Result<bool, Box<dyn std::error::Error>> {
    match command {
        ClusterCommand::Info { format, broker } => {
            let c = fetch(&broker)?;
            match format.as_str() {
                "json" => println!(
                    "{}",
                    serde_json::json!({
                        "cluster_id": c.cluster_id,
                        "controller": c.controller,
                        "brokers": c.brokers.iter().map(|(id, host, port)| serde_json::json!({
                            "id": id, "host": host, "port": port,
                        })).collect::<Vec<_>>(),
                        "topics": c.topics.len(),
                    })
                ),
                "table" => {
                    println!("cluster id  {}", c.cluster_id.as_deref().unwrap_or("-"));
                    println!("controller  {}", c.controller);
                    println!("topics      {}", c.topics.len());
                    println!("BROKER  ADDRESS");
                    for (id, host, port) in &c.brokers {
                        println!("{id:>6}  {host}:{port}");
                    }
                }
                other => return Err(format!("--format {other:?}: table or json").into()),
            }
            Ok(true)
        }
        ClusterCommand::Health { format, broker } => {
            // An unreachable broker is unhealthy, said in one line, not an error trace.
            let (healthy, reason, leaderless) = match fetch(&broker) {
                Ok(c) => {
                    let leaderless = c.leaderless();
                    let healthy = c.controller >= 0 && leaderless.is_empty();
                    let reason = if healthy {
                        String::new()
                    } else if c.controller < 0 {
                        "no controller".to_string()
                    } else {
                        format!("{} partition(s) without a leader", leaderless.len())
                    };
                    (healthy, reason, leaderless.len())
                }
                Err(e) => (false, e.to_string(), 0),
            };
            match format.as_str() {
                "json" => println!(
                    "{}",
                    serde_json::json!({
                        "healthy": healthy,
                        "reason": reason,
                        "leaderless_partitions": leaderless,
                    })
                ),
                _ if healthy => println!("healthy"),
                _ => println!("unhealthy: {reason}"),
            }
            Ok(healthy)
        }
    }
}
