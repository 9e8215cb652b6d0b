//! Operator commands that talk to a running berth over its SageMaker and CloudWatch APIs and
//! berth's own: `berth endpoints`, `berth invoke`, `berth loadtest`, `berth weights`, `berth ab`,
//! `berth logs`, `berth events`; and `berth nodes`, which reads the cluster's store.
//! Human tables by default, `--json` for scripts.

use anyhow::{bail, Context};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use serde_json::{json, Value};
use std::io::{Read, Write};

mod api;
mod loadtest;
pub(crate) mod spinner;
pub(crate) use api::tls_config;
use api::{runtime, Api};
pub use loadtest::{loadtest, LoadtestArgs};

#[derive(clap::Args, Debug, Clone)]
pub struct Server {
    /// The berth server to talk to.
    #[arg(long, env = "BERTH_URL", default_value = "http://127.0.0.1:8080", global = true)]
    url: String,
    /// Print JSON instead of a table.
    #[arg(long, global = true)]
    json: bool,
}

#[derive(clap::Args, Debug)]
pub struct InvokeArgs {
    endpoint: String,
    /// Send to this variant (TargetVariant) instead of one picked by weight.
    #[arg(long)]
    variant: Option<String>,
    #[arg(long, default_value = "text/csv")]
    content_type: String,
    #[arg(long)]
    accept: Option<String>,
    /// A sticky key (a user id, say): sent where the endpoint's `berth:sticky-key` tag says
    /// (as the InferenceId, or as a CustomAttributes field), so the same key always reaches
    /// the same variant.
    #[arg(long)]
    key: Option<String>,
    /// Stream the answer (InvokeEndpointWithResponseStream): print each part as it arrives.
    #[arg(long)]
    stream: bool,
    /// The model to invoke on a multi-model endpoint (TargetModel: its key under the prefix).
    #[arg(long)]
    target_model: Option<String>,
    /// The container to invoke on a Direct multi-container endpoint (TargetContainerHostname).
    #[arg(long)]
    container: Option<String>,
}

#[derive(clap::Args, Debug)]
pub struct WeightsArgs {
    endpoint: String,
    /// New weights, as Variant=Weight (e.g. Variant1=25 Variant2=75).
    #[arg(required = true)]
    weights: Vec<String>,
}

#[derive(clap::Args, Debug)]
pub struct AbArgs {
    endpoint: String,
    /// The variants to compare (default: the endpoint's first two production variants).
    #[arg(long, num_args = 2, value_names = ["A", "B"])]
    variants: Option<Vec<String>>,
}

#[derive(clap::Args, Debug)]
pub struct LogsArgs {
    endpoint: String,
    /// Only this variant's instances.
    #[arg(long)]
    variant: Option<String>,
    /// Keep printing what the instances write, until interrupted.
    #[arg(long, short)]
    follow: bool,
    /// Bytes from the end of each instance log to start with.
    #[arg(long, default_value_t = 8192)]
    tail: u64,
}

#[derive(clap::Args, Debug)]
pub struct EventsArgs {
    /// Only this endpoint's events (all endpoints' when left out).
    endpoint: Option<String>,
    /// How many of the newest events to print first.
    #[arg(long, default_value_t = 30)]
    limit: usize,
    /// Keep printing new events, until interrupted.
    #[arg(long, short)]
    follow: bool,
}

