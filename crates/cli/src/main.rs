//! `strata`: see the crate docs (`strata_cli`). This binary knows the example orders service; a team's
//! own is the same two lines over its registry.

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> std::process::ExitCode {
    strata_cli::main(strata_orders::service).await
}
