//! DescribeUserScramCredentials (key 50): which SCRAM mechanisms each user has credentials
//! for, and their iterations (never salts or keys).

use brook_protocol::kafka_protocol::messages::describe_user_scram_credentials_response::{
    CredentialInfo, DescribeUserScramCredentialsResult,
};
use brook_protocol::kafka_protocol::messages::{
    DescribeUserScramCredentialsRequest, DescribeUserScramCredentialsResponse,
};
use brook_protocol::kafka_protocol::protocol::{StrBytes, VersionRange};
use brook_protocol::ErrorCode;

use super::{Ctx, Operation};
use crate::auth::credentials::mechanism_id;

pub(crate) const VERSIONS: VersionRange = VersionRange { min: 0, max: 0 };

pub(crate) async fn handle(
    ctx: &Ctx<'_>,
    req: DescribeUserScramCredentialsRequest,
) -> DescribeUserScramCredentialsResponse {
    if !ctx.allowed_on_cluster(Operation::Describe) {
        return DescribeUserScramCredentialsResponse::default()
            .with_error_code(ErrorCode::ClusterAuthorizationFailed.code())
            .with_error_message(Some(StrBytes::from_static_str(
                "Cluster authorization failed.",
            )));
    }
    let users = ctx.state.credentials.describe();
    let result = |user: &str| {
        DescribeUserScramCredentialsResult::default().with_user(StrBytes::from_string(user.into()))
    };
    let found = |user: &str, infos: &[(crate::auth::scram::Mechanism, u32)]| {
        result(user).with_credential_infos(
            infos
                .iter()
                .map(|(m, i)| {
                    CredentialInfo::default()
                        .with_mechanism(mechanism_id(*m))
                        .with_iterations(i32::try_from(*i).unwrap_or(i32::MAX))
                })
                .collect(),
        )
    };
    let results = match req.users.filter(|u| !u.is_empty()) {
        // None or empty: every user with credentials.
        None => users.iter().map(|(u, infos)| found(u, infos)).collect(),
        Some(asked) => {
            let names: Vec<&str> = asked.iter().map(|u| u.name.as_str()).collect();
            let mut out = Vec::new();
            for (i, name) in names.iter().enumerate() {
                if names[..i].contains(name) {
                    continue;
                }
                let twice = names[i + 1..].contains(name);
                out.push(match users.get(*name) {
                    _ if twice => result(name)
                        .with_error_code(ErrorCode::DuplicateResource.code())
                        .with_error_message(Some(StrBytes::from_static_str(
                            "Cannot describe SCRAM credentials for the same user twice in a single request",
                        ))),
                    Some(infos) => found(name, infos),
                    None => result(name)
                        .with_error_code(ErrorCode::ResourceNotFound.code())
                        .with_error_message(Some(StrBytes::from_static_str(
                            "Attempt to describe a user credential that does not exist",
                        ))),
                });
            }
            out
        }
    };
    DescribeUserScramCredentialsResponse::default().with_results(results)
}
