//! What a caller may read of berth's host paths in its answers: none. Messages berth writes
//! (failure reasons, events, errors, the log lines they quote) can name files under berth's data
//! directory; before a caller sees them, a model's directory reads as the container sees it
//! (`/opt/ml/model`, a multi-model container's models under `/opt/ml/models/<name>`) and any
//! other path of the data directory as `<data-dir>`.

use std::borrow::Cow;

/// `text` with every path under `data_dir` replaced as the module says.
pub fn redact_private_paths<'a>(text: &'a str, data_dir: &str) -> Cow<'a, str> {
    let data_dir = data_dir.trim_end_matches('/');
    if data_dir.is_empty() || !text.contains(data_dir) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(data_dir) {
        out.push_str(&rest[..at]);
        let after = &rest[at + data_dir.len()..];
        let (shown, consumed) = if let Some(model) = after.strip_prefix("/models/") {
            // models/<source and version>/data: one model's files.
            let name_end = model.find(|c: char| c == '/' || !is_path_char(c)).unwrap_or(model.len());
            let data = model[name_end..].strip_prefix("/data").filter(|r| !r.starts_with(is_path_char));
            let taken =
                "/models/".len() + name_end + if data.is_some() || model[name_end..].starts_with("/data/") { "/data".len() } else { 0 };
            ("/opt/ml/model", taken)
        } else if let Some(staged) = after.strip_prefix("/staged-models/") {
            // staged-models/<instance>/<name>: a multi-model container's loaded model.
            let instance_end = staged.find(|c: char| c == '/' || !is_path_char(c)).unwrap_or(staged.len());
            ("/opt/ml/models", "/staged-models/".len() + instance_end)
        } else if after.starts_with(|c: char| c != '/' && is_path_char(c)) {
            // Another directory whose name starts with the data directory's.
            (data_dir, 0)
        } else {
            ("<data-dir>", 0)
        };
        out.push_str(shown);
        rest = &after[consumed..];
    }
    out.push_str(rest);
    Cow::Owned(out)
}

fn is_path_char(c: char) -> bool {
    !c.is_whitespace() && !matches!(c, '"' | '\'' | ')' | '(' | ',' | ';' | ':' | '|')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_of_the_data_directory_read_as_the_container_sees_them() {
        let dir = "/srv/berth-data";
        let cases = [
            ("cannot load /srv/berth-data/models/0a1b2c/data/model.onnx: bad", "cannot load /opt/ml/model/model.onnx: bad"),
            ("in /srv/berth-data/models/0a1b2c/data", "in /opt/ml/model"),
            ("(/srv/berth-data/models/0a1b2c/data) and /srv/berth-data/models/9f/data/x", "(/opt/ml/model) and /opt/ml/model/x"),
            ("url /srv/berth-data/staged-models/ep-V-1/abc123 missing", "url /opt/ml/models/abc123 missing"),
            ("log /srv/berth-data/logs/ep/V/1.log: x", "log <data-dir>/logs/ep/V/1.log: x"),
            ("/srv/berth-data/state.db", "<data-dir>/state.db"),
            ("nothing private here", "nothing private here"),
            ("/srv/berth-datax/other", "/srv/berth-datax/other"),
        ];
        for (text, want) in cases {
            assert_eq!(redact_private_paths(text, dir), want, "{text}");
        }
        assert_eq!(redact_private_paths("/x", ""), "/x");
    }
}
