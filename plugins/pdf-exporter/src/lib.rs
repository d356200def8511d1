//! PDF export: an A4 report with its title, period and agents, its key figures, and for each
//! section a bar chart and its tables, over as many pages as it needs. Text is set in an
//! embedded DejaVu Sans, so Latin, Greek and Cyrillic names render; a character the font
//! lacks shows as U+FFFD rather than vanishing. Columns are sized from the font's glyph
//! widths: headers wrap, and a cell too long for its column ends in "…". The font is embedded
//! as a subset of the glyphs used, with a ToUnicode map so the text can be searched and
//! copied.

use std::collections::BTreeMap;

use nova_plugin_sdk::analytics_exporter::{File, Guest, Report};
use pdf_writer::types::{CidFontType, FontFlags, SystemInfo, UnicodeCmap};
use pdf_writer::{Content, Filter, Finish, Name, Rect, Ref, Str};
use serde_json::Value;
use subsetter::GlyphRemapper;
use ttf_parser::{Face, GlyphId};

struct PdfExporter;

impl Guest for PdfExporter {
    fn render(report: Report) -> Result<File, String> {
        let data: Value = serde_json::from_str(&report.data)
            .map_err(|e| format!("the report is not JSON: {e}"))?;
        Ok(File {
            content_type: "application/pdf".into(),
            file_name: "report.pdf".into(),
            bytes: document(&report.title, &data)?,
        })
    }
}

nova_plugin_sdk::analytics_exporter::export!(PdfExporter);

static FONT: &[u8] = include_bytes!("../fonts/DejaVuSans.ttf");

const PAGE_W: f32 = 210.0;
const PAGE_H: f32 = 297.0;
const MARGIN: f32 = 15.0;
const CONTENT_W: f32 = PAGE_W - 2.0 * MARGIN;
/// Millimetres per point.
const MM_PER_PT: f32 = 25.4 / 72.0;
const BODY: f32 = 8.0;
const ROW_H: f32 = 4.6;
const CHART_H: f32 = 50.0;
/// Rows shown of one table; the rest is counted under it (the CSV and JSON exports hold all).
const MAX_ROWS: usize = 120;
const REPLACEMENT: char = '\u{FFFD}';

/// The report as PDF bytes.
pub fn document(title: &str, data: &Value) -> Result<Vec<u8>, String> {
    let mut pdf = Pdf::new(title)?;
    pdf.text(title, 18.0, MARGIN, Some(CONTENT_W));
    pdf.advance(9.0);
    let period = match (data["from"].as_str(), data["to"].as_str()) {
        (Some(from), Some(to)) => format!("{from} \u{2013} {to}"),
        _ => data["time_range"].as_str().unwrap_or_default().to_owned(),
    };
    let generated = data["generated_at"].as_str().unwrap_or_default();
    pdf.gray(&format!(
        "Period {period} (UTC) \u{b7} generated {generated}"
    ));
    let agents: Vec<&str> = data["agents"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| a["name"].as_str())
        .collect();
    if !agents.is_empty() {
        pdf.gray(&format!("Agents: {}", agents.join(", ")));
    }
    pdf.advance(3.0);
    pdf.key_figures(&data["summary"]);
    let legacy;
    let sections = match data["sections"].as_array() {
        Some(sections) => sections,
        None => {
            legacy = vec![serde_json::json!({"title": "Per day",
                "tables": [{"title": "", "columns": data["columns"], "rows": data["rows"]}]})];
            &legacy
        }
    };
    for section in sections {
        pdf.section(section);
    }
    pdf.finish()
}

/// Points per millimetre.
const PT: f32 = 72.0 / 25.4;

/// The document being laid out: finished pages, the page being drawn, and the glyphs used.
struct Pdf {
    title: String,
    pages: Vec<Content>,
    page: Content,
    face: Face<'static>,
    /// The font's glyphs as the subset numbers them, in order of first use.
    glyphs: GlyphRemapper,
    /// What each glyph of the subset shows, for the ToUnicode map.
    chars: BTreeMap<u16, char>,
    /// Where the next line goes, in mm from the bottom of the page.
    y: f32,
}

