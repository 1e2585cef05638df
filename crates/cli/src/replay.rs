//! `strata replay`: stored events to the bus again, in version order per stream, marked as replayed.
//! Consumers deduplicate by (stream, version) as they do for the publisher's at-least-once delivery.

use aws_config::SdkConfig;
use chrono::{DateTime, Utc};
use serde_json::json;
use strata_core::{EventEnvelope, EventId, EventStore};
use strata_eventbridge::EventBridgePublisher;

use crate::args::Replay;
use crate::{CliError, Output, all_streams, store};

/// The user metadata key that marks a replayed event (its value: the replay's id).
pub const REPLAY_MARK: &str = "strata_replay";

pub(crate) async fn run(sdk: &SdkConfig, args: Replay) -> Result<Output, CliError> {
    let time = |flag: &str, value: &Option<String>| -> Result<Option<DateTime<Utc>>, CliError> {
        value
            .as_deref()
            .map(|text| {
                DateTime::parse_from_rfc3339(text)
                    .map(|t| t.with_timezone(&Utc))
                    .map_err(|e| CliError::Usage(format!("--{flag} {text}: not an RFC 3339 time ({e})")))
            })
            .transpose()
    };
    let (since, until) = (time("since", &args.since)?, time("until", &args.until)?);
    let publisher =
        EventBridgePublisher::new(aws_sdk_eventbridge::Client::new(sdk), &args.bus, &args.source)?;
    let store = store(sdk, &args.table);
    let replay_id = EventId::new().to_string();
    let streams = all_streams(&store, args.tenant.as_deref(), args.category.as_deref()).await?;
    let progress = indicatif::ProgressBar::new(streams.len() as u64);
    progress.set_style(
        indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} streams, {msg} [{elapsed}]")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let (mut published, mut calls, mut touched) = (0usize, 0usize, 0usize);
    for stream in &streams {
        let mut from = 1;
        let mut any = false;
        loop {
            let page = store.read(stream, from, 500).await?;
            let mut chosen: Vec<EventEnvelope> = page
                .events
                .into_iter()
                .filter(|e| args.types.is_empty() || args.types.contains(&e.event_type))
                .filter(|e| since.is_none_or(|t| e.metadata.committed_at >= t))
                .filter(|e| until.is_none_or(|t| e.metadata.committed_at < t))
                .collect();
            for event in &mut chosen {
                event.metadata.user.insert(REPLAY_MARK.to_owned(), replay_id.clone());
            }
            if !chosen.is_empty() && !args.dry_run {
                let report = publisher.publish_all(&chosen).await;
                calls += report.calls;
                if !report.failed.is_empty() {
                    return Err(CliError::Incomplete(format!(
                        "{} event(s) of {stream} were not published after retries (replay {replay_id}, {published} published before); run it again: consumers deduplicate",
                        report.failed.len()
                    )));
                }
            }
            any |= !chosen.is_empty();
            published += chosen.len();
            match page.next_version {
                Some(next) => from = next,
                None => break,
            }
        }
        touched += usize::from(any);
        progress.inc(1);
        progress.set_message(format!("{published} events"));
    }
    progress.finish_and_clear();
    let verb = if args.dry_run { "would publish" } else { "published" };
    Ok(Output {
        json: json!({ "replay": replay_id, "events": published, "streams": touched, "calls": calls, "dry_run": args.dry_run }),
        ..Output::message(format!(
            "{verb} {published} event(s) of {touched} stream(s) to {} (replay {replay_id}, {calls} PutEvents call(s))",
            args.bus
        ))
    })
}
