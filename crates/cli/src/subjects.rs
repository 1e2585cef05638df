//! `strata subjects export|forget`.

use aws_config::SdkConfig;
use serde_json::json;
use strata_core::{
    AccessOutcome, MAX_ID_LEN, MAX_TENANT_LEN, SubjectAccess, SubjectAction, SubjectAudit, validate_key_part,
};

use crate::args::{Subject, SubjectsCommand};
use crate::{CliError, Output, cipher, store};

pub(crate) async fn run(sdk: &SdkConfig, command: SubjectsCommand) -> Result<Output, CliError> {
    match command {
        SubjectsCommand::Export(subject) => {
            validate(&subject)?;
            let store = store(sdk, &subject.table);
            let cipher = cipher(sdk, &subject.kms_key, &store);
            let mut access = attempted(sdk, &store, &subject, SubjectAction::Export).await?;
            let fields = cipher.export_subject(&store, &subject.tenant, &subject.subject).await;
            let fields = finished(&store, &mut access, fields).await?;
            let rows = fields
                .iter()
                .map(|f| {
                    vec![
                        f.stream.to_string(),
                        f.version.to_string(),
                        f.event_type.clone(),
                        f.field.pointer.clone(),
                        f.field.value.to_string(),
                    ]
                })
                .collect();
            let json = json!({
                "tenant": subject.tenant, "subject": subject.subject,
                "fields": fields.iter().map(|f| json!({ "stream": f.stream, "version": f.version, "event_type": f.event_type,
                    "pointer": f.field.pointer, "value": f.field.value })).collect::<Vec<_>>()
            });
            let count = fields.len();
            Ok(Output::table(json, &["stream", "version", "type", "field", "value"], rows)
                .with_message(format!("{count} personal field(s) of {}/{}", subject.tenant, subject.subject)))
        }
        SubjectsCommand::Forget { subject, yes } => {
            validate(&subject)?;
            if !yes {
                return Err(CliError::Usage(format!(
                    "forgetting {}/{} cannot be undone: add --yes",
                    subject.tenant, subject.subject
                )));
            }
            let store = store(sdk, &subject.table);
            let cipher = cipher(sdk, &subject.kms_key, &store);
            let mut access = attempted(sdk, &store, &subject, SubjectAction::Forget).await?;
            let forgotten = cipher.keys().forget(&subject.tenant, &subject.subject).await;
            finished(&store, &mut access, forgotten).await?;
            Ok(Output::message(format!(
                "forgot {}/{}: their data key is deleted; their fields read as redacted",
                subject.tenant, subject.subject
            )))
        }
    }
}

/// The audit record the admin API writes too ([`SubjectAudit`]), before the action, with the
/// operator's identity as AWS knows it (STS `GetCallerIdentity`, the full ARN): an export or
/// erasure without its record is not done.
async fn attempted(
    sdk: &SdkConfig,
    store: &strata_dynamodb::DynamoStore,
    subject: &Subject,
    action: SubjectAction,
) -> Result<SubjectAccess, CliError> {
    let identity = aws_sdk_sts::Client::new(sdk).get_caller_identity().send().await.map_err(|e| {
        CliError::Incomplete(format!(
            "who is running this could not be asked of STS, so nothing was done: {e}"
        ))
    })?;
    let access = SubjectAccess {
        tenant: subject.tenant.clone(),
        subject: subject.subject.clone(),
        access_id: strata_core::EventId::new().to_string(),
        action,
        outcome: AccessOutcome::Attempted,
        actor: identity.arn().map(str::to_owned),
        via: "cli".into(),
        at: chrono::Utc::now(),
    };
    store.record_access(&access).await?;
    Ok(access)
}

/// The action's outcome recorded after it. The action's own error wins; a done action whose record
/// is lost says so (its `Attempted` record stays, reading "cut short").
async fn finished<T>(
    store: &strata_dynamodb::DynamoStore,
    access: &mut SubjectAccess,
    result: Result<T, strata_core::Error>,
) -> Result<T, CliError> {
    access.outcome = if result.is_ok() { AccessOutcome::Done } else { AccessOutcome::Failed };
    access.at = chrono::Utc::now();
    let recorded = store.record_access(access).await;
    let value = result?;
    if let Err(error) = recorded {
        return Err(CliError::Incomplete(format!(
            "{:?} of {}/{} was done, and its outcome could not be recorded ({error}): its audit trail shows it attempted only",
            access.action, access.tenant, access.subject
        )));
    }
    Ok(value)
}

fn validate(subject: &Subject) -> Result<(), CliError> {
    // The rules every key part follows, so tenant-first keys stay unambiguous.
    validate_key_part("tenant", &subject.tenant, MAX_TENANT_LEN)
        .and_then(|()| validate_key_part("subject", &subject.subject, MAX_ID_LEN))
        .map_err(|e| CliError::Usage(format!("{}/{}: {e}", subject.tenant, subject.subject)))
}
