//! A minimal auto-tagger: the most frequent words of five letters or more.

use std::collections::HashMap;

use nova_plugin_sdk::auto_tagger::{Guest, Scored, Tagging, host};

struct HelloTagger;

impl Guest for HelloTagger {
    fn suggest(title: String, text: String) -> Result<Tagging, String> {
        let wanted = host::config::get("tags")
            .and_then(|n| n.parse().ok())
            .unwrap_or(3);
        let mut counts: HashMap<String, u32> = HashMap::new();
        for word in format!("{title} {text}").split(|c: char| !c.is_alphanumeric()) {
            if word.chars().count() >= 5 {
                *counts.entry(word.to_lowercase()).or_default() += 1;
            }
        }
        let mut words: Vec<(String, u32)> = counts.into_iter().collect();
        words.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        let top = words.first().map_or(1, |w| w.1) as f32;
        host::info(&format!("tagging {} words", words.len()));
        Ok(Tagging {
            tags: words
                .into_iter()
                .take(wanted)
                .map(|(name, n)| Scored {
                    name,
                    confidence: n as f32 / top,
                })
                .collect(),
            categories: Vec::new(),
        })
    }
}

nova_plugin_sdk::auto_tagger::export!(HelloTagger);
