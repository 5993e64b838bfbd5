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

use super::{Ctx, Operation};
use crate::auth::credentials::{users_in_order, Alteration};

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
    let users = users_in_order(&alterations);
    if !ctx.allowed_on_cluster(Operation::Alter) {
        return AlterUserScramCredentialsResponse::default().with_results(
            users
                .iter()
                .map(|u| {
                    result(u)
                        .with_error_code(ErrorCode::ClusterAuthorizationFailed.code())
                        .with_error_message(Some(StrBytes::from_static_str(
                            "Cluster authorization failed.",
                        )))
                })
                .collect(),
        );
    }
    let state = ctx.state.clone();
    let altered = tokio::task::spawn_blocking(move || state.credentials.alter(&alterations))
        .await
        .map_err(|e| e.to_string())
        .and_then(|stored| stored.map_err(|e| e.to_string()));
    let results = match altered {
        Ok(outcomes) => outcomes
            .iter()
            .map(|(user, outcome)| match outcome {
                None => result(user),
                Some((code, message)) => result(user)
                    .with_error_code(code.code())
                    .with_error_message(Some(StrBytes::from_string(message.clone()))),
            })
            .collect(),
        Err(reason) => {
            tracing::error!(error = %reason, "storing SCRAM credentials failed");
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
