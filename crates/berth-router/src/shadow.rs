//! Shadow variants: a sampled copy of production requests goes to each shadow variant after the
//! production answer is back; the caller never waits for it. Shadow answers are compared with
//! the production ones and the latest are kept per shadow variant for people to look at.

use berth_domain::NameKey;
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

/// How many comparisons are kept per shadow variant.
pub const KEPT_COMPARISONS: usize = 100;
/// Bodies are kept up to this many bytes.
const KEPT_BODY_BYTES: usize = 2048;

/// One production request and its shadow copy.
#[derive(Debug, Clone, PartialEq)]
pub struct ShadowComparison {
    pub time_ms: i64,
    pub inference_id: Option<String>,
    pub production_variant: String,
    pub production_status: u16,
    pub production_body: String,
    /// 0 when the shadow could not be reached or timed out.
    pub shadow_status: u16,
    pub shadow_body: String,
    pub shadow_latency_us: u64,
    /// Same status and the same answer (equal JSON values, or equal bytes).
    pub agree: bool,
}

/// What one shadow variant has seen.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ShadowStats {
    /// Copies sent.
    pub sampled: u64,
    /// Copies whose answer agreed with production's.
    pub agreed: u64,
    /// Copies the shadow answered with an error or not at all.
    pub errors: u64,
    /// Copies not sent because too many were in flight already.
    pub dropped: u64,
    /// The latest comparisons, oldest first.
    pub recent: VecDeque<ShadowComparison>,
}

/// Every shadow variant's statistics, by (endpoint, variant). Locked only by shadow
/// tasks and readers, never by the request path.
#[derive(Debug, Default)]
pub struct ShadowLog {
    variants: Mutex<HashMap<(NameKey, String), ShadowStats>>,
}

impl ShadowLog {
    fn with<R>(&self, endpoint: &str, variant: &str, f: impl FnOnce(&mut ShadowStats) -> R) -> R {
        let mut map = self.variants.lock().unwrap_or_else(|e| e.into_inner());
        f(map.entry((NameKey::of(endpoint), variant.to_string())).or_default())
    }

    pub(crate) fn dropped(&self, endpoint: &str, variant: &str) {
        self.with(endpoint, variant, |s| s.dropped += 1);
    }

    pub(crate) fn record(&self, endpoint: &str, variant: &str, c: ShadowComparison) {
        self.with(endpoint, variant, |s| {
            s.sampled += 1;
            if c.agree {
                s.agreed += 1;
            }
            if !(200..300).contains(&c.shadow_status) {
                s.errors += 1;
            }
            if s.recent.len() == KEPT_COMPARISONS {
                s.recent.pop_front();
            }
            s.recent.push_back(c);
        });
    }

    /// The shadow variants of an endpoint with what they have seen, by variant name.
    pub fn of_endpoint(&self, endpoint: &str) -> Vec<(String, ShadowStats)> {
        let key = NameKey::of(endpoint);
        let map = self.variants.lock().unwrap_or_else(|e| e.into_inner());
        let mut out: Vec<(String, ShadowStats)> =
            map.iter().filter(|((e, _), _)| *e == key).map(|((_, v), s)| (v.clone(), s.clone())).collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// Forgets an endpoint's shadows (when it is deleted).
    pub fn remove(&self, endpoint: &str) {
        let key = NameKey::of(endpoint);
        self.variants.lock().unwrap_or_else(|e| e.into_inner()).retain(|(e, _), _| *e != key);
    }
}

/// Whether two answers agree: the same status and equal bodies (as JSON values when both parse).
pub(crate) fn agree(a_status: u16, a: &[u8], b_status: u16, b: &[u8]) -> bool {
    if a_status != b_status {
        return false;
    }
    match (serde_json::from_slice::<serde_json::Value>(a), serde_json::from_slice::<serde_json::Value>(b)) {
        (Ok(x), Ok(y)) => x == y,
        _ => a.trim_ascii() == b.trim_ascii(),
    }
}

pub(crate) fn kept(body: &[u8]) -> String {
    String::from_utf8_lossy(&body[..body.len().min(KEPT_BODY_BYTES)]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_agree_as_json_or_bytes() {
        assert!(agree(200, br#"{"a": 1, "b": [2]}"#, 200, br#"{"b":[2],"a":1}"#));
        assert!(!agree(200, b"1", 500, b"1"));
        assert!(agree(200, b"setosa\n", 200, b"setosa"));
        assert!(!agree(200, b"setosa", 200, b"virginica"));
    }

    #[test]
    fn the_log_keeps_the_latest_comparisons() {
        let log = ShadowLog::default();
        let c = |i: i64, agree: bool| ShadowComparison {
            time_ms: i,
            inference_id: None,
            production_variant: "A".into(),
            production_status: 200,
            production_body: String::new(),
            shadow_status: if agree { 200 } else { 500 },
            shadow_body: String::new(),
            shadow_latency_us: 1,
            agree,
        };
        for i in 0..(KEPT_COMPARISONS as i64 + 5) {
            log.record("Ep", "S", c(i, i % 2 == 0));
        }
        let (name, stats) = &log.of_endpoint("ep")[0];
        assert_eq!(name, "S");
        assert_eq!((stats.sampled, stats.agreed, stats.errors), (105, 53, 52));
        assert_eq!(stats.recent.len(), KEPT_COMPARISONS);
        assert_eq!(stats.recent[0].time_ms, 5);
        log.remove("EP");
        assert!(log.of_endpoint("ep").is_empty());
    }
}
