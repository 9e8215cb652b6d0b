//! CloudWatch Logs' read API (`X-Amz-Target: Logs_20140328.*`, through `AWS_ENDPOINT_URL_CLOUDWATCH_LOGS`)
//! over what berth's jobs and instances say: `DescribeLogGroups`, `DescribeLogStreams`,
//! `GetLogEvents` and `FilterLogEvents` on the groups SageMaker writes — `/aws/sagemaker/ProcessingJobs`
//! (a stream per job, `<job>/algo-1-<seconds>`), `/aws/sagemaker/TransformJobs` (a stream per
//! instance, `<job>/<instance>`), `/aws/sagemaker/InferenceRecommendationsJobs` (a stream per
//! job, `<job>/execution`) and `/aws/sagemaker/Endpoints/<endpoint>` (a stream per instance,
//! `<variant>/<instance>`). The SageMaker SDK's `logs=True` and `aws logs tail
//! --follow` read them. Writes (`PutLogEvents` and the like) are not served.

use crate::aws_json::parse;
use crate::error::EdgeError;
use axum::http::StatusCode;
use berth_control::{Controller, InstanceLogStream};
use berth_domain::{LogEvent, ProcessingJob};
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;

pub(crate) const TARGET_PREFIX: &str = "Logs_20140328";
/// The log group of processing jobs.
pub(crate) const PROCESSING_JOBS: &str = "/aws/sagemaker/ProcessingJobs";
/// The log group of transform jobs.
const TRANSFORM_JOBS: &str = "/aws/sagemaker/TransformJobs";
/// The log group of inference recommendations jobs.
const RECOMMENDATION_JOBS: &str = "/aws/sagemaker/InferenceRecommendationsJobs";
/// The log groups of endpoints: this and the endpoint's name.
const ENDPOINTS: &str = "/aws/sagemaker/Endpoints/";
/// Most events one answer holds (CloudWatch Logs' own limit is 10,000).
const MAX_EVENTS: usize = 10_000;

pub(crate) async fn operation(c: &Arc<Controller>, op: &str, body: &[u8]) -> Result<Value, EdgeError> {
    match op {
        "DescribeLogGroups" => describe_groups(c, body).await,
        "DescribeLogStreams" => describe_streams(c, body).await,
        "GetLogEvents" => get_events(c, body).await,
        "FilterLogEvents" => filter_events(c, body).await,
        _ => Err(EdgeError::unknown_operation(format!(
            "Operation '{TARGET_PREFIX}.{op}' is not supported by berth: it serves CloudWatch Logs' DescribeLogGroups, DescribeLogStreams, GetLogEvents and FilterLogEvents."
        ))),
    }
}

fn not_found(what: &str) -> EdgeError {
    EdgeError::new(StatusCode::BAD_REQUEST, "ResourceNotFoundException", format!("The specified log {what} does not exist."))
}

fn invalid(message: String) -> EdgeError {
    EdgeError::new(StatusCode::BAD_REQUEST, "InvalidParameterException", message)
}

/// A stream: its name and events.
struct Stream {
    name: String,
    created: i64,
    events: Vec<LogEvent>,
}

impl Stream {
    fn of(job: ProcessingJob) -> Stream {
        Stream { name: job.log_stream(), created: job.created.millis(), events: job.log }
    }

    /// An instance's log, as the stream `<prefix>/<instance>`.
    fn of_instance(prefix: &str, log: InstanceLogStream, created: i64) -> Stream {
        let created = log.events.first().map_or(created, |e| e.timestamp);
        Stream { name: format!("{prefix}/{}", log.instance), created, events: log.events }
    }
}

