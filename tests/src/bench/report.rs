//! The report: `docs/benchmarks.md`, written whole from one run's results.

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

use strata_dynamodb::RequestCounts;

use super::costs::CostRow;
use super::criterion::Measured;
use super::functions::FunctionRow;
use super::publish::PublishRow;
use super::side_by_side::{self, PeerTable};
use super::stats::{Spread, sig, thousands};
use super::throughput::ThroughputRow;

/// Everything one run measured.
#[derive(Debug, Clone, Default)]
pub struct Results {
    /// Requests, items, capacity and load time by stream length on the emulator.
    pub costs: Vec<CostRow>,
    /// Criterion's in-memory results.
    pub memory: Vec<Measured>,
    /// Publishing and delivery.
    pub publish: Option<PublishRow>,
    /// Commands per second.
    pub throughput: Vec<ThroughputRow>,
    /// The functions as shipped.
    pub functions: Vec<FunctionRow>,
    /// Strata next to cqrs-es + dynamo-es (empty when the run did not measure it).
    pub peer: Vec<PeerTable>,
}

/// Where and on what the figures were taken.
#[derive(Debug, Clone)]
pub struct Machine {
    /// `uname`-like kernel line.
    pub kernel: String,
    /// CPU model.
    pub cpu: String,
    /// Processors this process may use.
    pub cores: usize,
    /// Memory in GiB.
    pub memory_gib: f64,
    /// `rustc -V`.
    pub rustc: String,
    /// The emulator (the pinned moto).
    pub emulator: String,
    /// Commit (and whether the tree had changes).
    pub commit: String,
    /// When.
    pub date: String,
}

impl Machine {
    /// This machine, this checkout.
    pub fn here(repo: &Path) -> Self {
        let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
        let run = |program: &str, args: &[&str]| {
            Command::new(program)
                .args(args)
                .current_dir(repo)
                .output()
                .ok()
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
                .unwrap_or_default()
        };
        let cpu = read("/proc/cpuinfo")
            .lines()
            .find_map(|l| {
                l.strip_prefix("model name").map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned())
            })
            .unwrap_or_else(|| "unknown".into());
        let memory_kib: f64 = read("/proc/meminfo")
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:")?.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0.0);
        let emulator = std::fs::read_to_string(repo.join("localstack/requirements.txt"))
            .unwrap_or_default()
            .lines()
            .find(|l| l.starts_with("moto"))
            .map_or_else(|| "moto".into(), |l| l.replace("==", " "));
        let dirty = !run("git", &["status", "--porcelain", "--untracked-files=no"]).is_empty();
        Self {
            kernel: format!("{} {}", std::env::consts::OS, read("/proc/sys/kernel/osrelease").trim()),
            cpu,
            cores: std::thread::available_parallelism().map_or(1, usize::from),
            memory_gib: memory_kib / 1024.0 / 1024.0,
            rustc: run("rustc", &["-V"]),
            emulator,
            commit: format!(
                "{}{}",
                run("git", &["rev-parse", "--short", "HEAD"]),
                if dirty { " (with uncommitted changes)" } else { "" }
            ),
            date: chrono::Utc::now().format("%Y-%m-%d %H:%M UTC").to_string(),
        }
    }
}

fn units(u: f64) -> String {
    if u.fract() == 0.0 && u >= 0.0 { thousands(u as u64) } else { format!("{u:.1}") }
}

/// A count summed over `runs` runs, per run: whole when it divides evenly.
fn per_run(total: usize, runs: usize) -> String {
    if total.is_multiple_of(runs) {
        thousands((total / runs) as u64)
    } else {
        sig(total as f64 / runs as f64)
    }
}

fn opt(spread: Option<&Spread>) -> String {
    spread.map_or_else(|| "–".into(), ToString::to_string)
}

fn policy(every: Option<u64>) -> String {
    every.map_or_else(|| "none".into(), |n| format!("every {n}"))
}

fn requests(counts: &RequestCounts) -> String {
    let parts: Vec<String> = counts
        .operations
        .iter()
        .filter(|(_, c)| c.calls > 0)
        .map(|(op, c)| format!("{} {op}", c.calls))
        .collect();
    parts.join(" + ")
}

