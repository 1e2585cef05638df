//! The workspace's functions served by `cargo lambda watch` (cargo-lambda's emulator of the Lambda
//! runtime API), invoked with real event JSON as the Lambda Invoke API does.

use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use strata_testing::EmulatorStack;

/// `cargo lambda watch` serving this workspace's functions; stopped (with the functions it started)
/// when dropped.
pub struct LocalFunctions {
    child: Child,
    /// The port it listens on (loopback).
    pub port: u16,
    agent: ureq::Agent,
}

impl LocalFunctions {
    /// Starts serving with this environment (every function gets all of it); waits up to 60 s until
    /// it listens. Functions compile on their first invocation. Their output (and cargo's) goes to
    /// `log`, or to this process's stderr.
    pub fn try_serve(env: &[(&str, String)], log: Option<&Path>) -> Result<Self, String> {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("no free loopback port: {e}"))?
            .port();
        let vars: Vec<String> = env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut child = Command::new("cargo")
            .args(["lambda", "watch", "--ignore-changes", "-A", "127.0.0.1", "-P", &port.to_string()])
            .args(vars.iter().flat_map(|v| ["--env-var", v.as_str()]))
            .current_dir(workspace)
            .stdout(Stdio::null())
            .stderr(match log {
                Some(path) => std::fs::File::create(path)
                    .map_err(|e| format!("cannot write {}: {e}", path.display()))?
                    .into(),
                None => Stdio::inherit(),
            })
            .spawn()
            .map_err(|e| {
                format!("cannot run `cargo lambda watch` ({e}): install cargo-lambda, or run ./scripts/test")
            })?;
        let deadline = Instant::now() + Duration::from_secs(60);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline || matches!(child.try_wait(), Ok(Some(_))) {
                let _ = child.kill();
                return Err(format!("cargo lambda watch did not listen on {port}"));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        // The first invocation of each function compiles it: allow minutes.
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(600)))
            .build()
            .into();
        Ok(Self { child, port, agent })
    }

    /// [`LocalFunctions::try_serve`], panicking on failure (tests).
    pub fn serve(env: &[(&str, String)]) -> Self {
        Self::try_serve(env, None).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Invokes a function with an event, as the Lambda Invoke API does; returns its response.
    pub fn try_invoke(&self, function: &str, event: &Value) -> Result<Value, String> {
        let url = format!("http://127.0.0.1:{}/2015-03-31/functions/{function}/invocations", self.port);
        let mut response = self
            .agent
            .post(&url)
            .header("content-type", "application/json")
            .send(event.to_string())
            .map_err(|e| format!("invoke {function}: {e}"))?;
        let text = response.body_mut().read_to_string().map_err(|e| format!("invoke {function}: {e}"))?;
        if response.status().as_u16() != 200 {
            return Err(format!("invoke {function}: {} {text}", response.status()));
        }
        serde_json::from_str(&text).map_err(|e| format!("invoke {function}: not JSON ({e}): {text}"))
    }

    /// [`LocalFunctions::try_invoke`], panicking on failure (tests).
    pub fn invoke(&self, function: &str, event: &Value) -> Value {
        self.try_invoke(function, event).unwrap_or_else(|e| panic!("{e}"))
    }
}

impl Drop for LocalFunctions {
    /// SIGKILL, never SIGTERM: on SIGTERM, cargo-lambda 1.9.2's watch took down every process of the
    /// user on this machine (the emulator, the shell) twice. The functions it started exit by
    /// themselves once the runtime API they poll is gone.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The environment the four functions need on a stack of the emulator template: the stack's names,
/// a fixed tenant, the admin routes on (deployed, they go to a separate function behind an admin-only
/// authorizer), and the emulator's endpoint, region and credentials.
pub fn functions_env(stack: &EmulatorStack, tenant: &str) -> Result<Vec<(&'static str, String)>, String> {
    let out = |key: &str| stack.try_output(key).map(str::to_owned);
    let setting = |name: &str, default: &str| std::env::var(name).unwrap_or_else(|_| default.to_owned());
    let endpoint = std::env::var("AWS_ENDPOINT_URL").map_err(|_| "AWS_ENDPOINT_URL is not set".to_owned())?;
    Ok(vec![
        ("STRATA_TABLE", out("TableName")?),
        ("STRATA_KMS_KEY_ID", out("FieldKeyArn")?),
        ("STRATA_TENANT", tenant.to_owned()),
        ("STRATA_ADMIN", "true".to_owned()),
        ("STRATA_EVENT_BUS", out("EventBusName")?),
        ("STRATA_EVENT_SOURCE", out("EventSource")?),
        // As the construct deploys them: the publisher prunes snapshots, the commands do not.
        ("STRATA_SNAPSHOT_PRUNING", "publisher".to_owned()),
        ("STRATA_SNAPSHOT_KEEP", "2".to_owned()),
        ("AWS_ENDPOINT_URL", endpoint),
        ("AWS_REGION", setting("AWS_REGION", "us-east-1")),
        ("AWS_ACCESS_KEY_ID", setting("AWS_ACCESS_KEY_ID", "test")),
        ("AWS_SECRET_ACCESS_KEY", setting("AWS_SECRET_ACCESS_KEY", "test")),
    ])
}

/// The HTTP answer inside a function's API Gateway v2 response.
#[derive(Debug, Clone)]
pub struct Answer {
    /// Status code.
    pub status: u64,
    /// Headers.
    pub headers: Value,
    /// The body, parsed as JSON (`null` when empty).
    pub body: Value,
}

impl Answer {
    /// Reads an API Gateway v2 response.
    pub fn of(response: &Value) -> Result<Self, String> {
        let body = match response["body"].as_str() {
            Some(text) if !text.is_empty() => {
                serde_json::from_str(text).map_err(|e| format!("body is not JSON ({e}): {text}"))?
            }
            _ => Value::Null,
        };
        let status = response["statusCode"].as_u64().ok_or_else(|| format!("no statusCode in {response}"))?;
        Ok(Self { status, headers: response["headers"].clone(), body })
    }
}

/// An API Gateway HTTP API (payload format 2.0) event with a JSON body.
pub fn apigw(method: &str, path: &str, query: &str, headers: &[(&str, &str)], body: Option<&Value>) -> Value {
    let mut all = vec![("content-type", "application/json"), ("host", "api.example.com")];
    all.extend_from_slice(headers);
    let body = body.map(Value::to_string);
    strata_testing::apigw_v2_event(method, path, query, &all, body.as_deref())
}
