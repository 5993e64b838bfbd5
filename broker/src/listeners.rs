//! The Kafka listeners, configured with Kafka's settings: `listeners`
//! (`NAME://HOST:PORT,...`), `advertised.listeners` (what Metadata tells clients of each
//! listener) and `listener.security.protocol.map` (`NAME:PROTOCOL,...`). Without `listeners`,
//! `listen` and `advertise` are one PLAINTEXT listener.
//!
//! This module owns reading those settings into [`ListenerSpec`]s; binding is the server's,
//! and each connection knows the [`Advertised`] address of the listener it came through.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use crate::config::{parse_host_port, split_host_port, BrokerConfig};

/// Kafka's security protocols.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecurityProtocol {
    Plaintext,
    Ssl,
    SaslPlaintext,
    SaslSsl,
}

impl SecurityProtocol {
    fn parse(name: &str) -> Option<Self> {
        match name.to_ascii_uppercase().as_str() {
            "PLAINTEXT" => Some(Self::Plaintext),
            "SSL" => Some(Self::Ssl),
            "SASL_PLAINTEXT" => Some(Self::SaslPlaintext),
            "SASL_SSL" => Some(Self::SaslSsl),
            _ => None,
        }
    }

    /// Whether connections start with a TLS handshake.
    pub fn uses_tls(self) -> bool {
        matches!(self, Self::Ssl | Self::SaslSsl)
    }

    /// Whether clients authenticate with SASL before anything else is served.
    pub fn uses_sasl(self) -> bool {
        matches!(self, Self::SaslPlaintext | Self::SaslSsl)
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Plaintext => "PLAINTEXT",
            Self::Ssl => "SSL",
            Self::SaslPlaintext => "SASL_PLAINTEXT",
            Self::SaslSsl => "SASL_SSL",
        }
    }
}

/// One listener to bind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerSpec {
    /// The listener name (`PLAINTEXT`, `INTERNAL`, ...), upper case as Kafka keeps it.
    pub name: String,
    pub protocol: SecurityProtocol,
    /// Where to bind (an empty host in `listeners` means every interface).
    pub bind: SocketAddr,
    /// What clients of this listener are told to connect to; `None`: the bound address.
    pub advertised: Option<(String, u16)>,
}

/// The address Metadata, FindCoordinator and DescribeCluster give the clients of one
/// listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Advertised {
    pub listener: String,
    /// How the listener's connections are secured.
    pub protocol: SecurityProtocol,
    pub host: String,
    pub port: i32,
}

/// Reads the listener settings of `config` (see the module docs).
pub fn specs(config: &BrokerConfig) -> Result<Vec<ListenerSpec>, (&'static str, String)> {
    let Some(listeners) = config.listeners.as_deref().filter(|l| !l.trim().is_empty()) else {
        let advertised = match &config.advertise {
            Some(a) => Some(parse_host_port(a).map_err(|r| ("advertise", r))?),
            None => None,
        };
        return Ok(vec![ListenerSpec {
            name: "PLAINTEXT".into(),
            protocol: SecurityProtocol::Plaintext,
            bind: config.listen,
            advertised,
        }]);
    };
    let protocols = protocol_map(config.listener_security_protocol_map.as_deref())
        .map_err(|r| ("listener.security.protocol.map", r))?;
    let mut specs: Vec<ListenerSpec> = Vec::new();
    for (name, host, port) in endpoints(listeners).map_err(|r| ("listeners", r))? {
        let protocol = protocols
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, p)| *p)
            .ok_or_else(|| {
                (
                    "listeners",
                    format!("listener {name} has no security protocol in listener.security.protocol.map"),
                )
            })?;
        let ip = if host.is_empty() {
            IpAddr::V4(Ipv4Addr::UNSPECIFIED)
        } else {
            host.parse().map_err(|_| {
                (
                    "listeners",
                    format!("listener {name}: {host:?} is not an IP address (bind addresses are IPs; names go in advertised.listeners)"),
                )
            })?
        };
        if specs.iter().any(|s| s.name == name) {
            return Err(("listeners", format!("listener {name} is given twice")));
        }
        if port != 0 && specs.iter().any(|s| s.bind.port() == port) {
            return Err(("listeners", format!("port {port} is used by two listeners")));
        }
        specs.push(ListenerSpec {
            name,
            protocol,
            bind: SocketAddr::new(ip, port),
            advertised: None,
        });
    }
    if specs.is_empty() {
        return Err(("listeners", format!("{listeners:?} names no listener")));
    }
    if let Some(advertised) = config
        .advertised_listeners
        .as_deref()
        .filter(|a| !a.trim().is_empty())
    {
        for (name, host, port) in endpoints(advertised).map_err(|r| ("advertised.listeners", r))? {
            let spec = specs.iter_mut().find(|s| s.name == name).ok_or_else(|| {
                (
                    "advertised.listeners",
                    format!("{name} is not one of the listeners"),
                )
            })?;
            if host.is_empty() || host == "0.0.0.0" || host == "::" {
                return Err((
                    "advertised.listeners",
                    format!("listener {name}: a client cannot connect to {host:?}; advertise a host name or address"),
                ));
            }
            spec.advertised = Some((host, port));
        }
    }
    Ok(specs)
}

/// `NAME://HOST:PORT` entries, comma-separated (IPv6 hosts in brackets).
fn endpoints(list: &str) -> Result<Vec<(String, String, u16)>, String> {
    entries(list)
        .map(|entry| {
            let (name, rest) = entry
                .split_once("://")
                .ok_or_else(|| format!("{entry:?} is not NAME://HOST:PORT"))?;
            let name = name.trim().to_ascii_uppercase();
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            {
                return Err(format!("{entry:?}: {name:?} is not a listener name"));
            }
            let (host, port) = split_host_port(rest).map_err(|e| format!("{entry:?}: {e}"))?;
            Ok((name, host.to_string(), port))
        })
        .collect()
}

