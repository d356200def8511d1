//! How an agent answers a question: the passages of its documents that answer it, then its
//! provider (or, without a model, the best passage, else the fallback message). Chat turns
//! and workflow `agent` nodes both ask through here.

use std::time::Instant;

use tokio::sync::mpsc;

use super::provider_for;
use super::responder::{self, Reply, ReplyStatus, Turn};
use crate::error::AppResult;
use crate::knowledge::answer::{self, Citation};
use crate::projects::ProjectRow;
use crate::state::AppState;

/// An agent's answer.
pub struct Answer {
    /// The reply, or why the provider gave none.
    pub reply: Result<Reply, String>,
    pub citations: Vec<Citation>,
    pub latency_ms: i64,
    /// The model that answered (`none` without one).
    pub model: String,
}

/// Asks `project` (with its A/B `variant`, if any) the last of `turns`, `question`; streamed
/// text goes to `tokens`.
pub async fn answer(
    state: &AppState,
    project: &ProjectRow,
    variant: Option<&str>,
    turns: &[Turn],
    question: &str,
    tokens: mpsc::Sender<String>,
) -> AppResult<Answer> {
    let (system_prompt, settings) =
        crate::projects::variants::effective(&state.db, project, variant).await?;
    let fallback = settings
        .get("fallback_message")
        .and_then(|v| v.as_str())
        .filter(|s| !s.trim().is_empty())
        .unwrap_or(responder::DEFAULT_FALLBACK)
        .to_owned();
    let provider = provider_for(state, project.id).await?;
    let knowledge = Knowledge::for_question(state, project, &provider, question).await?;
    let system_prompt = knowledge.prompt(&provider, system_prompt);
    let started = Instant::now();
    let reply = match (&provider, knowledge.confident.first()) {
        // Without a model, the best passage is the answer.
        (responder::Provider::Fallback, Some(best)) => Ok(Reply {
            content: answer::compose(best, question),
            prompt_tokens: 0,
            completion_tokens: 0,
            status: ReplyStatus::Ok,
        }),
        _ => {
            responder::reply(
                &state.outbound,
                &provider,
                &system_prompt,
                &fallback,
                turns,
                tokens,
            )
            .await
        }
    };
    Ok(Answer {
        reply,
        citations: knowledge.citations,
        latency_ms: started.elapsed().as_millis() as i64,
        model: provider.model().to_owned(),
    })
}

/// What the agent's documents say to a question.
struct Knowledge {
    /// The passages confident enough to answer from, best first (at most three).
    confident: Vec<answer::Passage>,
    /// What the reply cites: the passage answering alone without a model, all of them with one.
    citations: Vec<Citation>,
}

impl Knowledge {
    /// Retrieves the passages; a question they cannot answer is recorded as a knowledge gap.
    async fn for_question(
        state: &AppState,
        project: &ProjectRow,
        provider: &responder::Provider,
        question: &str,
    ) -> AppResult<Knowledge> {
        let passages = answer::retrieve(&state.db, project.id, question).await?;
        let best_confidence = passages.first().map_or(0.0, |p| p.confidence);
        if best_confidence < answer::CONFIDENCE_THRESHOLD {
            answer::record_gap(
                &state.db,
                project.id,
                project.workspace_id,
                question,
                best_confidence,
            )
            .await?;
        }
        let confident: Vec<answer::Passage> = passages
            .into_iter()
            .filter(|p| p.confidence >= answer::CONFIDENCE_THRESHOLD)
            .take(3)
            .collect();
        let citations = match provider {
            responder::Provider::Fallback => confident
                .first()
                .map(|p| vec![p.citation()])
                .unwrap_or_default(),
            _ => confident.iter().map(|p| p.citation()).collect(),
        };
        Ok(Knowledge {
            confident,
            citations,
        })
    }

    /// The system prompt with the passages appended, for a model (RAG).
    fn prompt(&self, provider: &responder::Provider, system_prompt: String) -> String {
        match provider {
            responder::Provider::OpenAiCompatible { .. } if !self.confident.is_empty() => {
                let passages: Vec<&answer::Passage> = self.confident.iter().collect();
                format!("{system_prompt}\n\n{}", answer::context(&passages))
            }
            _ => system_prompt,
        }
    }
}
