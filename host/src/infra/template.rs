//! Text templates over a JSON document: `{{ data.session_id }}` is replaced by the value at
//! that path (strings as they are, other values as JSON, a missing one by nothing). Used by
//! rule actions (`"Escalated: {{ data.session_id }}"`) and the activity feed's summaries.

use serde_json::Value;

/// The most a rendered template may hold, so a template over a large value stays bounded.
const MAX_RENDERED: usize = 10_000;

/// Checks that every `{{ … }}` is closed and holds a path (`a.b.c`, with `[n]` for an item).
pub fn validate(template: &str) -> Result<(), String> {
    let mut rest = template;
    while let Some(open) = rest.find("{{") {
        let after = &rest[open + 2..];
        let close = after
            .find("}}")
            .ok_or("a `{{` is not closed by `}}`".to_owned())?;
        let path = after[..close].trim();
        if !is_path(path) {
            return Err(format!(
                "`{{{{ {path} }}}}` is not a path such as `data.session_id`"
            ));
        }
        rest = &after[close + 2..];
    }
    Ok(())
}

fn is_path(path: &str) -> bool {
    !path.is_empty()
        && path.split('.').all(|part| {
            let name = part.split('[').next().unwrap_or_default();
            !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
                && part.matches('[').count() == part.matches(']').count()
        })
}

/// The value at a dotted path (`data.items[0].name`), if there is one.
pub fn lookup<'a>(root: &'a Value, path: &str) -> Option<&'a Value> {
    let mut at = root;
    for part in path.split('.') {
        let mut pieces = part.split('[');
        let name = pieces.next()?;
        at = at.get(name)?;
        for index in pieces {
            at = at.get(index.trim_end_matches(']').parse::<usize>().ok()?)?;
        }
    }
    Some(at)
}

/// The template with each `{{ path }}` replaced by the text of its value in `root`.
pub fn render(template: &str, root: &Value) -> String {
    let mut out = String::new();
    let mut rest = template;
    while let Some(open) = rest.find("{{") {
        out += &rest[..open];
        let after = &rest[open + 2..];
        let Some(close) = after.find("}}") else {
            out += &rest[open..];
            rest = "";
            break;
        };
        if let Some(value) = lookup(root, after[..close].trim()) {
            out += &text_of(value);
        }
        rest = &after[close + 2..];
        if out.len() > MAX_RENDERED {
            break;
        }
    }
    out += rest;
    if out.len() > MAX_RENDERED {
        let mut end = MAX_RENDERED;
        while !out.is_char_boundary(end) {
            end -= 1;
        }
        out.truncate(end);
    }
    out
}

/// A value as text: strings as they are, null as nothing, the rest as JSON.
pub fn text_of(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn renders_paths_and_refuses_bad_ones() {
        let root = json!({"data": {"session_id": "s1", "n": 3, "tags": ["a", "b"]}});
        assert_eq!(
            render(
                "Escalated: {{ data.session_id }} ({{data.n}}, {{ data.tags[1] }}){{ x }}",
                &root
            ),
            "Escalated: s1 (3, b)"
        );
        assert!(validate("{{ data.session_id }} and {{data.x[0].y}}").is_ok());
        assert!(validate("{{ data.session_id ").is_err());
        assert!(validate("{{ data..x }}").is_err());
        assert!(validate("{{ }}").is_err());
    }
}
