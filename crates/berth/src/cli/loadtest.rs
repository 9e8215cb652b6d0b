//! `berth loadtest ENDPOINT`: drives an endpoint through berth's runtime API with berth-load's
//! generator — open loop at `--rate` requests a second (each sent on schedule, latency from its
//! due time), or closed loop with `--users` — for `--duration` seconds, the `--payload` file (or
//! a `.tar.gz` of files, sent in turn) as bodies. A progress line while it runs (on a terminal),
//! a table at the end, `--json` for scripts.

use super::api::Api;
use super::Server;
use anyhow::{bail, Context};
use berth_load::{run_step_observed, run_users, Progress, Step, StepResult};
use bytes::Bytes;
use http_body_util::Full;
use serde_json::json;
use std::io::{IsTerminal, Read, Write};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The largest payload file or archive read, and the most payloads kept from an archive.
const MAX_PAYLOAD_FILE: u64 = 100 * 1024 * 1024;
const MAX_PAYLOADS: usize = 1000;
/// How long one request may take before it counts as an error.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(clap::Args, Debug)]
pub struct LoadtestArgs {
    endpoint: String,
    /// Requests per second, each sent on schedule whatever the answers' speed (open loop).
    #[arg(long, conflicts_with = "users", required_unless_present = "users")]
    rate: Option<f64>,
    /// Users, each sending its next request once its last is answered (closed loop).
    #[arg(long)]
    users: Option<usize>,
    /// How long to send, in seconds.
    #[arg(long, default_value_t = 30)]
    duration: u64,
    /// The request body: a file, or a `.tar.gz` of files sent in turn.
    #[arg(long)]
    payload: PathBuf,
    #[arg(long, default_value = "text/csv")]
    content_type: String,
    /// Send to this variant (TargetVariant).
    #[arg(long)]
    variant: Option<String>,
    /// Most requests out at once (open loop); a request due past it is dropped and counted.
    #[arg(long, default_value_t = 1024)]
    max_in_flight: usize,
}

pub fn loadtest(server: Server, args: LoadtestArgs) -> anyhow::Result<()> {
    if !(1..=3600).contains(&args.duration) {
        bail!("--duration must be 1 to 3600 seconds");
    }
    if let Some(rate) = args.rate {
        if !(rate > 0.0 && rate <= 100_000.0) {
            bail!("--rate must be above 0 and at most 100000 requests a second");
        }
        if rate * args.duration as f64 > 20_000_000.0 {
            bail!("--rate × --duration is more than 20 million requests; berth loadtest keeps each one's latency");
        }
    }
    if args.users.is_some_and(|u| !(1..=10_000).contains(&u)) {
        bail!("--users must be 1 to 10000");
    }
    let payloads = Arc::new(read_payloads(&args.payload)?);
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    runtime.block_on(async {
        let api = Arc::new(Api::new(&server.url).await?);
        let url = format!("{}/endpoints/{}/invocations", api.url, args.endpoint);
        let (content_type, variant) = (args.content_type.clone(), args.variant.clone());
        let send = move |i: u64| {
            let (api, url, content_type, variant) = (api.clone(), url.clone(), content_type.clone(), variant.clone());
            let body = payloads[(i as usize) % payloads.len()].clone();
            async move {
                tokio::time::timeout(REQUEST_TIMEOUT, invoke(&api, &url, &content_type, variant.as_deref(), body))
                    .await
                    .unwrap_or_else(|_| Err("no answer within 60 s".into()))
            }
        };
        let progress = Arc::new(Progress::default());
        let shown = progress.clone();
        let duration = Duration::from_secs(args.duration);
        let ticker = tokio::spawn(show_progress(shown, duration));
        let result = match args.rate {
            Some(rate) => run_step_observed(Step { rate, duration }, args.max_in_flight, send, progress).await,
            None => run_users(args.users.unwrap_or(1), duration, send, progress).await,
        };
        ticker.abort();
        if std::io::stderr().is_terminal() {
            eprint!("\r\x1b[K");
        }
        report(&server, &args, &result)
    })
}

async fn invoke(api: &Api, url: &str, content_type: &str, variant: Option<&str>, body: Bytes) -> Result<(), String> {
    let mut req = http::Request::post(url).header("content-type", content_type);
    if let Some(v) = variant {
        req = req.header("x-amzn-sagemaker-target-variant", v);
    }
    let mut req = req.body(Full::new(body.clone())).map_err(|e| e.to_string())?;
    api.sign(&mut req, &body, "sagemaker").map_err(|e| e.to_string())?;
    let (status, _, answer) = api.send(req).await.map_err(|e| e.to_string())?;
    if status.is_success() {
        return Ok(());
    }
    let text = String::from_utf8_lossy(&answer[..answer.len().min(200)]).into_owned();
    Err(format!("HTTP {}: {text}", status.as_u16()))
}

