//! Data capture on the request path: a sampled request's input and output go into a bounded
//! queue for the writer task; when the queue is full the record is dropped and counted, never
//! the request, and nothing here waits.

use bytes::Bytes;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::mpsc;

/// Records waiting for the writer, at most.
pub const CAPTURE_QUEUE: usize = 10_000;

/// An endpoint's capture settings, as its route carries them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaptureSettings {
    /// In [0, 100].
    pub sampling_percentage: u32,
    pub destination: Arc<str>,
    /// For an S3 destination: the KMS key captured objects are encrypted with (SSE-KMS).
    pub kms_key_id: Option<Arc<str>>,
    pub input: bool,
    pub output: bool,
    pub csv_types: Arc<[String]>,
    pub json_types: Arc<[String]>,
}

/// One captured invocation, formatted by the writer.
#[derive(Debug, Clone)]
pub struct CaptureRecord {
    pub endpoint: String,
    pub variant: String,
    pub settings: CaptureSettings,
    pub time_ms: i64,
    pub inference_id: Option<String>,
    /// (content type, body)
    pub input: Option<(String, Bytes)>,
    pub output: Option<(String, Bytes)>,
}

/// The queue between the request path and the capture writer, with its counters.
#[derive(Debug)]
pub struct CaptureQueue {
    tx: mpsc::Sender<CaptureRecord>,
    rx: Arc<tokio::sync::Mutex<mpsc::Receiver<CaptureRecord>>>,
    /// Records handed to the writer.
    pub queued: AtomicU64,
    /// Records dropped because the writer was behind.
    pub dropped: AtomicU64,
}

impl Default for CaptureQueue {
    fn default() -> Self {
        let (tx, rx) = mpsc::channel(CAPTURE_QUEUE);
        CaptureQueue { tx, rx: Arc::new(tokio::sync::Mutex::new(rx)), queued: AtomicU64::new(0), dropped: AtomicU64::new(0) }
    }
}

impl CaptureQueue {
    pub(crate) fn offer(&self, record: CaptureRecord) {
        match self.tx.try_send(record) {
            Ok(()) => self.queued.fetch_add(1, Ordering::Relaxed),
            Err(_) => self.dropped.fetch_add(1, Ordering::Relaxed),
        };
    }

    /// The records, for the one writer task, which holds the lock while it runs; a writer
    /// restarted after a panic takes it up again (a tokio lock is released, never poisoned,
    /// when its holder unwinds).
    pub fn receiver(&self) -> Arc<tokio::sync::Mutex<mpsc::Receiver<CaptureRecord>>> {
        self.rx.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> CaptureRecord {
        let settings = CaptureSettings {
            sampling_percentage: 100,
            destination: "file:///tmp".into(),
            kms_key_id: None,
            input: true,
            output: true,
            csv_types: Arc::new([]),
            json_types: Arc::new([]),
        };
        CaptureRecord { endpoint: "e".into(), variant: "v".into(), settings, time_ms: 0, inference_id: None, input: None, output: None }
    }

    #[test]
    fn a_full_queue_drops_records_not_requests() {
        let q = CaptureQueue::default();
        for _ in 0..CAPTURE_QUEUE + 5 {
            q.offer(record());
        }
        assert_eq!(q.queued.load(Ordering::Relaxed), CAPTURE_QUEUE as u64);
        assert_eq!(q.dropped.load(Ordering::Relaxed), 5);
        let rx = q.receiver();
        let held = rx.try_lock().expect("the first writer takes the records");
        assert!(q.receiver().try_lock().is_err(), "one writer at a time");
        drop(held);
        assert!(q.receiver().try_lock().is_ok(), "a restarted writer takes them up again");
    }
}
