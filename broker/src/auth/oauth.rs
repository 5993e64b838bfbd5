//! SASL/OAUTHBEARER (RFC 7628, Kafka's KIP-255): the client presents a JWT bearer token.
//!
//! Two ways to check it, as Kafka's:
//! - **unsecured** (development, Kafka's `OAuthBearerUnsecuredValidatorCallbackHandler`, the
//!   default when no JWKS is configured): the token's header says `"alg": "none"` and it has
//!   no signature; only its claims are checked;
//! - **signed**: `sasl.oauthbearer.jwks.endpoint.url` names a JWKS: an `https://` (or
//!   `http://`) URL, fetched in the background at start and every
//!   `sasl.oauthbearer.jwks.endpoint.refresh.ms` (failed fetches retried with a doubling
//!   backoff; a token naming a key id the set lacks asks for a fetch at once, at most once per
//!   backoff maximum, as Kafka's refreshing JWKS does), or a file (`file:` URL or path) read at
//!   start. RS256/RS384/RS512 and ES256/ES384 signatures are verified against its keys (by
//!   `kid` when the token names one), then the claims.
//!
//! Claims checked: `exp` (required, with `sasl.oauthbearer.clock.skew.seconds` of slack),
//! `iat` and `nbf` when present, the principal claim (`sasl.oauthbearer.sub.claim.name`,
//! default `sub`), `iss` and `aud` when expected values are configured. The session lasts no
//! longer than the token (KIP-368).

use base64::engine::general_purpose::URL_SAFE_NO_PAD as BASE64URL;
use base64::Engine as _;
use ring::signature;
use serde_json::Value;

use std::sync::Arc;
use std::time::Duration;

use crate::config::BrokerConfig;

/// How tokens are checked.
#[derive(Debug, Clone)]
pub(crate) struct Validator {
    keys: Keys,
    principal_claim: String,
    expected_issuer: Option<String>,
    expected_audience: Vec<String>,
    clock_skew_ms: i64,
}

/// Where the verification keys come from.
#[derive(Debug, Clone)]
enum Keys {
    /// None: unsecured tokens (no signature).
    Unsecured,
    /// A JWKS file, read at start.
    File(Vec<Jwk>),
    /// A JWKS URL, fetched and refreshed by a task.
    Endpoint(Arc<JwksEndpoint>),
}

/// A JWKS URL and the keys last fetched from it.
#[derive(Debug)]
struct JwksEndpoint {
    url: String,
    /// For `https://` URLs.
    tls: Option<Arc<rustls::ClientConfig>>,
    /// `None` until the first fetch succeeds.
    keys: parking_lot::RwLock<Option<Vec<Jwk>>>,
    /// Why the last fetch failed, for the refusals meanwhile.
    last_error: parking_lot::Mutex<Option<String>>,
    /// Asks the task for a fetch now (a token named a key the set lacks). Shared with the
    /// task, which holds the endpoint itself only while it fetches.
    wanted: Arc<tokio::sync::Notify>,
}

/// One public key of a JWKS.
#[derive(Debug, Clone)]
struct Jwk {
    kid: Option<String>,
    key: PublicKey,
}

