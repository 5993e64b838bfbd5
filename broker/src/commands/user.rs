//! `brook user create|delete|list`: SCRAM users, in a stopped broker's data directory
//! (`--data-dir`, the default) or through a running broker (`--brokers`, with
//! AlterUserScramCredentials and DescribeUserScramCredentials as
//! `kafka-configs --alter --add-config 'SCRAM-SHA-256=[password=...]'` sends them: the
//! password is salted and hashed here, never sent).

use std::collections::BTreeMap;
use std::path::PathBuf;

use brook_broker::auth::scram::Mechanism;
use brook_broker::auth::users::{self, DEFAULT_ITERATIONS};
use brook_broker::config::DEFAULT_DATA_DIR;
use brook_protocol::kafka_protocol::messages::alter_user_scram_credentials_request::{
    ScramCredentialDeletion, ScramCredentialUpsertion,
};
use brook_protocol::kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, DescribeUserScramCredentialsRequest,
};
use brook_protocol::kafka_protocol::protocol::StrBytes;
use bytes::Bytes;

use super::connect::{response_error, send_one, BrokerArgs};

/// Where the users are: a data directory, or a running broker.
#[derive(Debug, clap::Args)]
pub(crate) struct Target {
    /// The stopped broker's data directory [default: ./brook-data unless --brokers]
    #[arg(long, value_name = "DIR", conflicts_with = "brokers")]
    data_dir: Option<PathBuf>,
    #[command(flatten)]
    broker: BrokerArgs,
}

impl Target {
    /// The data directory, unless a broker was named (flag or BROOK_BROKERS).
    fn data_dir(&self) -> Option<PathBuf> {
        match (&self.data_dir, &self.broker.brokers) {
            (Some(dir), _) => Some(dir.clone()),
            (None, Some(_)) => None,
            (None, None) => Some(PathBuf::from(DEFAULT_DATA_DIR)),
        }
    }
}

#[derive(Debug, clap::Subcommand)]
pub(crate) enum UserCommand {
    /// Create a user, or set its password
    Create {
        /// The user name (its principal is User:NAME)
        #[arg(long)]
        name: String,
        /// The password (stored only salted and hashed)
        #[arg(long)]
        password: String,
        /// SCRAM-SHA-256 or SCRAM-SHA-512 [default: both]
        #[arg(long, value_name = "MECHANISM")]
        mechanism: Option<String>,
        /// PBKDF2 iterations (4096 to 16384)
        #[arg(long, default_value_t = DEFAULT_ITERATIONS)]
        iterations: u32,
        #[command(flatten)]
        target: Target,
    },
    /// Delete a user's credentials
    Delete {
        #[arg(long)]
        name: String,
        #[command(flatten)]
        target: Target,
    },
    /// List users and their SCRAM mechanisms
    List {
        /// `table` or `json`
        #[arg(long, default_value = "table")]
        format: String,
        #[command(flatten)]
        target: Target,
    },
}

/// Kafka's mechanism numbers in the user-SCRAM APIs.
fn mechanism_id(m: Mechanism) -> i8 {
    match m {
        Mechanism::Sha512 => 2,
        _ => 1,
    }
}

fn mechanism_of(id: i8) -> Option<Mechanism> {
    match id {
        1 => Some(Mechanism::Sha256),
        2 => Some(Mechanism::Sha512),
        _ => None,
    }
}

