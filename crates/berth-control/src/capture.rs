//! The data capture writer: takes captured invocations from the router's queue and writes them
//! in SageMaker's capture format (JSON Lines: `captureData.endpointInput`/`endpointOutput` with
//! their encodings, `eventMetadata` with `eventId`, `inferenceId`, `inferenceTime`, plus berth's
//! `variantName`) under `<destination>/<endpoint>/<variant>/yyyy/mm/dd/hh/`: appended to one file
//! per hour for `file://`, one object per second with records for `s3://`.

use crate::Controller;
use base64::Engine;
use berth_domain::{random_uuid, NameKey};
use berth_instances::S3Writer;
use berth_router::{CaptureRecord, CaptureSettings};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::sync::Arc;
use std::time::Duration;

/// How a body is written: as text (CSV, JSON) when its content type says so, else base64.
fn encode(content_type: &str, body: &[u8], s: &CaptureSettings) -> Value {
    let base = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    let listed = |types: &[String], default: &str| {
        if types.is_empty() {
            base == default
        } else {
            types.iter().any(|t| t.eq_ignore_ascii_case(&base))
        }
    };
    let text = std::str::from_utf8(body).ok();
    let (encoding, data) = match text {
        Some(t) if listed(&s.csv_types, "text/csv") => ("CSV", t.to_string()),
        Some(t) if listed(&s.json_types, "application/json") => ("JSON", t.to_string()),
        _ => ("BASE64", base64::engine::general_purpose::STANDARD.encode(body)),
    };
    json!({ "observedContentType": content_type, "data": data, "encoding": encoding })
}

pub(crate) fn utc(time_ms: i64) -> time::OffsetDateTime {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(time_ms) * 1_000_000).unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
}

/// A time as capture files write it (`eventMetadata.inferenceTime`): `YYYY-MM-DDTHH:MM:SSZ`.
pub(crate) fn inference_time(time_ms: i64) -> String {
    let t = utc(time_ms);
    format!("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z", t.year(), u8::from(t.month()), t.day(), t.hour(), t.minute(), t.second())
}

/// One record as a line of SageMaker's capture format, with its event id.
pub(crate) fn capture_line(r: &CaptureRecord, event_id: &str) -> String {
    let mut data = json!({});
    if let Some((ct, body)) = &r.input {
        data["endpointInput"] = encode(ct, body, &r.settings);
        data["endpointInput"]["mode"] = json!("INPUT");
    }
    if let Some((ct, body)) = &r.output {
        data["endpointOutput"] = encode(ct, body, &r.settings);
        data["endpointOutput"]["mode"] = json!("OUTPUT");
    }
    let mut metadata = json!({
        "eventId": event_id,
        "inferenceTime": inference_time(r.time_ms),
        "variantName": r.variant,
    });
    if let Some(id) = &r.inference_id {
        metadata["inferenceId"] = json!(id);
    }
    json!({ "captureData": data, "eventMetadata": metadata, "eventVersion": "0" }).to_string()
}

/// `<destination>/<endpoint>/<variant>/yyyy/mm/dd/hh`
fn hour_prefix(r: &CaptureRecord) -> String {
    let t = utc(r.time_ms);
    format!(
        "{}/{}/{}/{:04}/{:02}/{:02}/{:02}",
        r.settings.destination,
        r.endpoint,
        r.variant,
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour()
    )
}

/// A capture file's name: when it was started (mm-ss-mmm of the hour) and a random id.
fn file_name(time_ms: i64) -> String {
    let t = utc(time_ms);
    format!("{:02}-{:02}-{:03}-{}.jsonl", t.minute(), t.second(), t.millisecond(), random_uuid())
}

/// What an hour's file or object gets next: the first record's time, the lines, the KMS key an
/// S3 object is encrypted with, and the bytes its records hold in the capture buffer.
type PendingObject = (i64, Vec<u8>, Option<std::sync::Arc<str>>, usize);

/// How long one write of captured data may take before it is given up (its records dropped):
/// a destination that does not answer must not hold the buffer.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// At most one `CaptureDropped` event per endpoint in this long.
const DROP_EVENT_INTERVAL: Duration = Duration::from_secs(60);

