//! `brook consume TOPIC`: records printed as a kcat-style template or as JSON lines,
//! through `brook-client`'s consumer.
//!
//! With `--group G` it joins the group (the classic protocol, as kcat -G does): it reads
//! the partitions the group gives it from the group's committed offsets, and commits what it
//! printed when it stops.

use std::io::Write;

use base64::Engine as _;
use brook_client::{
    Consumer, ConsumerConfig, ConsumerRecord, GroupConfig, IsolationLevel, StartAt,
};

use super::connect::{runtime, BrokerArgs};

#[derive(Debug, clap::Args)]
pub(crate) struct ConsumeArgs {
    topic: String,
    /// Where to start: start, end, an offset, or @TIME (RFC 3339 or epoch milliseconds)
    #[arg(long, short = 'o', default_value = "start", allow_hyphen_values = true)]
    offset: String,
    /// Stop after N records
    #[arg(long, short = 'n')]
    num: Option<u64>,
    /// Stop at the end of every partition instead of waiting for more
    #[arg(long, short = 'e')]
    exit: bool,
    /// Only these partitions (repeatable; default all)
    #[arg(long, short = 'p')]
    partition: Vec<i32>,
    /// Join GROUP: read the partitions it assigns from its committed offsets, commit when
    /// done
    #[arg(long, short = 'g')]
    group: Option<String>,
    /// `json` (an object per line) or a template: %k key, %v value, %o offset,
    /// %p partition, %t timestamp, %T topic, %h headers, %K/%V key/value length, \n \t
    #[arg(long, short = 'F', default_value = "%v\\n")]
    format: String,
    /// Only records of committed transactions
    #[arg(long)]
    read_committed: bool,
    #[command(flatten)]
    broker: BrokerArgs,
}

fn parse_start(text: &str) -> Result<StartAt, String> {
    Ok(match text {
        "start" | "beginning" | "earliest" => StartAt::Beginning,
        "end" | "latest" => StartAt::End,
        t if t.starts_with('@') => {
            StartAt::Timestamp(brook_client::parse_time(&t[1..]).ok_or_else(|| {
                format!("--offset {t:?}: after @ an RFC 3339 time or epoch milliseconds")
            })?)
        }
        t => StartAt::Offset(
            t.parse::<i64>()
                .ok()
                .filter(|o| *o >= 0)
                .ok_or_else(|| format!("--offset {t:?}: start, end, an offset or @TIME"))?,
        ),
    })
}

pub(crate) fn run(args: ConsumeArgs) -> Result<(), Box<dyn std::error::Error>> {
    let start = parse_start(&args.offset)?;
    let template = (args.format != "json").then(|| unescape(&args.format));
    let client = args.broker.client_config("brook-cli")?;
    let config = ConsumerConfig {
        isolation: if args.read_committed {
            IsolationLevel::ReadCommitted
        } else {
            IsolationLevel::ReadUncommitted
        },
        reset: StartAt::Beginning,
        ..ConsumerConfig::new(client)
    };
    runtime()?.block_on(async {
        let mut consumer = Consumer::new(ConsumerConfig {
            reset: match start {
                StartAt::End => StartAt::End,
                _ => StartAt::Beginning,
            },
            ..config
        })
        .await?;
        match &args.group {
            Some(group) => {
                if !args.partition.is_empty() {
                    return Err("--partition and --group: the group assigns the partitions".into());
                }
                let group = GroupConfig {
                    auto_commit: false,
                    ..GroupConfig::new(group.clone())
                };
                consumer.subscribe(group, &[&args.topic]).await?;
            }
            None => {
                let partitions = (!args.partition.is_empty()).then_some(&args.partition[..]);
                consumer.assign(&args.topic, partitions, start).await?;
            }
        }
        let stdout = std::io::stdout();
        let mut out = std::io::BufWriter::with_capacity(1 << 16, stdout.lock());
        let mut count = 0u64;
        let limit = args.num.unwrap_or(u64::MAX);
        'reading: while count < limit {
            let records = consumer.poll().await?;
            for r in &records {
                match &template {
                    Some(t) => render(&mut out, t, r)?,
                    None => {
                        serde_json::to_writer(&mut out, &json(r))?;
                        out.write_all(b"\n")?;
                    }
                }
                count += 1;
                if count >= limit {
                    // The position of each partition is after its last printed record.
                    for later in records.iter().skip_while(|x| !std::ptr::eq(*x, r)).skip(1) {
                        let current = consumer.position(&later.topic, later.partition);
                        if current.is_none_or(|c| c > later.offset) {
                            consumer
                                .seek(&later.topic, later.partition, StartAt::Offset(later.offset))
                                .await?;
                        }
                    }
                    break 'reading;
                }
            }
            if records.is_empty() {
                out.flush()?;
            }
            if args.exit && consumer.at_end() {
                break;
            }
        }
        out.flush()?;
        if args.group.is_some() {
            consumer.commit().await?;
            consumer.close().await?;
        }
        Ok::<_, Box<dyn std::error::Error>>(())
    })
}

