//! `brook user create|delete|list`: SCRAM users in a stopped broker's data directory. A
//! running broker's users are managed through its Kafka API (AlterUserScramCredentials, as
//! `kafka-configs --alter --add-config 'SCRAM-SHA-256=[password=...]'` sends).

use std::path::PathBuf;

use brook_broker::auth::scram::Mechanism;
use brook_broker::auth::users::{self, DEFAULT_ITERATIONS};
use brook_broker::config::DEFAULT_DATA_DIR;

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
        /// The stopped broker's data directory
        #[arg(long, value_name = "DIR", default_value = DEFAULT_DATA_DIR)]
        data_dir: PathBuf,
    },
    /// Delete a user's credentials
    Delete {
        #[arg(long)]
        name: String,
        #[arg(long, value_name = "DIR", default_value = DEFAULT_DATA_DIR)]
        data_dir: PathBuf,
    },
    /// List users and their SCRAM mechanisms
    List {
        #[arg(long, value_name = "DIR", default_value = DEFAULT_DATA_DIR)]
        data_dir: PathBuf,
        /// `table` or `json`
        #[arg(long, default_value = "table")]
        format: String,
    },
}

pub(crate) fn run(command: UserCommand) -> Result<(), Box<dyn std::error::Error>> {
    match command {
        UserCommand::Create {
            name,
            password,
            mechanism,
            iterations,
            data_dir,
        } => {
            let mechanisms = match mechanism.as_deref() {
                None => vec![Mechanism::Sha256, Mechanism::Sha512],
                Some(m) => vec![Mechanism::from_name(&m.to_ascii_uppercase())
                    .ok_or_else(|| format!("--mechanism {m:?}: SCRAM-SHA-256 or SCRAM-SHA-512"))?],
            };
            users::create_user(&data_dir, &name, &password, &mechanisms, iterations)?;
            let names: Vec<&str> = mechanisms.iter().map(|m| m.name()).collect();
            println!("user {name}: {} set", names.join(", "));
        }
        UserCommand::Delete { name, data_dir } => {
            users::delete_user(&data_dir, &name)?;
            println!("user {name} deleted");
        }
        UserCommand::List { data_dir, format } => {
            let listed = users::list_users(&data_dir)?;
            match format.as_str() {
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
                    for (user, creds) in &listed {
                        let mechs: Vec<String> = creds
                            .iter()
                            .map(|(m, i)| format!("{} ({i})", m.name()))
                            .collect();
                        println!("{user:<24} {}", mechs.join(", "));
                    }
                }
                other => return Err(format!("--format {other:?}: table or json").into()),
            }
        }
    }
    Ok(())
}
