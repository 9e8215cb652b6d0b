//! One ONNX model in one ONNX Runtime session, described well enough to feed it rows and read
//! back labels, class probabilities or scores.
//!
//! Covers what skl2onnx and onnxmltools export (one 2-D numeric input; a `label` tensor plus
//! `probabilities` as a tensor or a ZipMap sequence of maps, or one score tensor) and plain
//! neural nets (one input, first output read as scores).

use ort::environment::Environment;
use ort::session::builder::GraphOptimizationLevel;
use ort::session::Session;
use ort::value::{DynMapValueType, DynValue, Tensor, TensorElementType, ValueType};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The element type the model's input takes; rows are parsed as f64 and converted.
#[derive(Debug, Clone, Copy, PartialEq)]
enum InputType {
    F32,
    F64,
    I64,
}

/// A model's answer for a batch of rows.
#[derive(Debug, Clone, PartialEq)]
pub enum Prediction {
    /// Classifier: a label per row and, when the model gives them, class probabilities.
    Classes { labels: Vec<Label>, probabilities: Option<Vec<Vec<f32>>> },
    /// Regressor or neural net: the output values of each row.
    Scores(Vec<Vec<f32>>),
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(untagged)]
pub enum Label {
    Int(i64),
    Text(String),
}

pub struct OnnxModel {
    session: Mutex<Session>,
    input_name: String,
    input_type: InputType,
    /// Features per row when the model fixes it (the second dimension of its input).
    pub features: Option<usize>,
    label_output: Option<String>,
    probability_output: Option<String>,
    score_output: String,
    pub path: PathBuf,
}

impl OnnxModel {
    /// Loads the model file of a model directory: `model.onnx`, else the only `.onnx` file.
    pub fn load(environment: &Environment, model_dir: &Path, intra_threads: usize) -> Result<OnnxModel, String> {
        let path = model_file(model_dir)?;
        let configure = || -> Result<_, String> {
            let e = |e: ort::Error<_>| format!("cannot configure ONNX Runtime: {e}");
            Session::builder(environment)
                .map_err(|e| format!("cannot configure ONNX Runtime: {e}"))?
                .with_optimization_level(GraphOptimizationLevel::All)
                .map_err(e)?
                .with_intra_threads(intra_threads.max(1))
                .map_err(e)?
                .with_inter_threads(1)
                .map_err(e)?
                // Idle workers must not spin: many instances share the host's cores.
                .with_intra_op_spinning(false)
                .map_err(e)?
                .with_inter_op_spinning(false)
                .map_err(e)
        };
        let session =
            configure()?.commit_from_file(&path).map_err(|e| format!("{} is not a model ONNX Runtime can load: {e}", path.display()))?;
        describe(session, path)
    }

    pub fn input_name(&self) -> &str {
        &self.input_name
    }

    /// Runs `rows` (row-major, `n_features` values each).
    pub fn predict(&self, values: Vec<f64>, n_rows: usize, n_features: usize) -> Result<Prediction, String> {
        let shape = [n_rows as i64, n_features as i64];
        let input: DynValue = match self.input_type {
            InputType::F32 => Tensor::from_array((shape, values.into_iter().map(|v| v as f32).collect::<Vec<f32>>())).map(|t| t.into_dyn()),
            InputType::F64 => Tensor::from_array((shape, values)).map(|t| t.into_dyn()),
            InputType::I64 => Tensor::from_array((shape, values.into_iter().map(|v| v as i64).collect::<Vec<i64>>())).map(|t| t.into_dyn()),
        }
        .map_err(|e| format!("cannot build the input tensor: {e}"))?;
        let mut session = self.session.lock().unwrap_or_else(|e| e.into_inner());
        let outputs =
            session.run(ort::inputs![self.input_name.as_str() => input]).map_err(|e| format!("the model failed on this input: {e}"))?;
        match &self.label_output {
            Some(label_name) => {
                let labels = read_labels(&outputs[label_name.as_str()])?;
                let probabilities = match &self.probability_output {
                    Some(name) => Some(read_probabilities(&outputs[name.as_str()], n_rows)?),
                    None => None,
                };
                Ok(Prediction::Classes { labels, probabilities })
            }
            None => Ok(Prediction::Scores(read_rows(&outputs[self.score_output.as_str()], n_rows)?)),
        }
    }
}

fn model_file(dir: &Path) -> Result<PathBuf, String> {
    let preferred = dir.join("model.onnx");
    if preferred.is_file() {
        return Ok(preferred);
    }
    let entries = std::fs::read_dir(dir).map_err(|e| format!("cannot read the model directory {}: {e}", dir.display()))?;
    let onnx: Vec<PathBuf> =
        entries.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "onnx")).collect();
    match onnx.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err(format!("no model.onnx (and no other .onnx file) in the model data at {}", dir.display())),
        many => Err(format!(
            "{} .onnx files in the model data and none named model.onnx; name the one to serve model.onnx ({})",
            many.len(),
            many.iter().filter_map(|p| p.file_name()?.to_str()).collect::<Vec<_>>().join(", ")
        )),
    }
}

