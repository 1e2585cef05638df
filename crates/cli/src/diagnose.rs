//! `strata diagnose`: is everything Strata needs there, and as the TableSpec says?

use aws_config::SdkConfig;
use aws_sdk_dynamodb::types::{IndexStatus, StreamViewType, TableDescription, TableStatus, TimeToLiveStatus};
use serde_json::json;
use strata_dynamodb::TableSpec;

use crate::Output;
use crate::args::Diagnose;

/// One check's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Ok,
    Warn,
    Fail,
}

impl Verdict {
    fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Warn => "warn",
            Self::Fail => "FAIL",
        }
    }
}

struct Checks(Vec<(String, Verdict, String)>);

impl Checks {
    fn add(&mut self, check: impl Into<String>, verdict: Verdict, detail: impl Into<String>) {
        self.0.push((check.into(), verdict, detail.into()));
    }
}

pub(crate) async fn run(sdk: &SdkConfig, target: &Diagnose) -> Output {
    let mut checks = Checks(Vec::new());
    table(sdk, &target.table, &mut checks).await;
    if let Some(bus) = &target.bus {
        eventbridge(sdk, bus, &mut checks).await;
    }
    if let Some(key) = &target.kms_key {
        kms(sdk, key, &mut checks).await;
    }
    let failed = checks.0.iter().any(|(_, v, _)| *v == Verdict::Fail);
    let warned = checks.0.iter().any(|(_, v, _)| *v == Verdict::Warn);
    let json = json!({
        "healthy": !failed,
        "checks": checks.0.iter().map(|(c, v, d)| json!({ "check": c, "verdict": v.as_str(), "detail": d })).collect::<Vec<_>>(),
    });
    let rows = checks.0.into_iter().map(|(c, v, d)| vec![c, v.as_str().to_owned(), d]).collect();
    let verdict = match (failed, warned) {
        (true, _) => "verdict: NOT healthy (see FAIL above)",
        (false, true) => "verdict: healthy, with warnings",
        (false, false) => "verdict: healthy",
    };
    let mut output = Output::table(json, &["check", "verdict", "detail"], rows).with_message(verdict);
    output.failed = failed;
    output
}

async fn table(sdk: &SdkConfig, name: &str, checks: &mut Checks) {
    let client = aws_sdk_dynamodb::Client::new(sdk);
    let described = match client.describe_table().table_name(name).send().await {
        Ok(out) => out.table,
        Err(error) => {
            let detail = aws_sdk_dynamodb::error::DisplayErrorContext(&error).to_string();
            checks.add("table reachable", Verdict::Fail, format!("{name}: {detail}"));
            return;
        }
    };
    let Some(table) = described else {
        checks.add("table reachable", Verdict::Fail, format!("{name}: no description returned"));
        return;
    };
    let active = table.table_status() == Some(&TableStatus::Active);
    checks.add(
        "table reachable",
        if active { Verdict::Ok } else { Verdict::Warn },
        format!("{name} is {}", table.table_status().map(TableStatus::as_str).unwrap_or("unknown")),
    );
    let spec = TableSpec::strata();
    keys(&table, &spec, checks);
    indexes(&table, &spec, checks);
    let stream = table.stream_specification();
    let view = stream.and_then(|s| s.stream_view_type()).map(StreamViewType::as_str);
    let enabled = stream.is_some_and(|s| s.stream_enabled());
    checks.add(
        "table stream",
        if enabled && view == Some(spec.stream_view_type.as_str()) { Verdict::Ok } else { Verdict::Fail },
        format!(
            "enabled: {enabled}, view: {} (publishing needs {})",
            view.unwrap_or("none"),
            spec.stream_view_type
        ),
    );
    match client.describe_time_to_live().table_name(name).send().await {
        Ok(out) => {
            let ttl = out.time_to_live_description();
            let on = ttl.and_then(|t| t.time_to_live_status()) == Some(&TimeToLiveStatus::Enabled)
                && ttl.and_then(|t| t.attribute_name()) == Some(spec.ttl_attribute.as_str());
            checks.add(
                "TTL",
                if on { Verdict::Ok } else { Verdict::Warn },
                if on {
                    format!("on {}", spec.ttl_attribute)
                } else {
                    format!("not on {}: expired idempotency records stay", spec.ttl_attribute)
                },
            );
        }
        Err(error) => {
            checks.add("TTL", Verdict::Warn, aws_sdk_dynamodb::error::DisplayErrorContext(&error).to_string())
        }
    }
}

