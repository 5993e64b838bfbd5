//! `brook topic create|list|describe|delete`: topics of a running broker, through
//! `brook-client`'s admin.

use std::time::Duration;

use brook_client::{Admin, TopicInfo};

use super::connect::BrokerArgs;

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
    /// Describe a topic: id, partitions, leaders
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

fn admin_call<T>(
    broker: &BrokerArgs,
    f: impl for<'a> FnOnce(
        &'a mut Admin,
    ) -> std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<T, brook_client::ClientError>> + 'a>,
    >,
) -> Result<T, Box<dyn std::error::Error>> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let connection = broker.connect().await?;
        let mut admin = Admin::from_connection(connection, Duration::from_secs(30));
        Ok(f(&mut admin).await?)
    })
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
            let topic = name.clone();
            admin_call(&broker, move |a| {
                Box::pin(async move {
                    a.create_topic(&topic, partitions.unwrap_or(-1), &configs)
                        .await
                })
            })?;
            println!("created topic {name}");
        }
        TopicCommand::List { format, broker } => {
            let topics = admin_call(&broker, |a| Box::pin(a.list_topics()))?;
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
            let topic = name.clone();
            let t = admin_call(&broker, move |a| {
                Box::pin(async move { a.describe_topic(&topic).await })
            })?;
            match format.as_str() {
                "json" => println!("{}", json(&t)),
                "table" => {
                    println!(
                        "name        {}\nid          {}\ninternal    {}",
                        t.name, t.id, t.internal
                    );
                    println!("PARTITION  LEADER");
                    for (p, leader) in &t.partitions {
                        println!("{p:>9}  {leader:>6}");
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
            let topic = name.clone();
            admin_call(&broker, move |a| {
                Box::pin(async move { a.alter_topic_configs(&topic, &changes).await })
            })?;
            println!("altered topic {name}");
        }
        TopicCommand::AddPartitions {
            name,
            count,
            broker,
        } => {
            let topic = name.clone();
            admin_call(&broker, move |a| {
                Box::pin(async move { a.add_partitions(&topic, count).await })
            })?;
            println!("topic {name} has {count} partitions");
        }
        TopicCommand::Trim {
            name,
            partition,
            offset,
            broker,
        } => {
            let topic = name.clone();
            let start = admin_call(&broker, move |a| {
                Box::pin(async move { a.delete_records(&topic, partition, offset).await })
            })?;
            println!("topic {name} partition {partition} now starts at offset {start}");
        }
        TopicCommand::Delete { name, broker } => {
            let topic = name.clone();
            admin_call(&broker, move |a| {
                Box::pin(async move { a.delete_topic(&topic).await })
            })?;
            println!("deleted topic {name}");
        }
    }
    Ok(())
}