fn describe(session: Session, path: PathBuf) -> Result<OnnxModel, String> {
    let [input] = session.inputs() else {
        return Err(format!("the model has {} inputs; berth/onnx serves models with one input", session.inputs().len()));
    };
    let (input_type, features) = match input.dtype() {
        ValueType::Tensor { ty, shape, .. } => {
            let ty = match ty {
                TensorElementType::Float32 => InputType::F32,
                TensorElementType::Float64 => InputType::F64,
                TensorElementType::Int64 => InputType::I64,
                other => return Err(format!("the model's input is a tensor of {other:?}; berth/onnx feeds float, double or int64")),
            };
            if shape.len() != 2 {
                return Err(format!("the model's input has {} dimensions; berth/onnx feeds rows of features (2 dimensions)", shape.len()));
            }
            (ty, usize::try_from(shape[1]).ok())
        }
        other => return Err(format!("the model's input is {other:?}, not a tensor")),
    };
    let input_name = input.name().to_string();
    let outputs: Vec<(String, ValueType)> = session.outputs().iter().map(|o| (o.name().to_string(), o.dtype().clone())).collect();
    let is_label = |t: &ValueType| matches!(t, ValueType::Tensor { ty: TensorElementType::Int64 | TensorElementType::String, .. });
    let label_output = outputs.iter().find(|(n, t)| n == "label" && is_label(t)).or_else(|| outputs.first().filter(|(_, t)| is_label(t)));
    let label_output = label_output.map(|(n, _)| n.clone());
    let probability_output = label_output.as_ref().and_then(|label| {
        outputs
            .iter()
            .find(|(n, t)| n != label && matches!(t, ValueType::Tensor { ty: TensorElementType::Float32, .. } | ValueType::Sequence(_)))
    });
    let probability_output = probability_output.map(|(n, _)| n.clone());
    let score_output = outputs.first().map(|(n, _)| n.clone()).ok_or("the model has no outputs")?;
    Ok(OnnxModel { session: Mutex::new(session), input_name, input_type, features, label_output, probability_output, score_output, path })
}

fn read_labels(value: &DynValue) -> Result<Vec<Label>, String> {
    if let Ok((_, ints)) = value.try_extract_tensor::<i64>() {
        return Ok(ints.iter().map(|&v| Label::Int(v)).collect());
    }
    let (_, strings) = value.try_extract_strings().map_err(|e| format!("cannot read the model's labels: {e}"))?;
    Ok(strings.into_iter().map(Label::Text).collect())
}

/// Probabilities as a `[rows, classes]` float tensor, or as skl2onnx's ZipMap: a sequence of
/// one map per row, class → probability, read in class order.
fn read_probabilities(value: &DynValue, n_rows: usize) -> Result<Vec<Vec<f32>>, String> {
    if let ValueType::Sequence(_) = value.dtype() {
        let maps = value.try_extract_sequence::<DynMapValueType>().map_err(|e| format!("cannot read the model's probabilities: {e}"))?;
        return maps
            .iter()
            .map(|m| {
                if let Ok(map) = m.try_extract_map::<i64, f32>() {
                    let mut pairs: Vec<(i64, f32)> = map.into_iter().collect();
                    pairs.sort_by_key(|(k, _)| *k);
                    Ok(pairs.into_iter().map(|(_, p)| p).collect())
                } else {
                    let map = m.try_extract_map::<String, f32>().map_err(|e| format!("cannot read the model's probabilities: {e}"))?;
                    let mut pairs: Vec<(String, f32)> = map.into_iter().collect();
                    pairs.sort_by(|a, b| a.0.cmp(&b.0));
                    Ok(pairs.into_iter().map(|(_, p)| p).collect())
                }
            })
            .collect();
    }
    read_rows(value, n_rows)
}

/// A float tensor split into rows (its first dimension).
fn read_rows(value: &DynValue, n_rows: usize) -> Result<Vec<Vec<f32>>, String> {
    let (shape, data) = match value.try_extract_tensor::<f32>() {
        Ok((shape, data)) => (shape.to_vec(), data.to_vec()),
        Err(_) => {
            let (shape, data) = value.try_extract_tensor::<f64>().map_err(|e| format!("cannot read the model's output: {e}"))?;
            (shape.to_vec(), data.iter().map(|&v| v as f32).collect())
        }
    };
    if n_rows == 0 || shape.first().copied() != Some(n_rows as i64) {
        return Err(format!("the model's output has shape {shape:?} for {n_rows} input rows"));
    }
    let per_row = data.len() / n_rows;
    Ok(data.chunks(per_row.max(1)).map(|c| c.to_vec()).collect())
}
