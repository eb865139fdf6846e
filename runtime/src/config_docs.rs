//! Keeps docs/configuration.md true: the set of keys a configuration struct
//! accepts (walked from its JSON Schema) against the set of keys the
//! document's tables list. Only built for tests (feature `schemars`).
//!
//! Key spelling, on both sides:
//! - nested tables are joined with `.` (`limits.max_body_bytes`);
//! - map entries are `ID` (`sources.ID.queue_url`);
//! - a setting that takes either a list or a table (secret-valued settings:
//!   a list or `{ file / env / ssm_parameter }`) is one key;
//! - the fields of an internally tagged enum are `PATH.FIELD [TAG = VARIANT]`
//!   (`sources.ID.verifier.secrets [type = hmac]`), next to `PATH.TAG`.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

/// Every key accepted by the type whose schema is `root`.
pub fn schema_keys(root: &Value) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    walk_table(root, root, "", "", &mut out);
    out
}

/// The keys documented in `markdown` under the `## ` sections named in
/// `sections` (with their `###` subsections).
///
/// Tables whose first column is `key` list one key per row in backticks.
/// A table whose columns start `NAME | key` lists the fields of a tagged
/// enum: NAME's tag key is the documented key ending in `.NAME.type`, and a
/// row `` `hmac` | `secrets` `` is `PATH.secrets [type = hmac]`.
pub fn documented_keys(markdown: &str, sections: &[&str]) -> BTreeSet<String> {
    let mut plain = BTreeSet::new();
    let mut variant_rows: Vec<(String, String, String)> = Vec::new();
    let mut in_section = false;
    let mut header: Option<Vec<String>> = None;
    let mut previous: Option<Vec<String>> = None;
    for line in markdown.lines() {
        if let Some(title) = line.strip_prefix("## ") {
            in_section = sections.contains(&title.trim());
            header = None;
            continue;
        }
        let Some(row) = table_row(line) else {
            header = None;
            previous = None;
            continue;
        };
        if row
            .iter()
            .all(|c| !c.is_empty() && c.chars().all(|ch| "-: ".contains(ch)))
        {
            header = previous.take();
            continue;
        }
        previous = Some(row.clone());
        let (Some(h), true) = (&header, in_section) else {
            continue;
        };
        let cell = |i: usize| row.get(i).map(|c| unquote(c)).unwrap_or_default();
        match (h.first().map(String::as_str), h.get(1).map(String::as_str)) {
            (Some("key"), _) => {
                plain.insert(cell(0));
            }
            (Some(name), Some("key")) => {
                variant_rows.push((name.to_owned(), cell(0), cell(1)));
            }
            _ => {}
        }
    }
    let mut out = plain.clone();
    for (name, variant, field) in variant_rows {
        let suffix = format!(".{name}.type");
        let path = plain
            .iter()
            .find(|k| k.ends_with(&suffix))
            .map(|k| k.trim_end_matches("type").to_owned())
            .unwrap_or_else(|| format!("<no `...{suffix}` key documented>."));
        out.insert(format!("{path}{field} [type = {variant}]"));
    }
    out
}

/// An empty string when both sets agree, otherwise a report of both
/// differences.
pub fn differences(accepted: &BTreeSet<String>, documented: &BTreeSet<String>) -> String {
    let missing: Vec<&String> = accepted.difference(documented).collect();
    let unknown: Vec<&String> = documented.difference(accepted).collect();
    let mut report = String::new();
    if !missing.is_empty() {
        report
            .push_str("keys the configuration accepts but docs/configuration.md does not list:\n");
        for k in missing {
            report.push_str(&format!("  {k}\n"));
        }
    }
    if !unknown.is_empty() {
        report
            .push_str("keys docs/configuration.md lists that the configuration does not accept:\n");
        for k in unknown {
            report.push_str(&format!("  {k}\n"));
        }
    }
    report
}

fn table_row(line: &str) -> Option<Vec<String>> {
    let inner = line.trim().strip_prefix('|')?.strip_suffix('|')?;
    Some(inner.split('|').map(|c| c.trim().to_owned()).collect())
}

fn unquote(cell: &str) -> String {
    cell.trim().trim_matches('`').to_owned()
}

/// The alternatives of `node` with `$ref`s resolved and `null` dropped.
fn variants<'a>(root: &'a Value, node: &'a Value) -> Vec<&'a Value> {
    if let Some(r) = node.get("$ref").and_then(Value::as_str) {
        let name = r.rsplit('/').next().unwrap_or_default();
        let def = root
            .get("$defs")
            .or_else(|| root.get("definitions"))
            .and_then(|d| d.get(name))
            .unwrap_or_else(|| panic!("schema reference {r} not found"));
        return variants(root, def);
    }
    for combinator in ["anyOf", "oneOf", "allOf"] {
        if let Some(alts) = node.get(combinator).and_then(Value::as_array) {
            return alts.iter().flat_map(|a| variants(root, a)).collect();
        }
    }
    if node.get("type").and_then(Value::as_str) == Some("null") {
        return Vec::new();
    }
    vec![node]
}