/// The streams of a log group berth has (those that may start with `prefix`, when the caller
/// asks for those only); an error for another group.
async fn streams(c: &Arc<Controller>, group: &str, prefix: Option<&str>) -> Result<Vec<Stream>, EdgeError> {
    let mut streams: Vec<Stream> = match group {
        PROCESSING_JOBS => c.processing_jobs().await?.into_iter().filter(|j| !j.log.is_empty()).map(Stream::of).collect(),
        RECOMMENDATION_JOBS => c
            .recommendation_jobs()
            .await?
            .into_iter()
            .map(|j| Stream { name: format!("{}/execution", j.name), created: j.created.millis(), events: j.log })
            .collect(),
        TRANSFORM_JOBS => {
            let mut out = Vec::new();
            for job in c.transform_jobs().await? {
                let name = format!("{}/", job.name);
                if prefix.is_some_and(|p| !name.starts_with(p) && !p.starts_with(&name)) {
                    continue;
                }
                for log in c.transform_job_log_streams(&job.name).await? {
                    out.push(Stream::of_instance(&job.name, log, job.created.millis()));
                }
            }
            out
        }
        _ => {
            let endpoint = group.strip_prefix(ENDPOINTS).ok_or_else(|| not_found("group"))?;
            let created = c.describe_endpoint(endpoint).await.map_err(|_| not_found("group"))?.created.millis();
            let logs = c.endpoint_log_streams(endpoint).await?;
            logs.into_iter().map(|log| Stream::of_instance(&log.variant.clone(), log, created)).collect()
        }
    };
    streams.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(streams)
}

/// The log group a request names (`logGroupName`, or a `logGroupIdentifier` ARN or name).
fn group_of(name: Option<String>, identifier: Option<String>) -> Result<String, EdgeError> {
    match (name, identifier) {
        (Some(name), None) => Ok(name),
        (None, Some(id)) => Ok(id.rsplit_once(":log-group:").map_or(id.clone(), |(_, g)| g.trim_end_matches(":*").to_string())),
        _ => Err(invalid("Give exactly one of logGroupName and logGroupIdentifier.".into())),
    }
}

/// An opaque page token: the index of the next item.
fn page_start(token: Option<&str>, prefix: &str) -> Result<usize, EdgeError> {
    match token {
        None => Ok(0),
        Some(t) => t.strip_prefix(prefix).and_then(|n| n.parse().ok()).ok_or_else(|| invalid(format!("The next token {t} is not valid."))),
    }
}

