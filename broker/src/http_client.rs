//! The broker's own outgoing HTTP/1.1 requests (hyper over tokio; rustls with *ring* for
//! https): fetching an OAUTHBEARER JWKS, and `brook schema`'s calls to a schema registry.

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};

/// Where the operating systems keep their bundle of trusted CA certificates (Debian and
/// Ubuntu, Fedora and RHEL, Alpine and macOS).
const SYSTEM_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/cert.pem",
];

/// `http://host:port/path` or `https://...`: whether it is https, the `host:port` (with any
/// `user:password@` still in front) and the path (`/` when there is none).
pub fn split_url(url: &str) -> Result<(bool, &str, &str), String> {
    let (tls, rest) = match (url.strip_prefix("http://"), url.strip_prefix("https://")) {
        (Some(rest), _) => (false, rest),
        (None, Some(rest)) => (true, rest),
        _ => {
            return Err(format!(
                "{url}: the URL must start with http:// or https://"
            ))
        }
    };
    Ok(match rest.find('/') {
        Some(i) => (tls, &rest[..i], &rest[i..]),
        None => (tls, rest, "/"),
    })
}

/// A TLS client config trusting the PEM certificates of `ca`, or the system's bundle
/// without one.
#[allow(deprecated)] // the ring provider, as the broker uses: no C build of aws-lc
pub fn tls_config(ca: Option<&Path>) -> Result<Arc<rustls::ClientConfig>, String> {
    use rustls_pki_types::pem::PemObject;
    let path = match ca {
        Some(path) => path.to_path_buf(),
        None => SYSTEM_BUNDLES
            .iter()
            .map(Path::new)
            .find(|p| p.exists())
            .ok_or_else(|| {
                format!(
                    "no CA bundle of the system found (looked for {}): name the CA file",
                    SYSTEM_BUNDLES.join(", ")
                )
            })?
            .to_path_buf(),
    };
    let mut roots = rustls::RootCertStore::empty();
    let certs = rustls_pki_types::CertificateDer::pem_file_iter(&path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    for cert in certs {
        let cert = cert.map_err(|e| format!("{}: {e}", path.display()))?;
        // A system bundle may hold certificates webpki cannot use; the others still count.
        if let Err(e) = roots.add(cert) {
            if ca.is_some() {
                return Err(format!("{}: {e}", path.display()));
            }
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Sends `request` to `authority` (`host:port`), over TLS with `tls`: the status and the
/// body. `base` names the server in errors.
pub async fn send(
    base: &str,
    authority: &str,
    tls: Option<Arc<rustls::ClientConfig>>,
    request: hyper::Request<Full<Bytes>>,
) -> Result<(u16, Bytes), String> {
    let has_port = authority
        .rsplit_once(':')
        .is_some_and(|(_, port)| port.parse::<u16>().is_ok());
    let address = if has_port {
        authority.to_string()
    } else {
        format!("{authority}:{}", if tls.is_some() { 443 } else { 80 })
    };
    let stream = tokio::net::TcpStream::connect(&address)
        .await
        .map_err(|e| format!("cannot connect to {base}: {e}"))?;
    match tls {
        Some(config) => {
            let connector = tokio_rustls::TlsConnector::from(config);
            let host = if has_port {
                authority.rsplit_once(':').map_or(authority, |(h, _)| h)
            } else {
                authority
            };
            let name =
                rustls_pki_types::ServerName::try_from(host.trim_matches(['[', ']']).to_string())
                    .map_err(|e| format!("{base}: {e}"))?;
            let stream = connector
                .connect(name, stream)
                .await
                .map_err(|e| format!("{base}: TLS: {e}"))?;
            exchange(stream, request, base).await
        }
        None => exchange(stream, request, base).await,
    }
}

/// Sends `request` over `io` (HTTP/1.1): the status and the body.
async fn exchange<I>(
    io: I,
    request: hyper::Request<Full<Bytes>>,
    base: &str,
) -> Result<(u16, Bytes), String>
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let path = request.uri().to_string();
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(io))
            .await
            .map_err(|e| format!("{base}: {e}"))?;
    tokio::spawn(connection);
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| format!("{base}{path}: {e}"))?;
    let status = response.status().as_u16();
    let bytes = response
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("{base}{path}: {e}"))?
        .to_bytes();
    Ok((status, bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_into_scheme_authority_and_path() {
        assert_eq!(
            split_url("https://idp.example:8443/realms/x/certs").unwrap(),
            (true, "idp.example:8443", "/realms/x/certs")
        );
        assert_eq!(
            split_url("http://u:p@127.0.0.1:8081").unwrap(),
            (false, "u:p@127.0.0.1:8081", "/")
        );
        assert!(split_url("ftp://x").is_err());
    }
}
