//! SageMaker's multi-model container API as berth speaks it to the servers it starts: the body
//! of `POST /models`, and the names berth gives models (a digest of the `TargetModel` key), which
//! a server checks before it uses one in a path or a map.

use serde::{Deserialize, Serialize};

/// `POST /models`: load the model whose files are in the directory `url` under `model_name`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelLoadRequest {
    pub model_name: String,
    pub url: String,
}

/// `POST /models` to a multi-model pod's model loader (`berth model-loader`): fetch the archive
/// of `target` (a key under the variant's model prefix) into the models' directory, as
/// `model_name`. It answers the fetched files' bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelFetchRequest {
    pub model_name: String,
    pub target: String,
}

/// A name berth gives models: letters, digits, `.`, `_` and `-`, at most 256.
pub fn is_model_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 256 && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::is_model_name;

    #[test]
    fn model_names_are_plain() {
        assert!(is_model_name("3f9a0c1d2e4b5a69"));
        assert!(is_model_name("model-a.v2_x"));
        for bad in ["", "../x", "a/b", "a b", "a%2Fb", &"x".repeat(257)] {
            assert!(!is_model_name(bad), "{bad}");
        }
    }
}
