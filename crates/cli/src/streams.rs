//! `strata streams list|show`.

use aws_config::SdkConfig;
use serde_json::{Value, json};
use strata_core::EventStore;

use crate::args::StreamsCommand;
use crate::{CliError, Output, all_streams, cipher, store, stream_id};

pub(crate) async fn run(sdk: &SdkConfig, command: StreamsCommand) -> Result<Output, CliError> {
    match command {
        StreamsCommand::List { table, tenant, category } => {
            let store = store(sdk, &table);
            let streams = all_streams(&store, tenant.as_deref(), category.as_deref()).await?;
            let mut heads = Vec::with_capacity(streams.len());
            for stream in streams {
                let head = store.head(&stream).await?;
                heads.push((stream.to_string(), head));
            }
            let json =
                json!(heads.iter().map(|(s, v)| json!({ "stream": s, "version": v })).collect::<Vec<_>>());
            let rows: Vec<Vec<String>> = heads.into_iter().map(|(s, v)| vec![s, v.to_string()]).collect();
            let count = rows.len();
            Ok(Output::table(json, &["stream", "version"], rows).with_message(format!("{count} stream(s)")))
        }
        StreamsCommand::Show { stream, table, from, limit, decrypt, kms_key } => {
            let stream = stream_id(&stream)?;
            let store = store(sdk, &table);
            let cipher = match (decrypt, kms_key) {
                (false, _) => None,
                (true, Some(key)) => Some(cipher(sdk, &key, &store)),
                (true, None) => {
                    return Err(CliError::Usage("--decrypt needs --kms-key (or STRATA_KMS_KEY_ID)".into()));
                }
            };
            let from = from.max(1);
            let limit = usize::try_from(limit).unwrap_or(1000);
            let page = store.read(&stream, from, limit).await?;
            let mut events = page.events;
            if let Some(cipher) = &cipher {
                // One session for the page: each subject's key is read once, not once per event.
                let mut session = cipher.session();
                for event in &mut events {
                    session.open(stream.tenant(), &event.event_id.to_string(), &mut event.payload).await?;
                }
            }
            let rows = events
                .iter()
                .map(|e| {
                    vec![
                        e.version.to_string(),
                        e.event_type.clone(),
                        e.metadata.committed_at.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
                        short(&e.payload, 90),
                    ]
                })
                .collect();
            let next = page.next_version;
            let json = json!({ "stream": stream.to_string(), "events": events, "next_version": next });
            let message = match next {
                Some(version) => format!("more from --from {version}"),
                None if events.is_empty() => format!("no events of {stream} from version {from}"),
                None => "end of stream".to_owned(),
            };
            Ok(Output::table(json, &["version", "type", "committed", "payload"], rows).with_message(message))
        }
    }
}

fn short(value: &Value, max: usize) -> String {
    let text = value.to_string();
    if text.chars().count() <= max {
        return text;
    }
    let cut: String = text.chars().take(max.saturating_sub(3)).collect();
    format!("{cut}...")
}
