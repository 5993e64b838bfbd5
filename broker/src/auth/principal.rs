//! Who a connection is: the Kafka principal (`User:alice`) that ACLs name, and how a TLS
//! client certificate's subject becomes one (`ssl.principal.mapping.rules`).
//!
//! A subject is written as Java's `X500Principal.getName()` writes it (RFC 2253: the most
//! specific part first, `CN=client,OU=apps,O=Example`), because Kafka's mapping rules are
//! regular expressions over exactly that text, and users carry their rules over from Kafka.

use regex::Regex;
use x509_parser::prelude::{FromDer, X509Certificate, X509Name};

/// A connection's identity, as Kafka names it: `User:<name>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Principal {
    pub kind: String,
    pub name: String,
}

impl Principal {
    /// `User:ANONYMOUS`: a connection that did not authenticate (PLAINTEXT, or SSL without a
    /// client certificate).
    pub fn anonymous() -> Self {
        Self::user("ANONYMOUS")
    }

    pub fn user(name: &str) -> Self {
        Self {
            kind: "User".into(),
            name: name.into(),
        }
    }
}

impl std::fmt::Display for Principal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.kind, self.name)
    }
}

/// `ssl.principal.mapping.rules`, parsed.
#[derive(Debug, Clone)]
pub struct MappingRules {
    rules: Vec<Rule>,
    text: String,
}

#[derive(Debug, Clone)]
enum Rule {
    /// The whole subject is the name.
    Default,
    /// When `pattern` matches the whole subject, the name is `replacement` with `$n`
    /// replaced by the groups, then lower- or upper-cased.
    Rewrite {
        pattern: Regex,
        groups: usize,
        replacement: String,
        case: Option<Case>,
    },
}

#[derive(Debug, Clone, Copy)]
enum Case {
    Lower,
    Upper,
}

impl MappingRules {
    /// Parses Kafka's syntax: `DEFAULT` or `RULE:pattern/replacement/[L|U]`, separated by
    /// commas (commas inside a pattern belong to it; `\` escapes `/`).
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut rules = Vec::new();
        let mut rest = text.trim();
        while !rest.is_empty() {
            let (rule, after) = if let Some(after) = rest.strip_prefix("DEFAULT") {
                (Rule::Default, after)
            } else if let Some(after) = rest.strip_prefix("RULE:") {
                let (pattern, after) = until_slash(after)
                    .ok_or_else(|| format!("rule {rest:?} has no /replacement/"))?;
                let (replacement, after) = until_slash(after)
                    .ok_or_else(|| format!("rule {rest:?} does not end its replacement with /"))?;
                let (case, after) = match after.as_bytes().first() {
                    Some(b'L') => (Some(Case::Lower), &after[1..]),
                    Some(b'U') => (Some(Case::Upper), &after[1..]),
                    _ => (None, after),
                };
                let regex = Regex::new(&format!("^(?:{pattern})$"))
                    .map_err(|e| format!("rule pattern {pattern:?}: {e}"))?;
                let groups = regex.captures_len() - 1;
                let rule = Rule::Rewrite {
                    pattern: regex,
                    groups,
                    replacement,
                    case,
                };
                (rule, after)
            } else {
                return Err(format!(
                    "invalid rule {rest:?}: rules are DEFAULT or RULE:pattern/replacement/[L|U]"
                ));
            };
            rules.push(rule);
            let after = after.trim_start();
            rest = match after.strip_prefix(',') {
                Some(next) => next.trim_start(),
                None if after.is_empty() => after,
                None => return Err(format!("unexpected {after:?} after a rule")),
            };
        }
        Ok(Self {
            rules,
            text: text.to_string(),
        })
    }

    /// The user name for a certificate subject; `Err` when no rule applies (the TLS client is
    /// then refused, as Kafka refuses it).
    pub fn name_of(&self, subject: &str) -> Result<String, String> {
        for rule in &self.rules {
            match rule {
                Rule::Default => return Ok(subject.to_string()),
                Rule::Rewrite {
                    pattern,
                    groups,
                    replacement,
                    case,
                } => {
                    let Some(captures) = pattern.captures(subject) else {
                        continue;
                    };
                    let name = expand(replacement, *groups, |i| {
                        captures.get(i).map_or("", |m| m.as_str())
                    });
                    return Ok(match case {
                        Some(Case::Lower) => name.to_lowercase(),
                        Some(Case::Upper) => name.to_uppercase(),
                        None => name,
                    });
                }
            }
        }
        Err(format!(
            "No rules apply to {subject}, rules {}",
            self.text.trim()
        ))
    }
}

/// Text up to the next `/` not escaped by `\` (the escape is kept, for the regex), and what
/// follows that slash.
fn until_slash(text: &str) -> Option<(String, &str)> {
    let mut out = String::new();
    let mut chars = text.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => {
                out.push(c);
                if let Some((_, next)) = chars.next() {
                    out.push(next);
                }
            }
            '/' => return Some((out, &text[i + 1..])),
            _ => out.push(c),
        }
    }
    None
}

/// Java's replacement syntax: `$n` is group n (a number past the groups is shortened digit by
/// digit, as Kafka does, and left as text if still too large), `\x` is `x`.
fn expand<'a>(replacement: &str, groups: usize, group: impl Fn(usize) -> &'a str) -> String {
    let mut out = String::new();
    let mut chars = replacement.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(next) = chars.next() {
                    out.push(next);
                }
            }
            '$' if chars.peek().is_some_and(char::is_ascii_digit) => {
                let mut digits = String::new();
                while let Some(d) = chars.peek().filter(|d| d.is_ascii_digit()) {
                    digits.push(*d);
                    chars.next();
                }
                let mut index: usize = digits.parse().unwrap_or(usize::MAX);
                let mut used = digits.len();
                while index > groups && index >= 10 {
                    index /= 10;
                    used -= 1;
                }
                if index > groups {
                    out.push('$');
                    out.push_str(&digits);
                } else {
                    out.push_str(group(index));
                    out.push_str(&digits[used..]);
                }
            }
            _ => out.push(c),
        }
    }
    out
}