impl Pdf {
    fn new(title: &str) -> Result<Pdf, String> {
        let face = Face::parse(FONT, 0).map_err(|e| format!("the embedded font: {e}"))?;
        Ok(Pdf {
            title: title.to_owned(),
            pages: Vec::new(),
            page: Content::new(),
            face,
            glyphs: GlyphRemapper::new(),
            chars: BTreeMap::new(),
            y: PAGE_H - MARGIN,
        })
    }

    fn advance(&mut self, mm: f32) {
        self.y -= mm;
    }

    /// Starts a new page unless `mm` still fit on this one.
    fn room_for(&mut self, mm: f32) -> bool {
        if self.y - mm >= MARGIN {
            return false;
        }
        let full = std::mem::replace(&mut self.page, Content::new());
        self.pages.push(full);
        self.y = PAGE_H - MARGIN;
        true
    }

    /// The text as the subset's glyph ids, two bytes each (the font is written Identity-H).
    fn encode(&mut self, text: &str) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(text.len() * 2);
        for c in text.chars() {
            let glyph = self.face.glyph_index(c).map_or(0, |g| g.0);
            let cid = self.glyphs.remap(glyph);
            self.chars.entry(cid).or_insert(c);
            bytes.extend_from_slice(&cid.to_be_bytes());
        }
        bytes
    }

    /// A bar in the charts' blue.
    fn bar(&mut self, x: f32, y: f32, w: f32, h: f32) {
        self.page
            .save_state()
            .set_fill_rgb(0.23, 0.42, 0.78)
            .rect(x * PT, y * PT, w * PT, h * PT)
            .fill_nonzero()
            .restore_state();
    }

    /// The pages, the subset font and its maps, as PDF bytes.
    fn finish(mut self) -> Result<Vec<u8>, String> {
        let last = std::mem::replace(&mut self.page, Content::new());
        self.pages.push(last);
        let mut pdf = pdf_writer::Pdf::new();
        let mut next = 1;
        let mut id = || {
            next += 1;
            Ref::new(next - 1)
        };
        let (catalog, tree, font, cid_font, descriptor, font_file, to_unicode, info) =
            (id(), id(), id(), id(), id(), id(), id(), id());
        let page_ids: Vec<(Ref, Ref)> = self.pages.iter().map(|_| (id(), id())).collect();
        pdf.catalog(catalog).pages(tree);
        pdf.document_info(info)
            .title(pdf_writer::TextStr(&self.title))
            .producer(pdf_writer::TextStr("Nova pdf-exporter"));
        pdf.pages(tree)
            .kids(page_ids.iter().map(|(page, _)| *page))
            .count(page_ids.len() as i32);
        for ((page_id, content_id), content) in page_ids.iter().zip(std::mem::take(&mut self.pages))
        {
            let mut page = pdf.page(*page_id);
            page.media_box(Rect::new(0.0, 0.0, PAGE_W * PT, PAGE_H * PT))
                .parent(tree)
                .contents(*content_id);
            page.resources().fonts().pair(Name(b"F1"), font);
            page.finish();
            pdf.stream(*content_id, &deflate(&content.finish()))
                .filter(Filter::FlateDecode);
        }
        self.write_font(
            &mut pdf,
            [font, cid_font, descriptor, font_file, to_unicode],
        )?;
        Ok(pdf.finish())
    }

    fn write_font(&self, pdf: &mut pdf_writer::Pdf, refs: [Ref; 5]) -> Result<(), String> {
        let [font, cid_font, descriptor, font_file, to_unicode] = refs;
        // A subset's name carries a tag of six capitals, by the PDF convention.
        let base_name = b"NOVAAA+DejaVuSans";
        let system = SystemInfo {
            registry: Str(b"Adobe"),
            ordering: Str(b"Identity"),
            supplement: 0,
        };
        pdf.type0_font(font)
            .base_font(Name(base_name))
            .encoding_predefined(Name(b"Identity-H"))
            .descendant_font(cid_font)
            .to_unicode(to_unicode);
        let units = f32::from(self.face.units_per_em());
        let to_pdf = |v: f32| v / units * 1000.0;
        let widths: Vec<f32> = self
            .glyphs
            .remapped_gids()
            .map(|old| {
                to_pdf(f32::from(
                    self.face.glyph_hor_advance(GlyphId(old)).unwrap_or(0),
                ))
            })
            .collect();
        let mut cid = pdf.cid_font(cid_font);
        cid.subtype(CidFontType::Type2)
            .base_font(Name(base_name))
            .system_info(system)
            .font_descriptor(descriptor)
            .default_width(0.0)
            .cid_to_gid_map_predefined(Name(b"Identity"));
        cid.widths().consecutive(0, widths);
        cid.finish();
        let bbox = self.face.global_bounding_box();
        pdf.font_descriptor(descriptor)
            .name(Name(base_name))
            .flags(FontFlags::NON_SYMBOLIC)
            .bbox(Rect::new(
                to_pdf(f32::from(bbox.x_min)),
                to_pdf(f32::from(bbox.y_min)),
                to_pdf(f32::from(bbox.x_max)),
                to_pdf(f32::from(bbox.y_max)),
            ))
            .italic_angle(0.0)
            .ascent(to_pdf(f32::from(self.face.ascender())))
            .descent(to_pdf(f32::from(self.face.descender())))
            .cap_height(to_pdf(f32::from(
                self.face.capital_height().unwrap_or(self.face.ascender()),
            )))
            .stem_v(80.0)
            .font_file2(font_file);
        let subset = subsetter::subset(FONT, 0, &self.glyphs)
            .map_err(|e| format!("subsetting the font: {e}"))?;
        pdf.stream(font_file, &deflate(&subset))
            .filter(Filter::FlateDecode);
        let mut cmap = UnicodeCmap::new(Name(b"Custom"), system);
        for (glyph, c) in &self.chars {
            cmap.pair(*glyph, *c);
        }
        pdf.stream(to_unicode, &cmap.finish());
        Ok(())
    }

    /// The text with every character the font cannot show replaced by U+FFFD, and control
    /// characters dropped.
    fn showable(&self, text: &str) -> String {
        text.chars()
            .filter(|c| !c.is_control())
            .map(|c| {
                if self.face.glyph_index(c).is_some() {
                    c
                } else {
                    REPLACEMENT
                }
            })
            .collect()
    }

    /// How wide the text is at `size` points, in mm.
    fn width(&self, text: &str, size: f32) -> f32 {
        let units = f32::from(self.face.units_per_em());
        let advance: f32 = text
            .chars()
            .map(|c| {
                let glyph = self.face.glyph_index(c).unwrap_or_default();
                f32::from(self.face.glyph_hor_advance(glyph).unwrap_or(0))
            })
            .sum();
        advance / units * size * MM_PER_PT
    }

    /// The text cut to fit `max` mm, ending in "…" when cut.
    fn fit(&self, text: &str, size: f32, max: f32) -> String {
        if self.width(text, size) <= max {
            return text.to_owned();
        }
        let mut out = String::new();
        for c in text.chars() {
            out.push(c);
            if self.width(&out, size) + self.width("\u{2026}", size) > max {
                out.pop();
                break;
            }
        }
        out.push('\u{2026}');
        out
    }

    /// Writes one line at the cursor's height (the baseline), fitted to `max` if given.
    fn text(&mut self, text: &str, size: f32, x: f32, max: Option<f32>) {
        let shown = self.showable(text);
        let shown = match max {
            Some(max) => self.fit(&shown, size, max),
            None => shown,
        };
        let glyphs = self.encode(&shown);
        let y = self.y;
        self.page
            .begin_text()
            .set_font(Name(b"F1"), size)
            .next_line(x * PT, y * PT)
            .show(Str(&glyphs))
            .end_text();
    }

    fn gray(&mut self, text: &str) {
        self.color(0.35);
        self.text(text, BODY, MARGIN, Some(CONTENT_W));
        self.color(0.0);
        self.advance(4.5);
    }

    fn color(&mut self, gray: f32) {
        self.page.set_fill_gray(gray);
    }

    fn rule(&mut self, x1: f32, y1: f32, x2: f32, y2: f32) {
        self.page
            .set_line_width(0.5)
            .set_stroke_gray(0.55)
            .move_to(x1 * PT, y1 * PT)
            .line_to(x2 * PT, y2 * PT)
            .stroke();
    }

    fn key_figures(&mut self, summary: &Value) {
        let Some(figures) = summary.as_object() else {
            return;
        };
        self.room_for(20.0);
        let column = CONTENT_W / 4.0;
        for (i, (key, value)) in figures.iter().enumerate() {
            let x = MARGIN + column * (i % 4) as f32;
            self.color(0.35);
            // The unit is in the figure: "Avg response time", "0.42 s".
            self.text(
                &label(key.trim_end_matches("_s")),
                7.0,
                x,
                Some(column - 2.0),
            );
            self.color(0.0);
            self.y -= 4.5;
            self.text(&figure(key, value), 12.0, x, Some(column - 2.0));
            self.y += 4.5;
            if i % 4 == 3 || i + 1 == figures.len() {
                self.advance(11.0);
            }
        }
        self.advance(2.0);
    }

    fn section(&mut self, section: &Value) {
        // The heading stays with its chart (or its first table).
        self.room_for(25.0 + CHART_H);
        self.advance(4.0);
        self.text(
            section["title"].as_str().unwrap_or_default(),
            14.0,
            MARGIN,
            Some(CONTENT_W),
        );
        self.advance(7.0);
        if section["chart"].is_object() {
            self.chart(&section["chart"]);
        }
        for table in section["tables"].as_array().into_iter().flatten() {
            self.table(table);
        }
    }

    /// A bar chart of the chart's first series, with its scale and as many labels as fit.
    fn chart(&mut self, chart: &Value) {
        let labels: Vec<String> = chart["labels"]
            .as_array()
            .into_iter()
            .flatten()
            .map(cell)
            .collect();
        let values: Vec<f64> = chart["series"][0]["values"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|v| v.as_f64().unwrap_or(0.0))
            .collect();
        if values.is_empty() {
            return;
        }
        self.room_for(CHART_H + 10.0);
        self.text(
            chart["title"].as_str().unwrap_or_default(),
            9.0,
            MARGIN,
            Some(CONTENT_W),
        );
        self.advance(3.0);
        let top = self.y;
        let bottom = top - CHART_H + 8.0;
        let axis_x = MARGIN + 12.0;
        let plot_w = CONTENT_W - 12.0;
        let max = values.iter().copied().fold(0.0_f64, f64::max);
        let scale = if max > 0.0 { max } else { 1.0 };
        self.color(0.35);
        for (at, value) in [(bottom, 0.0), (top - 2.0, scale)] {
            self.y = at - 1.0;
            let figure = cell(&serde_json::json!(value));
            let w = self.width(&figure, 6.5);
            self.text(&figure, 6.5, axis_x - 1.5 - w, None);
        }
        self.rule(axis_x, bottom, axis_x + plot_w, bottom);
        self.rule(axis_x, bottom, axis_x, top);
        let slot = plot_w / values.len() as f32;
        let bar = (slot * 0.7).max(0.3);
        for (i, value) in values.iter().enumerate() {
            let h = ((value / scale) as f32 * (top - 2.0 - bottom)).max(0.0);
            let x = axis_x + slot * i as f32 + (slot - bar) / 2.0;
            if h > 0.0 {
                self.bar(x, bottom, bar, h);
            }
        }
        // Labels under the bars: every n-th, so that none overlaps the next.
        self.color(0.35);
        let widest = labels
            .iter()
            .map(|l| self.width(l, 6.0))
            .fold(0.0_f32, f32::max)
            .min(40.0);
        let every = ((widest + 2.0) / slot).ceil().max(1.0) as usize;
        self.y = bottom - 3.5;
        for (i, label) in labels.iter().enumerate().step_by(every) {
            let room = slot * every as f32 - 1.0;
            let shown = self.fit(&self.showable(label), 6.0, room);
            let x = axis_x + slot * i as f32 + (slot - self.width(&shown, 6.0)).max(0.0) / 2.0;
            self.text(&shown, 6.0, x, None);
        }
        self.color(0.0);
        self.y = bottom - 9.0;
    }

    fn table(&mut self, table: &Value) {
        let columns: Vec<String> = table["columns"]
            .as_array()
            .into_iter()
            .flatten()
            .map(cell)
            .collect();
        if columns.is_empty() {
            return;
        }
        let rows: Vec<Vec<String>> = table["rows"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|r| {
                r.as_array()
                    .into_iter()
                    .flatten()
                    .map(|c| self.showable(&cell(c)))
                    .collect()
            })
            .collect();
        let numeric: Vec<bool> = (0..columns.len())
            .map(|i| {
                let cells: Vec<&Value> = table["rows"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|r| r.get(i))
                    .filter(|c| !c.is_null())
                    .collect();
                !cells.is_empty() && cells.iter().all(|c| c.is_number())
            })
            .collect();
        let widths = self.column_widths(&columns, &rows);
        let headers: Vec<Vec<String>> = columns
            .iter()
            .zip(&widths)
            .map(|(c, w)| self.wrap(&self.showable(c), BODY, *w - 2.0))
            .collect();
        let header_lines = headers.iter().map(Vec::len).max().unwrap_or(1);
        let title = table["title"].as_str().unwrap_or_default();
        self.room_for(8.0 + ROW_H * (header_lines + 2) as f32);
        if !title.is_empty() {
            self.advance(2.0);
            self.text(title, 10.0, MARGIN, Some(CONTENT_W));
            self.advance(5.0);
        }
        self.header(&headers, &widths, &numeric, header_lines);
        if rows.is_empty() {
            self.color(0.35);
            self.text("No data in this period.", BODY, MARGIN + 1.0, None);
            self.color(0.0);
            self.advance(ROW_H);
        }
        for row in rows.iter().take(MAX_ROWS) {
            if self.room_for(ROW_H) {
                self.header(&headers, &widths, &numeric, header_lines);
            }
            let mut x = MARGIN;
            for ((text, w), right) in row.iter().zip(&widths).zip(&numeric) {
                let shown = self.fit(text, BODY, w - 2.0);
                let at = if *right {
                    x + w - 1.0 - self.width(&shown, BODY)
                } else {
                    x + 1.0
                };
                self.text(&shown, BODY, at, None);
                x += w;
            }
            self.advance(ROW_H);
        }
        if rows.len() > MAX_ROWS {
            self.color(0.35);
            let more = format!(
                "… and {} more rows (in the CSV and JSON exports)",
                rows.len() - MAX_ROWS
            );
            self.text(&more, BODY, MARGIN + 1.0, None);
            self.color(0.0);
            self.advance(ROW_H);
        }
        self.advance(3.0);
    }

    fn header(&mut self, headers: &[Vec<String>], widths: &[f32], numeric: &[bool], lines: usize) {
        let mut x = MARGIN;
        for ((lines_of, w), right) in headers.iter().zip(widths).zip(numeric) {
            let top = self.y;
            for line in lines_of {
                let at = if *right {
                    x + w - 1.0 - self.width(line, BODY)
                } else {
                    x + 1.0
                };
                self.text(line, BODY, at, None);
                self.y -= 3.6;
            }
            self.y = top;
            x += w;
        }
        self.y -= 3.6 * (lines - 1) as f32 + 1.6;
        self.rule(MARGIN, self.y, MARGIN + CONTENT_W, self.y);
        self.advance(ROW_H - 0.6);
    }

    /// Each column's width: what its cells need (a header may wrap at its spaces), shrunk
    /// in proportion when the table is wider than the page.
    fn column_widths(&self, columns: &[String], rows: &[Vec<String>]) -> Vec<f32> {
        let need: Vec<f32> = columns
            .iter()
            .enumerate()
            .map(|(i, header)| {
                let longest_word = header
                    .split(' ')
                    .map(|w| self.width(w, BODY))
                    .fold(0.0_f32, f32::max);
                let cells = rows
                    .iter()
                    .take(MAX_ROWS)
                    .filter_map(|r| r.get(i))
                    .map(|c| self.width(c, BODY))
                    .fold(0.0_f32, f32::max);
                longest_word.max(cells).min(70.0) + 2.5
            })
            .collect();
        let total: f32 = need.iter().sum();
        if total <= CONTENT_W {
            return need;
        }
        need.iter().map(|w| w * CONTENT_W / total).collect()
    }

    /// The text in lines no wider than `max`, broken at spaces (at most three lines).
    fn wrap(&self, text: &str, size: f32, max: f32) -> Vec<String> {
        let mut lines: Vec<String> = Vec::new();
        for word in text.split(' ') {
            match lines.last_mut() {
                Some(line) if self.width(&format!("{line} {word}"), size) <= max => {
                    line.push(' ');
                    line.push_str(word);
                }
                _ => lines.push(word.to_owned()),
            }
        }
        if lines.len() > 3 {
            let rest = lines.split_off(2).join(" ");
            lines.push(rest);
        }
        lines.into_iter().map(|l| self.fit(&l, size, max)).collect()
    }
}

