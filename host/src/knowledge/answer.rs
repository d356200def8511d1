//! Agents answer from knowledge: the chunks of an agent's documents that best match a
//! question, how confident that match is, the built-in answer made from them, and what the
//! answers cite.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::analytics::text::{content_terms, words};
use crate::args;
use crate::db::{Db, Tx, new_id, now};
use crate::error::AppResult;

/// A passage counts as an answer when it holds at least this share of the question's
/// content words.
pub const CONFIDENCE_THRESHOLD: f64 = 0.5;

/// A document passage an answer used.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Citation {
    pub document_id: Uuid,
    pub title: String,
    pub version: i64,
    pub chunk_id: Uuid,
    /// Share of the question's content words the passage holds (0–1).
    pub confidence: f64,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Passage {
    pub document_id: Uuid,
    pub title: String,
    pub chunk_id: Uuid,
    pub version: i64,
    pub content: String,
    #[sqlx(skip)]
    pub confidence: f64,
}

impl Passage {
    pub fn citation(&self) -> Citation {
        Citation {
            document_id: self.document_id,
            title: self.title.clone(),
            version: self.version,
            chunk_id: self.chunk_id,
            confidence: (self.confidence * 1000.0).round() / 1000.0,
        }
    }
}

fn coverage(question: &[String], text: &str) -> f64 {
    if question.is_empty() {
        return 0.0;
    }
    let terms = content_terms(text);
    question.iter().filter(|q| terms.contains(q)).count() as f64 / question.len() as f64
}

/// The best passages of `agent_id`'s documents for `question`, most confident first.
pub async fn retrieve(db: &Db, project_id: Uuid, question: &str) -> AppResult<Vec<Passage>> {
    let terms: Vec<String> = words(question)
        .into_iter()
        .filter(|w| !content_terms(w).is_empty())
        .collect();
    if terms.is_empty() {
        return Ok(Vec::new());
    }
    let sql = if db.is_postgres() {
        "SELECT d.id AS document_id, d.title, c.id AS chunk_id, c.version, c.content
         FROM document_chunks c
         JOIN documents d ON d.id = c.document_id
         JOIN document_projects dp ON dp.document_id = d.id AND dp.project_id = $1
         CROSS JOIN to_tsquery('english', $2) AS query
         WHERE c.tsv @@ query ORDER BY ts_rank(c.tsv, query) DESC, c.seq LIMIT 8"
    } else {
        "SELECT d.id AS document_id, d.title, c.id AS chunk_id, c.version, c.content
         FROM document_chunks_fts
         JOIN document_chunks c ON c.seq = document_chunks_fts.rowid
         JOIN documents d ON d.id = c.document_id
         JOIN document_projects dp ON dp.document_id = d.id AND dp.project_id = $1
         WHERE document_chunks_fts MATCH $2 ORDER BY bm25(document_chunks_fts), c.seq LIMIT 8"
    };
    let any = if db.is_postgres() {
        terms.join(" | ")
    } else {
        terms
            .iter()
            .map(|t| format!("\"{t}\""))
            .collect::<Vec<_>>()
            .join(" OR ")
    };
    let mut passages: Vec<Passage> = db.fetch_all(sql, args![project_id, any]).await?;
    let question_terms = content_terms(question);
    for p in &mut passages {
        p.confidence = coverage(&question_terms, &p.content);
    }
    passages.sort_by(|a, b| b.confidence.total_cmp(&a.confidence));
    Ok(passages)
}

/// The built-in answer: the passage's sentences that hold most of the question's words (at
/// most three, in their order), and the source.
pub fn compose(passage: &Passage, question: &str) -> String {
    let question_terms = content_terms(question);
    let sentences: Vec<&str> = passage
        .content
        .split_inclusive(['.', '!', '?', '\n'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    let mut scored: Vec<(usize, f64)> = sentences
        .iter()
        .enumerate()
        .map(|(i, s)| (i, coverage(&question_terms, s)))
        .filter(|(_, c)| *c > 0.0)
        .collect();
    scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    let mut chosen: Vec<usize> = scored.into_iter().take(3).map(|(i, _)| i).collect();
    chosen.sort();
    let body = if chosen.is_empty() {
        passage.content.clone()
    } else {
        chosen
            .iter()
            .map(|i| sentences[*i])
            .collect::<Vec<_>>()
            .join(" ")
    };
    format!("{body}\n\nSource: {}", passage.title)
}

/// The context given to a language model: the passages, numbered.
pub fn context(passages: &[&Passage]) -> String {
    let mut out = String::from(
        "Answer from these documents when they hold the answer, and say which one you used:\n",
    );
    for (i, p) in passages.iter().enumerate() {
        out.push_str(&format!("\n[{}] {}:\n{}\n", i + 1, p.title, p.content));
    }
    out
}

/// Counts the citations of a stored answer: per document and per version.
pub async fn record_citations(
    tx: &mut Tx,
    workspace_id: Uuid,
    citations: &[Citation],
) -> AppResult<()> {
    let mut seen = Vec::new();
    for c in citations {
        if seen.contains(&c.document_id) {
            continue;
        }
        seen.push(c.document_id);
        tx.execute(
            "INSERT INTO knowledge_analytics (id, document_id, workspace_id, reference_count, last_referenced)
             VALUES ($1, $2, $3, 1, $4)
             ON CONFLICT (document_id) DO UPDATE SET
                reference_count = knowledge_analytics.reference_count + 1,
                last_referenced = excluded.last_referenced",
            args![new_id(), c.document_id, workspace_id, now()],
        )
        .await?;
        tx.execute(
            "UPDATE document_versions SET answer_count = answer_count + 1 WHERE document_id = $1 AND version = $2",
            args![c.document_id, c.version],
        )
        .await?;
    }
    Ok(())
}

/// A rating of an answer moves the effectiveness of the documents it cited.
pub async fn record_rating(
    tx: &mut Tx,
    citations: &[Citation],
    old: Option<i64>,
    new: i64,
) -> AppResult<()> {
    let mut seen = Vec::new();
    for c in citations {
        if seen.contains(&c.document_id) {
            continue;
        }
        seen.push(c.document_id);
        tx.execute(
            "UPDATE knowledge_analytics SET rating_sum = rating_sum + $2, rating_count = rating_count + $3
             WHERE document_id = $1",
            args![c.document_id, new - old.unwrap_or(0), i64::from(old.is_none())],
        )
        .await?;
        tx.execute(
            "UPDATE knowledge_analytics SET effectiveness_score = CASE WHEN rating_count > 0
                THEN rating_sum / 5.0 / rating_count ELSE NULL END WHERE document_id = $1",
            args![c.document_id],
        )
        .await?;
    }
    Ok(())
}

/// A question the agent's knowledge did not answer confidently.
pub async fn record_gap(
    db: &Db,
    project_id: Uuid,
    workspace_id: Uuid,
    question: &str,
    confidence: f64,
) -> AppResult<()> {
    let Some(key) = crate::analytics::text::question_key(question) else {
        return Ok(());
    };
    let example: String = question.chars().take(200).collect();
    db.execute(
        "INSERT INTO knowledge_gaps (agent_id, workspace_id, question_key, example, occurrences, confidence_sum, last_seen)
         VALUES ($1, $2, $3, $4, 1, $5, $6)
         ON CONFLICT (agent_id, question_key) DO UPDATE SET
            occurrences = knowledge_gaps.occurrences + 1,
            confidence_sum = knowledge_gaps.confidence_sum + excluded.confidence_sum,
            last_seen = excluded.last_seen",
        args![project_id, workspace_id, key, example, confidence, now()],
    )
    .await?;
    Ok(())
}
