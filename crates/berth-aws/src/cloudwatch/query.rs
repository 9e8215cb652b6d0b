//! CloudWatch's older AWS query protocol, which SDKs released before CloudWatch moved to JSON and
//! CBOR still speak: `POST /` with a form body (`Action=GetMetricStatistics&Version=2010-08-01&
//! Dimensions.member.1.Name=...`), answered in XML. The form is turned into the same JSON value
//! the other protocols decode to, and the JSON answer into XML, so every operation is written once.
//!
//! Query strings carry no types: members are typed by name (numbers, booleans, ISO 8601
//! timestamps), as CloudWatch's service model defines them for the operations berth serves.

use super::handle;
use crate::error::EdgeError;
use crate::protocol::{xml_escape, Protocol, CLOUDWATCH_XMLNS};
use crate::Edge;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};
use time::format_description::well_known::Rfc3339;

/// Members that are numbers (`Value` only outside `Dimensions`, where it is the dimension's value).
const NUMBERS: &[&str] = &[
    "Period",
    "MaxDatapoints",
    "StorageResolution",
    "Value",
    "Values",
    "Counts",
    "SampleCount",
    "Sum",
    "Minimum",
    "Maximum",
    "Threshold",
    "EvaluationPeriods",
    "DatapointsToAlarm",
    "MaxRecords",
];
const BOOLEANS: &[&str] = &["ReturnData", "ActionsEnabled"];
const TIMESTAMPS: &[&str] = &["StartTime", "EndTime", "Timestamp", "StartDate", "EndDate"];

/// Answers a query-protocol request (the body of `POST /` as a form).
pub async fn query(edge: &Edge, body: &[u8]) -> Response {
    let request_id = crate::request_id();
    let pairs: Vec<(String, String)> = match serde_urlencoded::from_bytes(body) {
        Ok(p) => p,
        Err(e) => {
            return Protocol::CloudWatchQuery
                .answer_error(EdgeError::invalid_parameter(format!("The request body is not a valid form: {e}")))
        }
    };
    let Some(action) = pairs.iter().find(|(k, _)| k == "Action").map(|(_, v)| v.clone()) else {
        return Protocol::CloudWatchQuery.answer_error(EdgeError::missing_parameter("The request must contain the parameter Action."));
    };
    let input = match decode(pairs.into_iter().filter(|(k, _)| k != "Action" && k != "Version")) {
        Ok(v) => v,
        Err(e) => return Protocol::CloudWatchQuery.answer_error(e),
    };
    match handle(edge, &action, input).await {
        Ok(output) => {
            let mut xml = format!("<{action}Response xmlns=\"{CLOUDWATCH_XMLNS}\"><{action}Result>");
            if let Value::Object(members) = &output {
                for (k, v) in members {
                    element(&mut xml, k, v);
                }
            }
            xml += &format!("</{action}Result><ResponseMetadata><RequestId>{request_id}</RequestId></ResponseMetadata></{action}Response>");
            respond(StatusCode::OK, xml, &request_id)
        }
        Err(e) => Protocol::CloudWatchQuery.answer_error(e),
    }
}

/// The deepest key CloudWatch's operations use has 8 parts
/// (`MetricDataQueries.member.1.MetricStat.Metric.Dimensions.member.1.Name`).
const MAX_KEY_PARTS: usize = 12;
/// Most pairs in one form.
const MAX_PAIRS: usize = 50_000;
/// Most list items all lists of one form may hold together (an index makes its list that long).
const MAX_LIST_ITEMS: usize = 100_000;

