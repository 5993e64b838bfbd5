//! `brook tls init`: a development CA and a server certificate it signed, written as the PEM
//! files Brook's `ssl.*` settings and the clients' CA settings read.

use std::io::Write;
use std::path::{Path, PathBuf};

use brook_broker::auth::tls::{dev_certificates, dev_client_certificate};

/// What `brook tls init` writes, under `dir`.
pub(crate) const CA_FILE: &str = "ca.pem";
pub(crate) const CA_KEY_FILE: &str = "ca-key.pem";
pub(crate) const SERVER_FILE: &str = "server.pem";

#[derive(Debug, clap::Subcommand)]
pub(crate) enum TlsCommand {
    /// Create a development CA and a server certificate (PEM) for TLS listeners
    Init {
        /// Directory to write ca.pem, ca-key.pem and server.pem into
        #[arg(long, value_name = "DIR", default_value = "./brook-tls")]
        dir: PathBuf,
        /// Host names and IP addresses the server certificate is valid for (repeatable)
        #[arg(long = "host", value_name = "NAME|IP", default_values = ["localhost", "127.0.0.1"])]
        hosts: Vec<String>,
        /// Also write a client certificate for mutual TLS, with subject CN=NAME
        /// (client-NAME.pem: key and certificate)
        #[arg(long, value_name = "NAME")]
        client: Vec<String>,
        /// Replace files that already exist
        #[arg(long)]
        force: bool,
    },
}

pub(crate) fn run(command: TlsCommand) -> Result<(), Box<dyn std::error::Error>> {
    match command {
        TlsCommand::Init {
            dir,
            hosts,
            client,
            force,
        } => init(&dir, &hosts, &client, force),
    }
}

fn init(
    dir: &Path,
    hosts: &[String],
    clients: &[String],
    force: bool,
) -> Result<(), Box<dyn std::error::Error>> {
    let mut files: Vec<(String, String)> = Vec::new();
    let certs = dev_certificates(hosts)?;
    files.push((CA_FILE.into(), certs.ca_pem.clone()));
    files.push((CA_KEY_FILE.into(), certs.ca_key_pem.clone()));
    files.push((SERVER_FILE.into(), certs.server_pem.clone()));
    for name in clients {
        let (key, cert) = dev_client_certificate(&certs.ca_pem, &certs.ca_key_pem, name)?;
        files.push((format!("client-{name}.pem"), format!("{key}{cert}")));
    }
    if !force {
        if let Some((existing, _)) = files.iter().find(|(f, _)| dir.join(f).exists()) {
            return Err(format!(
                "{} exists; pass --force to replace the files in {}",
                dir.join(existing).display(),
                dir.display()
            )
            .into());
        }
    }
    std::fs::create_dir_all(dir)?;
    for (name, pem) in &files {
        // Only the CA certificate is public; the other files hold private keys.
        let mode = if name == CA_FILE { 0o644 } else { 0o600 };
        write_file(&dir.join(name), pem, mode)?;
    }
    let shown = |f: &str| dir.join(f).display().to_string();
    println!("wrote {} (hosts: {})", dir.display(), hosts.join(", "));
    println!();
    println!("# brook.toml: a TLS listener beside the plaintext one");
    println!("listeners = \"PLAINTEXT://127.0.0.1:9092,SSL://127.0.0.1:9093\"");
    println!("\"ssl.keystore.location\" = \"{}\"", shown(SERVER_FILE));
    if !clients.is_empty() {
        println!("\"ssl.truststore.location\" = \"{}\"", shown(CA_FILE));
        println!("\"ssl.client.auth\" = \"required\"");
    }
    println!();
    println!("# clients trust {}", shown(CA_FILE));
    Ok(())
}

/// Writes a file with permissions `mode` (0600 for private keys).
fn write_file(path: &Path, contents: &str, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(path)?;
    // An existing file keeps its permissions on open: set them.
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(mode))?;
    file.write_all(contents.as_bytes())?;
    file.sync_all()
}