/// `berth endpoints`: every endpoint with its variants, weights, instances and recent req/s.
pub fn endpoints(server: Server) -> anyhow::Result<()> {
    runtime()?.block_on(async {
        let api = Api::new(&server.url).await?;
        let mut rows = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut input = json!({ "MaxResults": 100 });
            if let Some(t) = &token {
                input["NextToken"] = json!(t);
            }
            let page = api.call("SageMaker.ListEndpoints", input).await?;
            for e in page["Endpoints"].as_array().cloned().unwrap_or_default() {
                let name = e["EndpointName"].as_str().unwrap_or_default().to_string();
                let described = api.call("SageMaker.DescribeEndpoint", json!({ "EndpointName": name })).await?;
                let mut variants = Vec::new();
                for v in described["ProductionVariants"].as_array().cloned().unwrap_or_default() {
                    let variant = v["VariantName"].as_str().unwrap_or_default().to_string();
                    let rate = recent_rate(&api, &name, &variant).await.unwrap_or(0.0);
                    variants.push(json!({
                        "VariantName": variant,
                        "CurrentWeight": v["CurrentWeight"],
                        "CurrentInstanceCount": v["CurrentInstanceCount"],
                        "DesiredInstanceCount": v["DesiredInstanceCount"],
                        "RequestsPerSecond": rate,
                    }));
                }
                rows.push(json!({ "EndpointName": name, "EndpointStatus": described["EndpointStatus"], "Variants": variants }));
            }
            token = page["NextToken"].as_str().map(str::to_string);
            if token.is_none() {
                break;
            }
        }
        if server.json {
            println!("{}", serde_json::to_string_pretty(&rows)?);
            return Ok(());
        }
        let mut table = vec![["ENDPOINT", "STATUS", "VARIANT", "WEIGHT", "INSTANCES", "REQ/S"].map(String::from).to_vec()];
        for r in &rows {
            for (i, v) in r["Variants"].as_array().into_iter().flatten().enumerate() {
                let first = i == 0;
                table.push(vec![
                    if first { r["EndpointName"].as_str().unwrap_or_default().to_string() } else { String::new() },
                    if first { r["EndpointStatus"].as_str().unwrap_or_default().to_string() } else { String::new() },
                    v["VariantName"].as_str().unwrap_or_default().to_string(),
                    format!("{}", v["CurrentWeight"].as_f64().unwrap_or(0.0)),
                    format!("{}/{}", v["CurrentInstanceCount"], v["DesiredInstanceCount"]),
                    format!("{:.1}", v["RequestsPerSecond"].as_f64().unwrap_or(0.0)),
                ]);
            }
        }
        print_table(&table);
        Ok(())
    })
}

/// Invocations per second of a variant over the last 10 seconds, from the CloudWatch API.
async fn recent_rate(api: &Api, endpoint: &str, variant: &str) -> anyhow::Result<f64> {
    let now = berth_domain::Timestamp::now().secs();
    let out = api
        .call(
            "GraniteServiceVersion20100801.GetMetricStatistics",
            json!({
                "Namespace": "AWS/SageMaker", "MetricName": "Invocations",
                "Dimensions": [{"Name": "EndpointName", "Value": endpoint}, {"Name": "VariantName", "Value": variant}],
                "StartTime": now - 11, "EndTime": now - 1, "Period": 10, "Statistics": ["Sum"],
            }),
        )
        .await?;
    let sum: f64 = out["Datapoints"].as_array().into_iter().flatten().filter_map(|d| d["Sum"].as_f64()).sum();
    Ok(sum / 10.0)
}

/// Text from the server as a terminal may show it: control characters (a model's output can
/// hold escape sequences that retitle, recolour or rewrite a terminal) become `\u{..}` escapes.
pub(crate) fn printable(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return std::borrow::Cow::Borrowed(text);
    }
    std::borrow::Cow::Owned(text.chars().map(|c| if c.is_control() { c.escape_unicode().to_string() } else { c.to_string() }).collect())
}

/// Bytes for stdout: as they are when they go to a file or a pipe (they are the data), shown
/// with `\u{..}` escapes for control characters when stdout is a terminal.
fn for_stdout(data: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    if !std::io::IsTerminal::is_terminal(&std::io::stdout()) {
        return std::borrow::Cow::Borrowed(data);
    }
    let text = String::from_utf8_lossy(data);
    let shown: String = text.lines().map(|l| printable(l).into_owned()).collect::<Vec<_>>().join("\n");
    std::borrow::Cow::Owned(shown.into_bytes())
}

