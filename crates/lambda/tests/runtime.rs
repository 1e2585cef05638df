//! The one-binary runtime: each role serves its own kind of event and refuses the rest, and its
//! configuration is checked when the function starts.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use lambda_runtime::{Context, LambdaEvent};
use serde_json::{Value, json};
use strata_core::FieldCipher;
use strata_dynamodb::DynamoStore;
use strata_lambda::runtime::{Functions, Handler, Role};
use strata_lambda::{Service, Settings, Tenancy};
use strata_orders::{Order, OrderSummaries};

/// A store no test here calls: every refusal happens before any request.
fn functions() -> Functions {
    let config = aws_sdk_dynamodb::Config::builder()
        .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
        .region(aws_sdk_dynamodb::config::Region::new("us-east-1"))
        .endpoint_url("http://127.0.0.1:9")
        .build();
    let store = DynamoStore::new(aws_sdk_dynamodb::Client::from_conf(config), "unused");
    Functions::new(
        Service::new(store).with_cipher(FieldCipher::local()).aggregate::<Order>().projection(OrderSummaries),
    )
}

fn handler(role: Role, tenancy: Option<Tenancy>, consumer: Option<&str>) -> Result<Handler, String> {
    Handler::new(role, functions(), tenancy, &mut Settings::default(), consumer).map_err(|e| e.to_string())
}

fn http() -> Value {
    strata_testing::apigw_v2_event("GET", "/nowhere", "", &[], None)
}

fn sqs() -> Value {
    json!({ "Records": [] })
}

async fn invoke(handler: &Handler, event: Value) -> Result<Value, String> {
    handler.invoke(LambdaEvent::new(event, Context::default())).await.map_err(|e| e.to_string())
}

#[tokio::test]
async fn each_role_serves_its_events_and_refuses_the_others() {
    let tenancy = Some(Tenancy::Fixed("acme".into()));
    let projector = handler(Role::Projector, None, None).unwrap();
    assert!(invoke(&projector, http()).await.unwrap_err().contains("serves no HTTP API"));
    assert_eq!(invoke(&projector, sqs()).await.unwrap(), json!({ "batchItemFailures": [] }));

    let command = handler(Role::Command, tenancy.clone(), None).unwrap();
    assert!(invoke(&command, sqs()).await.unwrap_err().contains("serves no queue"));
    let missing = invoke(&command, http()).await.unwrap();
    assert_eq!(missing["statusCode"], 404, "{missing}");

    // The query role never serves the admin routes, whatever STRATA_ADMIN says: 403, they are the
    // admin API's.
    let mut admin_on = Settings { admin: true, ..Settings::default() };
    let query = Handler::new(Role::Query, functions(), tenancy.clone(), &mut admin_on, None).unwrap();
    let export =
        invoke(&query, strata_testing::apigw_v2_event("GET", "/admin/subjects/c-1/export", "", &[], None))
            .await
            .unwrap();
    assert_eq!(export["statusCode"], 403, "{export}");

    let all = handler(Role::All, tenancy, None).unwrap();
    assert!(invoke(&all, json!({ "detail-type": "x" })).await.unwrap_err().contains("not an API Gateway"));
    // Without a relay (`all` without STRATA_EVENT_BUS), stream batches are refused, not dropped.
    assert!(invoke(&all, stream()).await.unwrap_err().contains("serves no table stream"));
    assert!(invoke(&projector, stream()).await.unwrap_err().contains("serves no table stream"));
}

/// A stream batch of one record the relay has nothing to publish from (a view's insert).
fn stream() -> Value {
    json!({ "Records": [{
        "eventID": "1",
        "eventName": "INSERT",
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": "us-east-1",
        "dynamodb": {
            "Keys": { "pk": { "S": "acme#v#summaries#o-1" }, "sk": { "S": "view" } },
            "NewImage": { "pk": { "S": "acme#v#summaries#o-1" }, "sk": { "S": "view" }, "kind": { "S": "view" } },
            "SequenceNumber": "100",
            "SizeBytes": 60,
            "StreamViewType": "NEW_IMAGE"
        },
        "eventSourceARN": "arn:aws:dynamodb:us-east-1:123456789012:table/t/stream/2026-01-01T00:00:00.000"
    }] })
}

