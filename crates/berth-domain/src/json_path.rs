//! The JSONPath subset batch transform's `DataProcessing` filters use: `$` (everything),
//! `$.name` / `$.a.b` / `$['name']` (members of an object), and `$[i]`, `$[i,j,...]`, `$[a:b]`
//! (items of an array, negative indices from the end). A CSV record is an array of columns.

use crate::DomainError;
use serde_json::Value;

#[derive(Debug, Clone, PartialEq)]
enum Step {
    Member(String),
    /// `['a','b']`: the members' values, as an array.
    Members(Vec<String>),
    Indices(Vec<i64>),
    Slice(Option<i64>, Option<i64>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct JsonPath {
    steps: Vec<Step>,
}

impl JsonPath {
    pub fn parse(path: &str) -> Result<JsonPath, DomainError> {
        let bad = || {
            DomainError::Validation(format!("'{path}' is not a JSONPath berth evaluates ($, $.member, $['member'], $[i], $[i,j], $[a:b])"))
        };
        let mut rest = path.trim().strip_prefix('$').ok_or_else(bad)?;
        let mut steps = Vec::new();
        while !rest.is_empty() {
            if let Some(r) = rest.strip_prefix('.') {
                let end = r.find(['.', '[']).unwrap_or(r.len());
                if end == 0 {
                    return Err(bad());
                }
                steps.push(Step::Member(r[..end].to_string()));
                rest = &r[end..];
            } else if let Some(r) = rest.strip_prefix('[') {
                let end = r.find(']').ok_or_else(bad)?;
                let inner = r[..end].trim();
                rest = &r[end + 1..];
                if inner.starts_with('\'') {
                    let names: Option<Vec<String>> = inner
                        .split(',')
                        .map(|n| n.trim().strip_prefix('\'').and_then(|n| n.strip_suffix('\'')).map(str::to_string))
                        .collect();
                    match names {
                        Some(mut names) if names.len() == 1 => steps.push(Step::Member(names.remove(0))),
                        Some(names) => steps.push(Step::Members(names)),
                        None => return Err(bad()),
                    }
                } else if let Some((a, b)) = inner.split_once(':') {
                    let num = |s: &str| -> Result<Option<i64>, DomainError> {
                        if s.trim().is_empty() {
                            Ok(None)
                        } else {
                            s.trim().parse().map(Some).map_err(|_| bad())
                        }
                    };
                    steps.push(Step::Slice(num(a)?, num(b)?));
                } else {
                    let indices: Result<Vec<i64>, _> = inner.split(',').map(|i| i.trim().parse::<i64>()).collect();
                    steps.push(Step::Indices(indices.map_err(|_| bad())?));
                }
            } else {
                return Err(bad());
            }
        }
        Ok(JsonPath { steps })
    }

    /// What the path selects of `value`: one member or item as itself, several items as an
    /// array; `None` when it selects nothing.
    pub fn apply(&self, value: &Value) -> Option<Value> {
        let mut current = value.clone();
        for step in &self.steps {
            current = match step {
                Step::Member(name) => current.get(name)?.clone(),
                Step::Members(names) => Value::Array(names.iter().filter_map(|n| current.get(n).cloned()).collect()),
                Step::Indices(indices) => {
                    let items = current.as_array()?;
                    let at = |i: i64| -> Option<Value> {
                        let n = items.len() as i64;
                        let i = if i < 0 { n + i } else { i };
                        (0..n).contains(&i).then(|| items[i as usize].clone())
                    };
                    if indices.len() == 1 {
                        at(indices[0])?
                    } else {
                        Value::Array(indices.iter().filter_map(|i| at(*i)).collect())
                    }
                }
                Step::Slice(a, b) => {
                    let items = current.as_array()?;
                    let n = items.len() as i64;
                    let clamp = |i: i64| (if i < 0 { n + i } else { i }).clamp(0, n) as usize;
                    let (from, to) = (a.map_or(0, clamp), b.map_or(n as usize, clamp));
                    Value::Array(if from < to { items[from..to].to_vec() } else { Vec::new() })
                }
            };
        }
        Some(current)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_filters_sagemaker_documents_select_what_they_say() {
        let row = json!(["id-1", "5.1", "3.5", "1.4"]);
        assert_eq!(JsonPath::parse("$[1:]").unwrap().apply(&row), Some(json!(["5.1", "3.5", "1.4"])));
        assert_eq!(JsonPath::parse("$[0,-1]").unwrap().apply(&row), Some(json!(["id-1", "1.4"])));
        assert_eq!(JsonPath::parse("$[-1]").unwrap().apply(&row), Some(json!("1.4")));
        let doc = json!({"id": 7, "features": [1, 2], "meta": {"source": "x"}});
        assert_eq!(JsonPath::parse("$.features").unwrap().apply(&doc), Some(json!([1, 2])));
        assert_eq!(JsonPath::parse("$['meta'].source").unwrap().apply(&doc), Some(json!("x")));
        assert_eq!(JsonPath::parse("$['id','features']").unwrap().apply(&doc), Some(json!([7, [1, 2]])));
        assert_eq!(JsonPath::parse("$").unwrap().apply(&doc), Some(doc.clone()));
        assert_eq!(JsonPath::parse("$.missing").unwrap().apply(&doc), None);
        for bad in ["features", "$..x", "$[a]", "$[1", "$.", "$?"] {
            assert!(JsonPath::parse(bad).is_err(), "{bad}");
        }
    }
}