#[derive(Debug, Clone)]
enum PublicKey {
    Rsa {
        n: Vec<u8>,
        e: Vec<u8>,
    },
    /// An uncompressed EC point (`04 || x || y`) and its curve's size in bytes.
    Ec {
        point: Vec<u8>,
        curve: Curve,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Curve {
    P256,
    P384,
}

/// A token that passed: who it names and how long it stays valid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Accepted {
    pub(crate) principal: String,
    /// Milliseconds until it expires.
    pub(crate) lifetime_ms: i64,
}

impl Validator {
    /// The validator the settings describe.
    /// A JWKS URL's fetches run on the current tokio runtime.
    pub(crate) fn from_config(config: &BrokerConfig) -> Result<Self, (&'static str, String)> {
        const URL: &str = "sasl.oauthbearer.jwks.endpoint.url";
        let keys = match config.sasl_oauthbearer_jwks_endpoint_url.as_deref() {
            None | Some("") => Keys::Unsecured,
            Some(url) if url.starts_with("http://") || url.starts_with("https://") => {
                let (https, _, _) = crate::http_client::split_url(url).map_err(|e| (URL, e))?;
                let tls = if https {
                    let ca = config.brook_oauthbearer_jwks_ca_location.as_deref();
                    Some(crate::http_client::tls_config(ca).map_err(|e| {
                        ("brook.oauthbearer.jwks.ca.location", format!("{url}: {e}"))
                    })?)
                } else {
                    None
                };
                let endpoint = Arc::new(JwksEndpoint {
                    url: url.to_string(),
                    tls,
                    keys: parking_lot::RwLock::new(None),
                    last_error: parking_lot::Mutex::new(None),
                    wanted: Arc::new(tokio::sync::Notify::new()),
                });
                let runtime = tokio::runtime::Handle::try_current()
                    .map_err(|_| (URL, format!("{url}: fetching it needs a tokio runtime")))?;
                runtime.spawn(refresh(
                    Arc::downgrade(&endpoint),
                    Refresh {
                        every: Duration::from_millis(
                            config.sasl_oauthbearer_jwks_endpoint_refresh_ms,
                        ),
                        backoff: Duration::from_millis(
                            config.sasl_oauthbearer_jwks_endpoint_retry_backoff_ms,
                        ),
                        backoff_max: Duration::from_millis(
                            config.sasl_oauthbearer_jwks_endpoint_retry_backoff_max_ms,
                        ),
                    },
                ));
                Keys::Endpoint(endpoint)
            }
            Some(url) => {
                let path = url.strip_prefix("file://").unwrap_or(url);
                let text =
                    std::fs::read_to_string(path).map_err(|e| (URL, format!("{path}: {e}")))?;
                Keys::File(parse_jwks(&text).map_err(|e| (URL, format!("{path}: {e}")))?)
            }
        };
        Ok(Self {
            keys,
            principal_claim: config.sasl_oauthbearer_sub_claim_name.clone(),
            expected_issuer: config
                .sasl_oauthbearer_expected_issuer
                .clone()
                .filter(|i| !i.is_empty()),
            expected_audience: config
                .sasl_oauthbearer_expected_audience
                .as_deref()
                .unwrap_or("")
                .split(',')
                .map(str::trim)
                .filter(|a| !a.is_empty())
                .map(String::from)
                .collect(),
            clock_skew_ms: config
                .sasl_oauthbearer_clock_skew_seconds
                .saturating_mul(1000),
        })
    }

    /// Whether tokens are accepted without a signature.
    pub(crate) fn is_unsecured(&self) -> bool {
        matches!(self.keys, Keys::Unsecured)
    }

    /// Checks `token` at `now_ms`.
    pub(crate) fn validate(&self, token: &str, now_ms: i64) -> Result<Accepted, String> {
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(sig), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err("the token is not a JWT (three dot-separated parts)".into());
        };
        let json = |part: &str, what: &str| -> Result<Value, String> {
            let bytes = BASE64URL
                .decode(part)
                .map_err(|_| format!("the token's {what} is not base64url"))?;
            serde_json::from_slice(&bytes).map_err(|_| format!("the token's {what} is not JSON"))
        };
        let header_json = json(header, "header")?;
        let claims = json(payload, "payload")?;
        let alg = header_json["alg"].as_str().unwrap_or("");
        let verify_with = |keys: &[Jwk]| -> Result<(), String> {
            let signature = BASE64URL
                .decode(sig)
                .map_err(|_| "the token's signature is not base64url".to_string())?;
            let signing_input = &token[..header.len() + 1 + payload.len()];
            let kid = header_json["kid"].as_str();
            verify(keys, alg, kid, signing_input.as_bytes(), &signature)
        };
        match &self.keys {
            Keys::Unsecured => {
                if alg != "none" || !sig.is_empty() {
                    return Err(format!(
                        "only unsecured tokens (alg none, no signature) are accepted without sasl.oauthbearer.jwks.endpoint.url, not alg {alg:?}"
                    ));
                }
            }
            Keys::File(keys) => verify_with(keys)?,
            Keys::Endpoint(endpoint) => {
                let keys = endpoint.keys.read();
                let Some(keys) = keys.as_deref() else {
                    let why = endpoint.last_error.lock().clone();
                    return Err(format!(
                        "the JWKS of {} has not been fetched yet{}",
                        endpoint.url,
                        why.map(|w| format!(" ({w})")).unwrap_or_default()
                    ));
                };
                if let Some(kid) = header_json["kid"].as_str() {
                    if !keys.iter().any(|k| k.kid.as_deref() == Some(kid)) {
                        // The identity provider may have rotated its keys: fetch again.
                        endpoint.wanted.notify_one();
                    }
                }
                verify_with(keys)?;
            }
        }
        self.check_claims(&claims, now_ms)
    }

