//! JSON export: the report's title, period, agents and summary; the daily rows and each
//! section's tables as objects keyed by column, with each section's chart data.

use nova_plugin_sdk::analytics_exporter::{File, Guest, Report};
use serde_json::{Map, Value, json};

struct JsonExporter;

impl Guest for JsonExporter {
    fn render(report: Report) -> Result<File, String> {
        let data: Value = serde_json::from_str(&report.data)
            .map_err(|e| format!("the report is not JSON: {e}"))?;
        let mut document = json!({
            "title": report.title,
            "summary": data.get("summary").cloned().unwrap_or(Value::Null),
            "rows": keyed(&data["columns"], &data["rows"]),
        });
        for key in ["time_range", "from", "to", "generated_at", "agents"] {
            if let Some(v) = data.get(key) {
                document[key] = v.clone();
            }
        }
        if let Some(sections) = data["sections"].as_array() {
            document["sections"] = sections.iter().map(section).collect();
        }
        let bytes = serde_json::to_vec_pretty(&document).map_err(|e| e.to_string())?;
        Ok(File {
            content_type: "application/json".into(),
            file_name: "report.json".into(),
            bytes,
        })
    }
}

fn section(section: &Value) -> Value {
    let tables: Vec<Value> = section["tables"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| json!({"title": t["title"], "rows": keyed(&t["columns"], &t["rows"])}))
        .collect();
    json!({"id": section["id"], "title": section["title"], "tables": tables, "chart": section["chart"]})
}

/// Rows as objects keyed by the columns' names.
fn keyed(columns: &Value, rows: &Value) -> Vec<Value> {
    let columns: Vec<String> = columns
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| c.as_str().unwrap_or_default().to_owned())
        .collect();
    rows.as_array()
        .into_iter()
        .flatten()
        .map(|row| {
            let cells = row.as_array().cloned().unwrap_or_default();
            Value::Object(columns.iter().cloned().zip(cells).collect::<Map<_, _>>())
        })
        .collect()
}

nova_plugin_sdk::analytics_exporter::export!(JsonExporter);