/// The escapes a shell will not turn into characters: `\n`, `\t`, `\\`.
fn unescape(template: &str) -> String {
    template
        .replace("\\n", "\n")
        .replace("\\t", "\t")
        .replace("\\\\", "\\")
}

fn render(out: &mut impl Write, template: &str, r: &ConsumerRecord) -> std::io::Result<()> {
    let mut chars = template.chars();
    let mut buf = [0u8; 4];
    while let Some(c) = chars.next() {
        if c != '%' {
            out.write_all(c.encode_utf8(&mut buf).as_bytes())?;
            continue;
        }
        match chars.next() {
            Some('k') => out.write_all(r.key.as_deref().unwrap_or_default())?,
            Some('v') => out.write_all(r.value.as_deref().unwrap_or_default())?,
            Some('K') => write!(out, "{}", r.key.as_ref().map_or(-1, |k| k.len() as i64))?,
            Some('V') => write!(out, "{}", r.value.as_ref().map_or(-1, |v| v.len() as i64))?,
            Some('o') => write!(out, "{}", r.offset)?,
            Some('p') => write!(out, "{}", r.partition)?,
            Some('t') => write!(out, "{}", r.timestamp)?,
            Some('T') => out.write_all(r.topic.as_bytes())?,
            Some('h') => {
                for (i, h) in r.headers.iter().enumerate() {
                    if i > 0 {
                        out.write_all(b",")?;
                    }
                    out.write_all(h.key.as_bytes())?;
                    out.write_all(b"=")?;
                    out.write_all(h.value.as_deref().unwrap_or_default())?;
                }
            }
            Some('%') => out.write_all(b"%")?,
            Some(other) => write!(out, "%{other}")?,
            None => out.write_all(b"%")?,
        }
    }
    Ok(())
}

/// Text when the bytes are UTF-8, otherwise `{"base64": ...}`.
fn bytes_json(b: Option<&[u8]>) -> serde_json::Value {
    match b {
        None => serde_json::Value::Null,
        Some(b) => match std::str::from_utf8(b) {
            Ok(s) => serde_json::Value::String(s.to_string()),
            Err(_) => serde_json::json!({
                "base64": base64::engine::general_purpose::STANDARD.encode(b)
            }),
        },
    }
}

fn json(r: &ConsumerRecord) -> serde_json::Value {
    serde_json::json!({
        "topic": r.topic,
        "partition": r.partition,
        "offset": r.offset,
        "timestamp": r.timestamp,
        "key": bytes_json(r.key.as_deref()),
        "value": bytes_json(r.value.as_deref()),
        "headers": r.headers.iter().map(|h| serde_json::json!({
            "key": h.key,
            "value": bytes_json(h.value.as_deref()),
        })).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_render_like_kcat() {
        let r = ConsumerRecord {
            topic: "t".into(),
            partition: 2,
            offset: 7,
            timestamp: 1_000,
            key: Some("k1".into()),
            value: Some("v1".into()),
            headers: vec![brook_client::Header {
                key: "a".into(),
                value: Some("b".into()),
            }],
        };
        let mut out = Vec::new();
        render(
            &mut out,
            &unescape("%T/%p@%o %t %k=%v %h %K %V 100%%\\n"),
            &r,
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "t/2@7 1000 k1=v1 a=b 2 2 100%\n"
        );
    }

    #[test]
    fn starts_parse() {
        assert_eq!(parse_start("start"), Ok(StartAt::Beginning));
        assert_eq!(parse_start("end"), Ok(StartAt::End));
        assert_eq!(parse_start("42"), Ok(StartAt::Offset(42)));
        assert_eq!(
            parse_start("@1970-01-01T00:00:01Z"),
            Ok(StartAt::Timestamp(1_000))
        );
        assert!(parse_start("-3").is_err());
        assert!(parse_start("@yesterday").is_err());
    }
}
