//! Keyword tagger: tags are the document's key phrases found by RAKE (rapid automatic keyword
//! extraction: phrases are the runs of words between stop words and punctuation; a word scores
//! its degree over its frequency), weighted by how often each phrase occurs; categories come
//! from families of keywords. Confidences are relative to the best phrase or family.

use std::collections::HashMap;

use nova_plugin_sdk::auto_tagger::{Guest, Scored, Tagging, host};

const STOP_WORDS: &[&str] = &[
    "a", "about", "above", "after", "again", "against", "all", "also", "am", "an", "and", "any",
    "are", "as", "at", "be", "because", "been", "before", "being", "below", "between", "both",
    "but", "by", "can", "could", "did", "do", "does", "doing", "down", "during", "each", "even",
    "every", "few", "for", "from", "further", "get", "got", "had", "has", "have", "having", "he",
    "her", "here", "hers", "him", "his", "how", "i", "if", "in", "into", "is", "it", "its", "just",
    "may", "me", "might", "more", "most", "must", "my", "no", "nor", "not", "now", "of", "off",
    "on", "once", "only", "or", "other", "our", "ours", "out", "over", "own", "per", "same",
    "shall", "she", "should", "so", "some", "such", "than", "that", "the", "their", "them", "then",
    "there", "these", "they", "this", "those", "through", "to", "too", "under", "until", "up",
    "upon", "us", "very", "via", "was", "we", "were", "what", "when", "where", "which", "while",
    "who", "whom", "why", "will", "with", "within", "without", "would", "you", "your", "yours",
];

/// Category → words that suggest it.
const FAMILIES: &[(&str, &[&str])] = &[
    (
        "billing",
        &[
            "invoice",
            "payment",
            "refund",
            "charge",
            "price",
            "pricing",
            "billing",
            "subscription",
            "plan",
            "card",
            "tax",
        ],
    ),
    (
        "shipping",
        &[
            "shipping",
            "delivery",
            "shipment",
            "courier",
            "tracking",
            "package",
            "parcel",
            "carrier",
            "warehouse",
        ],
    ),
    (
        "returns",
        &[
            "return",
            "returns",
            "exchange",
            "warranty",
            "damaged",
            "defective",
            "rma",
        ],
    ),
    (
        "account",
        &[
            "account",
            "login",
            "password",
            "sign",
            "profile",
            "email",
            "username",
            "verification",
            "2fa",
        ],
    ),
    (
        "technical",
        &[
            "error",
            "bug",
            "install",
            "installation",
            "api",
            "server",
            "crash",
            "configure",
            "configuration",
            "update",
            "version",
            "integration",
        ],
    ),
    (
        "legal",
        &[
            "privacy",
            "gdpr",
            "terms",
            "contract",
            "liability",
            "compliance",
            "policy",
            "consent",
        ],
    ),
    (
        "sales",
        &[
            "discount",
            "quote",
            "trial",
            "demo",
            "offer",
            "upgrade",
            "purchase",
            "order",
            "enterprise",
        ],
    ),
    (
        "product",
        &[
            "feature",
            "features",
            "product",
            "specification",
            "model",
            "size",
            "colour",
            "color",
            "compatibility",
        ],
    ),
];

struct KeywordTagger;

impl Guest for KeywordTagger {
    fn suggest(title: String, text: String) -> Result<Tagging, String> {
        let max_tags = host::config::get("max_tags")
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(8)
            .clamp(1, 25);
        let body = format!("{title}.\n{text}");
        Ok(Tagging {
            tags: key_phrases(&body, max_tags),
            categories: categories(&body),
        })
    }
}

fn words_of(text: &str) -> impl Iterator<Item = (bool, String)> + '_ {
    // (starts a new phrase, lower-cased word): punctuation ends a phrase.
    let mut boundary = true;
    text.split_inclusive(|c: char| !(c.is_alphanumeric() || c == '\'' || c == '-'))
        .filter_map(move |piece| {
            let word: String = piece
                .trim_end_matches(|c: char| !(c.is_alphanumeric() || c == '\'' || c == '-'))
                .trim_matches(|c| c == '\'' || c == '-')
                .to_lowercase();
            let ends_phrase = piece.ends_with(['.', ',', ';', ':', '!', '?', '(', ')', '\n', '"']);
            if word.is_empty() {
                boundary |= ends_phrase;
                return None;
            }
            let starts = boundary;
            boundary = ends_phrase;
            Some((starts, word))
        })
}

