//! The peer of the benchmark: the same workloads through Strata (stream cache on and off) and through
//! cqrs-es 0.5 + dynamo-es 0.5, on the same emulator in the same run, each subject on tables of its
//! own with its requests counted at the SDK. Built only with the `peer` feature.

pub mod counter;
pub mod subject;

use std::sync::Arc;
use std::time::{Duration, Instant};

use strata_dynamodb::RequestCounts;

use super::side_by_side::{Figure, PeerRow, PeerTable, Workload};
use super::stats::{Spread, sig};
use super::{Env, Plan};
use subject::{Side, Subject};

const SIDES: [Side; 3] = [Side::StrataCached, Side::StrataUncached, Side::Peer];

fn say(line: &str) {
    eprintln!("bench: peer: {line}");
}

/// Every workload, one table each.
pub async fn run(env: &Env, plan: &Plan) -> Vec<PeerTable> {
    let mut tables = vec![item_size(env).await];
    for every in [None, Some(100)] {
        tables.push(stream(env, plan.peer_length, plan.peer_commands, every).await);
    }
    tables.push(load(env, plan.peer_load).await);
    for streams in [16, 1] {
        tables.push(writers(env, 16, streams, plan.peer_writer_commands).await);
    }
    tables
}

/// Three figures, one per side, in [`SIDES`] order.
fn row(metric: &str, figures: Vec<Figure>) -> PeerRow {
    let mut figures = figures.into_iter();
    let mut next = || figures.next().unwrap_or_else(|| Figure::text("–"));
    PeerRow { metric: metric.into(), strata_cached: next(), strata_uncached: next(), peer: next() }
}

/// One figure per side from what was measured for it.
fn columns<T>(measured: &[T], figure: impl Fn(&T) -> Figure) -> Vec<Figure> {
    measured.iter().map(figure).collect()
}

/// `1 Query + 1 TransactWriteItems`: calls per command of each operation.
fn requests(counts: &RequestCounts, commands: usize) -> Figure {
    let per = |calls: u64| {
        let per = calls as f64 / commands.max(1) as f64;
        if per.fract() == 0.0 { format!("{per}") } else { sig(per) }
    };
    let parts: Vec<String> = counts
        .operations
        .iter()
        .filter(|(_, c)| c.calls > 0)
        .map(|(op, c)| format!("{} {op}", per(c.calls)))
        .collect();
    let total = counts.total_calls() as f64 / commands.max(1) as f64;
    Figure::shown(if parts.is_empty() { "0".into() } else { parts.join(" + ") }, total)
}

fn per(value: f64, commands: usize) -> Figure {
    if commands == 0 {
        return Figure::text("–");
    }
    Figure::number(value / commands as f64)
}

fn timing(times: &[Duration], of_what: &'static str) -> Figure {
    match Spread::of_durations(times) {
        Some(mut spread) => {
            spread.of_what = of_what;
            Figure::shown(spread.to_string(), spread.median)
        }
        None => Figure::text("–"),
    }
}

/// Workload 1: one command on a new stream, and the item it wrote.
async fn item_size(env: &Env) -> PeerTable {
    say("one event: item size");
    let mut measured = Vec::new();
    for side in SIDES {
        let subject = Subject::new(env, side, None).await;
        assert!(subject.command("item").await, "a command on a new stream commits");
        let counts = subject.counter.take();
        let bytes = subject.event_item_bytes().await;
        subject.drop_tables().await;
        measured.push((bytes, counts));
    }
    let m = &measured;
    PeerTable {
        workload: Workload::ItemSize,
        rows: vec![
            row("event item, bytes", columns(m, |(bytes, _)| Figure::number(*bytes as f64))),
            row("first command on a new stream: requests", columns(m, |(_, c)| requests(c, 1))),
            row("its write, WCU (modelled)", columns(m, |(_, c)| Figure::number(c.write_units()))),
            row("its read, RCU (modelled)", columns(m, |(_, c)| Figure::number(c.read_units()))),
        ],
    }
}

/// Workloads 2 and 3: `commands` commands on a stream of `length` events.
async fn stream(env: &Env, length: u64, commands: usize, snapshot_every: Option<u64>) -> PeerTable {
    say(&format!("{commands} commands on a {length}-event stream, snapshots {snapshot_every:?}"));
    let mut measured = Vec::new();
    for side in SIDES {
        let subject = Subject::new(env, side, snapshot_every).await;
        subject.seed("s", length, snapshot_every).await;
        let mut times = Vec::with_capacity(commands);
        for _ in 0..commands {
            let started = Instant::now();
            assert!(subject.command("s").await, "a lone writer's command commits");
            times.push(started.elapsed());
        }
        let counts = subject.counter.take();
        subject.drop_tables().await;
        say(&format!("  {side:?}: {} requests", counts.total_calls()));
        measured.push((times, counts));
    }
    let m = &measured;
    PeerTable {
        workload: Workload::Stream { length, commands, snapshot_every },
        rows: vec![
            row("requests per command", columns(m, |(_, c)| requests(c, commands))),
            row("items read per command", columns(m, |(_, c)| per(c.items_read() as f64, commands))),
            row("RCU per command (modelled)", columns(m, |(_, c)| per(c.read_units(), commands))),
            row("WCU per command (modelled)", columns(m, |(_, c)| per(c.write_units(), commands))),
            row(
                "eventually consistent reads per command",
                columns(m, |(_, c)| per(c.inconsistent_reads as f64, commands)),
            ),
            row("time per command", columns(m, |(t, _)| timing(t, "commands"))),
        ],
    }
}