    fn check_claims(&self, claims: &Value, now_ms: i64) -> Result<Accepted, String> {
        let time = |name: &str| -> Result<Option<i64>, String> {
            match &claims[name] {
                Value::Null => Ok(None),
                Value::Number(n) => n
                    .as_f64()
                    .map(|secs| Some((secs * 1000.0) as i64))
                    .ok_or_else(|| format!("the {name} claim is not a number")),
                _ => Err(format!("the {name} claim is not a number")),
            }
        };
        let exp = time("exp")?.ok_or("the token has no exp claim")?;
        if exp + self.clock_skew_ms <= now_ms {
            return Err("the token expired".into());
        }
        if let Some(iat) = time("iat")? {
            if iat > now_ms + self.clock_skew_ms {
                return Err("the token was issued in the future (iat)".into());
            }
        }
        if let Some(nbf) = time("nbf")? {
            if nbf > now_ms + self.clock_skew_ms {
                return Err("the token is not valid yet (nbf)".into());
            }
        }
        if let Some(issuer) = &self.expected_issuer {
            if claims["iss"].as_str() != Some(issuer.as_str()) {
                return Err(format!("the token's issuer is not {issuer:?}"));
            }
        }
        if !self.expected_audience.is_empty() {
            let audience: Vec<&str> = match &claims["aud"] {
                Value::String(a) => vec![a.as_str()],
                Value::Array(items) => items.iter().filter_map(Value::as_str).collect(),
                _ => Vec::new(),
            };
            if !audience
                .iter()
                .any(|a| self.expected_audience.iter().any(|e| e == a))
            {
                return Err("the token is not for this audience (aud)".into());
            }
        }
        let principal = claims[self.principal_claim.as_str()]
            .as_str()
            .filter(|p| !p.trim().is_empty())
            .ok_or_else(|| format!("the token has no {} claim", self.principal_claim))?;
        Ok(Accepted {
            principal: principal.to_string(),
            lifetime_ms: exp - now_ms,
        })
    }
}

/// How a JWKS URL is fetched again.
struct Refresh {
    every: Duration,
    backoff: Duration,
    backoff_max: Duration,
}

