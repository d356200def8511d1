//! The layering rule of `host/src` (README, "Architecture"): a module imports only from its own
//! layer or the layers below it. This reads every `crate::` path in the source and fails on
//! one that reaches up.

use std::path::{Path, PathBuf};

/// The layer of each top-level module of `host/src`, bottom first.
fn layer_of(module: &str) -> Option<u8> {
    Some(match module {
        // `args!` and `text_enum!` are macros of `db`.
        "config" | "db" | "error" | "args" | "text_enum" | "precondition" => 1,
        "infra" | "state" => 2,
        "access" | "auth" => 3,
        "analytics" | "automations" | "chat" | "events" | "knowledge" | "plugins" | "projects"
        | "realtime" | "team" | "user" | "webhooks" | "workflows" => 4,
        "http" => 5,
        _ => return None,
    })
}

fn source_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read host/src") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            source_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level modules named by `crate::x` paths in `text`.
fn crate_paths(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("crate::") {
        rest = &rest[at + "crate::".len()..];
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if !name.is_empty() {
            found.push(name);
        }
    }
    found
}

#[test]
fn no_module_imports_from_a_layer_above_its_own() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    source_files(&src, &mut files);
    let mut checked = 0;
    let mut violations = Vec::new();
    for file in &files {
        let relative = file.strip_prefix(&src).expect("under src");
        let top = relative
            .components()
            .next()
            .and_then(|c| c.as_os_str().to_str())
            .map(|s| s.trim_end_matches(".rs").to_owned())
            .unwrap_or_default();
        // The crate root, the binaries and their entry points assemble everything.
        let Some(own) = layer_of(&top) else {
            continue;
        };
        checked += 1;
        let text = std::fs::read_to_string(file).expect("read a source file");
        for (number, line) in text.lines().enumerate() {
            for module in crate_paths(line) {
                match layer_of(&module) {
                    Some(layer) if layer <= own => {}
                    Some(layer) => violations.push(format!(
                        "{}:{}: layer {own} imports `crate::{module}` (layer {layer})",
                        relative.display(),
                        number + 1
                    )),
                    None => violations.push(format!(
                        "{}:{}: `crate::{module}` is in no layer: add it to tests/api/layers.rs",
                        relative.display(),
                        number + 1
                    )),
                }
            }
        }
    }
    assert!(checked > 50, "only {checked} files were checked");
    assert!(violations.is_empty(), "{}", violations.join("\n"));
}

#[test]
fn the_check_sees_an_upward_import() {
    assert_eq!(
        crate_paths("use crate::state::AppState; use crate::chat::Priority;"),
        ["state", "chat"]
    );
    assert!(layer_of("chat") > layer_of("infra"));
}

/// The OpenAPI component name of each type deriving `ToSchema`: its `#[schema(as = …)]` or
/// its own name.
fn schema_names(text: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut derive_seen = false;
    let mut renamed: Option<String> = None;
    for line in text.lines().map(str::trim) {
        if line.starts_with("#[derive(") && line.contains("ToSchema") {
            derive_seen = true;
            renamed = None;
        } else if derive_seen && line.starts_with("#[schema(as = ") {
            renamed = line
                .trim_start_matches("#[schema(as = ")
                .split(')')
                .next()
                .map(str::to_owned);
        } else if derive_seen && (line.contains("struct ") || line.contains("enum ")) {
            let own = line
                .split_whitespace()
                .skip_while(|w| *w != "struct" && *w != "enum")
                .nth(1)
                .unwrap_or_default()
                .trim_end_matches(['{', '(', ';'])
                .to_owned();
            names.push(renamed.take().unwrap_or(own));
            derive_seen = false;
        }
    }
    names
}

/// utoipa keys schemas by name: two types of one name would silently share one schema, and
/// the document would describe one of them wrongly.
#[test]
fn every_schema_has_a_name_of_its_own() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    source_files(&src, &mut files);
    let mut seen = std::collections::HashMap::<String, PathBuf>::new();
    let mut clashes = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).expect("read source");
        for name in schema_names(&text) {
            if let Some(first) = seen.insert(name.clone(), file.clone()) {
                clashes.push(format!(
                    "{name}: {} and {}",
                    first.display(),
                    file.display()
                ));
            }
        }
    }
    assert!(seen.len() > 50, "only {} schemas found", seen.len());
    assert!(clashes.is_empty(), "schema names used twice: {clashes:#?}");
}