fn keys(table: &TableDescription, spec: &TableSpec, checks: &mut Checks) {
    let key_of = |kind: &str| {
        table
            .key_schema()
            .iter()
            .find(|k| k.key_type().as_str() == kind)
            .map(|k| k.attribute_name().to_owned())
    };
    let type_of = |name: &str| {
        table
            .attribute_definitions()
            .iter()
            .find(|a| a.attribute_name() == name)
            .map(|a| a.attribute_type().as_str().to_owned())
    };
    let found = (key_of("HASH"), key_of("RANGE"));
    let wanted = (Some(spec.partition_key.name.clone()), Some(spec.sort_key.name.clone()));
    let types_ok = type_of(&spec.partition_key.name).as_deref()
        == Some(spec.partition_key.attribute_type.as_str())
        && type_of(&spec.sort_key.name).as_deref() == Some(spec.sort_key.attribute_type.as_str());
    checks.add(
        "table keys",
        if found == wanted && types_ok { Verdict::Ok } else { Verdict::Fail },
        format!(
            "{}/{} (TableSpec: {}/{})",
            found.0.as_deref().unwrap_or("none"),
            found.1.as_deref().unwrap_or("none"),
            spec.partition_key.name,
            spec.sort_key.name
        ),
    );
}

fn indexes(table: &TableDescription, spec: &TableSpec, checks: &mut Checks) {
    for index in &spec.global_secondary_indexes {
        let found =
            table.global_secondary_indexes().iter().find(|g| g.index_name() == Some(index.name.as_str()));
        let (verdict, detail) = match found {
            None => (Verdict::Fail, "missing".to_owned()),
            Some(g) => {
                let key = |kind: &str| {
                    g.key_schema()
                        .iter()
                        .find(|k| k.key_type().as_str() == kind)
                        .map(|k| k.attribute_name().to_owned())
                };
                let projection =
                    g.projection().and_then(|p| p.projection_type()).map(|p| p.as_str().to_owned());
                let same = key("HASH").as_deref() == Some(index.partition_key.name.as_str())
                    && key("RANGE").as_deref() == Some(index.sort_key.name.as_str())
                    && projection.as_deref() == Some(index.projection.as_str());
                let status = g.index_status().map(IndexStatus::as_str).unwrap_or("unknown");
                if same {
                    (
                        if status == "ACTIVE" { Verdict::Ok } else { Verdict::Warn },
                        format!(
                            "{}/{} {}, {status}",
                            index.partition_key.name, index.sort_key.name, index.projection
                        ),
                    )
                } else {
                    (
                        Verdict::Fail,
                        format!(
                            "differs from the TableSpec ({:?}/{:?}, {projection:?})",
                            key("HASH"),
                            key("RANGE")
                        ),
                    )
                }
            }
        };
        checks.add(format!("index {}", index.name), verdict, detail);
    }
}

async fn eventbridge(sdk: &SdkConfig, bus: &str, checks: &mut Checks) {
    let client = aws_sdk_eventbridge::Client::new(sdk);
    if let Err(error) = client.describe_event_bus().name(bus).send().await {
        let detail = aws_sdk_eventbridge::error::DisplayErrorContext(&error).to_string();
        checks.add("event bus", Verdict::Fail, format!("{bus}: {detail}"));
        return;
    }
    checks.add("event bus", Verdict::Ok, bus.to_owned());
    match client.list_rules().event_bus_name(bus).send().await {
        Ok(out) => {
            let mut targeted = 0;
            for rule in out.rules() {
                let Some(name) = rule.name() else { continue };
                if let Ok(t) = client.list_targets_by_rule().rule(name).event_bus_name(bus).send().await
                    && !t.targets().is_empty()
                {
                    targeted += 1;
                }
            }
            checks.add(
                "rules on the bus",
                if targeted > 0 { Verdict::Ok } else { Verdict::Warn },
                format!("{} rule(s), {targeted} with targets", out.rules().len()),
            );
        }
        Err(error) => checks.add(
            "rules on the bus",
            Verdict::Warn,
            aws_sdk_eventbridge::error::DisplayErrorContext(&error).to_string(),
        ),
    }
}

async fn kms(sdk: &SdkConfig, key: &str, checks: &mut Checks) {
    let client = aws_sdk_kms::Client::new(sdk);
    match client.describe_key().key_id(key).send().await {
        Ok(out) => {
            let metadata = out.key_metadata();
            let enabled = metadata.is_some_and(|m| m.enabled());
            let usage =
                metadata.and_then(|m| m.key_usage()).map(|u| u.as_str().to_owned()).unwrap_or_default();
            checks.add(
                "KMS key",
                if enabled && usage == "ENCRYPT_DECRYPT" { Verdict::Ok } else { Verdict::Fail },
                format!("{key}: enabled {enabled}, usage {usage}"),
            );
            let rotating = match client.get_key_rotation_status().key_id(key).send().await {
                Ok(status) => status.key_rotation_enabled(),
                Err(_) => false,
            };
            checks.add(
                "KMS key rotation",
                if rotating { Verdict::Ok } else { Verdict::Warn },
                if rotating { "on" } else { "off (or not readable)" },
            );
        }
        Err(error) => {
            let detail = aws_sdk_kms::error::DisplayErrorContext(&error).to_string();
            checks.add("KMS key", Verdict::Fail, format!("{key}: {detail}"));
        }
    }
}
