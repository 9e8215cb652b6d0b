//! Sticky assignment: every call that carries the same key (a user id, say) reaches the same
//! variant, so a user sees one model for the whole experiment.
//!
//! The endpoint tag `berth:sticky-key` says where the key is: `InferenceId`, or
//! `CustomAttributes:<field>` (the `field=value` pair of the `CustomAttributes` header, pairs
//! separated by `;` or `,`). A key is assigned by weighted rendezvous hashing: each variant draws
//! `u = hash(variant, key)` in (0, 1) and scores `-ln(u) / weight`; the lowest score wins. No
//! state is kept, so a key lands on the same variant after a restart; each variant gets its
//! weight's share of keys; and when weights change, a key moves only if its variant's share
//! shrank, to a variant whose share grew (with two variants, exactly the keys the shift needs).

use crate::InvokeRequest;
use sha2::{Digest, Sha256};

/// The endpoint tag that turns sticky assignment on.
pub const STICKY_KEY_TAG: &str = "berth:sticky-key";

/// Where a request's sticky key is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StickyKey {
    /// The `InferenceId` of the call (`X-Amzn-SageMaker-Inference-Id`).
    InferenceId,
    /// The value of `field` in `CustomAttributes` (`X-Amzn-SageMaker-Custom-Attributes`).
    CustomAttribute(String),
}

/// A `berth:sticky-key` tag value that names no key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("The tag {STICKY_KEY_TAG} must be 'InferenceId' or 'CustomAttributes:<field>' (a field name without '=', ';' or ','); got '{0}'.")]
pub struct InvalidStickyKey(pub String);

impl StickyKey {
    /// Reads the tag's value: `InferenceId` or `CustomAttributes:<field>`.
    pub fn parse(value: &str) -> Result<StickyKey, InvalidStickyKey> {
        let value = value.trim();
        if value == "InferenceId" {
            return Ok(StickyKey::InferenceId);
        }
        match value.strip_prefix("CustomAttributes:").map(str::trim) {
            Some(field) if !field.is_empty() && !field.contains(['=', ';', ',']) => Ok(StickyKey::CustomAttribute(field.to_string())),
            _ => Err(InvalidStickyKey(value.to_string())),
        }
    }

    /// The key a request carries, if any.
    pub fn find<'a>(&self, req: &'a InvokeRequest) -> Option<&'a str> {
        match self {
            StickyKey::InferenceId => req.inference_id.as_ref()?.to_str().ok().map(str::trim).filter(|k| !k.is_empty()),
            StickyKey::CustomAttribute(field) => {
                let attributes = req.custom_attributes.as_ref()?.to_str().ok()?;
                attributes.split([';', ',']).find_map(|pair| {
                    let (name, value) = pair.split_once('=')?;
                    (name.trim() == field).then(|| value.trim()).filter(|v| !v.is_empty())
                })
            }
        }
    }
}

/// A uniform draw in (0, 1) for `key`, the same on every run: the first 53 bits of
/// SHA-256(`salt`, `key`), lengths first so no two (salt, key) pairs share an input.
pub fn draw(salt: &str, key: &str) -> f64 {
    let mut hash = Sha256::new();
    hash.update((salt.len() as u64).to_le_bytes());
    hash.update(salt.as_bytes());
    hash.update(key.as_bytes());
    let digest = hash.finalize();
    let bits = u64::from_le_bytes(digest[..8].try_into().expect("a SHA-256 digest has 32 bytes")) >> 11;
    (bits as f64 + 0.5) / (1u64 << 53) as f64
}

/// The variant `key` is assigned to among `(name, weight)` pairs: the lowest `-ln(u) / weight`.
/// Variants of weight 0 get no keys; `None` when no weight is positive.
pub fn assign<'a>(variants: impl Iterator<Item = (&'a str, f64)>, key: &str) -> Option<usize> {
    let mut best: Option<(usize, f64)> = None;
    for (i, (name, weight)) in variants.enumerate() {
        if !(weight.is_finite() && weight > 0.0) {
            continue;
        }
        let score = -draw(name, key).ln() / weight;
        if best.is_none_or(|(_, s)| score < s) {
            best = Some((i, score));
        }
    }
    best.map(|(i, _)| i)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn assign_all(weights: &[(&str, f64)], keys: usize) -> Vec<usize> {
        (0..keys).map(|k| assign(weights.iter().copied(), &format!("user-{k}")).unwrap()).collect()
    }

    #[test]
    fn shares_follow_the_weights_and_a_shift_moves_only_what_it_must() {
        let before = assign_all(&[("A", 1.0), ("B", 1.0)], 20_000);
        let share_a = before.iter().filter(|&&v| v == 0).count() as f64 / 20_000.0;
        assert!((share_a - 0.5).abs() < 0.02, "{share_a}");
        let after = assign_all(&[("A", 40.0), ("B", 60.0)], 20_000);
        let share_a = after.iter().filter(|&&v| v == 0).count() as f64 / 20_000.0;
        assert!((share_a - 0.4).abs() < 0.02, "{share_a}");
        let moved: Vec<(usize, usize)> = before.iter().zip(&after).filter(|(b, a)| b != a).map(|(b, a)| (*b, *a)).collect();
        assert!(moved.iter().all(|&(from, to)| (from, to) == (0, 1)), "only from the shrinking A to the growing B");
        let moved = moved.len() as f64 / 20_000.0;
        assert!((moved - 0.1).abs() < 0.02, "{moved}");
        // Scaling every weight changes nothing; a zero weight gets nothing.
        assert_eq!(assign_all(&[("A", 4.0), ("B", 6.0)], 2_000), after[..2_000]);
        assert!(assign_all(&[("A", 0.0), ("B", 1.0)], 1_000).iter().all(|&v| v == 1));
        assert_eq!(assign([("A", 0.0)].into_iter(), "k"), None);
    }

    #[test]
    fn a_third_variant_takes_keys_only_from_the_others() {
        let before = assign_all(&[("A", 1.0), ("B", 1.0), ("C", 0.0)], 10_000);
        let after = assign_all(&[("A", 1.0), ("B", 1.0), ("C", 1.0)], 10_000);
        assert!(before.iter().zip(&after).all(|(b, a)| a == b || *a == 2));
    }

    #[test]
    fn the_tag_names_where_the_key_is() {
        assert_eq!(StickyKey::parse("InferenceId").unwrap(), StickyKey::InferenceId);
        assert_eq!(StickyKey::parse("CustomAttributes:user").unwrap(), StickyKey::CustomAttribute("user".into()));
        for bad in ["", "inferenceid", "CustomAttributes:", "CustomAttributes:a=b", "Header:x"] {
            assert!(StickyKey::parse(bad).is_err(), "{bad}");
        }
        let req = |attributes: &str| InvokeRequest {
            custom_attributes: Some(HeaderValue::from_str(attributes).unwrap()),
            inference_id: Some(HeaderValue::from_static("id-7")),
            ..Default::default()
        };
        let user = StickyKey::CustomAttribute("user".into());
        assert_eq!(user.find(&req("session=9; user=alice")), Some("alice"));
        assert_eq!(user.find(&req("user=bob,session=9")), Some("bob"));
        assert_eq!(user.find(&req("username=carol")), None);
        assert_eq!(user.find(&req("user=")), None);
        assert_eq!(StickyKey::InferenceId.find(&req("")), Some("id-7"));
    }
}
