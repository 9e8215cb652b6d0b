//! Which Python framework an image asks for: AWS's framework serving images (scikit-learn,
//! XGBoost, PyTorch), recognised by repository name in any region's ECR URI, and berth's own
//! `berth/python`; and the packages that framework version is served with.

use crate::{BuiltinImage, Image};

/// The framework berth's Python runtime would serve `image` with: `berth/python`, or one of
/// AWS's framework images (which runs as a container instead when the Docker engine holds it).
pub fn framework_of(image: &Image) -> Option<Framework> {
    match image {
        Image::Builtin(BuiltinImage::Python) => Some(Framework::berth_python()),
        Image::Container(reference) => Framework::of_image(reference),
        Image::Builtin(_) | Image::Exec(_) => None,
    }
}

/// A framework and the version its image tag names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Framework {
    pub kind: FrameworkKind,
    /// The version part of the image tag, e.g. `1.2-1` of `1.2-1-cpu-py3`; empty for `berth/python`.
    pub version: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameworkKind {
    /// `sagemaker-scikit-learn`
    Sklearn,
    /// `sagemaker-xgboost`
    Xgboost,
    /// `pytorch-inference` (and the older `sagemaker-pytorch`)
    Pytorch,
    /// `berth/python`: the handler's `model_fn` loads the model; no framework installed.
    Python,
}

impl FrameworkKind {
    /// The name the runtime's defaults are keyed by (`BERTH_FRAMEWORK`).
    pub fn name(self) -> &'static str {
        match self {
            FrameworkKind::Sklearn => "sklearn",
            FrameworkKind::Xgboost => "xgboost",
            FrameworkKind::Pytorch => "pytorch",
            FrameworkKind::Python => "python",
        }
    }
}

impl Framework {
    /// `berth/python`: no framework package; the handler's `model_fn` loads the model.
    pub fn berth_python() -> Framework {
        Framework { kind: FrameworkKind::Python, version: String::new() }
    }

    /// The framework an image reference names, if it is one berth serves with its Python
    /// runtime: `berth/python[:tag]`, or an AWS framework image
    /// (`<account>.dkr.ecr.<region>.amazonaws.com[.cn]/sagemaker-scikit-learn:1.2-1-cpu-py3`).
    pub fn of_image(image: &str) -> Option<Framework> {
        let (name, tag) = match image.rsplit_once(':') {
            Some((name, tag)) if !tag.contains('/') => (name, tag),
            _ => (image, ""),
        };
        if name == "berth/python" {
            return Some(Framework::berth_python());
        }
        let (host, repository) = name.split_once('/')?;
        let ecr = host.contains(".dkr.ecr.") && (host.ends_with(".amazonaws.com") || host.ends_with(".amazonaws.com.cn"));
        if !ecr {
            return None;
        }
        let kind = match repository {
            "sagemaker-scikit-learn" => FrameworkKind::Sklearn,
            "sagemaker-xgboost" => FrameworkKind::Xgboost,
            "pytorch-inference" | "sagemaker-pytorch" => FrameworkKind::Pytorch,
            _ => return None,
        };
        // `1.2-1-cpu-py3` → `1.2-1`: the framework version and the container's revision;
        // `2.5-cpu-py311` → `2.5`.
        let mut parts = tag.split('-');
        let version = match (parts.next(), parts.next()) {
            (Some(v), Some(rev)) if rev.bytes().all(|b| b.is_ascii_digit()) && !rev.is_empty() => format!("{v}-{rev}"),
            (Some(v), _) => v.to_string(),
            _ => String::new(),
        };
        Some(Framework { kind, version })
    }

    /// The `major.minor` the version names (`1.2` of `1.2-1`), if any.
    fn minor(&self) -> Option<(u32, u32)> {
        let v = self.version.split('-').next()?;
        let mut it = v.split('.');
        Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
    }