/// `berth nodes`: the cluster's servers, read from its store (so it answers with no leader).
pub fn nodes(store: &str, json: bool) -> anyhow::Result<()> {
    let nodes = berth_store::nodes_at(store).with_context(|| format!("reading the cluster at {}", berth_store::redacted(store)))?;
    if json {
        let nodes: Vec<Value> = nodes
            .iter()
            .map(|n| {
                json!({
                    "Name": n.name,
                    "Address": n.address,
                    "Leader": n.leader,
                    "StartedMs": n.started_ms,
                    "HeartbeatMs": n.heartbeat_ms,
                    "SilentMs": n.silent_ms,
                    "Connected": n.connected,
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&json!({ "Nodes": nodes }))?);
        return Ok(());
    }
    let mut rows = vec![vec!["NODE".to_string(), "ADDRESS".into(), "ROLE".into(), "LAST HEARD".into()]];
    for n in &nodes {
        rows.push(vec![n.name.clone(), n.address.clone(), n.role().into(), format!("{:.1} s ago", n.silent_ms as f64 / 1000.0)]);
    }
    print_table(&rows);
    Ok(())
}

fn print_table(rows: &[Vec<String>]) {
    let rows: Vec<Vec<String>> = rows.iter().map(|r| r.iter().map(|cell| printable(cell).into_owned()).collect()).collect();
    let widths: Vec<usize> = (0..rows[0].len()).map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0)).collect();
    let mut out = std::io::stdout().lock();
    for r in &rows {
        let line: Vec<String> = r.iter().zip(&widths).map(|(cell, w)| format!("{cell:<w$}")).collect();
        let _ = writeln!(out, "{}", line.join("  ").trim_end());
    }
}

/// `berth invoke`: sends stdin to an endpoint, prints the answer; the variant goes to stderr.
pub fn invoke(server: Server, args: InvokeArgs) -> anyhow::Result<()> {
    let mut body = Vec::new();
    std::io::stdin().read_to_end(&mut body).context("reading the request body from stdin")?;
    runtime()?.block_on(async {
        let api = Api::new(&server.url).await?;
        let operation = if args.stream { "invocations-response-stream" } else { "invocations" };
        let mut req =
            http::Request::post(format!("{}/endpoints/{}/{operation}", api.url, args.endpoint)).header("content-type", &args.content_type);
        for (name, value) in [
            ("x-amzn-sagemaker-target-variant", &args.variant),
            ("x-amzn-sagemaker-target-model", &args.target_model),
            ("x-amzn-sagemaker-target-container-hostname", &args.container),
        ] {
            if let Some(v) = value {
                req = req.header(name, v);
            }
        }
        if let Some(a) = &args.accept {
            // The streaming operation takes Accept in a header of its own.
            req = req.header(if args.stream { "x-amzn-sagemaker-accept" } else { "accept" }, a);
        }
        if let Some(key) = &args.key {
            let (name, value) = sticky_header(&api, &args.endpoint, key).await?;
            req = req.header(name, value);
        }
        let body = Bytes::from(body);
        let mut req = req.body(Full::new(body.clone()))?;
        api.sign(&mut req, &body, "sagemaker")?;
        if args.stream {
            return print_stream(&api, req, server.json).await;
        }
        let (status, headers, answer) = api.send(req).await?;
        let variant = headers.get("x-amzn-invoked-production-variant").and_then(|v| v.to_str().ok()).unwrap_or("");
        if server.json {
            let text = String::from_utf8_lossy(&answer);
            println!("{}", json!({ "StatusCode": status.as_u16(), "InvokedProductionVariant": variant, "Body": text }));
        } else {
            std::io::stdout().write_all(&for_stdout(&answer))?;
            if !answer.ends_with(b"\n") {
                println!();
            }
            eprintln!("{} from {}", status.as_u16(), printable(if variant.is_empty() { "berth" } else { variant }));
        }
        if !status.is_success() {
            bail!("the invocation failed with status {}", status.as_u16());
        }
        Ok(())
    })
}

