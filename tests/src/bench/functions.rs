//! The Lambda functions as shipped: zipped arm64 size (from `scripts/package`) and local init time
//! of a release build (process start to its first poll of the runtime API).

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::stats::Spread;

/// The functions, as named in `functions/` and by `scripts/package`.
pub const FUNCTIONS: [&str; 4] = ["command-api", "query-api", "stream-publisher", "projector"];

/// One function's figures.
#[derive(Debug, Clone)]
pub struct FunctionRow {
    /// Its name.
    pub name: &'static str,
    /// Bytes of `target/lambda/{name}/bootstrap.zip`, if it was built.
    pub zip_bytes: Option<u64>,
    /// Bytes of the arm64 binary inside it (the zip's entries, uncompressed).
    pub binary_bytes: Option<u64>,
    /// Init time of `target/release/{name}`, if it was built.
    pub init: Option<Spread>,
}

/// Sizes and init times of every function built under `target`.
pub fn measure(target: &Path, runs: usize) -> Vec<FunctionRow> {
    FUNCTIONS
        .iter()
        .map(|name| {
            let size = |path: &Path| std::fs::metadata(path).ok().map(|m| m.len());
            let binary = target.join("release").join(name);
            let init = binary.exists().then(|| {
                let times: Vec<Duration> = (0..runs).filter_map(|_| init_time(&binary)).collect();
                Spread::of_durations(&times)
            });
            FunctionRow {
                name,
                zip_bytes: size(&target.join("lambda").join(name).join("bootstrap.zip")),
                binary_bytes: unzipped_size(&target.join("lambda").join(name).join("bootstrap.zip")),
                init: init.flatten(),
            }
        })
        .collect()
}

/// From spawning `binary` to its first `GET .../runtime/invocation/next` on a local stand-in of the
/// Lambda runtime API; `None` if it never polls within 30 s. The function's environment is dummies:
/// init makes no AWS calls.
pub fn init_time(binary: &Path) -> Option<Duration> {
    let listener = TcpListener::bind("127.0.0.1:0").ok()?;
    let port = listener.local_addr().ok()?.port();
    listener.set_nonblocking(true).ok()?;
    let started = Instant::now();
    let mut child = Command::new(binary)
        .env("AWS_LAMBDA_RUNTIME_API", format!("127.0.0.1:{port}"))
        .env("AWS_LAMBDA_FUNCTION_NAME", "init-time")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "512")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "1")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "x")
        .env("AWS_SECRET_ACCESS_KEY", "x")
        .env("STRATA_TABLE", "t")
        .env("STRATA_KMS_KEY_ID", "k")
        .env("STRATA_TENANT", "acme")
        .env("STRATA_EVENT_BUS", "b")
        .env("STRATA_EVENT_SOURCE", "s")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let deadline = started + Duration::from_secs(30);
    let polled = loop {
        match listener.accept() {
            Ok((stream, _)) => {
                let _ = stream.set_nonblocking(false);
                let mut line = String::new();
                let _ = BufReader::new(stream).read_line(&mut line);
                if line.contains("/runtime/invocation/next") {
                    break Some(started.elapsed());
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if Instant::now() > deadline || child.try_wait().ok().flatten().is_some() {
                    break None;
                }
                std::thread::sleep(Duration::from_micros(200));
            }
            Err(_) => break None,
        }
    };
    let _ = child.kill();
    let _ = child.wait();
    polled
}

/// The uncompressed size of a zip's entries, from its central directory; `None` if it is not a zip.
pub fn unzipped_size(path: &Path) -> Option<u64> {
    let bytes = std::fs::read(path).ok()?;
    let u16_at = |at: usize| Some(u16::from_le_bytes(bytes.get(at..at + 2)?.try_into().ok()?));
    let u32_at = |at: usize| Some(u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?));
    // The end of central directory record (signature PK\x05\x06), searched from the end.
    let end = (0..bytes.len().saturating_sub(21)).rev().find(|&i| bytes[i..].starts_with(b"PK\x05\x06"))?;
    let entries = u16_at(end + 10)?;
    let mut at = usize::try_from(u32_at(end + 16)?).ok()?;
    let mut total = 0u64;
    for _ in 0..entries {
        if !bytes.get(at..)?.starts_with(b"PK\x01\x02") {
            return None;
        }
        let size = u32_at(at + 24)?;
        if size == u32::MAX {
            return None; // ZIP64: the size is elsewhere; not worth parsing for a Lambda zip
        }
        total += u64::from(size);
        let skip =
            usize::from(u16_at(at + 28)?) + usize::from(u16_at(at + 30)?) + usize::from(u16_at(at + 32)?);
        at += 46 + skip;
    }
    Some(total)
}
