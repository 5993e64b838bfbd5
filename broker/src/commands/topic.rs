//! `brook topic create|list|describe|delete`: topics of a running broker, through
//! `brook-client`'s admin.

use brook_client::TopicInfo;

use super::connect::{with_admin, BrokerArgs};

#[derive(Debug, clap::Subcommand)]
pub(crate) enum TopicCommand {
    /// Create a topic
    Create {
        name: String,
        /// Partitions [default: the broker's num.partitions]
        #[arg(long, short = 'p')]
        partitions: Option<i32>,
        /// A topic config, e.g. `--config cleanup.policy=compact` (repeatable)
        #[arg(long = "config", short = 'c', value_name = "KEY=VALUE")]
        configs: Vec<String>,
        #[command(flatten)]
        broker: BrokerArgs,
    },
    /// List topics
    List {
        /// `table` or `json`
        #[arg(long, default_value = "table")]
        format: String,
        #[command(flatten)]
        broker: BrokerArgs,
    },
    /// Describe a topic: id, partitions, leaders, configs
    Describe {
        name: String,
        /// `table` or `json`
        #[arg(long, default_value = "table")]
        format: String,
        #[command(flatten)]
        broker: BrokerArgs,
    },
    /// Set (`--set k=v`) or remove (`--delete k`) topic configs; the others stay
    AlterConfig {
        name: String,
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
        #[arg(long = "delete", value_name = "KEY")]
        delete: Vec<String>,
        #[command(flatten)]
        broker: BrokerArgs,
    },
    /// Grow a topic to COUNT partitions
    AddPartitions {
        name: String,
        #[arg(long)]
        count: i32,
        #[command(flatten)]
        broker: BrokerArgs,
    },
    /// Delete a partition's records before an offset (DeleteRecords)
    Trim {
        name: String,
        #[arg(long, default_value_t = 0)]
        partition: i32,
        /// The first offset to keep (-1: delete every record)
        #[arg(long, allow_hyphen_values = true)]
        offset: i64,
        #[command(flatten)]
        broker: BrokerArgs,
    },
    /// Delete a topic
    Delete {
        name: String,
        #[command(flatten)]
        broker: BrokerArgs,
    },
}

fn json(t: &TopicInfo) -> serde_json::Value {
    serde_json::json!({
        "name": t.name,
        "id": t.id,
        "internal": t.internal,
        "partitions": t.partitions.iter().map(|(p, leader)| serde_json::json!({
            "partition": p,
            "leader": leader,
        })).collect::<Vec<_>>(),
    })
}

pub(crate) fn run(command: TopicCommand) -> Result<(), Box<dyn std::error::Error>> {
    match command {
        TopicCommand::Create {
            name,
            partitions,
            configs,
            broker,
        } => {
            let configs = configs
                .iter()
                .map(|c| {
                    c.split_once('=')
                        .map(|(k, v)| (k.trim().to_string(), v.to_string()))
                        .ok_or_else(|| format!("--config {c:?} is not KEY=VALUE"))
                })
                .collect::<Result<Vec<_>, _>>()?;
            with_admin(&broker, async |a| {
                a.create_topic(&name, partitions.unwrap_or(-1), &configs)
                    .await
            })?;
            println!("created topic {name}");
        }
        TopicCommand::List { format, broker } => {
            let topics = with_admin(&broker, async |a| a.list_topics().await)?;
            match format.as_str() {
                "json" => println!(
                    "{}",
                    serde_json::Value::Array(topics.iter().map(json).collect())
                ),
                "table" => {
                    println!("{:<40} {:>10}  INTERNAL", "NAME", "PARTITIONS");
                    for t in &topics {
                        println!("{:<40} {:>10}  {}", t.name, t.partitions.len(), t.internal);
                    }
                }
                other => return Err(format!("--format {other:?}: table or json").into()),
            }
        }
        TopicCommand::Describe {
            name,
            format,
            broker,
        } => {
            let (t, configs) = with_admin(&broker, async |a| {
                let t = a.describe_topic(&name).await?;
                let configs = a.describe_topic_configs(&name).await?;
                Ok((t, configs))
            })?;
            match format.as_str() {
                "json" => {
                    let mut value = json(&t);
                    value["configs"] = configs
                        .iter()
                        .map(|c| {
                            serde_json::json!({
                                "name": c.name,
                                "value": c.value,
                                "source": c.source.name(),
                            })
                        })
                        .collect();
                    println!("{value}");
                }
                "table" => {
                    println!(
                        "name        {}\nid          {}\ninternal    {}",
                        t.name, t.id, t.internal
                    );
                    println!("PARTITION  LEADER");
                    for (p, leader) in &t.partitions {
                        println!("{p:>9}  {leader:>6}");
                    }
                    // The configs that differ from the defaults.
                    let set: Vec<_> = configs
                        .iter()
                        .filter(|c| c.source != brook_client::ConfigSource::Default)
                        .collect();
                    if !set.is_empty() {
                        println!("\n{:<40} {:<30} SOURCE", "CONFIG", "VALUE");
                        for c in set {
                            println!(
                                "{:<40} {:<30} {}",
                                c.name,
                                c.value.as_deref().unwrap_or("(hidden)"),
                                c.source.name()
                            );
                        }
                    }
                }
                other => return Err(format!("--format {other:?}: table or json").into()),
            }
        }
        TopicCommand::AlterConfig {
            name,
            set,
            delete,
            broker,
        } => {
            let mut changes = set
                .iter()
                .map(|c| {
                    c.split_once('=')
                        .map(|(k, v)| (k.trim().to_string(), Some(v.to_string())))
                        .ok_or_else(|| format!("--set {c:?} is not KEY=VALUE"))
                })
                .collect::<Result<Vec<_>, _>>()?;
            changes.extend(delete.iter().map(|k| (k.clone(), None)));
            if changes.is_empty() {
                return Err("nothing to change: give --set KEY=VALUE or --delete KEY".into());
            }
            with_admin(&broker, async |a| {
                a.alter_topic_configs(&name, &changes).await
            })?;
            println!("altered topic {name}");
        }
        TopicCommand::AddPartitions {
            name,
            count,
            broker,
        } => {
            with_admin(&broker, async |a| a.add_partitions(&name, count).await)?;
            println!("topic {name} has {count} partitions");
        }
        TopicCommand::Trim {
            name,
            partition,
            offset,
            broker,
        } => {
            let start = with_admin(&broker, async |a| {
                a.delete_records(&name, partition, offset).await
            })?;
            println!("topic {name} partition {partition} now starts at offset {start}");
        }
        TopicCommand::Delete { name, broker } => {
            with_admin(&broker, async |a| a.delete_topic(&name).await)?;
            println!("deleted topic {name}");
        }
    }
    Ok(())
}
