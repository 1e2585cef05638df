//! The emulator runs what gets deployed: [`EmulatorStack::deploy`] creates, through the emulator's
//! CloudFormation, a stack from `infra/emulator-template.json`, the data-plane part of the CDK stack
//! (table, keys, bus, archive, rule, queues), generated from it and checked current by the infra
//! tests. Every test deploys its own stack under a unique name, so tests never share a resource, and
//! reads the names it needs from the stack's outputs, the same outputs the CDK stack has.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use aws_config::SdkConfig;
use aws_sdk_cloudformation::types::StackStatus;

/// `infra/emulator-template.json`.
pub const EMULATOR_TEMPLATE: &str = include_str!("../../../infra/emulator-template.json");

/// A stack of the emulator template, deployed.
#[derive(Debug, Clone)]
pub struct EmulatorStack {
    /// The stack name (unique).
    pub name: String,
    outputs: HashMap<String, String>,
}

impl EmulatorStack {
    /// Deploys the emulator template under a unique stack name and waits until it is created (up to
    /// 180 s: an emulator's CloudFormation is slow when many tests deploy at once) and its table's
    /// stream is enabled ([`crate::stream_enabled`]). The name is short (`s-{ulid}`): moto names resources `{stack}-{logical id}-{random}`,
    /// and queue names stop at 80 characters.
    pub async fn try_deploy(sdk: &SdkConfig) -> Result<Self, String> {
        Self::try_deploy_template(sdk, EMULATOR_TEMPLATE).await
    }

    /// [`EmulatorStack::try_deploy`] of another service's emulator template (its CDK app's
    /// `synthesizeEmulatorTemplate`, e.g. `examples/ledger/infra/emulator-template.json`).
    pub async fn try_deploy_template(sdk: &SdkConfig, template: &str) -> Result<Self, String> {
        use aws_sdk_cloudformation::error::DisplayErrorContext;
        let name = crate::unique("s");
        let client = aws_sdk_cloudformation::Client::new(sdk);
        client
            .create_stack()
            .stack_name(&name)
            .template_body(template)
            .send()
            .await
            .map_err(|e| format!("create stack {name}: {}", DisplayErrorContext(e)))?;
        let deadline = Instant::now() + Duration::from_secs(180);
        loop {
            let described = client
                .describe_stacks()
                .stack_name(&name)
                .send()
                .await
                .map_err(|e| format!("describe stack {name}: {}", DisplayErrorContext(e)))?;
            let stack = described.stacks().first().ok_or_else(|| format!("stack {name} vanished"))?;
            match stack.stack_status() {
                Some(StackStatus::CreateComplete) => {
                    let outputs = stack
                        .outputs()
                        .iter()
                        .filter_map(|o| Some((o.output_key()?.to_owned(), o.output_value()?.to_owned())))
                        .collect::<HashMap<_, _>>();
                    if let Some(table) = outputs.get("TableName") {
                        crate::stream_enabled(sdk, table).await?;
                    }
                    return Ok(Self { name, outputs });
                }
                Some(StackStatus::CreateInProgress) | None => {}
                Some(other) => {
                    let reason = stack.stack_status_reason().unwrap_or("no reason given");
                    return Err(format!("stack {name}: {other:?} ({reason})"));
                }
            }
            if Instant::now() > deadline {
                return Err(format!("stack {name} was not created within 180 s"));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// [`EmulatorStack::try_deploy`], panicking on failure (tests).
    pub async fn deploy(sdk: &SdkConfig) -> Self {
        Self::try_deploy(sdk).await.unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`EmulatorStack::try_deploy_template`], panicking on failure (tests).
    pub async fn deploy_template(sdk: &SdkConfig, template: &str) -> Self {
        Self::try_deploy_template(sdk, template).await.unwrap_or_else(|e| panic!("{e}"))
    }

    /// An output of the stack, if it has it.
    pub fn try_output(&self, key: &str) -> Result<&str, String> {
        self.outputs.get(key).map(String::as_str).ok_or_else(|| {
            let mut keys: Vec<&String> = self.outputs.keys().collect();
            keys.sort();
            format!("stack {} has no output {key} (outputs: {keys:?})", self.name)
        })
    }

    /// Every output of the stack, by name.
    pub fn outputs(&self) -> &HashMap<String, String> {
        &self.outputs
    }

    /// An output of the stack (`TableName`, `FieldKeyArn`, `EventBusName`, `EventSource`,
    /// `ProjectorQueueUrl`, `ProjectorQueueArn`, `ProjectorDeadLetterQueueUrl`,
    /// `DeliveryDeadLetterQueueUrl`, `PublisherFailureQueueUrl`).
    pub fn output(&self, key: &str) -> &str {
        self.outputs.get(key).unwrap_or_else(|| {
            panic!("stack {} has no output {key} (outputs: {:?})", self.name, self.outputs.keys())
        })
    }
}
