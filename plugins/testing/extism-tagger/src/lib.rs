//! An Extism auto-tagger: `suggest` takes `{"title", "text"}` and returns the text's
//! capitalised words as tags and the configured category; `loop` in the text never returns.

use extism_pdk::{FnResult, Json, config, plugin_fn};
use serde_json::{Value, json};

#[plugin_fn]
pub fn suggest(Json(input): Json<Value>) -> FnResult<Json<Value>> {
    let text = input["text"].as_str().unwrap_or_default();
    if text == "loop" {
        let mut n: u64 = 0;
        loop {
            n = std::hint::black_box(n.wrapping_add(1));
        }
    }
    let mut tags: Vec<String> = text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| w.chars().next().is_some_and(char::is_uppercase))
        .map(str::to_lowercase)
        .collect();
    tags.dedup();
    let category = config::get("category")?.unwrap_or_else(|| "general".into());
    Ok(Json(json!({
        "tags": tags.iter().map(|t| json!({"name": t, "confidence": 0.5})).collect::<Vec<_>>(),
        "categories": [{"name": category, "confidence": 0.9}],
    })))
}