/// The whole report as Markdown.
pub fn markdown(machine: &Machine, results: &Results) -> String {
    let mut md = String::new();
    let w = &mut md;
    let _ = writeln!(w, "# Benchmarks\n");
    let _ = writeln!(
        w,
        "Written by `scripts/bench` ({}, commit {}). Do not edit by hand: run it again \
         (README, \"Benchmarks\"). Counts are exact, and the small cases are asserted by \
         `tests/tests/costs.rs`; capacity units are modelled from the items sent and received (see below). \
         Every timing is a median, with (min–max, runs or criterion samples) after it.\n",
        machine.date, machine.commit
    );
    let _ = writeln!(w, "## Machine\n");
    let _ = writeln!(
        w,
        "- CPU: {}, {} cores available, {:.1} GiB memory; {}",
        machine.cpu, machine.cores, machine.memory_gib, machine.kernel
    );
    let _ = writeln!(
        w,
        "- {}; release builds (criterion's `bench` profile, the functions' `release` profile)",
        machine.rustc
    );
    let _ = writeln!(
        w,
        "- Emulator: {} run natively (Python), one process, DynamoDB requests serialized (`localstack/serial_moto.py`). \
         Emulator timings measure moto, not AWS: compare them with each other, never with DynamoDB latencies. \
         Request and item counts are what DynamoDB would see.\n",
        machine.emulator
    );

    costs_section(w, &results.costs);
    load_section(w, &results.costs, &results.memory);
    command_section(w, &results.memory);
    publish_section(w, results.publish.as_ref());
    throughput_section(w, &results.throughput);
    side_by_side::section(w, &results.peer);
    functions_section(w, &results.functions);
    md
}

fn costs_section(w: &mut String, costs: &[CostRow]) {
    let _ = writeln!(w, "## DynamoDB requests and capacity per load and per command\n");
    let _ = writeln!(
        w,
        "One order per table: placed (3 personal fields sealed with a KMS data key), then one `ItemAdded` \
         per commit; snapshots through the repository, pruned off the command path (by the stream publisher, \
         as the construct deploys it). A warm load (data key cached), then one `add_item` \
         command on a stream the repository has not cached, then another on the state it cached. Requests are counted at the SDK (`RequestCounter`); capacity units are modelled from the \
         items actually sent and received by DynamoDB's sizing rules (strongly consistent reads: 1 RCU per \
         4 KB of a Query page, as the load here; a command's load is eventually consistent, half that; \
         writes: 1 WCU per KB, indexes included), because the emulator reports a \
         fixed figure per call.\n"
    );
    let _ = writeln!(
        w,
        "| events | snapshots | load: requests | items read | RCU | command: requests | RCU | WCU | cached command: requests | RCU | WCU |"
    );
    let _ = writeln!(w, "|---:|---|---|---:|---:|---|---:|---:|---|---:|---:|");
    for row in costs {
        let _ = writeln!(
            w,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            thousands(row.length),
            policy(row.snapshot_every),
            requests(&row.load),
            thousands(row.load.items_read()),
            units(row.load.read_units()),
            requests(&row.command),
            units(row.command.read_units()),
            units(row.command.write_units()),
            requests(&row.cached_command),
            units(row.cached_command.read_units()),
            units(row.cached_command.write_units()),
        );
    }
    let _ = writeln!(
        w,
        "\nWith a snapshot policy a load reads the stream backwards from its head and stops at the newest \
         snapshot. A store that knows nothing of the stream asks for a first page of 101 items (a snapshot \
         every 100 single-event commits is met at once); once it has loaded the stream or written its \
         snapshot or commits, it asks for the items it knows lie above the snapshot plus one (here the \
         snapshot is at the head: 2 items). Without a snapshot policy a load reads forward in 1 MB pages. \
         The command column is a command on a stream the repository has not cached (it loads first); the \
         cached column is the next command, decided on the state the repository kept. A GetItem is the \
         data subject's wrapped key read again: an unwrapped key is cached for 5 minutes, and seeding and \
         loading a long stream without snapshots can take longer than that on the emulator. The \
         emulator runs stop at 10,000 events: moto answers each page after the first by walking the \
         partition from its start to `ExclusiveStartKey` in Python, so a 100,000-event load without \
         snapshots measures that walk for most of an hour; the in-memory figures go to 100,000.\n"
    );
}

fn memory_row<'a>(
    memory: &'a [Measured],
    group: &str,
    function: &str,
    value: Option<&str>,
) -> Option<&'a Measured> {
    memory.iter().find(|m| m.group == group && m.function == function && m.value.as_deref() == value)
}

