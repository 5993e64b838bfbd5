//! `brook group list|describe|seek|delete`: consumer groups of a running broker, through
//! `brook-client`'s admin (and its consumer, to tell how old the oldest unread record is).

use std::collections::BTreeMap;

use brook_client::{Admin, Consumer, ConsumerConfig, StartAt};

use super::connect::{runtime, BrokerArgs};

#[derive(Debug, clap::Subcommand)]
pub(crate) enum GroupCommand {
    /// List groups with their state
    List {
        /// `table` or `json`
        #[arg(long, default_value = "table")]
        format: String,
        #[command(flatten)]
        broker: BrokerArgs,
    },
    /// Members, assignments, and per partition the committed offset, the end and the lag
    /// (in records and in time)
    Describe {
        group: String,
        /// `table` or `json` (an object per partition)
        #[arg(long, default_value = "table")]
        format: String,
        #[command(flatten)]
        broker: BrokerArgs,
    },
    /// Move a group's committed offsets (the group must have no active members)
    Seek {
        group: String,
        /// The topic whose offsets move
        #[arg(long)]
        topic: String,
        /// Only these partitions (repeatable; default all)
        #[arg(long, short = 'p')]
        partition: Vec<i32>,
        /// start, end, an offset, or @TIME (RFC 3339 or epoch milliseconds)
        #[arg(long, allow_hyphen_values = true)]
        to: String,
        #[command(flatten)]
        broker: BrokerArgs,
    },
    /// Delete a group (it must have no active members) and its offsets
    Delete {
        group: String,
        #[command(flatten)]
        broker: BrokerArgs,
    },
}

/// One partition of a described group.
struct PartitionLag {
    topic: String,
    partition: i32,
    committed: Option<i64>,
    end: i64,
    lag: Option<i64>,
    /// Milliseconds since the oldest unread record was written.
    lag_ms: Option<i64>,
    member: Option<(String, String)>,
}

pub(crate) fn run(command: GroupCommand) -> Result<(), Box<dyn std::error::Error>> {
    match command {
        GroupCommand::List { format, broker } => {
            check_format(&format)?;
            let config = broker.client_config("brook-cli")?;
            let groups =
                runtime()?.block_on(async { Admin::new(config).await?.list_groups().await })?;
            if format == "json" {
                let list: Vec<serde_json::Value> = groups
                    .iter()
                    .map(|g| {
                        serde_json::json!({
                            "group": g.group_id,
                            "state": g.state,
                            "protocol_type": g.protocol_type,
                        })
                    })
                    .collect();
                println!("{}", serde_json::Value::Array(list));
            } else {
                println!("{:<40} {:<20} PROTOCOL TYPE", "GROUP", "STATE");
                for g in &groups {
                    println!("{:<40} {:<20} {}", g.group_id, g.state, g.protocol_type);
                }
            }
        }
        GroupCommand::Describe {
            group,
            format,
            broker,
        } => {
            check_format(&format)?;
            let config = broker.client_config("brook-cli")?;
            let (description, lags) = runtime()?.block_on(async {
                let admin = Admin::new(config.clone()).await?;
                let description = admin.describe_group(&group).await?;
                let committed = admin.group_offsets(&group).await?;
                let mut owners: BTreeMap<(String, i32), (String, String)> = BTreeMap::new();
                for m in &description.members {
                    for (topic, partitions) in &m.assignment {
                        for p in partitions {
                            owners.insert(
                                (topic.clone(), *p),
                                (m.member_id.clone(), m.client_id.clone()),
                            );
                        }
                    }
                }
                let mut keys: Vec<(String, i32)> = committed.keys().cloned().collect();
                keys.extend(owners.keys().cloned());
                keys.sort();
                keys.dedup();
                let mut ends: BTreeMap<String, BTreeMap<i32, i64>> = BTreeMap::new();
                for (topic, _) in &keys {
                    if !ends.contains_key(topic) {
                        ends.insert(topic.clone(), admin.end_offsets(topic).await?);
                    }
                }
                let mut lags: Vec<PartitionLag> = keys
                    .into_iter()
                    .map(|(topic, partition)| {
                        let end = ends
                            .get(&topic)
                            .and_then(|e| e.get(&partition))
                            .copied()
                            .unwrap_or(-1);
                        let committed = committed.get(&(topic.clone(), partition)).copied();
                        let member = owners.get(&(topic.clone(), partition)).cloned();
                        PartitionLag {
                            lag: committed.map(|c| (end - c).max(0)),
                            topic,
                            partition,
                            committed,
                            end,
                            lag_ms: None,
                            member,
                        }
                    })
                    .collect();
                lag_in_time(ConsumerConfig::new(config), &mut lags).await?;
                Ok::<_, brook_client::ClientError>((description, lags))
            })?;
            if format == "json" {
                let list: Vec<serde_json::Value> = lags
                    .iter()
                    .map(|l| {
                        serde_json::json!({
                            "group": group,
                            "state": description.state,
                            "topic": l.topic,
                            "partition": l.partition,
                            "committed": l.committed,
                            "end": l.end,
                            "lag": l.lag,
                            "lag_ms": l.lag_ms,
                            "member_id": l.member.as_ref().map(|m| &m.0),
                            "client_id": l.member.as_ref().map(|m| &m.1),
                        })
                    })
                    .collect();
                println!("{}", serde_json::Value::Array(list));
            } else {
                println!(
                    "group {}  state {}  protocol {}  members {}",
                    group,
                    description.state,
                    if description.protocol.is_empty() {
                        "-"
                    } else {
                        &description.protocol
                    },
                    description.members.len()
                );
                for m in &description.members {
                    println!(
                        "member {}  client {}  host {}",
                        m.member_id, m.client_id, m.host
                    );
                }
                println!(
                    "\n{:<30} {:>9} {:>12} {:>12} {:>10} {:>12}  MEMBER",
                    "TOPIC", "PARTITION", "COMMITTED", "END", "LAG", "LAG TIME"
                );
                for l in &lags {
                    println!(
                        "{:<30} {:>9} {:>12} {:>12} {:>10} {:>12}  {}",
                        l.topic,
                        l.partition,
                        l.committed.map_or("-".into(), |c| c.to_string()),
                        l.end,
                        l.lag.map_or("-".into(), |c| c.to_string()),
                        l.lag_ms.map_or("-".into(), human_ms),
                        l.member.as_ref().map_or("-", |m| m.1.as_str())
                    );
                }
            }
        }
        GroupCommand::Seek {
            group,
            topic,
            partition,
            to,
            broker,
        } => {
            let config = broker.client_config("brook-cli")?;
            let offsets = runtime()?.block_on(async {
                let admin = Admin::new(config).await?;
                let targets = match to.as_str() {
                    "start" | "beginning" | "earliest" => admin.list_offsets(&topic, -2).await?,
                    "end" | "latest" => admin.list_offsets(&topic, -1).await?,
                    t if t.starts_with('@') => {
                        let at = brook_client::parse_time(&t[1..]).ok_or_else(|| {
                            format!("--to {t:?}: after @ an RFC 3339 time or epoch milliseconds")
                        })?;
                        let ends = admin.list_offsets(&topic, -1).await?;
                        let mut found = admin.list_offsets(&topic, at).await?;
                        // No record that late: the end, as consumers reset.
                        for (p, o) in found.iter_mut() {
                            if *o < 0 {
                                *o = ends.get(p).copied().unwrap_or(0);
                            }
                        }
                        found
                    }
                    t => {
                        let offset =
                            t.parse::<i64>().ok().filter(|o| *o >= 0).ok_or_else(|| {
                                format!("--to {t:?}: start, end, an offset or @TIME")
                            })?;
                        admin
                            .end_offsets(&topic)
                            .await?
                            .into_keys()
                            .map(|p| (p, offset))
                            .collect()
                    }
                };
                let offsets: BTreeMap<(String, i32), i64> = targets
                    .into_iter()
                    .filter(|(p, _)| partition.is_empty() || partition.contains(p))
                    .map(|(p, o)| ((topic.clone(), p), o))
                    .collect();
                if offsets.is_empty() {
                    return Err(format!("{topic} has none of partitions {partition:?}").into());
                }
                admin.commit_group_offsets(&group, &offsets).await?;
                Ok::<_, Box<dyn std::error::Error>>(offsets)
            })?;
            for ((t, p), o) in &offsets {
                println!("group {group}: {t} partition {p} -> offset {o}");
            }
        }
        GroupCommand::Delete { group, broker } => {
            let config = broker.client_config("brook-cli")?;
            runtime()?.block_on(async { Admin::new(config).await?.delete_group(&group).await })?;
            println!("deleted group {group}");
        }
    }
    Ok(())
}