fn cell(value: &Value) -> String {
    match value {
        Value::Null => "\u{2013}".into(),
        Value::String(s) => s.clone(),
        Value::Number(n) => match n.as_f64() {
            Some(f) if f.fract() != 0.0 => {
                let text = format!("{f:.3}");
                text.trim_end_matches('0').to_owned()
            }
            Some(f) if f.abs() < 1e15 => format!("{}", f as i64),
            _ => n.to_string(),
        },
        other => other.to_string(),
    }
}

/// A key figure as a reader expects it: rates (fractions in the data) as percentages, times
/// with their unit.
fn figure(key: &str, value: &Value) -> String {
    match (value.as_f64(), key) {
        (Some(rate), key) if key.ends_with("_rate") => format!("{:.1} %", rate * 100.0),
        (Some(seconds), key) if key.ends_with("_s") => format!("{seconds:.2} s"),
        _ => cell(value),
    }
}

/// `avg_response_time_s` → "Avg response time s".
fn label(key: &str) -> String {
    let words = key.replace('_', " ");
    let mut chars = words.chars();
    chars
        .next()
        .map(|first| first.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

/// A zlib stream, as `FlateDecode` reads it.
fn deflate(data: &[u8]) -> Vec<u8> {
    miniz_oxide::deflate::compress_to_vec_zlib(data, 6)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_with_long_names_and_many_rows_renders() {
        let rows: Vec<Value> = (0..300)
            .map(|i| {
                serde_json::json!([
                    format!("Агент Ωμέγα {i} with a rather long name indeed"),
                    i,
                    0.5,
                    null
                ])
            })
            .collect();
        let data = serde_json::json!({
            "from": "2026-11-01", "to": "2026-11-30", "generated_at": "now",
            "agents": [{"name": "日本語"}],
            "summary": {"conversations": 3, "success_rate": 0.5},
            "sections": [{"title": "Performance",
                "chart": {"title": "c", "labels": ["a", "b"], "series": [{"values": [1, 2]}]},
                "tables": [{"title": "Per agent", "columns": ["Agent", "Conversations", "Success rate (%)", "Satisfaction (of 5)"], "rows": rows}]}]
        });
        let pdf = document("Report — test", &data).unwrap();
        assert!(pdf.starts_with(b"%PDF-"));
    }

    #[test]
    fn cells_read_well() {
        assert_eq!(cell(&serde_json::json!(0.5)), "0.5");
        assert_eq!(cell(&serde_json::json!(12)), "12");
        assert_eq!(cell(&serde_json::json!(2.0)), "2");
        assert_eq!(cell(&Value::Null), "\u{2013}");
        assert_eq!(label("avg_response_time_s"), "Avg response time s");
        assert_eq!(figure("success_rate", &serde_json::json!(0.5)), "50.0 %");
        assert_eq!(
            figure("avg_response_time_s", &serde_json::json!(0.4213)),
            "0.42 s"
        );
        assert_eq!(figure("conversations", &serde_json::json!(3)), "3");
    }
}
