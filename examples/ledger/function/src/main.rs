//! `ledger-service`: the whole ledger in one binary, deployed once per role (`STRATA_ROLE`: command,
//! query, admin, projector, consumer, publisher), each function with its own IAM role, by the ledger's
//! CDK app (`examples/ledger/infra`); all roles at once with `STRATA_ROLE=all` (local serving). See
//! `strata_lambda::runtime`.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    strata_lambda::runtime::serve(strata_example_ledger::functions).await
}