/// Form pairs to a JSON value: `A.member.2.B=x` becomes `{"A": [_, {"B": "x"}]}`, typed by name.
/// Bounded: keys of at most [`MAX_KEY_PARTS`] parts, [`MAX_PAIRS`] pairs, [`MAX_LIST_ITEMS`] list
/// items in all, so no form can nest deeper or cost more memory than that.
pub(crate) fn decode(pairs: impl Iterator<Item = (String, String)>) -> Result<Value, EdgeError> {
    let mut root = Value::Object(Map::new());
    let mut list_items = 0usize;
    for (n, (key, raw)) in pairs.enumerate() {
        if n >= MAX_PAIRS {
            return Err(EdgeError::invalid_parameter(format!("The request has more than {MAX_PAIRS} parameters.")));
        }
        let parts: Vec<&str> = key.splitn(MAX_KEY_PARTS + 1, '.').collect();
        if parts.len() > MAX_KEY_PARTS {
            return Err(EdgeError::invalid_parameter(format!(
                "The parameter {} nests deeper than any CloudWatch parameter.",
                key.chars().take(80).collect::<String>()
            )));
        }
        let mut node = &mut root;
        let mut i = 0;
        let mut name = "";
        let mut in_dimensions = false;
        while i < parts.len() {
            let part = parts[i];
            if part == "member" {
                let index: usize = parts
                    .get(i + 1)
                    .and_then(|n| n.parse().ok())
                    .filter(|n| (1..=1000).contains(n))
                    .ok_or_else(|| EdgeError::invalid_parameter(format!("The parameter {key} has no valid member index.")))?;
                if !node.is_array() {
                    *node = Value::Array(Vec::new());
                }
                let list = node.as_array_mut().expect("made an array above");
                if list.len() < index {
                    list_items += index - list.len();
                    if list_items > MAX_LIST_ITEMS {
                        return Err(EdgeError::invalid_parameter(format!("The request's lists hold more than {MAX_LIST_ITEMS} items.")));
                    }
                    list.resize(index, Value::Null);
                }
                node = &mut list[index - 1];
                i += 2;
                continue;
            }
            name = part;
            in_dimensions |= part == "Dimensions";
            if !node.is_object() {
                *node = Value::Object(Map::new());
            }
            node = node.as_object_mut().expect("made an object above").entry(part.to_string()).or_insert(Value::Null);
            i += 1;
        }
        *node = typed(name, &raw, in_dimensions).map_err(|why| EdgeError::invalid_parameter(format!("The parameter {key} {why}.")))?;
    }
    Ok(root)
}

fn typed(name: &str, raw: &str, in_dimensions: bool) -> Result<Value, String> {
    if NUMBERS.contains(&name) && !(name == "Value" && in_dimensions) {
        if let Ok(i) = raw.parse::<i64>() {
            return Ok(json!(i));
        }
        let n: f64 = raw.parse().map_err(|_| format!("must be a number, not '{raw}'"))?;
        return Ok(json!(n));
    }
    if BOOLEANS.contains(&name) {
        return match raw {
            "true" => Ok(json!(true)),
            "false" => Ok(json!(false)),
            _ => Err(format!("must be true or false, not '{raw}'")),
        };
    }
    if TIMESTAMPS.contains(&name) {
        if let Ok(secs) = raw.parse::<f64>() {
            return Ok(json!(secs));
        }
        let t = time::OffsetDateTime::parse(raw, &Rfc3339).map_err(|_| format!("must be an ISO 8601 time, not '{raw}'"))?;
        return Ok(json!(t.unix_timestamp_nanos() as f64 / 1e9));
    }
    Ok(Value::String(raw.to_string()))
}

/// Appends `<name>value</name>`: lists as `member`s, `ExtendedStatistics` as a map of
/// `entry`/`key`/`value`, timestamps (names ending in `Timestamp`, or `Timestamps` items) in ISO 8601.
fn element(xml: &mut String, name: &str, v: &Value) {
    if v.is_null() {
        return;
    }
    xml.push_str(&format!("<{name}>"));
    match v {
        Value::Array(items) => {
            for item in items {
                let item = if name == "Timestamps" { iso(item) } else { item.clone() };
                element(xml, "member", &item);
            }
        }
        Value::Object(members) if name == "ExtendedStatistics" => {
            for (k, v) in members {
                xml.push_str("<entry>");
                element(xml, "key", &json!(k));
                element(xml, "value", v);
                xml.push_str("</entry>");
            }
        }
        Value::Object(members) => {
            for (k, v) in members {
                element(xml, k, v);
            }
        }
        Value::Number(_) if name.ends_with("Timestamp") => xml.push_str(&xml_escape(iso(v).as_str().unwrap_or_default())),
        Value::String(s) => xml.push_str(&xml_escape(s)),
        other => xml.push_str(&other.to_string()),
    }
    xml.push_str(&format!("</{name}>"));
}