    /// Package sets to try in order: the version the tag names first, then newer minors for a
    /// host whose Python the named one has no wheels for. Each set pins the framework's minor.
    pub fn package_sets(&self) -> Vec<Vec<String>> {
        let (package, newest) = match self.kind {
            FrameworkKind::Python => return vec![vec!["numpy".into()]],
            FrameworkKind::Sklearn => ("scikit-learn", (1, 9)),
            FrameworkKind::Xgboost => ("xgboost", (3, 2)),
            FrameworkKind::Pytorch => ("torch", (2, 12)),
        };
        let Some((major, minor)) = self.minor() else {
            return vec![vec![package.to_string(), "numpy".into()]];
        };
        let mut sets = Vec::new();
        let (mut ma, mut mi) = (major, minor);
        while (ma, mi) <= newest && sets.len() < 8 {
            // XGBoost publishes a CPU-only wheel from 2.1 on; the plain one brings NCCL (~200 MB).
            let package = if self.kind == FrameworkKind::Xgboost && (ma, mi) >= (2, 1) { "xgboost-cpu" } else { package };
            let mut set = vec![format!("{package}=={ma}.{mi}.*"), "scipy".into()];
            // Wheels built before NumPy 2 break under it.
            let old = match self.kind {
                FrameworkKind::Sklearn => (ma, mi) < (1, 5),
                FrameworkKind::Xgboost => (ma, mi) < (2, 1),
                FrameworkKind::Pytorch => (ma, mi) < (2, 3),
                FrameworkKind::Python => false,
            };
            set.push(if old { "numpy<2".into() } else { "numpy".into() });
            match self.kind {
                FrameworkKind::Sklearn => set.push("joblib".into()),
                // torch needs no SciPy.
                FrameworkKind::Pytorch => set.retain(|p| p != "scipy"),
                _ => {}
            }
            sets.push(set);
            // The next minor: torch 1.x ended at 1.13; xgboost and scikit-learn minors stay under 10.
            let last_minor = match (self.kind, ma) {
                (FrameworkKind::Pytorch, 1) => 13,
                (FrameworkKind::Pytorch, _) => u32::MAX,
                _ => 9,
            };
            if mi >= last_minor {
                (ma, mi) = (ma + 1, 0);
            } else {
                mi += 1;
            }
        }
        sets
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aws_framework_images_are_recognised_in_any_region() {
        let sk = Framework::of_image("683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3").unwrap();
        assert_eq!((sk.kind, sk.version.as_str()), (FrameworkKind::Sklearn, "1.2-1"));
        let xgb = Framework::of_image("720646828776.dkr.ecr.ap-south-1.amazonaws.com/sagemaker-xgboost:1.7-1").unwrap();
        assert_eq!((xgb.kind, xgb.version.as_str()), (FrameworkKind::Xgboost, "1.7-1"));
        assert!(Framework::of_image("450853457545.dkr.ecr.cn-north-1.amazonaws.com.cn/sagemaker-scikit-learn:1.0-1").is_some());
        assert_eq!(Framework::of_image("berth/python:1").unwrap().kind, FrameworkKind::Python);
        for other in
            ["123.dkr.ecr.us-east-1.amazonaws.com/my-model:1", "example.com/sagemaker-scikit-learn:1.2-1", "sagemaker-scikit-learn:1.2-1"]
        {
            assert_eq!(Framework::of_image(other), None, "{other}");
        }
    }

    #[test]
    fn the_tag_pins_the_minor_then_newer_ones_follow() {
        let sk = Framework::of_image("683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3").unwrap();
        let sets = sk.package_sets();
        assert_eq!(sets[0], ["scikit-learn==1.2.*", "scipy", "numpy<2", "joblib"]);
        assert_eq!(sets[1][0], "scikit-learn==1.3.*");
        assert_eq!(sets.last().unwrap()[0], "scikit-learn==1.9.*");
        assert_eq!(sets.last().unwrap()[2], "numpy");
        let xgb = Framework::of_image("683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:3.0-5").unwrap();
        assert_eq!(xgb.package_sets()[0], ["xgboost-cpu==3.0.*", "scipy", "numpy"]);
        let old = Framework::of_image("683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1").unwrap();
        assert_eq!(old.package_sets()[0], ["xgboost==1.7.*", "scipy", "numpy<2"]);

        let torch = Framework::of_image("763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-inference:2.5-cpu-py311").unwrap();
        assert_eq!((torch.kind, torch.version.as_str()), (FrameworkKind::Pytorch, "2.5"));
        assert_eq!(torch.package_sets()[0], ["torch==2.5.*", "numpy"]);
        assert_eq!(torch.package_sets()[5][0], "torch==2.10.*");
        let old = Framework::of_image("520713654638.dkr.ecr.us-east-1.amazonaws.com/sagemaker-pytorch:1.12.1-cpu-py38").unwrap();
        let sets = old.package_sets();
        assert_eq!(sets[0], ["torch==1.12.*", "numpy<2"]);
        assert_eq!((sets[1][0].as_str(), sets[2][0].as_str()), ("torch==1.13.*", "torch==2.0.*"));
    }
}
