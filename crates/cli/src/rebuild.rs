//! `strata projections rebuild`: every view of a projection folded again from its stream's events.
//!
//! Streams are found by a parallel Scan (one task per segment); each task rebuilds its streams one
//! after another, each in version order (`Projector::rebuild`, a conditional write, so a live projector
//! and the rebuild never overwrite each other's newer view). With `--checkpoint`, the position of every
//! segment is saved after each page: a rebuild stopped at any point and started again with the same
//! file goes on from there (streams of the interrupted page are rebuilt again, which is harmless).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use aws_config::SdkConfig;
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};
use serde_json::json;
use strata_core::projection::AnyProjector;
use strata_dynamodb::{DynamoStore, ScanPosition};
use tokio::sync::Mutex;

use crate::args::Rebuild;
use crate::{CliError, Output, Registry, cipher, store};

/// Progress of a rebuild, saved after every page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Checkpoint {
    projection: String,
    table: String,
    segments: u32,
    /// Where each segment goes on (`None` with `done` false: from the start).
    positions: Vec<Option<ScanPosition>>,
    done: Vec<bool>,
    streams: u64,
    events: u64,
}

pub(crate) async fn run(sdk: &SdkConfig, args: Rebuild, registry: Registry) -> Result<Output, CliError> {
    let store = store(sdk, &args.table);
    let mut service = registry(store.clone());
    match (args.kms_key.as_deref(), args.no_cipher) {
        (_, true) => {}
        (Some(key), false) => service = service.with_cipher(cipher(sdk, key, &store)),
        (None, false) => {
            return Err(CliError::Usage(format!(
                "{} may hold personal data: give --kms-key (or STRATA_KMS_KEY_ID), or --no-cipher for a projection without any",
                args.projection
            )));
        }
    }
    let projector = service.projector(&args.projection).map_err(|e| CliError::Usage(e.to_string()))?;
    let projector = projector.ok_or_else(|| {
        CliError::Usage(format!(
            "unknown projection '{}' (known: {})",
            args.projection,
            service.projection_names().join(", ")
        ))
    })?;
    rebuild(Arc::from(projector), store, &args).await
}

async fn rebuild(
    projector: Arc<dyn AnyProjector>,
    store: DynamoStore,
    args: &Rebuild,
) -> Result<Output, CliError> {
    let name = projector.name();
    let fresh = Checkpoint {
        projection: name.to_owned(),
        table: args.table.clone(),
        segments: args.segments,
        positions: vec![None; args.segments as usize],
        done: vec![false; args.segments as usize],
        streams: 0,
        events: 0,
    };
    let (start, resumed) = match &args.checkpoint {
        Some(path) if path.exists() => (read_checkpoint(path, &fresh)?, true),
        _ => (fresh, false),
    };
    let progress = ProgressBar::new_spinner();
    progress.set_style(
        ProgressStyle::with_template("{spinner} {msg} [{elapsed}]")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    progress.enable_steady_tick(Duration::from_millis(200));
    progress.set_message(format!("{name}: {} streams, {} events", start.streams, start.events));
    let state = Arc::new(Mutex::new(start));
    let mut tasks = tokio::task::JoinSet::new();
    for segment in 0..args.segments {
        let (state, projector, store, progress) =
            (state.clone(), projector.clone(), store.clone(), progress.clone());
        let file = args.checkpoint.clone();
        let page_items = args.page_items;
        tasks.spawn(async move {
            segment_task(segment, state, projector, store, progress, file, page_items).await
        });
    }
    let mut first_error = None;
    while let Some(joined) = tasks.join_next().await {
        let outcome =
            joined.unwrap_or_else(|e| Err(CliError::Incomplete(format!("a rebuild task failed: {e}"))));
        if let Err(error) = outcome {
            tasks.abort_all();
            first_error.get_or_insert(error);
        }
    }
    progress.finish_and_clear();
    if let Some(error) = first_error {
        return Err(match &args.checkpoint {
            Some(path) => CliError::Incomplete(format!(
                "{error} (progress is saved in {}: run the same command again to go on)",
                path.display()
            )),
            None => error,
        });
    }
    let done = state.lock().await.clone();
    if let Some(path) = &args.checkpoint {
        std::fs::remove_file(path)
            .map_err(|source| CliError::Io { what: format!("removing {}", path.display()), source })?;
    }
    let json = json!({ "projection": name, "streams": done.streams, "events": done.events,
                       "segments": done.segments, "resumed": resumed });
    let rows = vec![vec![
        name.to_owned(),
        done.streams.to_string(),
        done.events.to_string(),
        done.segments.to_string(),
        if resumed { "yes" } else { "no" }.to_owned(),
    ]];
    Ok(Output::table(json, &["projection", "streams", "events", "segments", "resumed"], rows)
        .with_message(format!("rebuilt every {name} view from its events")))
}

async fn segment_task(
    segment: u32,
    state: Arc<Mutex<Checkpoint>>,
    projector: Arc<dyn AnyProjector>,
    store: DynamoStore,
    progress: ProgressBar,
    file: Option<PathBuf>,
    page_items: i32,
) -> Result<(), CliError> {
    let index = segment as usize;
    loop {
        let (done, after, segments) = {
            let s = state.lock().await;
            (s.done[index], s.positions[index].clone(), s.segments)
        };
        if done {
            return Ok(());
        }
        let page = store.scan_streams(segment, segments, after.as_ref(), page_items).await?;
        let (mut streams, mut events) = (0, 0);
        for stream in page.streams.iter().filter(|s| projector.follows(s)) {
            let rebuilt = projector.rebuild(stream).await?;
            streams += 1;
            events += rebuilt.applied;
        }
        let mut s = state.lock().await;
        s.streams += streams;
        s.events += events;
        s.done[index] = page.next.is_none();
        s.positions[index] = page.next;
        if let Some(path) = &file {
            write_checkpoint(path, &s)?;
        }
        progress.set_message(format!("{}: {} streams, {} events", projector.name(), s.streams, s.events));
    }
}

fn read_checkpoint(path: &Path, fresh: &Checkpoint) -> Result<Checkpoint, CliError> {
    let text = std::fs::read_to_string(path)
        .map_err(|source| CliError::Io { what: format!("reading {}", path.display()), source })?;
    let saved: Checkpoint = serde_json::from_str(&text)
        .map_err(|e| CliError::Usage(format!("{} is not a rebuild checkpoint: {e}", path.display())))?;
    if (&saved.projection, &saved.table, saved.segments) != (&fresh.projection, &fresh.table, fresh.segments)
        || saved.positions.len() != saved.segments as usize
        || saved.done.len() != saved.segments as usize
    {
        return Err(CliError::Usage(format!(
            "{} is the checkpoint of {} on {} in {} segments: resume with those, or remove the file",
            path.display(),
            saved.projection,
            saved.table,
            saved.segments
        )));
    }
    Ok(saved)
}

/// Written beside the file and renamed over it, so a crash leaves the old or the new checkpoint.
fn write_checkpoint(path: &Path, checkpoint: &Checkpoint) -> Result<(), CliError> {
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".tmp");
    let temporary = PathBuf::from(temporary);
    let text = serde_json::to_string_pretty(checkpoint)
        .map_err(|e| CliError::Incomplete(format!("checkpoint: {e}")))?;
    std::fs::write(&temporary, text)
        .and_then(|()| std::fs::rename(&temporary, path))
        .map_err(|source| CliError::Io { what: format!("writing {}", path.display()), source })
}