/// Workload 4: one load of `length` events without snapshots, then one command. The stream cache
/// plays no part in a load, so Strata is measured once (cache off) and shown in both columns.
async fn load(env: &Env, length: u64) -> PeerTable {
    say(&format!("loading {length} events"));
    let mut measured = Vec::new();
    for side in [Side::StrataUncached, Side::Peer] {
        let subject = Subject::new(env, side, None).await;
        subject.seed("l", length, None).await;
        let started = Instant::now();
        let folded = subject.load("l").await;
        let time = started.elapsed();
        let counts = subject.counter.take();
        let committed = subject.command("l").await;
        subject.drop_tables().await;
        say(&format!("  {side:?}: {folded} events folded, {} items read", counts.items_read()));
        measured.push((folded, time, counts, committed));
    }
    // Strata's one measurement in both of its columns.
    measured.insert(0, measured[0].clone());
    let m = &measured;
    PeerTable {
        workload: Workload::Load { length },
        rows: vec![
            row("Queries", columns(m, |(_, _, c, _)| Figure::number(c.calls("Query") as f64))),
            row("items read", columns(m, |(_, _, c, _)| Figure::number(c.items_read() as f64))),
            row("RCU (modelled)", columns(m, |(_, _, c, _)| Figure::number(c.read_units()))),
            row("events folded", columns(m, |(n, _, _, _)| Figure::number(*n as f64))),
            row(
                "RCU per event folded (modelled)",
                columns(m, |(n, _, c, _)| per(c.read_units(), *n as usize)),
            ),
            row("load time", columns(m, |(_, t, _, _)| timing(std::slice::from_ref(t), "runs"))),
            row(
                "a command after it",
                columns(m, |(_, _, _, ok)| {
                    Figure::text(if *ok { "commits" } else { "conflict, every time" })
                }),
            ),
        ],
    }
}

/// Workload 5: `writers` concurrent writers, `per_writer` commands each, over `streams` streams;
/// snapshots every 100 events on both sides.
async fn writers(env: &Env, writers: usize, streams: usize, per_writer: usize) -> PeerTable {
    say(&format!("{writers} writers x {per_writer} commands on {streams} streams"));
    let total = writers * per_writer;
    let mut measured = Vec::new();
    for side in SIDES {
        let subject = Subject::new(env, side, Some(100)).await;
        let started = Instant::now();
        let tasks: Vec<_> = (0..writers)
            .map(|w| {
                let subject = Arc::clone(&subject);
                tokio::spawn(async move {
                    let id = format!("w{}", w % streams);
                    let mut ok = 0usize;
                    for _ in 0..per_writer {
                        ok += usize::from(subject.command(&id).await);
                    }
                    ok
                })
            })
            .collect();
        let mut ok = 0;
        for task in tasks {
            ok += task.await.expect("a writer task");
        }
        let elapsed = started.elapsed();
        let counts = subject.counter.take();
        subject.drop_tables().await;
        say(&format!("  {side:?}: {ok} of {total} ok in {elapsed:?}, {} requests", counts.total_calls()));
        let lost = match side {
            // Every failed conditional PutItem of a commit is a lost race, retried or not.
            Side::StrataCached | Side::StrataUncached => {
                counts.operations.get("PutItem").map_or(0, |p| p.calls - p.items_written) as usize
            }
            // No retry: each failed command is one cancelled transaction.
            Side::Peer => total - ok,
        };
        measured.push((ok, elapsed, counts, lost));
    }
    let m = &measured;
    PeerTable {
        workload: Workload::Writers { writers, streams, commands_per_writer: per_writer },
        rows: vec![
            row(
                "commands that succeed",
                columns(m, |(ok, _, _, _)| {
                    let pct = 100.0 * *ok as f64 / total.max(1) as f64;
                    Figure::shown(format!("{ok} of {total} ({}%)", sig(pct)), pct)
                }),
            ),
            row(
                "successful commands/s",
                columns(m, |(ok, t, _, _)| Figure::number(*ok as f64 / t.as_secs_f64().max(1e-9))),
            ),
            row("wall time", columns(m, |(_, t, _, _)| timing(std::slice::from_ref(t), "runs"))),
            row("requests per command", columns(m, |(_, _, c, _)| requests(c, total))),
            // What a user pays per unit of work done: a failed command must be sent again, with
            // another load and write, so capacity is counted per command that succeeded.
            row(
                "RCU per successful command (modelled)",
                columns(m, |(ok, _, c, _)| per(c.read_units(), *ok)),
            ),
            row(
                "WCU per successful command (modelled)",
                columns(m, |(ok, _, c, _)| per(c.write_units(), *ok)),
            ),
            row("writes that lost a race", columns(m, |(_, _, _, lost)| Figure::number(*lost as f64))),
        ],
    }
}