fn properties(node: &Value) -> Option<&Map<String, Value>> {
    node.get("properties").and_then(Value::as_object)
}

fn map_values(node: &Value) -> Option<&Value> {
    node.get("additionalProperties").filter(|v| v.is_object())
}

/// Whether every alternative of `node` is a table (a struct or a map); a
/// setting that also takes a list or a scalar is a single key.
fn is_table(root: &Value, node: &Value) -> bool {
    let alts = variants(root, node);
    !alts.is_empty()
        && alts
            .iter()
            .all(|v| properties(v).is_some() || map_values(v).is_some())
}

/// The tag of an internally tagged enum: a property that every alternative
/// has as a constant.
fn tag<'a>(alts: &[&'a Value]) -> Option<&'a str> {
    if alts.len() < 2 {
        return None;
    }
    let first = properties(alts[0])?;
    first.keys().map(String::as_str).find(|name| {
        alts.iter().all(|v| {
            properties(v)
                .and_then(|p| p.get(*name))
                .is_some_and(|p| p.get("const").is_some() || p.get("enum").is_some())
        })
    })
}

fn walk_table(root: &Value, node: &Value, prefix: &str, note: &str, out: &mut BTreeSet<String>) {
    let alts = variants(root, node);
    let tag = tag(&alts);
    for alt in &alts {
        if let Some(values) = map_values(alt) {
            walk_field(root, values, &format!("{prefix}ID"), note, out);
        }
        let Some(props) = properties(alt) else {
            continue;
        };
        let note = match tag {
            Some(t) => {
                let value = &props[t];
                let value = value
                    .get("const")
                    .or_else(|| value.get("enum").and_then(|e| e.get(0)))
                    .and_then(Value::as_str)
                    .unwrap_or("?");
                out.insert(format!("{prefix}{t}{note}"));
                format!("{note} [{t} = {value}]")
            }
            None => note.to_owned(),
        };
        for (name, field) in props {
            if Some(name.as_str()) != tag {
                walk_field(root, field, &format!("{prefix}{name}"), &note, out);
            }
        }
    }
}

fn walk_field(root: &Value, node: &Value, path: &str, note: &str, out: &mut BTreeSet<String>) {
    if is_table(root, node) {
        walk_table(root, node, &format!("{path}."), note, out);
    } else {
        out.insert(format!("{path}{note}"));
    }
}

/// Compares `T` with the sections of `docs` (the shared ones plus
/// `binary_section`), after checking that the schema walk sees each of
/// `must_see` (so a walker gone blind cannot pass by accepting nothing).
/// An empty string when they agree.
pub fn check_docs<T: schemars::JsonSchema>(
    docs: &str,
    binary_section: &str,
    must_see: &[&str],
) -> String {
    let schema = match serde_json::to_value(schemars::schema_for!(T)) {
        Ok(schema) => schema,
        Err(e) => return format!("no JSON schema: {e}"),
    };
    let accepted = schema_keys(&schema);
    let blind: Vec<&&str> = must_see
        .iter()
        .filter(|k| !accepted.contains(**k))
        .collect();
    if !blind.is_empty() {
        return format!("the schema walk missed {blind:?}; it found {accepted:#?}");
    }
    let documented = documented_keys(docs, &["Shared sections", binary_section]);
    differences(&accepted, &documented)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "\
## Shared sections

| key | default | meaning |
|---|---|---|
| `log.level` | `info` | x |

## other

| key | default | meaning |
|---|---|---|
| `ignored` | | |

## bin

| key | default | meaning |
|---|---|---|
| `s.ID.v.type` | required | x |

| v | key | default | meaning |
|---|---|---|---|
| `a` | `secret` | x | y |
";

    #[test]
    fn documented_keys_follow_sections_and_variant_tables() {
        let keys = documented_keys(DOC, &["Shared sections", "bin"]);
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        assert_eq!(
            keys,
            ["log.level", "s.ID.v.secret [type = a]", "s.ID.v.type"]
        );
    }

    #[test]
    fn differences_name_both_sides() {
        let a: BTreeSet<String> = ["x".to_owned(), "y".to_owned()].into();
        let d: BTreeSet<String> = ["y".to_owned(), "z".to_owned()].into();
        let report = differences(&a, &d);
        assert!(report.contains("does not list:\n  x\n"), "{report}");
        assert!(report.contains("does not accept:\n  z\n"), "{report}");
        assert!(differences(&a, &a).is_empty());
    }
}