/// RAKE over `text`: the best `limit` phrases, each scored relative to the best one.
pub fn key_phrases(text: &str, limit: usize) -> Vec<Scored> {
    let mut phrases: Vec<Vec<String>> = Vec::new();
    let mut current: Vec<String> = Vec::new();
    for (starts, word) in words_of(text) {
        let stop = STOP_WORDS.contains(&word.as_str()) || word.chars().all(|c| c.is_numeric());
        if (starts || stop) && !current.is_empty() {
            phrases.push(std::mem::take(&mut current));
        }
        if !stop && word.chars().count() > 2 {
            current.push(word);
        }
    }
    if !current.is_empty() {
        phrases.push(current);
    }
    phrases.retain(|p| p.len() <= 4);

    let mut frequency: HashMap<&str, f32> = HashMap::new();
    let mut degree: HashMap<&str, f32> = HashMap::new();
    for phrase in &phrases {
        for word in phrase {
            *frequency.entry(word).or_default() += 1.0;
            *degree.entry(word).or_default() += phrase.len() as f32;
        }
    }
    // Candidates are the phrases' runs of one to three words; a candidate scores how often it
    // occurs times the sum of its words' RAKE scores, so a key phrase said often outranks a
    // long phrase said once.
    let mut occurrences: HashMap<Vec<&str>, f32> = HashMap::new();
    for phrase in &phrases {
        for len in 1..=phrase.len().min(3) {
            for window in phrase.windows(len) {
                let words: Vec<&str> = window.iter().map(String::as_str).collect();
                *occurrences.entry(words).or_default() += 1.0;
            }
        }
    }
    let mut ranked: Vec<(String, f32)> = occurrences
        .into_iter()
        .map(|(words, seen)| {
            let score: f32 = words.iter().map(|w| degree[w] / frequency[w]).sum();
            (words.join(" "), seen * score)
        })
        .collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let best = ranked.first().map_or(1.0, |r| r.1.max(f32::EPSILON));
    // A candidate inside a better one already chosen adds nothing.
    let mut chosen: Vec<Scored> = Vec::new();
    for (name, score) in ranked {
        if chosen.len() == limit {
            break;
        }
        let inside = chosen
            .iter()
            .any(|c| format!(" {} ", c.name).contains(&format!(" {name} ")));
        if !inside {
            chosen.push(Scored {
                name,
                confidence: (score / best).clamp(0.0, 1.0),
            });
        }
    }
    chosen
}

/// The keyword families `text` speaks of, by share of family words found.
pub fn categories(text: &str) -> Vec<Scored> {
    let mut hits: Vec<(&str, usize)> = FAMILIES
        .iter()
        .map(|(name, words)| {
            let n = words_of(text)
                .filter(|(_, w)| words.contains(&w.as_str()))
                .count();
            (*name, n)
        })
        .filter(|(_, n)| *n > 0)
        .collect();
    hits.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
    let best = hits.first().map_or(1, |h| h.1) as f32;
    hits.into_iter()
        .take(3)
        .map(|(name, n)| Scored {
            name: name.to_owned(),
            confidence: n as f32 / best,
        })
        .collect()
}

nova_plugin_sdk::auto_tagger::export!(KeywordTagger);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rake_prefers_repeated_multi_word_phrases() {
        let text = "Refund policy: a refund policy applies to damaged items. \
                    Contact support for the refund policy.";
        let tags = key_phrases(text, 3);
        assert_eq!(tags[0].name, "refund policy");
        assert_eq!(tags[0].confidence, 1.0);
        assert!(categories(text).iter().any(|c| c.name == "billing"));
    }
}