/// The subject of a DER certificate as RFC 2253 text (`CN=client,O=Example`).
pub fn certificate_subject(der: &[u8]) -> Result<String, String> {
    let (_, certificate) = X509Certificate::from_der(der)
        .map_err(|e| format!("the client certificate cannot be read: {e}"))?;
    Ok(rfc2253(certificate.subject()))
}

fn rfc2253(name: &X509Name<'_>) -> String {
    let rdns: Vec<String> = name
        .iter_rdn()
        .map(|rdn| {
            rdn.iter()
                .map(|attribute| {
                    let oid = attribute.attr_type().to_id_string();
                    let key = short_name(&oid);
                    match (key, attribute.as_str()) {
                        (Some(key), Ok(value)) => format!("{key}={}", escape(value)),
                        // Unknown attribute types and non-string values: the dotted OID and
                        // the value's DER in hex, as RFC 2253 writes them.
                        _ => format!("{oid}=#{}", hex(attribute.attr_value().data)),
                    }
                })
                .collect::<Vec<_>>()
                .join("+")
        })
        .collect();
    rdns.into_iter().rev().collect::<Vec<_>>().join(",")
}

/// The keywords Java's RFC 2253 output uses.
fn short_name(oid: &str) -> Option<&'static str> {
    Some(match oid {
        "2.5.4.3" => "CN",
        "2.5.4.6" => "C",
        "2.5.4.7" => "L",
        "2.5.4.8" => "ST",
        "2.5.4.10" => "O",
        "2.5.4.11" => "OU",
        "2.5.4.9" => "STREET",
        "0.9.2342.19200300.100.1.25" => "DC",
        "0.9.2342.19200300.100.1.1" => "UID",
        _ => return None,
    })
}

fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let last = value.chars().count().saturating_sub(1);
    for (i, c) in value.chars().enumerate() {
        let special = matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';')
            || (i == 0 && (c == '#' || c == ' '))
            || (i == last && c == ' ');
        if special {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_keeps_the_subject() {
        let rules = MappingRules::parse("DEFAULT").unwrap();
        assert_eq!(
            rules.name_of("CN=client,O=Example").unwrap(),
            "CN=client,O=Example"
        );
    }

    #[test]
    fn rules_rewrite_like_kafkas_documentation_examples() {
        let rules = MappingRules::parse(
            "RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/,\n RULE:^CN=(.*?),OU=(.*?),O=(.*?),L=(.*?),ST=(.*?),C=(.*?)$/$1@$2/L, RULE:^.*[Cc][Nn]=([a-zA-Z0-9.]*).*$/$1/U, DEFAULT",
        )
        .unwrap();
        assert_eq!(
            rules
                .name_of("CN=kafka-producer,OU=ServiceUsers,O=Unknown,L=Unknown")
                .unwrap(),
            "kafka-producer"
        );
        assert_eq!(
            rules
                .name_of("CN=Duke,OU=JavaSoft,O=Sun Microsystems,L=Palo Alto,ST=CA,C=US")
                .unwrap(),
            "duke@javasoft"
        );
        assert_eq!(rules.name_of("OU=x,cn=app.one,O=y").unwrap(), "APP.ONE");
        assert_eq!(rules.name_of("O=nobody").unwrap(), "O=nobody");
    }

    #[test]
    fn no_matching_rule_is_an_error_and_bad_rules_are_refused() {
        let rules = MappingRules::parse("RULE:^CN=(.*)$/$1/").unwrap();
        let err = rules.name_of("O=x").unwrap_err();
        assert!(err.starts_with("No rules apply to O=x"), "{err}");
        for bad in [
            "RULE:^CN=(.*)$",
            "RULE:^CN=(.*)$/$1",
            "NOPE",
            "DEFAULT x",
            "RULE:(/x/",
        ] {
            assert!(MappingRules::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn replacements_follow_javas_syntax() {
        let one = |_: usize| "g";
        assert_eq!(expand("$1@x", 1, one), "g@x");
        // $12 with one group is group 1 then "2"; $5 with one group stays text.
        assert_eq!(expand("$12", 1, one), "g2");
        assert_eq!(expand("$5", 1, one), "$5");
        assert_eq!(expand("\\$1", 1, one), "$1");
        let rules = MappingRules::parse("RULE:^CN=(.*)\\/x$/$1/").unwrap();
        assert_eq!(rules.name_of("CN=a/x").unwrap(), "a");
    }

    #[test]
    fn certificate_subjects_read_most_specific_first_with_escapes() {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        let mut dn = rcgen::DistinguishedName::new();
        dn.push(rcgen::DnType::CountryName, "US");
        dn.push(rcgen::DnType::OrganizationName, "Example, Inc.");
        dn.push(rcgen::DnType::OrganizationalUnitName, "apps");
        dn.push(rcgen::DnType::CommonName, "client-1");
        params.distinguished_name = dn;
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        assert_eq!(
            certificate_subject(cert.der()).unwrap(),
            "CN=client-1,OU=apps,O=Example\\, Inc.,C=US"
        );
        assert!(certificate_subject(b"not a certificate").is_err());
    }
}