fn limit(requested: Option<usize>, default: usize, max: usize) -> Result<usize, EdgeError> {
    match requested {
        None => Ok(default),
        Some(n) if (1..=max).contains(&n) => Ok(n),
        Some(n) => Err(invalid(format!("limit must be between 1 and {max}, not {n}."))),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DescribeGroupsInput {
    log_group_name_prefix: Option<String>,
    log_group_name_pattern: Option<String>,
    next_token: Option<String>,
    limit: Option<usize>,
}

/// DescribeLogGroups: the processing jobs' group once a job has a log, the transform jobs' once
/// there is a job, and each endpoint's.
async fn describe_groups(c: &Arc<Controller>, body: &[u8]) -> Result<Value, EdgeError> {
    let input: DescribeGroupsInput = parse(body)?;
    if input.log_group_name_prefix.is_some() && input.log_group_name_pattern.is_some() {
        return Err(invalid("Give logGroupNamePrefix or logGroupNamePattern, not both.".into()));
    }
    let mut groups: Vec<(String, i64)> = Vec::new();
    if let Some(first) = c.processing_jobs().await?.iter().filter(|j| !j.log.is_empty()).map(|j| j.created.millis()).min() {
        groups.push((PROCESSING_JOBS.into(), first));
    }
    if let Some(first) = c.transform_jobs().await?.iter().map(|j| j.created.millis()).min() {
        groups.push((TRANSFORM_JOBS.into(), first));
    }
    if let Some(first) = c.recommendation_jobs().await?.iter().map(|j| j.created.millis()).min() {
        groups.push((RECOMMENDATION_JOBS.into(), first));
    }
    for e in c.all_endpoints().await? {
        groups.push((format!("{ENDPOINTS}{}", e.name), e.created.millis()));
    }
    groups.retain(|(name, _)| {
        input.log_group_name_prefix.as_deref().is_none_or(|p| name.starts_with(p))
            && input.log_group_name_pattern.as_deref().is_none_or(|p| name.to_lowercase().contains(&p.to_lowercase()))
    });
    groups.sort();
    let start = page_start(input.next_token.as_deref(), "g/")?;
    let count = limit(input.limit, 50, 50)?;
    let page: Vec<Value> = groups
        .iter()
        .skip(start)
        .take(count)
        .map(|(name, created)| {
            let arn = format!("arn:aws:logs:{}:{}:log-group:{name}", c.account().region, c.account().account_id);
            json!({"logGroupName": name, "creationTime": created, "arn": format!("{arn}:*"), "logGroupArn": arn, "storedBytes": 0, "metricFilterCount": 0})
        })
        .collect();
    let mut answer = json!({ "logGroups": page });
    if start + count < groups.len() {
        answer["nextToken"] = format!("g/{}", start + count).into();
    }
    Ok(answer)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DescribeStreamsInput {
    log_group_name: Option<String>,
    log_group_identifier: Option<String>,
    log_stream_name_prefix: Option<String>,
    order_by: Option<String>,
    descending: Option<bool>,
    next_token: Option<String>,
    limit: Option<usize>,
}

async fn describe_streams(c: &Arc<Controller>, body: &[u8]) -> Result<Value, EdgeError> {
    let input: DescribeStreamsInput = parse(body)?;
    let group = group_of(input.log_group_name, input.log_group_identifier)?;
    let mut found = streams(c, &group, input.log_stream_name_prefix.as_deref()).await?;
    let by_time = match input.order_by.as_deref() {
        None | Some("LogStreamName") => false,
        Some("LastEventTime") if input.log_stream_name_prefix.is_some() => {
            return Err(invalid("Cannot order by LastEventTime with a logStreamNamePrefix.".into()))
        }
        Some("LastEventTime") => true,
        Some(other) => return Err(invalid(format!("orderBy must be LogStreamName or LastEventTime, not {other}."))),
    };
    if let Some(prefix) = &input.log_stream_name_prefix {
        found.retain(|s| s.name.starts_with(prefix.as_str()));
    }
    if by_time {
        found.sort_by_key(|s| s.events.last().map_or(0, |e| e.timestamp));
    }
    if input.descending == Some(true) {
        found.reverse();
    }
    let start = page_start(input.next_token.as_deref(), "s/")?;
    let count = limit(input.limit, 50, 50)?;
    let page: Vec<Value> = found
        .iter()
        .skip(start)
        .take(count)
        .map(|s| {
            let (first, last) = (s.events.first().map(|e| e.timestamp), s.events.last().map(|e| e.timestamp));
            json!({
                "logStreamName": s.name, "creationTime": s.created, "firstEventTimestamp": first, "lastEventTimestamp": last,
                "lastIngestionTime": last, "storedBytes": 0,
                "arn": format!("arn:aws:logs:{}:{}:log-group:{group}:log-stream:{}", c.account().region, c.account().account_id, s.name),
            })
        })
        .collect();
    let mut answer = json!({ "logStreams": page });
    if start + count < found.len() {
        answer["nextToken"] = format!("s/{}", start + count).into();
    }
    Ok(answer)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GetEventsInput {
    log_group_name: Option<String>,
    log_group_identifier: Option<String>,
    log_stream_name: String,
    start_time: Option<i64>,
    end_time: Option<i64>,
    next_token: Option<String>,
    limit: Option<usize>,
    start_from_head: Option<bool>,
}

/// GetLogEvents: the stream's events in [startTime, endTime), a page at a time. The tokens
/// are positions in that list: `f/N` reads forward from event N, `b/N` backward to it.
async fn get_events(c: &Arc<Controller>, body: &[u8]) -> Result<Value, EdgeError> {
    let input: GetEventsInput = parse(body)?;
    let group = group_of(input.log_group_name, input.log_group_identifier)?;
    let stream = streams(c, &group, Some(&input.log_stream_name))
        .await?
        .into_iter()
        .find(|s| s.name == input.log_stream_name)
        .ok_or_else(|| not_found("stream"))?;
    let events: Vec<&LogEvent> = stream
        .events
        .iter()
        .filter(|e| input.start_time.is_none_or(|t| e.timestamp >= t) && input.end_time.is_none_or(|t| e.timestamp < t))
        .collect();
    let count = limit(input.limit, MAX_EVENTS, MAX_EVENTS)?;
    let (from, to) = match input.next_token.as_deref() {
        Some(t) if t.starts_with("f/") => {
            let from = page_start(Some(t), "f/")?.min(events.len());
            (from, (from + count).min(events.len()))
        }
        Some(t) => {
            let to = page_start(Some(t), "b/")?.min(events.len());
            (to.saturating_sub(count), to)
        }
        None if input.start_from_head == Some(true) => (0, count.min(events.len())),
        None => (events.len().saturating_sub(count), events.len()),
    };
    let page: Vec<Value> =
        events[from..to].iter().map(|e| json!({"timestamp": e.timestamp, "message": e.message, "ingestionTime": e.timestamp})).collect();
    Ok(json!({ "events": page, "nextForwardToken": format!("f/{to}"), "nextBackwardToken": format!("b/{from}") }))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct FilterEventsInput {
    log_group_name: Option<String>,
    log_group_identifier: Option<String>,
    log_stream_names: Option<Vec<String>>,
    log_stream_name_prefix: Option<String>,
    start_time: Option<i64>,
    end_time: Option<i64>,
    filter_pattern: Option<String>,
    next_token: Option<String>,
    limit: Option<usize>,
}

/// FilterLogEvents: the group's events in time order, optionally of some streams only, whose
/// message holds every term of `filterPattern` (CloudWatch Logs' plain-term patterns).
async fn filter_events(c: &Arc<Controller>, body: &[u8]) -> Result<Value, EdgeError> {
    let input: FilterEventsInput = parse(body)?;
    if input.log_stream_names.is_some() && input.log_stream_name_prefix.is_some() {
        return Err(invalid("Give logStreamNames or logStreamNamePrefix, not both.".into()));
    }
    let group = group_of(input.log_group_name, input.log_group_identifier)?;
    let terms: Vec<String> =
        input.filter_pattern.as_deref().unwrap_or("").split_whitespace().map(|t| t.trim_matches('"').to_string()).collect();
    let found: Vec<Stream> = streams(c, &group, input.log_stream_name_prefix.as_deref())
        .await?
        .into_iter()
        .filter(|s| input.log_stream_names.as_ref().is_none_or(|names| names.contains(&s.name)))
        .filter(|s| input.log_stream_name_prefix.as_deref().is_none_or(|p| s.name.starts_with(p)))
        .collect();
    let mut events: Vec<(usize, usize, &LogEvent)> = found
        .iter()
        .enumerate()
        .flat_map(|(i, s)| s.events.iter().enumerate().map(move |(n, e)| (i, n, e)))
        .filter(|(_, _, e)| input.start_time.is_none_or(|t| e.timestamp >= t) && input.end_time.is_none_or(|t| e.timestamp < t))
        .filter(|(_, _, e)| terms.iter().all(|t| e.message.contains(t.as_str())))
        .collect();
    events.sort_by_key(|(i, n, e)| (e.timestamp, *i, *n));
    let start = page_start(input.next_token.as_deref(), "e/")?;
    let count = limit(input.limit, MAX_EVENTS, MAX_EVENTS)?;
    let page: Vec<Value> = events
        .iter()
        .skip(start)
        .take(count)
        .map(|(i, n, e)| {
            json!({"logStreamName": found[*i].name, "timestamp": e.timestamp, "message": e.message, "ingestionTime": e.timestamp, "eventId": format!("{}-{n}", found[*i].created)})
        })
        .collect();
    let searched: Vec<Value> = found.iter().map(|s| json!({"logStreamName": s.name, "searchedCompletely": true})).collect();
    let mut answer = json!({ "events": page, "searchedLogStreams": searched });
    if start + count < events.len() {
        answer["nextToken"] = format!("e/{}", start + count).into();
    }
    Ok(answer)
}
