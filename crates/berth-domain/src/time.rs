use serde::{Deserialize, Serialize};
use std::time::{SystemTime, UNIX_EPOCH};

/// A point in time with millisecond precision, as SageMaker reports times.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Timestamp(i64);

/// berth's one wall clock: every reading of the time of day goes through [`Timestamp::now`].
impl Timestamp {
    pub fn now() -> Self {
        let millis = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0);
        Timestamp(millis)
    }

    pub fn from_millis(millis: i64) -> Self {
        Timestamp(millis)
    }

    pub fn from_secs_f64(secs: f64) -> Self {
        Timestamp((secs * 1000.0).round() as i64)
    }

    pub fn millis(self) -> i64 {
        self.0
    }

    /// Whole seconds since the epoch (0 before it), as per-second metrics count time.
    pub fn secs(self) -> u64 {
        u64::try_from(self.0 / 1000).unwrap_or(0)
    }

    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / 1000.0
    }
}

/// Where the controller reads the time of day: the system's clock in a server, a clock a test
/// moves (`berth_control::TokioClock` follows tokio's, which tests pause and advance) elsewhere.
pub trait Clock: Send + Sync + std::fmt::Debug {
    fn now(&self) -> Timestamp;
}

/// The system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}
