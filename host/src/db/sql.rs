//! Building SQL text: placeholder lists, filters with their binds, and `LIKE` patterns.

use super::Arg;

/// Appends `values` to `binds` and returns their placeholders, e.g. `$3, $4, $5`.
pub fn placeholders(binds: &mut Vec<Arg>, values: impl IntoIterator<Item = Arg>) -> String {
    let mut list = Vec::new();
    for v in values {
        binds.push(v);
        list.push(format!("${}", binds.len()));
    }
    list.join(", ")
}

/// Conditions appended to a query with their binds: `{}` in a clause stands for the
/// placeholder of the value bound with it.
#[derive(Debug, Default)]
pub struct Filter {
    pub sql: String,
    pub binds: Vec<Arg>,
}

impl Filter {
    /// A filter whose first placeholders are taken by `binds`.
    pub fn after(binds: Vec<Arg>) -> Filter {
        Filter {
            sql: String::new(),
            binds,
        }
    }

    /// Appends `clause` with `{}` replaced by the placeholder of `value`.
    pub fn and(&mut self, clause: &str, value: impl Into<Arg>) {
        self.binds.push(value.into());
        self.sql += &clause.replace("{}", &format!("${}", self.binds.len()));
    }

    /// Binds `value` and returns its placeholder, for clauses that use one value twice.
    pub fn bind(&mut self, value: impl Into<Arg>) -> String {
        self.binds.push(value.into());
        format!("${}", self.binds.len())
    }

    /// Binds `values` and returns their placeholders, e.g. `$3, $4, $5`.
    pub fn list(&mut self, values: impl IntoIterator<Item = Arg>) -> String {
        placeholders(&mut self.binds, values)
    }
}

/// A case-insensitive `LIKE … ESCAPE '\\'` pattern matching `text` anywhere, with `%`
/// and `_` taken literally. Compare it with `LOWER(column)`.
pub fn contains_pattern(text: &str) -> String {
    let escaped = text
        .to_lowercase()
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    format!("%{escaped}%")
}