#[tokio::test]
async fn the_publisher_role_relays_stream_batches_and_serves_nothing_else() {
    let config = aws_sdk_eventbridge::Config::builder()
        .behavior_version(aws_sdk_eventbridge::config::BehaviorVersion::latest())
        .region(aws_sdk_eventbridge::config::Region::new("us-east-1"))
        .endpoint_url("http://127.0.0.1:9")
        .build();
    let publisher = strata_eventbridge::EventBridgePublisher::new(
        aws_sdk_eventbridge::Client::from_conf(config),
        "bus",
        "com.example.test",
    )
    .unwrap();
    let relay = strata_eventbridge::StreamRelay::new(publisher);
    let handler = handler(Role::Publisher, None, None).unwrap().with_relay(relay);
    assert_eq!(invoke(&handler, stream()).await.unwrap(), json!({ "batchItemFailures": [] }));
    assert!(invoke(&handler, http()).await.unwrap_err().contains("serves no HTTP API"));
    let sqs = json!({ "Records": [{ "eventSource": "aws:sqs", "messageId": "m-1", "body": "{}" }] });
    assert!(invoke(&handler, sqs).await.unwrap_err().contains("serves no queue"));
    assert_eq!("publisher".parse::<Role>(), Ok(Role::Publisher));
}

#[tokio::test]
async fn a_configuration_that_cannot_work_stops_the_start() {
    assert!(handler(Role::Query, None, None).unwrap_err().contains("STRATA_TENANT"));
    assert!(handler(Role::Consumer, None, Some("mailer")).unwrap_err().contains("STRATA_CONSUMER=mailer"));
    let admin = Handler::new(
        Role::Admin,
        Functions::new(Service::new(store())),
        Some(Tenancy::Fixed("a".into())),
        &mut Settings::default(),
        None,
    );
    assert!(admin.err().unwrap().to_string().contains("admin routes need"));
    let bare = Handler::new(
        Role::Projector,
        Functions::new(Service::new(store())),
        None,
        &mut Settings::default(),
        None,
    );
    assert!(bare.err().unwrap().to_string().contains("no read model"));
    let bare = Handler::new(
        Role::Consumer,
        Functions::new(Service::new(store())),
        None,
        &mut Settings::default(),
        None,
    );
    assert!(bare.err().unwrap().to_string().contains("no consumer"));
    assert!("teleport".parse::<Role>().is_err());
    assert_eq!("projector".parse::<Role>(), Ok(Role::Projector));
}

fn store() -> DynamoStore {
    let config = aws_sdk_dynamodb::Config::builder()
        .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
        .region(aws_sdk_dynamodb::config::Region::new("us-east-1"))
        .build();
    DynamoStore::new(aws_sdk_dynamodb::Client::from_conf(config), "unused")
}

/// A consumer that does nothing: its runner's lease is what the checks compare.
struct Mailer;

impl strata_eventbridge::effects::Consumer for Mailer {
    type Event = strata_orders::OrderEvent;
    const NAME: &'static str = "mailer";
    const CATEGORY: &'static str = "order";

    async fn handle(
        &self,
        _event: strata_orders::OrderEvent,
        _delivery: &strata_eventbridge::effects::Delivery,
    ) -> Result<(), strata_core::BoxError> {
        Ok(())
    }
}

#[tokio::test]
async fn a_consumer_whose_lease_is_not_the_deployments_stops_the_start() {
    let with_lease = |seconds: i64| {
        let effects =
            strata_eventbridge::Effects::new(Mailer, store()).with_lease(chrono::Duration::seconds(seconds));
        let functions = functions().consumer(effects);
        Handler::new(Role::Consumer, functions, None, &mut Settings::default(), Some("mailer")).unwrap()
    };
    let handler = with_lease(120);
    assert!(handler.check_lease(Some(120)).is_ok());
    assert!(handler.check_lease(None).is_ok(), "no deployment lease: nothing to compare");
    let refused = with_lease(60).check_lease(Some(120)).unwrap_err().to_string();
    assert!(refused.contains("consumer mailer: its Effects lease is 60 s"), "{refused}");
}