fn load_section(w: &mut String, costs: &[CostRow], memory: &[Measured]) {
    let _ = writeln!(w, "## Load time against stream length\n");
    let _ = writeln!(
        w,
        "A whole load through the repository (read, open sealed fields, upcast, fold). In memory: \
         `InMemoryStore`, criterion (`cargo bench -p strata-orders --bench repository`). On the emulator: \
         the streams of the table above. Their time grows with the stream even with snapshots, because \
         moto answers each Query by walking every item of the table and sorting the partition in Python \
         (DynamoDB reads one key range), and it builds and serializes every returned item value by value. \
         The request counts above are what DynamoDB would serve.\n"
    );
    let _ = writeln!(
        w,
        "| events | in memory, no snapshots | in memory, snapshot every 100 | emulator, no snapshots | emulator, snapshot every 100 |"
    );
    let _ = writeln!(w, "|---:|---|---|---|---|");
    let mut lengths: Vec<u64> = costs.iter().map(|c| c.length).collect();
    lengths.extend(
        memory.iter().filter(|m| m.group == "load").filter_map(|m| m.value.as_deref()?.parse::<u64>().ok()),
    );
    lengths.sort_unstable();
    lengths.dedup();
    for length in lengths {
        let value = length.to_string();
        let mem = |name: &str| opt(memory_row(memory, "load", name, Some(&value)).map(|m| &m.per_iteration));
        let emu = |every: Option<u64>| {
            opt(costs
                .iter()
                .find(|c| c.length == length && c.snapshot_every == every)
                .and_then(|c| c.load_time.as_ref()))
        };
        let _ = writeln!(
            w,
            "| {} | {} | {} | {} | {} |",
            thousands(length),
            mem("no snapshots"),
            mem("snapshot every 100"),
            emu(None),
            emu(Some(100))
        );
    }
    let _ = writeln!(w);
}

fn command_section(w: &mut String, memory: &[Measured]) {
    let _ = writeln!(w, "## CPU per command in memory, with and without sealed fields\n");
    let _ = writeln!(
        w,
        "Criterion, `InMemoryStore`, local data keys (cached after first use; on AWS the first command for a \
         data subject also pays one KMS `GenerateDataKey`, and a cold function one `Decrypt` per subject). \
         What Strata adds to a command is load + decide + envelope + seal + append; the network is not in \
         these figures.\n"
    );
    let _ = writeln!(w, "| what | time per command |");
    let _ = writeln!(w, "|---|---|");
    for m in memory.iter().filter(|m| m.group == "command" || m.group.starts_with("crypto")) {
        let name =
            if m.function.is_empty() { m.group.clone() } else { format!("{}: {}", m.group, m.function) };
        let _ = writeln!(w, "| {} | {} |", name, m.per_iteration);
    }
    let place = memory_row(memory, "command", "new stream, 3 personal fields sealed (place_order)", None);
    let seal = memory_row(memory, "crypto/seal the 3 personal fields of OrderPlaced", "", None);
    if let (Some(place), Some(seal)) = (place, seal) {
        let (place, seal) = (place.per_iteration.median, seal.per_iteration.median);
        let _ = writeln!(
            w,
            "\nWith and without encrypted fields: `place_order` takes {} µs, of which sealing its 3 personal \
             fields takes {} µs ({}%); without them the same command would take about {} µs (medians). The \
             tally bump is a smaller aggregate with no personal data, for scale.",
            sig(place * 1e6),
            sig(seal * 1e6),
            sig(100.0 * seal / place),
            sig((place - seal) * 1e6)
        );
    }
    let _ = writeln!(w);
}

fn publish_section(w: &mut String, publish: Option<&PublishRow>) {
    let _ = writeln!(w, "## Publishing: events per PutEvents call, end-to-end events per second\n");
    let Some(p) = publish else {
        let _ = writeln!(w, "Not measured in this run.\n");
        return;
    };
    let _ = writeln!(
        w,
        "Orders of 5 commands (5 events) committed through the repository; their DynamoDB stream records \
         (read from the emulator's Streams API) handed to the publisher's handler in batches of {} (the CDK \
         app's mapping), while a consumer receives from the projector's queue (10 per receive) and projects \
         order summaries. Timed from the first record handed over to the last event in the read model.\n",
        super::publish::STREAM_BATCH
    );
    let _ = writeln!(
        w,
        "| events (stream records) per run | publisher invocations per run | PutEvents calls per run | events per call | stream to read model | events/s |"
    );
    let _ = writeln!(w, "|---:|---:|---:|---:|---|---|");
    let per_call = if p.calls == 0 { 0.0 } else { p.published as f64 / p.calls as f64 };
    let runs = p.elapsed.runs.max(1);
    let _ = writeln!(
        w,
        "| {} ({}) | {} | {} | {} | {} | {} |\n",
        thousands(p.events_per_run as u64),
        per_run(p.records, runs),
        per_run(p.invocations, runs),
        per_run(p.calls, runs),
        sig(per_call),
        p.elapsed,
        p.elapsed.rate(p.events_per_run as f64)
    );
}