/// Fetches `endpoint`'s JWKS now, then every `refresh.every` (sooner when asked, at most
/// once per `backoff_max`); failures are retried with a doubling backoff. Ends when the
/// validator is dropped.
async fn refresh(endpoint: std::sync::Weak<JwksEndpoint>, refresh: Refresh) {
    let mut backoff = refresh.backoff;
    loop {
        let Some(e) = endpoint.upgrade() else {
            return;
        };
        let (wait, asked_after) = match e.fetch().await {
            Ok(keys) => {
                tracing::info!(url = %e.url, keys = keys.len(), "fetched the OAUTHBEARER JWKS");
                *e.keys.write() = Some(keys);
                *e.last_error.lock() = None;
                backoff = refresh.backoff;
                (refresh.every, refresh.backoff_max)
            }
            Err(why) => {
                tracing::warn!(url = %e.url, error = %why, "fetching the OAUTHBEARER JWKS failed; retrying");
                *e.last_error.lock() = Some(why);
                let wait = backoff;
                backoff = (backoff * 2).min(refresh.backoff_max);
                (wait, wait)
            }
        };
        // Requests for a fetch count only after a pause, so bad tokens cannot flood the
        // identity provider. The endpoint is let go meanwhile: once the validator is
        // dropped, the next round ends the task.
        let wanted = Arc::clone(&e.wanted);
        drop(e);
        let asked = async {
            tokio::time::sleep(asked_after).await;
            wanted.notified().await;
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = asked => {}
        }
    }
}

impl JwksEndpoint {
    async fn fetch(&self) -> Result<Vec<Jwk>, String> {
        let (_, authority, path) = crate::http_client::split_url(&self.url)?;
        let request = hyper::Request::builder()
            .method("GET")
            .uri(path)
            .header("host", authority)
            .header("accept", "application/json")
            .body(http_body_util::Full::new(bytes::Bytes::new()))
            .map_err(|e| e.to_string())?;
        let (status, body) = tokio::time::timeout(
            Duration::from_secs(30),
            crate::http_client::send(&self.url, authority, self.tls.clone(), request),
        )
        .await
        .map_err(|_| "no answer within 30 s".to_string())??;
        if status != 200 {
            return Err(format!("HTTP status {status}"));
        }
        let text = std::str::from_utf8(&body).map_err(|_| "the JWKS is not UTF-8".to_string())?;
        parse_jwks(text)
    }
}

fn parse_jwks(text: &str) -> Result<Vec<Jwk>, String> {
    let doc: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let b64 = |v: &Value, what: &str| -> Result<Vec<u8>, String> {
        let s = v.as_str().ok_or_else(|| format!("a key has no {what}"))?;
        BASE64URL
            .decode(s.trim_end_matches('='))
            .map_err(|_| format!("a key's {what} is not base64url"))
    };
    let mut keys = Vec::new();
    for k in doc["keys"].as_array().ok_or("no \"keys\" array")? {
        if k["use"].as_str().is_some_and(|u| u != "sig") {
            continue;
        }
        let key = match k["kty"].as_str() {
            Some("RSA") => PublicKey::Rsa {
                n: b64(&k["n"], "n")?,
                e: b64(&k["e"], "e")?,
            },
            Some("EC") => {
                let curve = match k["crv"].as_str() {
                    Some("P-256") => Curve::P256,
                    Some("P-384") => Curve::P384,
                    other => return Err(format!("unsupported EC curve {other:?}")),
                };
                let mut point = vec![4u8];
                point.extend(b64(&k["x"], "x")?);
                point.extend(b64(&k["y"], "y")?);
                PublicKey::Ec { point, curve }
            }
            // Keys of other types (oct, OKP) cannot verify the algorithms served: skipped.
            _ => continue,
        };
        keys.push(Jwk {
            kid: k["kid"].as_str().map(String::from),
            key,
        });
    }
    if keys.is_empty() {
        return Err("no RSA or EC signing key".into());
    }
    Ok(keys)
}