fn iso(v: &Value) -> Value {
    let Some(secs) = v.as_f64() else { return v.clone() };
    time::OffsetDateTime::from_unix_timestamp_nanos((secs * 1e9) as i128)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .map_or_else(|| v.clone(), Value::String)
}

fn respond(status: StatusCode, xml: String, request_id: &str) -> Response {
    let mut resp = (status, xml).into_response();
    resp.headers_mut().insert("content-type", HeaderValue::from_static("text/xml"));
    if let Ok(id) = HeaderValue::from_str(request_id) {
        resp.headers_mut().insert("x-amzn-requestid", id);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(pairs: &[(&str, &str)]) -> Value {
        decode(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string()))).unwrap()
    }

    #[test]
    fn members_become_lists_and_values_are_typed_by_name() {
        let v = form(&[
            ("Namespace", "AWS/SageMaker"),
            ("Dimensions.member.2.Name", "VariantName"),
            ("Dimensions.member.1.Name", "EndpointName"),
            ("Dimensions.member.1.Value", "007"),
            ("Period", "60"),
            ("StartTime", "2026-11-25T09:00:00Z"),
            ("MetricData.member.1.Value", "1.5"),
            ("MetricDataQueries.member.1.ReturnData", "false"),
        ]);
        assert_eq!(v["Dimensions"][0]["Value"], json!("007"), "a dimension value stays text");
        assert_eq!(v["Dimensions"][1]["Name"], json!("VariantName"));
        assert_eq!(v["Period"], json!(60));
        assert_eq!(v["StartTime"], json!(1795597200.0));
        assert_eq!(v["MetricData"][0]["Value"], json!(1.5));
        assert_eq!(v["MetricDataQueries"][0]["ReturnData"], json!(false));
        assert!(decode([("Period".to_string(), "soon".to_string())].into_iter()).is_err());
        assert!(decode([("A.member.0".to_string(), "x".to_string())].into_iter()).is_err());
    }

    #[test]
    fn hostile_forms_are_refused_not_built() {
        let deep = format!("{}x", "a.".repeat(20_000));
        let e = decode([(deep, "1".to_string())].into_iter()).unwrap_err();
        assert!(e.message.contains("nests deeper"), "{}", e.message);
        // Index 1000 at three levels would be a billion slots.
        let wide = (1..=200).map(|i| (format!("A.member.{i}.B.member.1000.C.member.1000"), "x".to_string()));
        let e = decode(wide).unwrap_err();
        assert!(e.message.contains("more than 100000 items"), "{}", e.message);
        let many = (0..=MAX_PAIRS).map(|i| (format!("K{i}"), String::new()));
        assert!(decode(many).unwrap_err().message.contains("parameters"));
    }

    #[test]
    fn answers_render_as_query_xml() {
        let mut xml = String::new();
        element(&mut xml, "Datapoints", &json!([{"Timestamp": 0, "Sum": 2.0, "ExtendedStatistics": {"p99": 1.5}, "Unit": "None"}]));
        assert_eq!(
            xml,
            "<Datapoints><member><ExtendedStatistics><entry><key>p99</key><value>1.5</value></entry></ExtendedStatistics>\
             <Sum>2.0</Sum><Timestamp>1970-01-01T00:00:00Z</Timestamp><Unit>None</Unit></member></Datapoints>"
        );
        let mut xml = String::new();
        element(&mut xml, "Label", &json!("a<b"));
        assert_eq!(xml, "<Label>a&lt;b</Label>");
    }
}
