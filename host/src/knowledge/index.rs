//! Turning a document's content into searchable chunks: the text of each format, split at
//! paragraph and sentence boundaries into chunks of about [`CHUNK_CHARS`] characters.

use uuid::Uuid;

use super::FileType;
use crate::args;
use crate::db::{Tx, new_id};
use crate::error::AppResult;

/// The target size of a chunk: large enough to carry an answer, small enough to rank well.
pub const CHUNK_CHARS: usize = 800;

/// The plain text of content in `file_type`.
pub fn text_of(file_type: FileType, content: &str) -> String {
    match file_type {
        FileType::Txt | FileType::Md | FileType::Pdf | FileType::Docx => content.to_owned(),
        FileType::Csv => content
            .lines()
            .map(|l| l.split(',').map(str::trim).collect::<Vec<_>>().join(" · "))
            .collect::<Vec<_>>()
            .join("\n"),
        FileType::Json => match serde_json::from_str::<serde_json::Value>(content) {
            Ok(v) => {
                let mut out = Vec::new();
                json_text(&v, "", &mut out);
                out.join("\n")
            }
            Err(_) => content.to_owned(),
        },
        FileType::Html => html_text(content),
    }
}

fn json_text(v: &serde_json::Value, path: &str, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                json_text(v, k, out);
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| json_text(v, path, out)),
        serde_json::Value::String(s) => out.push(if path.is_empty() {
            s.clone()
        } else {
            format!("{path}: {s}")
        }),
        serde_json::Value::Number(n) => out.push(format!("{path}: {n}")),
        serde_json::Value::Bool(b) => out.push(format!("{path}: {b}")),
        serde_json::Value::Null => {}
    }
}

/// Text of HTML: tags dropped (scripts and styles with their content), block elements
/// become line breaks, common entities decoded.
fn html_text(html: &str) -> String {
    const BLOCKS: [&str; 11] = [
        "<p", "</p", "<br", "<div", "</div", "<li", "<h1", "<h2", "<h3", "</h", "<tr",
    ];
    // ASCII lower-casing keeps byte offsets, so positions found in `lower` index `html`.
    let lower = html.to_ascii_lowercase();
    let mut out = String::with_capacity(html.len());
    let mut i = 0;
    while let Some(start) = html[i..].find('<') {
        out.push_str(&html[i..i + start]);
        let tag_start = i + start;
        let tag_end = html[tag_start..]
            .find('>')
            .map_or(html.len(), |e| tag_start + e + 1);
        let tag = &lower[tag_start..tag_end];
        i = tag_end;
        for skipped in ["script", "style"] {
            if tag.starts_with(&format!("<{skipped}")) {
                i = lower[i..]
                    .find(&format!("</{skipped}"))
                    .map_or(html.len(), |e| i + e);
            }
        }
        if BLOCKS.iter().any(|b| tag.starts_with(b)) {
            out.push('\n');
        }
    }
    out.push_str(&html[i..]);
    out.replace("&nbsp;", " ")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

/// Splits text into chunks of about `CHUNK_CHARS`, at paragraph, then sentence, then word
/// boundaries.
pub fn chunks(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let push = |piece: &str, current: &mut String, out: &mut Vec<String>| {
        if !current.is_empty() && current.chars().count() + piece.chars().count() + 1 > CHUNK_CHARS
        {
            out.push(std::mem::take(current).trim().to_owned());
        }
        if !current.is_empty() {
            current.push(' ');
        }
        current.push_str(piece);
    };
    for paragraph in text.split("\n\n").map(str::trim).filter(|p| !p.is_empty()) {
        let paragraph = paragraph.split_whitespace().collect::<Vec<_>>().join(" ");
        if paragraph.chars().count() <= CHUNK_CHARS {
            push(&paragraph, &mut current, &mut out);
            continue;
        }
        for sentence in paragraph.split_inclusive(['.', '!', '?']) {
            if sentence.chars().count() <= CHUNK_CHARS {
                push(sentence.trim(), &mut current, &mut out);
            } else {
                for word in sentence.split_whitespace() {
                    push(word, &mut current, &mut out);
                }
            }
        }
    }
    if !current.trim().is_empty() {
        out.push(current.trim().to_owned());
    }
    out
}

/// Content up to this size is indexed in the transaction that stores it. Larger content is
/// indexed by a background job, a batch of chunks a transaction: one transaction indexing a
/// 5 MiB document held SQLite's write lock for 5.7 s, and every login waited behind it.
const INLINE_BYTES: usize = 128 * 1024;

/// How a document's chunks were written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Indexing {
    /// In the caller's transaction: searchable once it commits.
    Done,
    /// By a job queued in the caller's transaction (`knowledge::indexing`).
    Queued,
}

