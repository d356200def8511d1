//! CSV export: the report's `columns` as the header and its `rows`, quoted as RFC 4180 asks.

use nova_plugin_sdk::analytics_exporter::{File, Guest, Report, host};
use serde_json::Value;

struct CsvExporter;

impl Guest for CsvExporter {
    fn render(report: Report) -> Result<File, String> {
        let data: Value = serde_json::from_str(&report.data)
            .map_err(|e| format!("the report is not JSON: {e}"))?;
        let delimiter = host::config::get("delimiter").unwrap_or_else(|| ",".into());
        let mut out = String::new();
        let columns = data["columns"].as_array().cloned().unwrap_or_default();
        line(&mut out, &columns, &delimiter);
        for row in data["rows"].as_array().into_iter().flatten() {
            line(
                &mut out,
                row.as_array().map_or(&[][..], Vec::as_slice),
                &delimiter,
            );
        }
        Ok(File {
            content_type: "text/csv; charset=utf-8".into(),
            file_name: format!("{}.csv", slug(&report.title)),
            bytes: out.into_bytes(),
        })
    }
}

fn line(out: &mut String, cells: &[Value], delimiter: &str) {
    let cells: Vec<String> = cells.iter().map(|c| field(c, delimiter)).collect();
    out.push_str(&cells.join(delimiter));
    out.push_str("\r\n");
}

/// One field: text quoted when it holds the delimiter, a quote or a line break.
pub fn field(value: &Value, delimiter: &str) -> String {
    let text = match value {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    if text.contains(delimiter) || text.contains(['"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text
    }
}

/// A file name from a title.
pub fn slug(title: &str) -> String {
    let slug: String = title
        .chars()
        .map(|c| {
            if c.is_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    let slug = slug
        .split('-')
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join("-");
    if slug.is_empty() {
        "report".into()
    } else {
        slug
    }
}

nova_plugin_sdk::analytics_exporter::export!(CsvExporter);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_quoted_when_needed() {
        assert_eq!(field(&Value::from("a,b"), ","), "\"a,b\"");
        assert_eq!(field(&Value::from("say \"hi\""), ","), "\"say \"\"hi\"\"\"");
        assert_eq!(field(&Value::from(0.5), ","), "0.5");
        assert_eq!(slug("Nova — 30 days!"), "nova-30-days");
    }
}