/// The comma-separated entries of a list setting, blanks left out.
fn entries(list: &str) -> impl Iterator<Item = &str> {
    list.split(',').map(str::trim).filter(|e| !e.is_empty())
}

/// `listener.security.protocol.map`, or Kafka's default (each protocol's name maps to itself).
fn protocol_map(map: Option<&str>) -> Result<Vec<(String, SecurityProtocol)>, String> {
    let map = map
        .filter(|m| !m.trim().is_empty())
        .unwrap_or("PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL");
    entries(map)
        .map(|entry| {
            let (name, protocol) = entry
                .split_once(':')
                .ok_or_else(|| format!("{entry:?} is not NAME:PROTOCOL"))?;
            let protocol = SecurityProtocol::parse(protocol.trim()).ok_or_else(|| {
                format!("{entry:?}: the security protocol must be PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL")
            })?;
            Ok((name.trim().to_ascii_uppercase(), protocol))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(listeners: &str, advertised: Option<&str>, map: Option<&str>) -> BrokerConfig {
        BrokerConfig {
            listeners: Some(listeners.into()),
            advertised_listeners: advertised.map(Into::into),
            listener_security_protocol_map: map.map(Into::into),
            ..BrokerConfig::default()
        }
    }

    #[test]
    fn listen_and_advertise_are_one_plaintext_listener() {
        let c = BrokerConfig {
            advertise: Some("broker.example:19092".into()),
            ..BrokerConfig::default()
        };
        let specs = specs(&c).unwrap();
        assert_eq!(specs.len(), 1);
        assert_eq!(specs[0].name, "PLAINTEXT");
        assert_eq!(specs[0].bind, c.listen);
        assert_eq!(specs[0].advertised, Some(("broker.example".into(), 19092)));
    }

    #[test]
    fn kafka_listener_settings_are_read_as_kafka_reads_them() {
        let c = config(
            "PLAINTEXT://127.0.0.1:9092, internal://:9093,EXTERNAL://[::1]:9094",
            Some("EXTERNAL://kafka.example.com:19094"),
            Some("PLAINTEXT:PLAINTEXT,INTERNAL:PLAINTEXT,EXTERNAL:SASL_SSL"),
        );
        let specs = specs(&c).unwrap();
        let names: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["PLAINTEXT", "INTERNAL", "EXTERNAL"]);
        assert_eq!(specs[1].bind, "0.0.0.0:9093".parse().unwrap());
        assert_eq!(specs[2].bind, "[::1]:9094".parse().unwrap());
        assert_eq!(specs[2].protocol, SecurityProtocol::SaslSsl);
        assert_eq!(specs[0].advertised, None);
        assert_eq!(
            specs[2].advertised,
            Some(("kafka.example.com".into(), 19094))
        );
        // Without a map, a listener named after a protocol uses it.
        let specs = specs_of("SSL://127.0.0.1:9095", None, None).unwrap();
        assert_eq!(specs[0].protocol, SecurityProtocol::Ssl);
    }

    fn specs_of(
        listeners: &str,
        advertised: Option<&str>,
        map: Option<&str>,
    ) -> Result<Vec<ListenerSpec>, (&'static str, String)> {
        specs(&config(listeners, advertised, map))
    }

    #[test]
    fn bad_listener_settings_say_what_is_wrong() {
        let cases = [
            (
                "INTERNAL://127.0.0.1:9092",
                None,
                None,
                "no security protocol",
            ),
            ("PLAINTEXT://127.0.0.1", None, None, "no port"),
            ("127.0.0.1:9092", None, None, "not NAME://HOST:PORT"),
            (
                "PLAINTEXT://localhost:9092",
                None,
                None,
                "not an IP address",
            ),
            (
                "PLAINTEXT://127.0.0.1:9092,PLAINTEXT://127.0.0.1:9093",
                None,
                None,
                "given twice",
            ),
            (
                "A://127.0.0.1:9092,B://127.0.0.1:9092",
                None,
                Some("A:PLAINTEXT,B:SSL"),
                "used by two",
            ),
            (
                "PLAINTEXT://127.0.0.1:9092",
                Some("OTHER://h:1"),
                None,
                "not one of the listeners",
            ),
            (
                "PLAINTEXT://127.0.0.1:9092",
                Some("PLAINTEXT://0.0.0.0:9092"),
                None,
                "cannot connect",
            ),
            (
                "A://127.0.0.1:9092",
                None,
                Some("A:TLS"),
                "must be PLAINTEXT",
            ),
            (" , ", None, None, "names no listener"),
        ];
        for (listeners, advertised, map, expected) in cases {
            let (_, reason) = specs_of(listeners, advertised, map).unwrap_err();
            assert!(reason.contains(expected), "{listeners}: {reason}");
        }
    }

    #[test]
    fn the_settings_come_from_the_config_file_under_kafkas_names() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("brook.toml");
        std::fs::write(
            &path,
            "listeners = \"A://127.0.0.1:0\"\n\"advertised.listeners\" = \"A://a.example:1\"\n\"listener.security.protocol.map\" = \"A:PLAINTEXT\"\n",
        )
        .unwrap();
        let c = BrokerConfig::from_file(&path).unwrap();
        c.validate().unwrap();
        let specs = specs(&c).unwrap();
        assert_eq!(specs[0].advertised, Some(("a.example".into(), 1)));
        // A TLS listener needs a key and certificate.
        let ssl = config("A://127.0.0.1:0", None, Some("A:SSL"));
        let err = ssl.validate().unwrap_err().to_string();
        assert!(err.contains("ssl.keystore.location"), "{err}");
    }
}