/// Replaces a document's chunks with those of `content` (its version `version`), now or, for
/// large content, by a job that `owner` is charged with.
pub async fn reindex(
    tx: &mut Tx,
    document_id: Uuid,
    workspace_id: Uuid,
    version: i64,
    file_type: FileType,
    content: &str,
    owner: Uuid,
) -> AppResult<Indexing> {
    if content.len() > INLINE_BYTES {
        super::indexing::queue(tx, document_id, version, owner).await?;
        return Ok(Indexing::Queued);
    }
    tx.execute(
        "DELETE FROM document_chunks WHERE document_id = $1",
        args![document_id],
    )
    .await?;
    let pieces = chunks(&text_of(file_type, content));
    insert_chunks(tx, document_id, workspace_id, version, 0, &pieces).await?;
    Ok(Indexing::Done)
}

/// Writes `pieces` as the chunks of a document's `version`, numbered from `first`.
pub async fn insert_chunks(
    tx: &mut Tx,
    document_id: Uuid,
    workspace_id: Uuid,
    version: i64,
    first: usize,
    pieces: &[String],
) -> AppResult<()> {
    for (offset, piece) in pieces.iter().enumerate() {
        let mut binds = args![
            new_id(),
            document_id,
            workspace_id,
            version,
            (first + offset) as i64,
            piece.as_str()
        ];
        // PostgreSQL derives the head from the search vector itself (a generated column).
        let sql = if tx.is_postgres() {
            "INSERT INTO document_chunks (id, document_id, workspace_id, version, position, content)
             VALUES ($1, $2, $3, $4, $5, $6)"
        } else {
            binds.push(head_of(piece).into());
            "INSERT INTO document_chunks (id, document_id, workspace_id, version, position, content, head)
             VALUES ($1, $2, $3, $4, $5, $6, $7)"
        };
        tx.execute(sql, binds).await?;
    }
    Ok(())
}

/// A chunk's head for SQLite's `document_chunks_head` index: every word of a short chunk,
/// else the words that occur in it more than once. bm25 rewards both a repeated word and a
/// short chunk, so for a one-word query the chunks whose head holds the word outrank the rest.
/// Words are grouped by their first three letters with `y` read as `i`, a coarse stand-in for
/// FTS5's Porter stems: it adds words that are not repeated (harmless, they only widen the
/// candidates) but keeps the forms of one stem together ("refund", "refunds"; "city", "cities").
fn head_of(chunk: &str) -> String {
    let words: Vec<String> = chunk
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect();
    if chunk.chars().count() < CHUNK_CHARS / 2 {
        return words.join(" ");
    }
    let stems: Vec<String> = words
        .iter()
        .map(|w| {
            w.chars()
                .take(3)
                .map(|c| if c == 'y' { 'i' } else { c })
                .collect()
        })
        .collect();
    let mut counts = std::collections::HashMap::<&str, usize>::new();
    for stem in &stems {
        *counts.entry(stem).or_default() += 1;
    }
    let mut head: Vec<&str> = words
        .iter()
        .zip(&stems)
        .filter(|(_, stem)| counts[stem.as_str()] > 1)
        .map(|(w, _)| w.as_str())
        .collect();
    head.sort_unstable();
    head.dedup();
    head.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_respect_the_size_and_keep_every_word() {
        let text = (0..200)
            .map(|i| format!("Sentence number {i} is here."))
            .collect::<Vec<_>>()
            .join(" ");
        let pieces = chunks(&text);
        assert!(pieces.len() > 5);
        assert!(pieces.iter().all(|p| p.chars().count() <= CHUNK_CHARS));
        assert_eq!(
            pieces.join(" ").split_whitespace().count(),
            text.split_whitespace().count()
        );
    }

    #[test]
    fn heads_hold_repeated_words_or_all_of_a_short_chunk() {
        let long = format!(
            "{} Refunds take five days; a refund is issued once. Shipping is free in one city; cities vary.",
            "filler ".repeat(60)
        );
        let head = head_of(&long);
        assert!(head.contains("refund") && head.contains("refunds") && head.contains("filler"));
        assert!(head.contains("city") && head.contains("cities"));
        assert!(!head.contains("shipping") && !head.contains("five"));
        assert_eq!(head_of("Shipping is free."), "shipping is free");
    }

    #[test]
    fn formats_give_their_text() {
        let html = "<html><head><style>p{}</style><script>var x=1;</script></head><body><h1>Refunds</h1><p>Within 30&nbsp;days &amp; free.</p></body></html>";
        let text = text_of(FileType::Html, html);
        assert!(text.contains("Refunds") && text.contains("Within 30 days & free."));
        assert!(!text.contains("var x") && !text.contains("p{}"));
        assert_eq!(
            text_of(FileType::Json, r#"{"faq":[{"q":"Hours?","a":"9 to 5"}]}"#),
            "a: 9 to 5\nq: Hours?"
        );
        assert_eq!(
            text_of(FileType::Csv, "plan,price\npro, 10"),
            "plan · price\npro · 10"
        );
    }
}