/// A progress line on stderr, twice a second, when stderr is a terminal.
async fn show_progress(progress: Arc<Progress>, duration: Duration) {
    if !std::io::stderr().is_terminal() {
        return;
    }
    let start = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let elapsed = start.elapsed().min(duration);
        let done = elapsed.as_secs_f64() / duration.as_secs_f64();
        let bar: String = (0..30).map(|i| if (i as f64) < done * 30.0 { '#' } else { '.' }).collect();
        let answered = progress.answered.load(Ordering::Relaxed);
        eprint!(
            "\r\x1b[K[{bar}] {:>4.0}/{} s  sent {}  answered {answered}  errors {}  {:.1} req/s",
            elapsed.as_secs_f64(),
            duration.as_secs(),
            progress.sent.load(Ordering::Relaxed),
            progress.errors.load(Ordering::Relaxed),
            answered as f64 / start.elapsed().as_secs_f64().max(1e-3),
        );
        let _ = std::io::stderr().flush();
    }
}

fn report(server: &Server, args: &LoadtestArgs, r: &StepResult) -> anyhow::Result<()> {
    let ms = |p: f64| r.percentile_ms(p);
    let mode = match (args.rate, args.users) {
        (Some(rate), _) => format!("open loop at {rate} req/s"),
        (None, users) => format!("closed loop, {} user(s)", users.unwrap_or(1)),
    };
    if server.json {
        let out = json!({
            "endpoint": args.endpoint, "mode": if args.rate.is_some() { "open" } else { "closed" },
            "target_rate": args.rate, "users": args.users, "duration_s": args.duration,
            "requests": r.due, "ok": r.ok, "errors": r.errors, "dropped": r.dropped, "achieved_rate": r.achieved_rate,
            "latency_ms": {"p50": ms(50.0), "p90": ms(90.0), "p95": ms(95.0), "p99": ms(99.0), "max": ms(100.0)},
            "first_error": r.first_error,
        });
        println!("{out}");
        return Ok(());
    }
    let show = |v: Option<f64>| v.map_or("–".to_string(), |v| format!("{v:.2} ms"));
    println!("endpoint   {}", args.endpoint);
    println!("load       {mode} for {} s", args.duration);
    println!("requests   {} (ok {}, errors {}, dropped {})", r.due, r.ok, r.errors, r.dropped);
    println!("answered   {:.1} req/s", r.achieved_rate);
    println!(
        "latency    p50 {}   p90 {}   p95 {}   p99 {}   max {}",
        show(ms(50.0)),
        show(ms(90.0)),
        show(ms(95.0)),
        show(ms(99.0)),
        show(ms(100.0))
    );
    if let Some(e) = &r.first_error {
        println!("first error  {e}");
    }
    Ok(())
}

/// The bodies to send: the file, or each file of a `.tar.gz`.
fn read_payloads(path: &std::path::Path) -> anyhow::Result<Vec<Bytes>> {
    let size = std::fs::metadata(path).with_context(|| format!("reading --payload {}", path.display()))?.len();
    if size > MAX_PAYLOAD_FILE {
        bail!("--payload {} is {size} bytes; berth loadtest reads at most {MAX_PAYLOAD_FILE}", path.display());
    }
    let data = std::fs::read(path).with_context(|| format!("reading --payload {}", path.display()))?;
    if !data.starts_with(&[0x1f, 0x8b]) {
        return Ok(vec![Bytes::from(data)]);
    }
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(&data[..]).take(8 * MAX_PAYLOAD_FILE));
    let mut out = Vec::new();
    for entry in archive.entries().with_context(|| format!("reading the archive {}", path.display()))? {
        let mut entry = entry.with_context(|| format!("reading the archive {}", path.display()))?;
        if !entry.header().entry_type().is_file() || out.len() == MAX_PAYLOADS {
            continue;
        }
        let mut body = Vec::new();
        (&mut entry).take(MAX_PAYLOAD_FILE).read_to_end(&mut body)?;
        out.push(Bytes::from(body));
    }
    if out.is_empty() {
        bail!("the archive {} holds no file to send", path.display());
    }
    Ok(out)
}
