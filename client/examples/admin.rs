//! Creates a compacted topic, lists the topics and the consumer groups with their lag.
//!
//! `cargo run -p brook-client --example admin -- 127.0.0.1:9092`

use brook_client::{Admin, ClientConfig};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let brokers = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9092".into());
    let admin = Admin::new(ClientConfig::new(&brokers)).await?;
    let configs = [("cleanup.policy".to_string(), "compact".to_string())];
    match admin.create_topic("loan-snapshots", 3, &configs).await {
        Ok(()) => println!("created loan-snapshots"),
        // TOPIC_ALREADY_EXISTS: fine for an example run twice.
        Err(e) if e.code() == Some(36) => println!("loan-snapshots exists"),
        Err(e) => return Err(e.into()),
    }
    for topic in admin.list_topics().await? {
        println!(
            "topic {} ({} partitions)",
            topic.name,
            topic.partitions.len()
        );
    }
    for group in admin.list_groups().await? {
        let committed = admin.group_offsets(&group.group_id).await?;
        let mut lag = 0;
        for ((topic, partition), offset) in &committed {
            let ends = admin.end_offsets(topic).await?;
            lag += ends.get(partition).copied().unwrap_or(*offset) - offset;
        }
        println!("group {} ({}): lag {lag}", group.group_id, group.state);
    }
    Ok(())
}