/// Sends a streaming invocation and prints each part as it arrives (with `--json`, one JSON
/// line per part); a stream that ends in an error event fails with its message.
async fn print_stream(api: &Api, req: http::Request<Full<Bytes>>, json_lines: bool) -> anyhow::Result<()> {
    use berth_aws::event_stream;
    let resp = api.client.request(req).await.with_context(|| format!("cannot reach berth at {}", api.url))?;
    let (parts, mut body) = resp.into_parts();
    let variant = parts.headers.get("x-amzn-invoked-production-variant").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    if !parts.status.is_success() {
        let text = body.collect().await?.to_bytes();
        let value: Value = serde_json::from_slice(&text).unwrap_or(Value::Null);
        let message =
            value.get("message").and_then(Value::as_str).map_or_else(|| String::from_utf8_lossy(&text).into_owned(), str::to_string);
        bail!("the invocation failed with status {}: {message}", parts.status.as_u16());
    }
    let mut buf = bytes::BytesMut::new();
    let mut out = std::io::stdout();
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame?.into_data() else { continue };
        buf.extend_from_slice(&data);
        while let Some(message) = event_stream::read(&mut buf).map_err(|e| anyhow::anyhow!("the answer is not an event stream: {e}"))? {
            if let Some(kind) = message.header(":exception-type") {
                let detail: Value = serde_json::from_slice(&message.payload).unwrap_or(Value::Null);
                let text = detail.get("Message").and_then(Value::as_str).unwrap_or("");
                let code = detail.get("ErrorCode").and_then(Value::as_str).map(|c| format!(" ({c})")).unwrap_or_default();
                bail!("the stream from {variant} ended with {kind}{code}: {text}");
            }
            if json_lines {
                println!("{}", json!({ "InvokedProductionVariant": variant, "PayloadPart": String::from_utf8_lossy(&message.payload) }));
            } else {
                out.write_all(&for_stdout(&message.payload))?;
                out.flush()?;
            }
        }
    }
    if !json_lines {
        eprintln!("200 from {variant} (streamed)");
    }
    Ok(())
}

/// The header that carries `key` to `endpoint`, as its `berth:sticky-key` tag says.
async fn sticky_header(api: &Api, endpoint: &str, key: &str) -> anyhow::Result<(&'static str, String)> {
    let described = api.call("SageMaker.DescribeEndpoint", json!({ "EndpointName": endpoint })).await?;
    let arn = described["EndpointArn"].as_str().unwrap_or_default();
    let tags = api.call("SageMaker.ListTags", json!({ "ResourceArn": arn })).await?;
    let place = tags["Tags"].as_array().into_iter().flatten().find(|t| t["Key"] == "berth:sticky-key").and_then(|t| t["Value"].as_str());
    match place.map(str::trim) {
        Some("InferenceId") => Ok(("x-amzn-sagemaker-inference-id", key.to_string())),
        Some(p) if p.starts_with("CustomAttributes:") => {
            Ok(("x-amzn-sagemaker-custom-attributes", format!("{}={key}", p["CustomAttributes:".len()..].trim())))
        }
        _ => bail!(
            "endpoint {endpoint} has no berth:sticky-key tag, so --key would not keep callers on one variant \
             (tag it, e.g. berth:sticky-key=CustomAttributes:user)"
        ),
    }
}

#[derive(clap::Args, Debug)]
pub struct WaitArgs {
    /// The endpoint to wait for.
    pub endpoint: String,
    /// Wait for this inference component of the endpoint instead.
    #[arg(long)]
    pub component: Option<String>,
    /// Give up after this many seconds (exit status 1).
    #[arg(long, default_value_t = 600)]
    pub timeout: u64,
}

