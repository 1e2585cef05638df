//! `strata new <name>`: a new service's workspace, from the templates in `crates/cli/templates/new`.

use std::path::{Path, PathBuf};

use serde_json::json;

use crate::args::New;
use crate::{CliError, Output};

/// Each generated file: its path in the new workspace and its template.
const FILES: [(&str, &str); 17] = [
    ("Cargo.toml", include_str!("../templates/new/Cargo.toml.tmpl")),
    ("README.md", include_str!("../templates/new/README.md.tmpl")),
    (".gitignore", include_str!("../templates/new/gitignore.tmpl")),
    ("domain/Cargo.toml", include_str!("../templates/new/domain/Cargo.toml.tmpl")),
    ("domain/src/lib.rs", include_str!("../templates/new/domain/src/lib.rs.tmpl")),
    ("domain/tests/rules.rs", include_str!("../templates/new/domain/tests/rules.rs.tmpl")),
    ("domain/tests/emulator.rs", include_str!("../templates/new/domain/tests/emulator.rs.tmpl")),
    ("function/Cargo.toml", include_str!("../templates/new/function/Cargo.toml.tmpl")),
    ("function/src/main.rs", include_str!("../templates/new/function/src/main.rs.tmpl")),
    ("infra/package.json", include_str!("../templates/new/infra/package.json.tmpl")),
    ("infra/.npmrc", include_str!("../templates/new/infra/npmrc.tmpl")),
    ("infra/cdk.json", include_str!("../templates/new/infra/cdk.json.tmpl")),
    ("infra/tsconfig.json", include_str!("../templates/new/infra/tsconfig.json.tmpl")),
    ("infra/lib/stack.ts", include_str!("../templates/new/infra/lib/stack.ts.tmpl")),
    ("infra/bin/app.ts", include_str!("../templates/new/infra/bin/app.ts.tmpl")),
    ("infra/test/stack.test.ts", include_str!("../templates/new/infra/test/stack.test.ts.tmpl")),
    ("infra/README.md", include_str!("../templates/new/infra/README.md.tmpl")),
];

pub(crate) fn run(args: &New) -> Result<Output, CliError> {
    let name = args.name.as_str();
    let valid = name.len() <= 40
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.ends_with('-')
        && !name.contains("--")
        // Cargo's own directories under target/: not a binary's name.
        && !["build", "deps", "examples", "incremental", "debug", "release", "doc", "test", "bench"].contains(&name);
    if !valid {
        return Err(CliError::Usage(format!(
            "'{name}' is not a service name: lower-case letters, digits and single '-', starting with a letter, at most 40"
        )));
    }
    let dir = args.dir.clone().unwrap_or_else(|| PathBuf::from(name));
    if dir.exists() {
        return Err(CliError::Usage(format!("{} exists already: choose another --dir", dir.display())));
    }
    let strata = match &args.strata {
        Some(path) => path.clone(),
        // The checkout this binary was built from, if it still is one (not a binary built elsewhere,
        // nor cargo's cache of a git dependency, which it may clean away).
        None => {
            let built_from = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
            if !built_from.join(".git").exists() {
                return Err(CliError::Usage(
                    "give --strata: the path of the Strata checkout the service builds on".into(),
                ));
            }
            built_from
        }
    };
    let strata = strata.canonicalize().map_err(|source| CliError::Io {
        what: format!("finding the Strata checkout at {}", strata.display()),
        source,
    })?;
    if !strata.join("crates/lambda/Cargo.toml").is_file() {
        return Err(CliError::Usage(format!("{} is not a Strata checkout: give --strata", strata.display())));
    }
    let strata_text =
        strata.to_str().ok_or_else(|| CliError::Usage("the Strata path is not UTF-8".into()))?;
    // Written into TOML basic strings: escaped.
    let strata_toml = strata_text.replace('\\', "\\\\").replace('"', "\\\"");
    // Written into a JSON string: escaped, without the quotes.
    let strata_json = serde_json::to_string(strata_text)
        .map(|quoted| quoted[1..quoted.len() - 1].to_owned())
        .map_err(|e| CliError::Usage(format!("the Strata path cannot be written as JSON: {e}")))?;
    let ident = name.replace('-', "_");
    for (path, template) in FILES {
        let strata_here = if path.ends_with(".toml") {
            &strata_toml
        } else if path.ends_with(".json") {
            &strata_json
        } else {
            strata_text
        };
        let text = template
            .replace("{{name}}", name)
            .replace("{{crate}}", name)
            .replace("{{ident}}", &ident)
            .replace("{{strata}}", strata_here);
        let target = dir.join(path);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|source| CliError::Io { what: format!("creating {}", parent.display()), source })?;
        }
        std::fs::write(&target, text)
            .map_err(|source| CliError::Io { what: format!("writing {}", target.display()), source })?;
    }
    // The checkout's lock file: the new service builds the exact dependency versions Strata is tested
    // with (and, in a shared target directory, reuses what is built).
    let lock = strata.join("Cargo.lock");
    if lock.is_file() {
        std::fs::copy(&lock, dir.join("Cargo.lock"))
            .map_err(|source| CliError::Io { what: "copying Cargo.lock".into(), source })?;
    }
    let files: Vec<&str> = FILES.iter().map(|(path, _)| *path).collect();
    Ok(Output {
        json: json!({ "service": name, "dir": dir.display().to_string(), "strata": strata_text, "files": files }),
        ..Output::message(format!(
            "created {} (service {name} on {strata_text}): cd there and run `cargo test -p {name}-domain --test rules`, then `cargo test` with AWS_ENDPOINT_URL set",
            dir.display()
        ))
    })
}