fn throughput_section(w: &mut String, rows: &[ThroughputRow]) {
    let _ = writeln!(w, "## Commands per second on the emulator\n");
    let _ = writeln!(
        w,
        "`add_item` commands through the repository (KMS cipher, snapshot every 100) against orders placed \
         beforehand, spread round robin over the streams, by concurrent writers. Each writer has a repository \
         of its own, as a function instance does (stream cache on), with the default retry policy (up to 50 \
         attempts, jittered backoff from 10 ms doubling to 1.6 s, within 16 s; the construct gives the \
         command function 20 s): a lost write folds in the commit that \
         won and decides again; a command out of its budget is counted as failed (a 409 for its caller). \
         The emulator serializes DynamoDB requests, so more writers cannot add throughput here; on AWS \
         distinct streams scale with partitions. A command goes to whichever writer is free, so with 16 \
         writers over 1,000 streams a command's stream is mostly not (or not freshly) in its writer's cache: \
         a cold load, or a lost write and its catch-up. moto answers each Query by walking every item of the \
         table (here 1,000 orders and their commits), so those runs measure that walk; DynamoDB reads one \
         key range.\n"
    );
    let _ = writeln!(
        w,
        "| streams | writers | commands per run | time per run | commands/s | succeeded | lost writes | requests per command |"
    );
    let _ = writeln!(w, "|---:|---:|---:|---|---|---:|---:|---:|");
    for r in rows {
        let total = (r.commands * r.runs.max(1)) as f64;
        let succeeded = total - r.failed as f64;
        let _ = writeln!(
            w,
            "| {} | {} | {} | {} | {} | {}% | {} | {} |",
            thousands(r.streams as u64),
            r.writers,
            thousands(r.commands as u64),
            r.elapsed,
            r.elapsed.rate(r.commands as f64),
            sig(100.0 * succeeded / total.max(1.0)),
            r.conflicts,
            sig(r.counts.total_calls() as f64 / total)
        );
    }
    let _ = writeln!(w);
}

fn functions_section(w: &mut String, rows: &[FunctionRow]) {
    let _ = writeln!(w, "## Functions: size and init time\n");
    let _ = writeln!(
        w,
        "Zips from `scripts/package` (arm64, `release` profile; cargo-lambda strips symbols). Init: a local x86_64 release \
         build of the same code, from process start to its first poll of the Lambda runtime API (a local \
         stand-in): logging, configuration, SDK clients. It excludes the Lambda sandbox's own start and the \
         download of the zip.\n"
    );
    let _ = writeln!(w, "| function | arm64 zip | arm64 binary | init (local, x86_64) |");
    let _ = writeln!(w, "|---|---:|---:|---|");
    for f in rows {
        let bytes = |b: Option<u64>| b.map_or_else(|| "–".into(), |b| format!("{} B", thousands(b)));
        let _ = writeln!(
            w,
            "| {} | {} | {} | {} |",
            f.name,
            bytes(f.zip_bytes),
            bytes(f.binary_bytes),
            opt(f.init.as_ref())
        );
    }
    let _ = writeln!(w);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_whole_with_separators_and_per_run() {
        assert_eq!([units(8569.0), units(9.0), units(0.5)], ["8,569", "9", "0.5"]);
        assert_eq!([per_run(600, 3), per_run(7, 2)], ["200", "3.50"]);
        let publish = PublishRow {
            events_per_run: 200,
            records: 600,
            published: 600,
            calls: 60,
            invocations: 6,
            elapsed: Spread::of(vec![3.5, 3.7, 3.6]).unwrap_or_else(Spread::none),
        };
        let mut md = String::new();
        publish_section(&mut md, Some(&publish));
        assert!(md.contains("| 200 (200) | 2 | 20 | 10.0 | 3.60 s (3.50–3.70, 3 runs) | 55.6 /s"), "{md}");
    }
}