impl Controller {
    /// Runs for the life of the server, writing what the router captures.
    pub async fn run_capture(self: Arc<Self>) {
        let records = self.routing.capture().receiver();
        let mut rx = records.lock().await;
        let s3 = Arc::new(S3Writer::default());
        let mut drops = DropReports::default();
        // file:// hour directory → the file records are appended to, and when it was started.
        let mut files: HashMap<String, (String, i64)> = HashMap::new();
        let mut pending: HashMap<String, PendingObject> = HashMap::new();
        // Captured answers kept for joining with ground truth, by endpoint.
        let mut predictions: HashMap<NameKey, Vec<(String, i64, String)>> = HashMap::new();
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                got = rx.recv() => {
                    let Some(first) = got else { return };
                    let mut batch = vec![first];
                    while batch.len() < 1000 {
                        match rx.try_recv() {
                            Ok(r) => batch.push(r),
                            Err(_) => break,
                        }
                    }
                    for r in batch {
                        let event_id = random_uuid();
                        let entry = pending.entry(hour_prefix(&r)).or_insert_with(|| (r.time_ms, Vec::new(), r.settings.kms_key_id.clone(), 0));
                        entry.1.extend_from_slice(capture_line(&r, &event_id).as_bytes());
                        entry.1.push(b'\n');
                        entry.3 += r.buffered_bytes();
                        if let Some(p) = crate::quality::prediction_record(&r, &event_id) {
                            predictions.entry(NameKey::of(&r.endpoint)).or_default().push(p);
                        }
                    }
                }
                _ = tick.tick() => {
                    drops.report(&self);
                    for (endpoint, rows) in predictions.drain() {
                        if let Err(e) = self.store_predictions(endpoint.as_str(), rows).await {
                            tracing::warn!(endpoint = %endpoint, error = %e, "cannot index captured predictions");
                        }
                    }
                    for (prefix, (first_ms, bytes, kms_key_id, held)) in pending.drain() {
                        // The records leave the buffer once written, or given up on.
                        let release = Released(self.routing.clone(), held);
                        if prefix.starts_with("file://") {
                            // Checked again at every write: the directory must still be under a --file-root.
                            let dir = match self.writable_destination("DestinationS3Uri", &prefix) {
                                Ok(Some(dir)) => dir,
                                _ => {
                                    tracing::warn!(destination = %prefix, "captured data not written: the destination is not under a --file-root");
                                    continue;
                                }
                            };
                            let name = files.entry(prefix.clone()).or_insert_with(|| (file_name(first_ms), first_ms)).0.clone();
                            let written = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
                                berth_instances::private_dir(&dir)?;
                                let mut f = std::fs::OpenOptions::new()
                                    .create(true)
                                    .append(true)
                                    .mode(0o600)
                                    .custom_flags(libc::O_NOFOLLOW)
                                    .open(dir.join(name))?;
                                f.write_all(&bytes)
                            })
                            .await;
                            if !matches!(written, Ok(Ok(()))) {
                                tracing::warn!(destination = %prefix, "cannot write captured data: {written:?}");
                            }
                            drop(release);
                        } else {
                            // Off the writer's loop, so that a destination that does not answer
                            // stalls only its own records (which hold the buffer until then).
                            let s3 = s3.clone();
                            let span = tracing::info_span!("capture_upload", destination = %prefix);
                            self.work.spawn_detached(span, async move {
                                let key = format!("{prefix}/{}", file_name(first_ms));
                                match tokio::time::timeout(WRITE_TIMEOUT, s3.put(&key, bytes, kms_key_id.as_deref())).await {
                                    Ok(Ok(())) => {}
                                    Ok(Err(e)) => tracing::warn!(destination = %prefix, error = %e, "cannot write captured data"),
                                    Err(_) => tracing::warn!(destination = %prefix, "captured data not written: the destination did not answer in 30 s"),
                                }
                                drop(release);
                            });
                        }
                    }
                    // Hour directories are written only during their hour: forget the files of
                    // hours that ended (records come in at most seconds late).
                    let hour_ago = self.now().millis() - 2 * 3_600_000;
                    files.retain(|_, (_, first_ms)| *first_ms > hour_ago);
                }
            }
        }
    }
}

/// Gives a pending object's bytes back to the capture buffer when dropped.
struct Released(Arc<berth_router::RoutingTable>, usize);

impl Drop for Released {
    fn drop(&mut self) {
        self.0.capture().release(self.1);
    }
}

/// The drops each endpoint's variants counted, as last reported, and when an endpoint's last
/// `CaptureDropped` event was.
#[derive(Default)]
struct DropReports {
    total_seen: u64,
    by_endpoint: HashMap<String, (u64, Option<std::time::Instant>)>,
}