fn check_format(format: &str) -> Result<(), String> {
    match format {
        "table" | "json" => Ok(()),
        other => Err(format!("--format {other:?}: table or json")),
    }
}

/// Fills `lag_ms` of the lagging partitions: how long ago the first unread record (at the
/// committed offset) was written.
async fn lag_in_time(
    config: ConsumerConfig,
    lags: &mut [PartitionLag],
) -> Result<(), brook_client::ClientError> {
    let lagging: Vec<usize> = (0..lags.len())
        .filter(|&i| lags[i].lag.is_some_and(|l| l > 0))
        .collect();
    if lagging.is_empty() {
        return Ok(());
    }
    let mut consumer = Consumer::new(ConsumerConfig {
        max_wait: std::time::Duration::from_millis(100),
        partition_max_bytes: 64 * 1024,
        ..config
    })
    .await?;
    for &i in &lagging {
        let l = &lags[i];
        if let Some(c) = l.committed {
            consumer
                .seek(&l.topic, l.partition, StartAt::Offset(c))
                .await?;
        }
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    for _ in 0..10 {
        let records = consumer.poll().await?;
        for r in records {
            if let Some(&i) = lagging
                .iter()
                .find(|&&i| lags[i].topic == r.topic && lags[i].partition == r.partition)
            {
                if lags[i].lag_ms.is_none() {
                    lags[i].lag_ms = Some((now - r.timestamp).max(0));
                }
            }
        }
        if lagging.iter().all(|&i| lags[i].lag_ms.is_some()) {
            break;
        }
    }
    Ok(())
}

fn human_ms(ms: i64) -> String {
    match ms {
        ms if ms < 1_000 => format!("{ms}ms"),
        ms if ms < 60_000 => format!("{:.1}s", ms as f64 / 1_000.0),
        ms if ms < 3_600_000 => format!("{}m{}s", ms / 60_000, ms % 60_000 / 1_000),
        ms if ms < 86_400_000 => format!("{}h{}m", ms / 3_600_000, ms % 3_600_000 / 60_000),
        ms => format!("{}d{}h", ms / 86_400_000, ms % 86_400_000 / 3_600_000),
    }
}
