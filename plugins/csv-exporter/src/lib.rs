//! CSV export. A composed report is one sheet of sections: for each table of each section a
//! title line, the header and the rows, then a blank line. A report without sections (an
//! older host) is its `columns` as the header and its `rows`. Fields are quoted as RFC 4180
//! asks, and text a spreadsheet would run as a formula is defused.

use nova_plugin_sdk::analytics_exporter::{File, Guest, Report, host};
use serde_json::Value;

struct CsvExporter;

impl Guest for CsvExporter {
    fn render(report: Report) -> Result<File, String> {
        let data: Value = serde_json::from_str(&report.data)
            .map_err(|e| format!("the report is not JSON: {e}"))?;
        let delimiter = host::config::get("delimiter").unwrap_or_else(|| ",".into());
        let out = match data["sections"].as_array() {
            Some(sections) => sheet_of_sections(sections, &delimiter),
            None => {
                let mut out = String::new();
                block(&mut out, None, &data["columns"], &data["rows"], &delimiter);
                out
            }
        };
        Ok(File {
            content_type: "text/csv; charset=utf-8".into(),
            file_name: format!("{}.csv", slug(&report.title)),
            bytes: out.into_bytes(),
        })
    }
}

fn sheet_of_sections(sections: &[Value], delimiter: &str) -> String {
    let mut out = String::new();
    for section in sections {
        let section_title = section["title"].as_str().unwrap_or_default();
        for table in section["tables"].as_array().into_iter().flatten() {
            if !out.is_empty() {
                out.push_str("\r\n");
            }
            let title = format!(
                "{section_title} \u{2014} {}",
                table["title"].as_str().unwrap_or_default()
            );
            block(
                &mut out,
                Some(&title),
                &table["columns"],
                &table["rows"],
                delimiter,
            );
        }
    }
    out
}

/// A table: its title line (if any), the header, the rows.
fn block(out: &mut String, title: Option<&str>, columns: &Value, rows: &Value, delimiter: &str) {
    if let Some(title) = title {
        line(out, &[Value::from(title)], delimiter);
    }
    line(
        out,
        columns.as_array().map_or(&[][..], Vec::as_slice),
        delimiter,
    );
    for row in rows.as_array().into_iter().flatten() {
        line(
            out,
            row.as_array().map_or(&[][..], Vec::as_slice),
            delimiter,
        );
    }
}

fn line(out: &mut String, cells: &[Value], delimiter: &str) {
    let cells: Vec<String> = cells.iter().map(|c| field(c, delimiter)).collect();
    out.push_str(&cells.join(delimiter));
    out.push_str("\r\n");
}

/// One field: text quoted when it holds the delimiter, a quote or a line break; text that
/// starts like a formula (`=`, `+`, `-`, `@`) gets a leading `'` so a spreadsheet shows it
/// rather than runs it (an agent's name is user input).
pub fn field(value: &Value, delimiter: &str) -> String {
    let text = match value {
        Value::Null => String::new(),
        Value::String(s) if s.starts_with(['=', '+', '-', '@', '\t', '\r']) => format!("'{s}"),
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
        assert_eq!(field(&Value::from(-2), ","), "-2");
        assert_eq!(field(&Value::from("=HYPERLINK(1)"), ","), "'=HYPERLINK(1)");
        assert_eq!(slug("Nova — 30 days!"), "nova-30-days");
    }
}
