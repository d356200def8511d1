//! PDF export: one A4 page with the report's title, its key figures, a bar chart of the first
//! measure per row (day) and the most recent rows as a table. Written directly as PDF 1.4
//! with the standard Helvetica fonts, so the plugin needs nothing but its input.

use nova_plugin_sdk::analytics_exporter::{File, Guest, Report};
use serde_json::Value;

struct PdfExporter;

impl Guest for PdfExporter {
    fn render(report: Report) -> Result<File, String> {
        let data: Value = serde_json::from_str(&report.data)
            .map_err(|e| format!("the report is not JSON: {e}"))?;
        Ok(File {
            content_type: "application/pdf".into(),
            file_name: "report.pdf".into(),
            bytes: document(&report.title, &data),
        })
    }
}

const WIDTH: f64 = 595.0;
const HEIGHT: f64 = 842.0;
const MARGIN: f64 = 50.0;

/// A PDF string literal: WinAnsi (Latin-1) text, escaped.
fn text(s: &str) -> String {
    let mut out = String::from("(");
    for c in s.chars() {
        match c {
            '(' | ')' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            ' '..='~' => out.push(c),
            c if (c as u32) < 256 => out.push_str(&format!("\\{:03o}", c as u32)),
            '—' | '–' => out.push('-'),
            _ => out.push('?'),
        }
    }
    out.push(')');
    out
}

fn cell(value: &Value) -> String {
    match value {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        Value::Number(n) => match n.as_f64() {
            Some(f) if f.fract() != 0.0 => format!("{f:.3}"),
            _ => n.to_string(),
        },
        other => other.to_string(),
    }
}

fn label(key: &str) -> String {
    let words = key.replace('_', " ");
    let mut chars = words.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().collect::<String>() + chars.as_str())
        .unwrap_or_default()
}

