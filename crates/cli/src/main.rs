//! `strata`: see the crate docs (`strata_cli`).

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use strata_cli::{Cli, run};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> ExitCode {
    let cli = Cli::parse(); // bad arguments: clap prints usage and exits 2
    let json = cli.json;
    match run(cli).await {
        Ok(output) => {
            // A closed pipe (`strata streams list | head`) is not an error worth a panic.
            let _ = std::io::stdout().lock().write_all(output.render(json).as_bytes());
            if output.failed { ExitCode::FAILURE } else { ExitCode::SUCCESS }
        }
        Err(error) => {
            // The whole chain: "store backend failed: dispatch failure: connection refused".
            let mut message = error.to_string();
            let mut source = std::error::Error::source(&error);
            while let Some(cause) = source {
                message.push_str(&format!(": {cause}"));
                source = cause.source();
            }
            eprintln!("strata: {message}");
            ExitCode::from(error.exit_code())
        }
    }
}
