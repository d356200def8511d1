//! JSON export: the report's title and summary, and its rows as objects keyed by column.

use nova_plugin_sdk::analytics_exporter::{File, Guest, Report};
use serde_json::{Map, Value, json};

struct JsonExporter;

impl Guest for JsonExporter {
    fn render(report: Report) -> Result<File, String> {
        let data: Value = serde_json::from_str(&report.data)
            .map_err(|e| format!("the report is not JSON: {e}"))?;
        let columns: Vec<String> = data["columns"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| c.as_str().unwrap_or_default().to_owned())
            .collect();
        let rows: Vec<Value> = data["rows"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|row| {
                let cells = row.as_array().cloned().unwrap_or_default();
                Value::Object(columns.iter().cloned().zip(cells).collect::<Map<_, _>>())
            })
            .collect();
        let mut document = json!({
            "title": report.title,
            "summary": data.get("summary").cloned().unwrap_or(Value::Null),
            "rows": rows,
        });
        for key in ["time_range", "generated_at"] {
            if let Some(v) = data.get(key) {
                document[key] = v.clone();
            }
        }
        let bytes = serde_json::to_vec_pretty(&document).map_err(|e| e.to_string())?;
        Ok(File {
            content_type: "application/json".into(),
            file_name: "report.json".into(),
            bytes,
        })
    }
}

nova_plugin_sdk::analytics_exporter::export!(JsonExporter);
