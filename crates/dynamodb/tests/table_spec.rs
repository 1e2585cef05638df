//! `infra/table-spec.json` is the exported [`TableSpec`], the file the CDK app is checked against.
//! Regenerate it with `STRATA_BLESS=1 cargo test -p strata-dynamodb --test table_spec`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly

use strata_dynamodb::TableSpec;

#[test]
fn the_exported_table_spec_is_current() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../infra/table-spec.json");
    let current = format!("{}\n", TableSpec::strata().to_json());
    if std::env::var_os("STRATA_BLESS").is_some() {
        std::fs::write(&path, &current).unwrap();
    }
    let exported = std::fs::read_to_string(&path).unwrap_or_default();
    assert_eq!(exported, current, "infra/table-spec.json is stale: rerun with STRATA_BLESS=1");
}

#[test]
fn the_spec_matches_the_design() {
    let spec = TableSpec::strata();
    assert_eq!((spec.partition_key.name.as_str(), spec.sort_key.name.as_str()), ("pk", "sk"));
    assert_eq!(spec.billing_mode, "PAY_PER_REQUEST");
    assert_eq!(spec.stream_view_type, "NEW_IMAGE");
    assert_eq!(spec.ttl_attribute, "expires_at");
    assert!(spec.point_in_time_recovery);
    let json: serde_json::Value = serde_json::from_str(&spec.to_json()).unwrap();
    assert_eq!(json["global_secondary_indexes"][0]["partition_key"]["type"], "S");
}
