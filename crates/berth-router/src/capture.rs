//! Data capture on the request path: a sampled request's input and output go into a queue for
//! the writer task, bounded by bytes (the bodies it holds, until the writer has written them)
//! and by records; when either is full the record is dropped and counted, never the request,
//! and nothing here waits. Capture never grows berth by more than its buffer.

use bytes::Bytes;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::sync::mpsc;

/// Records waiting for the writer, at most.
pub const CAPTURE_QUEUE: usize = 10_000;
/// The buffer when none is configured (`--capture-buffer-bytes`).
pub const DEFAULT_CAPTURE_BUFFER: usize = 64 * 1024 * 1024;
/// What a record costs besides its bodies (its names, settings and the line's framing).
const RECORD_OVERHEAD: usize = 512;

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

impl CaptureRecord {
    /// The bytes the record holds in the buffer until it is written.
    pub fn buffered_bytes(&self) -> usize {
        let body = |b: &Option<(String, Bytes)>| b.as_ref().map_or(0, |(t, b)| t.len() + b.len());
        RECORD_OVERHEAD + self.endpoint.len() + self.variant.len() + body(&self.input) + body(&self.output)
    }
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
    /// Bytes of records queued or not yet written, and the most there may be.
    held: AtomicUsize,
    limit: usize,
}

impl Default for CaptureQueue {
    fn default() -> Self {
        CaptureQueue::new(DEFAULT_CAPTURE_BUFFER)
    }
}

impl CaptureQueue {
    /// A queue holding at most `limit` bytes of records.
    pub fn new(limit: usize) -> Self {
        let (tx, rx) = mpsc::channel(CAPTURE_QUEUE);
        let rx = Arc::new(tokio::sync::Mutex::new(rx));
        CaptureQueue { tx, rx, queued: AtomicU64::new(0), dropped: AtomicU64::new(0), held: AtomicUsize::new(0), limit }
    }

    /// Queues the record if the buffer has room for it; false when it was dropped.
    pub(crate) fn offer(&self, record: CaptureRecord) -> bool {
        let bytes = record.buffered_bytes();
        let room = self
            .held
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| held.checked_add(bytes).filter(|total| *total <= self.limit));
        if room.is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        if self.tx.try_send(record).is_err() {
            self.release(bytes);
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        self.queued.fetch_add(1, Ordering::Relaxed);
        true
    }

    /// The writer is done with records of `bytes` (written, or given up on).
    pub fn release(&self, bytes: usize) {
        let _ = self.held.fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| Some(held.saturating_sub(bytes)));
    }

    /// Bytes held now, and the limit.
    pub fn buffer(&self) -> (usize, usize) {
        (self.held.load(Ordering::Relaxed), self.limit)
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
    fn the_buffer_bounds_bytes_until_the_writer_releases_them() {
        let mut big = record();
        big.input = Some(("text/csv".into(), Bytes::from(vec![b'1'; 4000])));
        let size = big.buffered_bytes();
        let q = CaptureQueue::new(2 * size + 10);
        assert!(q.offer(big.clone()) && q.offer(big.clone()));
        assert!(!q.offer(big.clone()), "a third record would pass the limit");
        assert_eq!(q.dropped.load(Ordering::Relaxed), 1);
        assert_eq!(q.buffer(), (2 * size, 2 * size + 10));
        q.release(size);
        assert!(q.offer(big), "room again once the writer released one");
    }

    #[test]
    fn a_full_queue_drops_records_not_requests() {
        let q = CaptureQueue::new(usize::MAX);
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