fn verify(
    keys: &[Jwk],
    alg: &str,
    kid: Option<&str>,
    message: &[u8],
    sig: &[u8],
) -> Result<(), String> {
    let candidates = keys.iter().filter(|k| match (kid, &k.kid) {
        (Some(wanted), Some(have)) => wanted == have,
        _ => true,
    });
    for jwk in candidates {
        let verified = match (&jwk.key, alg) {
            (PublicKey::Rsa { n, e }, "RS256" | "RS384" | "RS512") => {
                let params = match alg {
                    "RS256" => &signature::RSA_PKCS1_2048_8192_SHA256,
                    "RS384" => &signature::RSA_PKCS1_2048_8192_SHA384,
                    _ => &signature::RSA_PKCS1_2048_8192_SHA512,
                };
                signature::RsaPublicKeyComponents { n, e }
                    .verify(params, message, sig)
                    .is_ok()
            }
            (PublicKey::Ec { point, curve }, "ES256" | "ES384") => {
                let params = match (curve, alg) {
                    (Curve::P256, "ES256") => &signature::ECDSA_P256_SHA256_FIXED,
                    (Curve::P384, "ES384") => &signature::ECDSA_P384_SHA384_FIXED,
                    _ => continue,
                };
                signature::UnparsedPublicKey::new(params, point)
                    .verify(message, sig)
                    .is_ok()
            }
            _ => false,
        };
        if verified {
            return Ok(());
        }
    }
    Err(format!(
        "the token's signature ({alg}) is not from a key of the JWKS"
    ))
}

