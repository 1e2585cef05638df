//! Reads what criterion wrote under `target/criterion` (`*/new/benchmark.json` and `sample.json`)
//! into medians with spread of the time per iteration.

use std::path::Path;

use serde_json::Value;

use super::stats::Spread;

/// One criterion benchmark's result.
#[derive(Debug, Clone)]
pub struct Measured {
    /// Its group (`load`, `command`, ...).
    pub group: String,
    /// Its function id within the group.
    pub function: String,
    /// Its parameter, if any (a stream length).
    pub value: Option<String>,
    /// Seconds per iteration over criterion's samples (each sample's mean).
    pub per_iteration: Spread,
}

/// Every benchmark under `dir` (usually `target/criterion`), sorted by id.
pub fn read(dir: &Path) -> Vec<Measured> {
    let mut found = Vec::new();
    walk(dir, &mut found);
    found.sort_by(|a, b| {
        (&a.group, &a.function, numeric(&a.value)).cmp(&(&b.group, &b.function, numeric(&b.value)))
    });
    found
}

fn numeric(value: &Option<String>) -> u64 {
    value.as_deref().and_then(|v| v.parse().ok()).unwrap_or(0)
}

fn walk(dir: &Path, found: &mut Vec<Measured>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        if !path.is_dir() {
            continue;
        }
        if path.file_name().is_some_and(|n| n == "new") {
            if let Some(m) = measured(&path) {
                found.push(m);
            }
        } else if path.file_name().is_some_and(|n| n != "base" && n != "change" && n != "report") {
            walk(&path, found);
        }
    }
}

fn measured(new: &Path) -> Option<Measured> {
    let json =
        |file: &str| -> Option<Value> { serde_json::from_slice(&std::fs::read(new.join(file)).ok()?).ok() };
    let benchmark = json("benchmark.json")?;
    let sample = json("sample.json")?;
    let numbers = |key: &str| -> Vec<f64> {
        sample[key].as_array().map(|a| a.iter().filter_map(Value::as_f64).collect()).unwrap_or_default()
    };
    let per_iteration: Vec<f64> = numbers("iters")
        .iter()
        .zip(numbers("times"))
        .filter(|(i, _)| **i > 0.0)
        .map(|(i, t)| t / i / 1e9)
        .collect();
    Some(Measured {
        group: benchmark["group_id"].as_str()?.to_owned(),
        function: benchmark["function_id"].as_str().unwrap_or_default().to_owned(),
        value: benchmark["value_str"].as_str().map(str::to_owned),
        per_iteration: Spread { of_what: "samples", ..Spread::of(per_iteration)? },
    })
}