/// The page's drawing operators.
fn content(title: &str, data: &Value) -> String {
    let mut ops = String::new();
    let mut y = HEIGHT - MARGIN - 10.0;
    ops += &format!("BT /F2 20 Tf {MARGIN} {y} Td {} Tj ET\n", text(title));
    y -= 18.0;
    let subtitle = [
        data["time_range"]
            .as_str()
            .map(|r| format!("Time range: {r}")),
        data["generated_at"]
            .as_str()
            .map(|g| format!("Generated {g}")),
    ]
    .into_iter()
    .flatten()
    .collect::<Vec<_>>()
    .join("   ");
    ops += &format!(
        "BT /F1 9 Tf 0.4 g {MARGIN} {y} Td {} Tj ET 0 g\n",
        text(&subtitle)
    );

    // Key figures, two columns.
    y -= 28.0;
    ops += &format!("BT /F2 12 Tf {MARGIN} {y} Td (Key figures) Tj ET\n");
    if let Some(summary) = data["summary"].as_object() {
        for (i, (key, value)) in summary.iter().enumerate() {
            let x = MARGIN + (i % 2) as f64 * 250.0;
            let line_y = y - 16.0 - (i / 2) as f64 * 14.0;
            ops += &format!(
                "BT /F1 10 Tf {x} {line_y} Td {} Tj ET\n",
                text(&format!("{}: {}", label(key), cell(value)))
            );
        }
        y -= 16.0 + summary.len().div_ceil(2) as f64 * 14.0;
    }

    // The chart: the first measure (second column) per row.
    let columns: Vec<String> = data["columns"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| c.as_str().unwrap_or_default().to_owned())
        .collect();
    let rows: Vec<Vec<Value>> = data["rows"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| r.as_array().cloned().unwrap_or_default())
        .collect();
    y -= 24.0;
    let measure = columns.get(1).cloned().unwrap_or_default();
    ops += &format!(
        "BT /F2 12 Tf {MARGIN} {y} Td {} Tj ET\n",
        text(&format!("{} per day", label(&measure)))
    );
    let chart_top = y - 10.0;
    let chart_height = 150.0;
    let base = chart_top - chart_height;
    let values: Vec<f64> = rows
        .iter()
        .map(|r| r.get(1).and_then(Value::as_f64).unwrap_or(0.0))
        .collect();
    let max = values.iter().cloned().fold(0.0_f64, f64::max);
    let plot_width = WIDTH - 2.0 * MARGIN - 30.0;
    let x0 = MARGIN + 30.0;
    ops += &format!(
        "0.6 G 0.5 w {x0} {base} m {} {base} l S {x0} {base} m {x0} {chart_top} l S 0 G\n",
        x0 + plot_width
    );
    ops += &format!(
        "BT /F1 8 Tf {MARGIN} {} Td {} Tj ET\n",
        chart_top - 8.0,
        text(&cell(&Value::from(max)))
    );
    ops += &format!("BT /F1 8 Tf {MARGIN} {base} Td (0) Tj ET\n");
    if !values.is_empty() {
        let slot = plot_width / values.len() as f64;
        ops += "0.23 0.42 0.85 rg\n";
        for (i, v) in values.iter().enumerate() {
            let h = if max > 0.0 {
                v / max * (chart_height - 10.0)
            } else {
                0.0
            };
            ops += &format!(
                "{:.2} {base} {:.2} {h:.2} re f\n",
                x0 + i as f64 * slot + slot * 0.15,
                slot * 0.7
            );
        }
        ops += "0 g\n";
        if let (Some(first), Some(last)) = (rows.first(), rows.last()) {
            let first = cell(first.first().unwrap_or(&Value::Null));
            let last = cell(last.first().unwrap_or(&Value::Null));
            ops += &format!(
                "BT /F1 8 Tf {x0} {} Td {} Tj ET\n",
                base - 10.0,
                text(&first)
            );
            ops += &format!(
                "BT /F1 8 Tf {} {} Td {} Tj ET\n",
                x0 + plot_width - 40.0,
                base - 10.0,
                text(&last)
            );
        }
    }

    // The table: the most recent rows that fit.
    y = base - 36.0;
    let fits = ((y - MARGIN) / 12.0).floor().max(0.0) as usize;
    let shown = rows.len().min(fits.saturating_sub(1));
    let col_width = (WIDTH - 2.0 * MARGIN) / columns.len().max(1) as f64;
    for (i, c) in columns.iter().enumerate() {
        ops += &format!(
            "BT /F2 8 Tf {} {y} Td {} Tj ET\n",
            MARGIN + i as f64 * col_width,
            text(&label(c))
        );
    }
    for row in &rows[rows.len() - shown..] {
        y -= 12.0;
        for (i, v) in row.iter().enumerate().take(columns.len()) {
            ops += &format!(
                "BT /F1 8 Tf {} {y} Td {} Tj ET\n",
                MARGIN + i as f64 * col_width,
                text(&cell(v))
            );
        }
    }
    if shown < rows.len() {
        ops += &format!(
            "BT /F1 8 Tf 0.4 g {MARGIN} {} Td {} Tj ET 0 g\n",
            y - 14.0,
            text(&format!("The {shown} most recent of {} rows.", rows.len()))
        );
    }
    ops
}

/// The whole file: catalog, pages, page, two fonts, the content stream and the info dict.
pub fn document(title: &str, data: &Value) -> Vec<u8> {
    let stream = content(title, data);
    let objects = [
        "<< /Type /Catalog /Pages 2 0 R >>".to_owned(),
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_owned(),
        format!(
            "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {WIDTH} {HEIGHT}] \
             /Resources << /Font << /F1 4 0 R /F2 5 0 R >> >> /Contents 6 0 R >>"
        ),
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>"
            .to_owned(),
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica-Bold /Encoding /WinAnsiEncoding >>"
            .to_owned(),
        format!("<< /Length {} >>\nstream\n{stream}endstream", stream.len()),
        format!("<< /Title {} /Producer (Nova pdf-exporter) >>", text(title)),
    ];
    let mut out: Vec<u8> = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n".to_vec();
    let mut offsets = Vec::new();
    for (i, body) in objects.iter().enumerate() {
        offsets.push(out.len());
        out.extend_from_slice(format!("{} 0 obj\n{body}\nendobj\n", i + 1).as_bytes());
    }
    let xref = out.len();
    out.extend_from_slice(
        format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).as_bytes(),
    );
    for offset in offsets {
        out.extend_from_slice(format!("{offset:010} 00000 n \n").as_bytes());
    }
    out.extend_from_slice(
        format!(
            "trailer\n<< /Size {} /Root 1 0 R /Info 7 0 R >>\nstartxref\n{xref}\n%%EOF\n",
            objects.len() + 1
        )
        .as_bytes(),
    );
    out
}

nova_plugin_sdk::analytics_exporter::export!(PdfExporter);