/// `berth wait`: waits until an endpoint (or inference component) is InService, with a spinner
/// showing its status; fails with its FailureReason when it ends Failed, or at the timeout.
pub fn wait(server: Server, args: WaitArgs) -> anyhow::Result<()> {
    runtime()?.block_on(async {
        let api = Api::new(&server.url).await?;
        let (what, op, input, status_key) = match &args.component {
            Some(c) => (
                format!("inference component {c}"),
                "SageMaker.DescribeInferenceComponent",
                json!({ "InferenceComponentName": c }),
                "InferenceComponentStatus",
            ),
            None => (
                format!("endpoint {}", args.endpoint),
                "SageMaker.DescribeEndpoint",
                json!({ "EndpointName": args.endpoint }),
                "EndpointStatus",
            ),
        };
        let spinner = spinner::Spinner::start(&format!("waiting for {what}"));
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(args.timeout);
        let mut last = String::new();
        loop {
            let out = api.call(op, input.clone()).await?;
            let status = out[status_key].as_str().unwrap_or("").to_string();
            if status != last {
                spinner.say(&format!("{what}: {status}"));
                last = status.clone();
            }
            match status.as_str() {
                "InService" => {
                    spinner.finish(&format!("{what} is InService"));
                    return Ok(());
                }
                "Failed" | "OutOfService" | "UpdateRollbackFailed" => {
                    spinner.finish(&format!("{what} is {status}"));
                    bail!("{what} is {status}: {}", out["FailureReason"].as_str().unwrap_or("no reason given"));
                }
                _ if std::time::Instant::now() >= deadline => {
                    spinner.finish(&format!("{what} is still {status}"));
                    bail!("{what} is still {status} after {} s", args.timeout);
                }
                _ => tokio::time::sleep(std::time::Duration::from_millis(250)).await,
            }
        }
    })
}

/// `berth weights`: sets variant weights at once (UpdateEndpointWeightsAndCapacities).
pub fn weights(server: Server, args: WeightsArgs) -> anyhow::Result<()> {
    let mut desired = Vec::new();
    for w in &args.weights {
        let (variant, weight) = w.split_once('=').with_context(|| format!("'{w}' is not Variant=Weight"))?;
        let weight: f64 = weight.parse().with_context(|| format!("'{weight}' in '{w}' is not a number"))?;
        desired.push(json!({ "VariantName": variant, "DesiredWeight": weight }));
    }
    runtime()?.block_on(async {
        let api = Api::new(&server.url).await?;
        let input = json!({ "EndpointName": args.endpoint, "DesiredWeightsAndCapacities": desired });
        let out = api.call("SageMaker.UpdateEndpointWeightsAndCapacities", input).await?;
        if server.json {
            println!("{out}");
        } else {
            println!("{}: weights set ({})", args.endpoint, args.weights.join(", "));
        }
        Ok(())
    })
}

/// `berth ab`: the A/B test of an endpoint in the terminal — each variant's weight, labelled
/// count and accuracy with its 95% interval, and the always-valid test's verdict.
pub fn ab(server: Server, args: AbArgs) -> anyhow::Result<()> {
    runtime()?.block_on(async {
        let api = Api::new(&server.url).await?;
        let described = api.call("SageMaker.DescribeEndpoint", json!({ "EndpointName": args.endpoint })).await?;
        let weights: Vec<(String, f64)> = described["ProductionVariants"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|v| (v["VariantName"].as_str().unwrap_or_default().to_string(), v["CurrentWeight"].as_f64().unwrap_or(0.0)))
            .collect();
        let (a, b) = match (&args.variants, weights.as_slice()) {
            (Some(pair), _) => (pair[0].clone(), pair[1].clone()),
            (None, [a, b, ..]) => (a.0.clone(), b.0.clone()),
            (None, _) => bail!("endpoint {} has fewer than two production variants: there is no A/B test to show", args.endpoint),
        };
        let quality = api.get_json(&format!("/berth/v1/endpoints/{}/quality?problem=classification", args.endpoint)).await?;
        let test = api.get_json(&format!("/berth/v1/endpoints/{}/significance?metric=accuracy&a={a}&b={b}", args.endpoint)).await?;
        if server.json {
            println!("{}", json!({ "endpoint": args.endpoint, "weights": weights.iter().map(|(v, w)| json!({"variant": v, "weight": w})).collect::<Vec<_>>(), "quality": quality, "significance": test }));
            return Ok(());
        }
        let total: f64 = weights.iter().map(|(_, w)| w).sum();
        let mut rows = vec![vec!["VARIANT".to_string(), "TRAFFIC".into(), "LABELLED".into(), "ACCURACY".into(), "95% INTERVAL".into()]];
        for (variant, weight) in &weights {
            let q = quality["variants"].as_array().into_iter().flatten().find(|q| q["variant"] == variant.as_str());
            let share = if total > 0.0 { format!("{:.0}%", weight / total * 100.0) } else { "-".into() };
            let (n, accuracy, interval) = match q {
                Some(q) => {
                    let pct = |v: &Value| v.as_f64().map_or("-".to_string(), |v| format!("{:.1}%", v * 100.0));
                    let ci = &q["accuracy"]["ci95"];
                    (q["n"].to_string(), pct(&q["accuracy"]["value"]), format!("{} to {}", pct(&ci[0]), pct(&ci[1])))
                }
                None => ("0".into(), "-".into(), "-".into()),
            };
            rows.push(vec![variant.clone(), share, n, accuracy, interval]);
        }
        println!("{}: {a} vs {b} on accuracy", args.endpoint);
        print_table(&rows);
        println!("{}", printable(test["verdict"].as_str().unwrap_or("no verdict")));
        Ok(())
    })
}

