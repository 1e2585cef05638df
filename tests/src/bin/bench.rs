//! `target/release/bench [--quick] [--only peer] [--out FILE]` (what `scripts/bench` runs after
//! criterion and the builds): the emulator scenarios, the functions' sizes and init times,
//! criterion's results from `target/criterion`, and (built with the `peer` feature) the same
//! workloads through cqrs-es + dynamo-es, printed and written as one report (default
//! `docs/benchmarks.md`). `--only peer` runs the peer comparison alone.
//! Needs `AWS_ENDPOINT_URL` (the emulator) and the repository root as working directory.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use strata_tests::bench::report::{Machine, Results, markdown};
use strata_tests::bench::side_by_side::PeerTable;
use strata_tests::bench::{Env, Plan, costs, criterion, functions, publish, throughput};

fn say(line: &str) {
    eprintln!("bench: {line}");
}

#[tokio::main(flavor = "multi_thread", worker_threads = 4)]
async fn main() -> ExitCode {
    let mut plan = Plan::full();
    let mut out = PathBuf::from("docs/benchmarks.md");
    let mut only_peer = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--quick" => plan = Plan::quick(),
            "--only" => match args.next().as_deref() {
                Some("peer") => only_peer = true,
                _ => return usage("--only takes `peer`"),
            },
            "--out" => match args.next() {
                Some(path) => out = PathBuf::from(path),
                None => return usage("--out needs a file"),
            },
            other => return usage(&format!("unknown argument {other:?}")),
        }
    }
    if std::env::var_os("AWS_ENDPOINT_URL").is_none() {
        return usage("AWS_ENDPOINT_URL is not set: start the emulator first (localstack/start)");
    }
    let target = Path::new("target");
    let mut results = Results::default();
    let env = Env::new().await;
    if !only_peer {
        everything_else(&env, &plan, target, &mut results).await;
    }
    results.peer = peer(&env, &plan).await;

    let report = markdown(&Machine::here(Path::new(".")), &results);
    println!("{report}");
    if let Some(dir) = out.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    match std::fs::write(&out, report) {
        Ok(()) => {
            say(&format!("wrote {}", out.display()));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("bench: cannot write {}: {e}", out.display());
            ExitCode::FAILURE
        }
    }
}

#[cfg(feature = "peer")]
async fn peer(env: &Env, plan: &Plan) -> Vec<PeerTable> {
    say("Strata and cqrs-es + dynamo-es side by side");
    strata_tests::bench::peer::run(env, plan).await
}

#[cfg(not(feature = "peer"))]
async fn peer(_: &Env, _: &Plan) -> Vec<PeerTable> {
    say("the peer section (cqrs-es + dynamo-es) was skipped: build with `--features peer`");
    Vec::new()
}

/// Everything but the peer comparison.
async fn everything_else(env: &Env, plan: &Plan, target: &Path, results: &mut Results) {
    say("reading criterion results from target/criterion");
    results.memory = criterion::read(&target.join("criterion"));
    say(&format!("  {} benchmarks", results.memory.len()));

    say("measuring the functions (zip sizes, init times)");
    results.functions = functions::measure(target, plan.init_runs);

    for &length in &plan.lengths {
        for every in [None, Some(100)] {
            say(&format!("costs: {length} events, snapshots {every:?}"));
            // Without snapshots the emulator needs minutes to return 100,000 items: one run.
            let runs = if length >= 100_000 && every.is_none() { 1 } else { plan.runs };
            let row = costs::measure(env, length, every, runs).await;
            say(&format!(
                "  load {:?}; command {:?}; load time {:?}",
                row.load.total_calls(),
                row.command.total_calls(),
                row.load_time.as_ref().map(ToString::to_string)
            ));
            results.costs.push(row);
        }
    }

    say("publishing: stream -> publisher -> bus -> queue -> projector");
    let pipeline = strata_tests::Pipeline::new().await;
    results.publish = Some(publish::run(&pipeline, plan.orders, plan.runs.min(3)).await);

    // One stream: every writer races for the same version; the emulator spends about a millisecond per
    // item a Query returns, so contended runs are slow here and get fewer commands.
    for (streams, commands) in [(1, plan.one_stream_commands), (plan.streams, plan.streams)] {
        say(&format!("throughput: {streams} streams, 1 and 16 writers, {commands} commands per run"));
        results.throughput.extend(
            throughput::run(
                env,
                streams,
                &[1, 16],
                commands,
                plan.runs.min(3),
                strata_core::RetryPolicy::default(),
            )
            .await,
        );
    }
}

fn usage(problem: &str) -> ExitCode {
    eprintln!("bench: {problem}\nusage: bench [--quick] [--only peer] [--out FILE]");
    ExitCode::from(2)
}