/// The token of a client's first OAUTHBEARER message (RFC 7628:
/// `gs2-header \x01 auth=Bearer <token> \x01 [key=value \x01]* \x01`), and its authorization
/// id if any.
pub(crate) fn client_token(message: &[u8]) -> Result<(Option<String>, String), String> {
    let text = std::str::from_utf8(message).map_err(|_| "the message is not UTF-8".to_string())?;
    let (gs2, rest) = text
        .split_once('\x01')
        .ok_or("the message has no key/value part")?;
    let authzid = match gs2.split(',').collect::<Vec<_>>().as_slice() {
        ["n", "", ""] => None,
        ["n", a, ""] => Some(
            a.strip_prefix("a=")
                .ok_or("the gs2 header's authorization id is malformed")?
                .to_string(),
        ),
        _ => return Err("the gs2 header must be n,, or n,a=<user>, (no channel binding)".into()),
    };
    let token = rest
        .split('\x01')
        .find_map(|kv| kv.strip_prefix("auth="))
        .ok_or("the message has no auth=Bearer value")?;
    let (scheme, token) = token
        .split_once(' ')
        .ok_or("the auth value is not \"Bearer <token>\"")?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err("the auth value is not \"Bearer <token>\"".into());
    }
    Ok((authzid, token.trim().to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unsecured() -> Validator {
        Validator::from_config(&BrokerConfig::default()).unwrap()
    }

    fn jwt(header: &str, claims: &str, sig: &str) -> String {
        format!(
            "{}.{}.{sig}",
            BASE64URL.encode(header),
            BASE64URL.encode(claims)
        )
    }

    const NOW_MS: i64 = 1_700_000_000_000;

    #[test]
    fn unsecured_tokens_are_checked_for_their_claims() {
        let v = unsecured();
        assert!(v.is_unsecured());
        let good = jwt(
            r#"{"alg":"none"}"#,
            r#"{"sub":"alice","iat":1699999990,"exp":1700000100}"#,
            "",
        );
        assert_eq!(
            v.validate(&good, NOW_MS).unwrap(),
            Accepted {
                principal: "alice".into(),
                lifetime_ms: 100_000
            }
        );
        for (token, why) in [
            (
                jwt(r#"{"alg":"none"}"#, r#"{"sub":"a","exp":1699999000}"#, ""),
                "expired",
            ),
            (jwt(r#"{"alg":"none"}"#, r#"{"sub":"a"}"#, ""), "no exp"),
            (
                jwt(r#"{"alg":"none"}"#, r#"{"exp":1700000100}"#, ""),
                "no sub",
            ),
            (
                jwt(
                    r#"{"alg":"none"}"#,
                    r#"{"sub":"a","exp":1700000100,"iat":1700001000}"#,
                    "",
                ),
                "future",
            ),
            (
                jwt(
                    r#"{"alg":"RS256"}"#,
                    r#"{"sub":"a","exp":1700000100}"#,
                    "AAAA",
                ),
                "unsecured",
            ),
            ("not-a-jwt".to_string(), "three"),
        ] {
            let err = v.validate(&token, NOW_MS).unwrap_err();
            assert!(err.contains(why), "{why}: {err}");
        }
        // Within the clock skew (30 s), a just-expired token passes.
        let skewed = jwt(r#"{"alg":"none"}"#, r#"{"sub":"a","exp":1699999980}"#, "");
        assert!(v.validate(&skewed, NOW_MS).is_ok());
    }

    /// RFC 7515, appendix A.2: an RS256 JWS and its key.
    const RFC7515_A2_JWK: &str = r#"{"keys":[{"kty":"RSA","n":"ofgWCuLjybRlzo0tZWJjNiuSfb4p4fAkd_wWJcyQoTbji9k0l8W26mPddxHmfHQp-Vaw-4qPCJrcS2mJPMEzP1Pt0Bm4d4QlL-yRT-SFd2lZS-pCgNMsD1W_YpRPEwOWvG6b32690r2jZ47soMZo9wGzjb_7OMg0LOL-bSf63kpaSHSXndS5z5rexMdbBYUsLA9e-KXBdQOS-UTo7WTBEMa2R2CapHg665xsmtdVMTBQY4uDZlxvb3qCo5ZwKh9kG4LT6_I5IhlJH7aGhyxXFvUK-DWNmoudF8NAco9_h9iaGNj8q2ethFkMLs91kzk2PAcDTW9gb54h4FRWyuXpoQ","e":"AQAB"}]}"#;
    const RFC7515_A2_JWS: &str = "eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.cC4hiUPoj9Eetdgtv3hF80EGrhuB__dzERat0XF9g2VtQgr9PJbu3XOiZj5RZmh7AAuHIm4Bh-0Qc_lF5YKt_O8W2Fp5jujGbds9uJdbF9CUAr7t1dnZcAcQjbKBYNX4BAynRFdiuB--f_nZLgrnbyTyWzO75vRK5h6xBArLIARNPvkSjtQBMHlb1L07Qe7K0GarZRmB_eSN9383LcOLn6_dO--xi12jzDwusC-eOkHWEsqtFZESc6BfI7noOPqvhJ1phCnvWh6IeYI2w9QOYEUipUTI8np6LbgGY9Fs98rqVt5AXLIhWkWywlVmtVrBp0igcN_IoypGlUPQGe77Rw";

    fn signed(jwks: &str, issuer: Option<&str>, audience: Option<&str>) -> Validator {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jwks.json");
        std::fs::write(&path, jwks).unwrap();
        let config = BrokerConfig {
            sasl_oauthbearer_jwks_endpoint_url: Some(format!("file://{}", path.display())),
            sasl_oauthbearer_sub_claim_name: "iss".into(),
            sasl_oauthbearer_expected_issuer: issuer.map(Into::into),
            sasl_oauthbearer_expected_audience: audience.map(Into::into),
            ..BrokerConfig::default()
        };
        Validator::from_config(&config).unwrap()
    }

    #[test]
    fn rs256_signatures_are_verified_against_the_jwks() {
        // Before the example's expiry (2011-03-22).
        let now = 1_300_819_000_000;
        let v = signed(RFC7515_A2_JWK, Some("joe"), None);
        assert_eq!(v.validate(RFC7515_A2_JWS, now).unwrap().principal, "joe");
        // One character of the payload changed: the signature no longer matches.
        let altered = RFC7515_A2_JWS.replacen("eyJpc3MiOiJqb2Ui", "eyJpc3MiOiJqb2Yi", 1);
        assert!(v.validate(&altered, now).unwrap_err().contains("signature"));
        // Unsecured tokens are refused once a JWKS is configured.
        let none = jwt(r#"{"alg":"none"}"#, r#"{"iss":"joe","exp":1300819380}"#, "");
        assert!(v.validate(&none, now).is_err());
        // Issuer and audience expectations.
        assert!(signed(RFC7515_A2_JWK, Some("ann"), None)
            .validate(RFC7515_A2_JWS, now)
            .unwrap_err()
            .contains("issuer"));
        assert!(signed(RFC7515_A2_JWK, None, Some("kafka"))
            .validate(RFC7515_A2_JWS, now)
            .unwrap_err()
            .contains("audience"));
    }

    #[test]
    fn es256_signatures_made_here_are_verified() {
        use ring::rand::SystemRandom;
        use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .unwrap();
        let public = key.public_key().as_ref();
        let jwks = format!(
            r#"{{"keys":[{{"kty":"EC","crv":"P-256","kid":"k1","x":"{}","y":"{}"}}]}}"#,
            BASE64URL.encode(&public[1..33]),
            BASE64URL.encode(&public[33..65])
        );
        let header = BASE64URL.encode(r#"{"alg":"ES256","kid":"k1"}"#);
        let claims = BASE64URL.encode(r#"{"iss":"svc","exp":1700000100,"aud":["kafka","x"]}"#);
        let input = format!("{header}.{claims}");
        let sig = key.sign(&rng, input.as_bytes()).unwrap();
        let token = format!("{input}.{}", BASE64URL.encode(sig.as_ref()));
        let v = signed(&jwks, Some("svc"), Some("kafka"));
        assert_eq!(
            v.validate(&token, NOW_MS).unwrap(),
            Accepted {
                principal: "svc".into(),
                lifetime_ms: 100_000
            }
        );
        // A kid the JWKS does not have.
        let other_header = BASE64URL.encode(r#"{"alg":"ES256","kid":"k2"}"#);
        let other = format!("{other_header}.{claims}.{}", BASE64URL.encode(sig.as_ref()));
        assert!(v.validate(&other, NOW_MS).is_err());
    }

    #[test]
    fn client_messages_are_read_as_rfc_7628_writes_them() {
        assert_eq!(
            client_token(b"n,,\x01auth=Bearer abc.def.\x01\x01").unwrap(),
            (None, "abc.def.".to_string())
        );
        assert_eq!(
            client_token(b"n,a=alice,\x01host=h\x01auth=bearer tok\x01\x01").unwrap(),
            (Some("alice".to_string()), "tok".to_string())
        );
        for bad in [
            &b"p=tls,,\x01auth=Bearer x\x01\x01"[..],
            b"n,,\x01auth=Basic x\x01\x01",
            b"n,,\x01\x01",
            b"n,,",
        ] {
            assert!(client_token(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn bad_jwks_are_refused_with_a_reason() {
        let config = BrokerConfig {
            sasl_oauthbearer_jwks_endpoint_url: Some("https://idp.example/jwks".into()),
            brook_oauthbearer_jwks_ca_location: Some("/nonexistent/ca.pem".into()),
            ..BrokerConfig::default()
        };
        let (setting, reason) = Validator::from_config(&config).unwrap_err();
        assert_eq!(setting, "brook.oauthbearer.jwks.ca.location");
        assert!(reason.contains("/nonexistent/ca.pem"), "{reason}");
        assert!(parse_jwks(r#"{"keys":[{"kty":"oct","k":"AA"}]}"#).is_err());
        assert!(parse_jwks("nope").is_err());
    }

    #[tokio::test]
    async fn a_jwks_url_not_fetched_yet_refuses_tokens_saying_why() {
        // Nothing listens on port 9 of loopback: every fetch fails.
        let config = BrokerConfig {
            sasl_oauthbearer_jwks_endpoint_url: Some("http://127.0.0.1:9/jwks".into()),
            ..BrokerConfig::default()
        };
        let validator = Validator::from_config(&config).unwrap();
        assert!(!validator.is_unsecured());
        let token = format!(
            "{}.{}.{}",
            BASE64URL.encode(r#"{"alg":"ES256","kid":"k1"}"#),
            BASE64URL.encode(r#"{"sub":"a","exp":4000000000}"#),
            BASE64URL.encode("sig")
        );
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let error = validator.validate(&token, 0).unwrap_err();
            if error.contains("has not been fetched yet (cannot connect") {
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "{error}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