/// `berth logs`: the instance logs of an endpoint, each line prefixed with variant/instance.
pub fn logs(server: Server, args: LogsArgs) -> anyhow::Result<()> {
    runtime()?.block_on(async {
        let api = Api::new(&server.url).await?;
        let variant = args.variant.as_deref().map(|v| format!("&variant={v}")).unwrap_or_default();
        let mut query = format!("/berth/v1/endpoints/{}/logs?tail={}{variant}", args.endpoint, args.tail);
        loop {
            let answer = api.get_json(&query).await?;
            let mut offsets = Vec::new();
            for log in answer["logs"].as_array().into_iter().flatten() {
                let who = format!("{}/{}", log["variant"].as_str().unwrap_or(""), log["instance"].as_str().unwrap_or(""));
                let text = log["text"].as_str().unwrap_or("");
                if server.json {
                    if !text.is_empty() {
                        println!("{}", json!({ "instance": who, "text": text }));
                    }
                } else {
                    for line in text.lines() {
                        println!("{} | {}", printable(&who), printable(line));
                    }
                }
                let next = log["next"].as_u64().unwrap_or(0);
                offsets.push(format!("{who}:{next}"));
            }
            if !args.follow {
                return Ok(());
            }
            std::io::stdout().flush()?;
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            query = format!("/berth/v1/endpoints/{}/logs?from={}{variant}", args.endpoint, offsets.join(","));
        }
    })
}

/// `berth events`: what happened to endpoints (status and weight changes, deployment steps,
/// instance starts, crashes and restarts), oldest first.
pub fn events(server: Server, args: EventsArgs) -> anyhow::Result<()> {
    runtime()?.block_on(async {
        let api = Api::new(&server.url).await?;
        let endpoint = args.endpoint.as_deref().map(|e| format!("&endpoint={e}")).unwrap_or_default();
        let mut query = format!("/berth/v1/events?limit={}{endpoint}", args.limit.max(1));
        let mut header = !server.json;
        loop {
            let answer = api.get_json(&query).await?;
            let mut events: Vec<Value> = answer["events"].as_array().cloned().unwrap_or_default();
            events.reverse();
            let text = |e: &Value, k: &str| e[k].as_str().unwrap_or("").to_string();
            if server.json {
                for e in &events {
                    println!("{e}");
                }
            } else if !events.is_empty() || header {
                let mut table = Vec::new();
                if header {
                    table.push(["TIME", "ENDPOINT", "VARIANT", "KIND", "MESSAGE"].map(String::from).to_vec());
                    header = false;
                }
                table.extend(
                    events
                        .iter()
                        .map(|e| vec![text(e, "time"), text(e, "endpoint"), text(e, "variant"), text(e, "kind"), text(e, "message")]),
                );
                if !table.is_empty() {
                    print_table(&table);
                }
            }
            if !args.follow {
                return Ok(());
            }
            let last = events.last().and_then(|e| e["id"].as_i64());
            if let Some(id) = last {
                query = format!("/berth/v1/events?limit=1000&after={id}{endpoint}");
            } else if !query.contains("after=") {
                query = format!("/berth/v1/events?limit=1000&after=0{endpoint}");
            }
            std::io::stdout().flush()?;
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        }
    })
}
