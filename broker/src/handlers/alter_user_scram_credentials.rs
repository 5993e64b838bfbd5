//! AlterUserScramCredentials (key 51): adds, replaces and deletes users' SCRAM credentials.
//! The client sends the salt and the salted password (Kafka's `kafka-configs --alter
//! --add-config SCRAM-SHA-256=[...]` and the Java Admin compute them), so the password
//! never reaches the broker. One result per user; see `CredentialStore::alter`.

use brook_protocol::kafka_protocol::messages::alter_user_scram_credentials_response::AlterUserScramCredentialsResult;
use brook_protocol::kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse,
};
use brook_protocol::kafka_protocol::protocol::{StrBytes, VersionRange};
use brook_protocol::ErrorCode;

use super::Ctx;
use crate::auth::credentials::Alteration;

pub(crate) const VERSIONS: VersionRange = VersionRange { min: 0, max: 0 };

pub(crate) async fn handle(
    ctx: &Ctx<'_>,
    req: AlterUserScramCredentialsRequest,
) -> AlterUserScramCredentialsResponse {
    let mut alterations: Vec<Alteration> = req
        .deletions
        .iter()
        .map(|d| Alteration::Delete {
            user: d.name.to_string(),
            mechanism: d.mechanism,
        })
        .collect();
    alterations.extend(req.upsertions.iter().map(|u| Alteration::Upsert {
        user: u.name.to_string(),
        mechanism: u.mechanism,
        iterations: u.iterations,
        salt: u.salt.to_vec(),
        salted_password: u.salted_password.to_vec(),
    }));
    let result = |user: &str| {
        AlterUserScramCredentialsResult::default().with_user(StrBytes::from_string(user.into()))
    };
    let state = ctx.state.clone();
    let altered = tokio::task::spawn_blocking(move || state.credentials.alter(&alterations)).await;
    let results = match altered {
        Ok(Ok(outcomes)) => outcomes
            .iter()
            .map(|(user, outcome)| match outcome {
                None => result(user),
                Some((code, message)) => result(user)
                    .with_error_code(code.code())
                    .with_error_message(Some(StrBytes::from_string(message.clone()))),
            })
            .collect(),
        failed => {
            let reason = match failed {
                Ok(Err(e)) => e.to_string(),
                Err(e) => e.to_string(),
                Ok(Ok(_)) => String::new(),
            };
            tracing::error!(error = %reason, "storing SCRAM credentials failed");
            let mut users: Vec<String> = Vec::new();
            for name in req
                .deletions
                .iter()
                .map(|d| &d.name)
                .chain(req.upsertions.iter().map(|u| &u.name))
            {
                if !users.iter().any(|u| u == name.as_str()) {
                    users.push(name.to_string());
                }
            }
            users
                .iter()
                .map(|u| {
                    result(u)
                        .with_error_code(ErrorCode::UnknownServerError.code())
                        .with_error_message(Some(StrBytes::from_string(format!(
                            "the credentials could not be stored: {reason}"
                        ))))
                })
                .collect()
        }
    };
    AlterUserScramCredentialsResponse::default().with_results(results)
}