impl DropReports {
    /// Records a `CaptureDropped` event for each endpoint whose records were dropped since its
    /// last one (at most one a minute each); looks at the variants only when the queue dropped.
    fn report(&mut self, controller: &Controller) {
        let total = controller.routing.capture().dropped.load(std::sync::atomic::Ordering::Relaxed);
        if total == self.total_seen {
            return;
        }
        self.total_seen = total;
        let (held, limit) = controller.routing.capture().buffer();
        for route in controller.routing.routes() {
            let dropped: u64 = route.variants.iter().map(|v| v.metrics.capture_dropped()).sum();
            let (reported, last) = self.by_endpoint.entry(route.endpoint.clone()).or_insert((0, None));
            let due = last.is_none_or(|at| at.elapsed() >= DROP_EVENT_INTERVAL);
            if dropped > *reported && due {
                let message = format!(
                    "Data capture dropped {} captured invocation(s): its writer is behind its destination and the capture buffer is full \
                     ({} of {} MiB, --capture-buffer-bytes). Invocations are served as before.",
                    dropped - *reported,
                    held >> 20,
                    limit >> 20
                );
                tracing::warn!(endpoint = %route.endpoint, dropped = dropped - *reported, "data capture dropped records");
                controller.record_event(&route.endpoint, None, berth_domain::EventKind::CaptureDropped, message);
                *reported = dropped;
                *last = Some(std::time::Instant::now());
            }
        }
    }
}

/// The fuzz target's check (see `crate::fuzzing::capture_line`).
pub(crate) fn fuzz_capture_line(data: &[u8]) {
    let mut parts = data.splitn(5, |b| *b == 0);
    let mut next = || parts.next().unwrap_or_default();
    let text = |part: &[u8]| String::from_utf8_lossy(part).into_owned();
    let (input_type, output_type, csv, json) = (text(next()), text(next()), text(next()), text(next()));
    let body = next();
    let types = |list: String| -> Arc<[String]> { list.split(',').filter(|t| !t.is_empty()).map(str::to_string).collect() };
    let settings = CaptureSettings {
        sampling_percentage: 100,
        destination: "s3://b/p".into(),
        kms_key_id: None,
        input: true,
        output: true,
        csv_types: types(csv),
        json_types: types(json),
    };
    let record = CaptureRecord {
        endpoint: "e".into(),
        variant: "v".into(),
        settings,
        time_ms: i64::from_le_bytes(body.get(..8).and_then(|b| b.try_into().ok()).unwrap_or_default()),
        inference_id: Some(input_type.clone()),
        input: Some((input_type, bytes::Bytes::copy_from_slice(body))),
        output: Some((output_type, bytes::Bytes::copy_from_slice(body))),
    };
    let line: Value = serde_json::from_str(&capture_line(&record, "id")).expect("a capture line is JSON");
    for side in ["endpointInput", "endpointOutput"] {
        let captured = &line["captureData"][side];
        let data = captured["data"].as_str().expect("data is a string");
        let back = match captured["encoding"].as_str() {
            Some("BASE64") => base64::engine::general_purpose::STANDARD.decode(data).expect("base64 decodes"),
            Some("CSV" | "JSON") => data.as_bytes().to_vec(),
            other => panic!("unknown encoding {other:?}"),
        };
        assert_eq!(back, body, "the capture gives the body back");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn record(ct: &str, body: &'static [u8]) -> CaptureRecord {
        let settings = CaptureSettings {
            sampling_percentage: 100,
            destination: "file:///data".into(),
            kms_key_id: None,
            input: true,
            output: true,
            csv_types: Arc::new([]),
            json_types: Arc::new([]),
        };
        CaptureRecord {
            endpoint: "ep".into(),
            variant: "V".into(),
            settings,
            time_ms: 1_795_600_000_123,
            inference_id: Some("abc".into()),
            input: Some((ct.into(), Bytes::from_static(body))),
            output: Some(("application/json".into(), Bytes::from_static(br#"{"p": 1}"#))),
        }
    }

    #[test]
    fn the_fuzz_check_holds_for_text_binary_and_odd_times() {
        for data in [
            &b"text/csv\x00application/json\x00\x00\x001,2,3"[..],
            b"\0\0\0\0\xff\xfe\x00",
            b"",
            &[0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f],
        ] {
            fuzz_capture_line(data);
        }
    }

    #[test]
    fn records_follow_sagemakers_capture_format() {
        let line: Value = serde_json::from_str(&capture_line(&record("text/csv", b"1,2,3"), "e1")).unwrap();
        assert_eq!(
            line["captureData"]["endpointInput"],
            json!({"observedContentType": "text/csv", "mode": "INPUT", "data": "1,2,3", "encoding": "CSV"})
        );
        assert_eq!(line["captureData"]["endpointOutput"]["encoding"], "JSON");
        assert_eq!(line["eventMetadata"]["inferenceId"], "abc");
        assert_eq!(line["eventMetadata"]["inferenceTime"], "2026-11-25T09:46:40Z");
        assert_eq!(line["eventVersion"], "0");
        let binary: Value = serde_json::from_str(&capture_line(&record("application/x-npy", b"\x93NUMPY"), "e2")).unwrap();
        assert_eq!(binary["captureData"]["endpointInput"]["encoding"], "BASE64");
        assert_eq!(hour_prefix(&record("text/csv", b"")), "file:///data/ep/V/2026/11/25/09");
    }
}