pub(crate) fn run(command: UserCommand) -> Result<(), Box<dyn std::error::Error>> {
    match command {
        UserCommand::Create {
            name,
            password,
            mechanism,
            iterations,
            target,
        } => {
            let mechanisms = match mechanism.as_deref() {
                None => vec![Mechanism::Sha256, Mechanism::Sha512],
                Some(m) => vec![Mechanism::from_name(&m.to_ascii_uppercase())
                    .ok_or_else(|| format!("--mechanism {m:?}: SCRAM-SHA-256 or SCRAM-SHA-512"))?],
            };
            match target.data_dir() {
                Some(dir) => users::create_user(&dir, &name, &password, &mechanisms, iterations)?,
                None => {
                    if password.is_empty() {
                        return Err("the password must not be empty".into());
                    }
                    let upsertions = mechanisms
                        .iter()
                        .map(|&m| {
                            let salt = users::new_salt()?;
                            let salted = m.salted_password(password.as_bytes(), &salt, iterations);
                            Ok(ScramCredentialUpsertion::default()
                                .with_name(StrBytes::from_string(name.clone()))
                                .with_mechanism(mechanism_id(m))
                                .with_iterations(i32::try_from(iterations).unwrap_or(i32::MAX))
                                .with_salt(Bytes::from(salt))
                                .with_salted_password(Bytes::from(salted)))
                        })
                        .collect::<Result<Vec<_>, std::io::Error>>()?;
                    alter(&target.broker, upsertions, Vec::new())?;
                }
            }
            let names: Vec<&str> = mechanisms.iter().map(|m| m.name()).collect();
            println!("user {name}: {} set", names.join(", "));
        }
        UserCommand::Delete { name, target } => {
            match target.data_dir() {
                Some(dir) => users::delete_user(&dir, &name)?,
                None => {
                    let listed = list_remote(&target.broker)?;
                    let creds = listed
                        .get(&name)
                        .ok_or_else(|| format!("user {name:?} has no credentials"))?;
                    let deletions = creds
                        .iter()
                        .map(|(m, _)| {
                            ScramCredentialDeletion::default()
                                .with_name(StrBytes::from_string(name.clone()))
                                .with_mechanism(mechanism_id(*m))
                        })
                        .collect();
                    alter(&target.broker, Vec::new(), deletions)?;
                }
            }
            println!("user {name} deleted");
        }
        UserCommand::List { format, target } => {
            let listed = match target.data_dir() {
                Some(dir) => users::list_users(&dir)?,
                None => list_remote(&target.broker)?,
            };
            print_users(&listed, &format)?;
        }
    }
    Ok(())
}

fn alter(
    broker: &BrokerArgs,
    upsertions: Vec<ScramCredentialUpsertion>,
    deletions: Vec<ScramCredentialDeletion>,
) -> Result<(), Box<dyn std::error::Error>> {
    let request = AlterUserScramCredentialsRequest::default()
        .with_upsertions(upsertions)
        .with_deletions(deletions);
    let response = send_one(broker, &request)?;
    for r in &response.results {
        if r.error_code != 0 {
            return Err(format!(
                "user {}: {}",
                r.user.as_str(),
                r.error_message.as_deref().unwrap_or("refused")
            )
            .into());
        }
    }
    Ok(())
}

type Listed = BTreeMap<String, Vec<(Mechanism, u32)>>;

fn list_remote(broker: &BrokerArgs) -> Result<Listed, Box<dyn std::error::Error>> {
    let request = DescribeUserScramCredentialsRequest::default().with_users(None);
    let response = send_one(broker, &request)?;
    response_error(response.error_code, response.error_message.as_deref())?;
    Ok(response
        .results
        .iter()
        .filter(|r| r.error_code == 0)
        .map(|r| {
            let creds = r
                .credential_infos
                .iter()
                .filter_map(|i| {
                    Some((
                        mechanism_of(i.mechanism)?,
                        u32::try_from(i.iterations).ok()?,
                    ))
                })
                .collect();
            (r.user.to_string(), creds)
        })
        .collect())
}

fn print_users(listed: &Listed, format: &str) -> Result<(), Box<dyn std::error::Error>> {
    match format {
        "json" => {
            let users: Vec<serde_json::Value> = listed
                .iter()
                .map(|(user, creds)| {
                    serde_json::json!({
                        "user": user,
                        "credentials": creds.iter().map(|(m, i)| serde_json::json!({
                            "mechanism": m.name(),
                            "iterations": i,
                        })).collect::<Vec<_>>(),
                    })
                })
                .collect();
            println!("{}", serde_json::Value::Array(users));
        }
        "table" => {
            println!("{:<24} MECHANISMS", "USER");
            for (user, creds) in listed {
                let mechs: Vec<String> = creds
                    .iter()
                    .map(|(m, i)| format!("{} ({i})", m.name()))
                    .collect();
                println!("{user:<24} {}", mechs.join(", "));
            }
        }
        other => return Err(format!("--format {other:?}: table or json").into()),
    }
    Ok(())
}
