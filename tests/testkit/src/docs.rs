//! The `options` of a sidecar docs file (`library/<module>.yml`) as the warden modules write
//! them: under `DOCUMENTATION:` → `  options:`, each option a key at four spaces, its fields
//! at six (`type: str`, `default: [a, b]`, `choices: [x, y]`, …). A scalar field is read as
//! one line (quotes dropped); a block list (`- item` lines at eight spaces) is read as the
//! flow list it means. Anything else under an option's field (a description's lines) is
//! skipped. Only what the agreement check compares is read; it is not a YAML parser.

/// One documented option.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocOption {
    pub name: String,
    /// `(field, value)` in file order; flow lists normalized to `[a, b]`.
    pub fields: Vec<(String, String)>,
}

impl DocOption {
    pub fn get(&self, field: &str) -> Option<String> {
        self.fields
            .iter()
            .find(|(k, _)| k == field)
            .map(|(_, v)| v.clone())
    }
}

fn unquote(s: &str) -> &str {
    let s = s.trim();
    for q in ['"', '\''] {
        if let Some(inner) = s.strip_prefix(q).and_then(|r| r.strip_suffix(q)) {
            return inner;
        }
    }
    s
}

/// `[a, "b"]` → `[a, b]`; a plain scalar → itself without quotes.
fn normalize(value: &str) -> String {
    let value = value.trim();
    match value.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
        Some(inner) if inner.trim().is_empty() => "[]".into(),
        Some(inner) => format!(
            "[{}]",
            inner.split(',').map(unquote).collect::<Vec<_>>().join(", ")
        ),
        None => unquote(value).to_string(),
    }
}

/// The options of the `DOCUMENTATION` block of `yaml`.
pub fn options(yaml: &str) -> Vec<DocOption> {
    let mut out: Vec<DocOption> = Vec::new();
    let mut in_docs = false;
    let mut in_options = false;
    // A field whose value is a block list being read.
    let mut list: Option<(String, Vec<String>)> = None;
    let flush = |list: &mut Option<(String, Vec<String>)>, out: &mut Vec<DocOption>| {
        if let (Some((key, items)), Some(option)) = (list.take(), out.last_mut()) {
            option
                .fields
                .push((key, normalize(&format!("[{}]", items.join(", ")))));
        }
    };
    for line in yaml.lines() {
        let indent = line.len() - line.trim_start().len();
        let text = line.trim();
        if text.is_empty() || text.starts_with('#') {
            continue;
        }
        if indent == 0 {
            flush(&mut list, &mut out);
            in_docs = text == "DOCUMENTATION:";
            in_options = false;
            continue;
        }
        if !in_docs {
            continue;
        }
        if indent == 2 {
            flush(&mut list, &mut out);
            in_options = text == "options:";
            continue;
        }
        if !in_options {
            continue;
        }
        match indent {
            4 => {
                flush(&mut list, &mut out);
                out.push(DocOption {
                    name: text.trim_end_matches(':').to_string(),
                    fields: Vec::new(),
                });
            }
            6 => {
                flush(&mut list, &mut out);
                let (key, value) = text.split_once(':').unwrap_or((text, ""));
                let value = value.trim();
                if value.is_empty() {
                    list = Some((key.to_string(), Vec::new()));
                } else if let Some(option) = out.last_mut() {
                    option.fields.push((key.to_string(), normalize(value)));
                }
            }
            8 => {
                if let (Some((key, items)), Some(item)) = (list.as_mut(), text.strip_prefix("- ")) {
                    // A description's lines are prose, not list items we compare.
                    if key != "description" {
                        items.push(item.to_string());
                    }
                }
            }
            _ => {}
        }
    }
    flush(&mut list, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_fields_and_lists() {
        let yaml = "---\n# x\nDOCUMENTATION:\n  module: m\n  options:\n    a:\n      description:\n        - Long\n          text.\n      type: list\n      elements: path\n      default: [/etc/rc.conf.d, \"/usr/local\"]\n    b:\n      type: raw\n      default: \"0555\"\n      choices:\n        - x\n        - y\n  attributes:\n    check_mode:\n      support: full\nEXAMPLES: |\n  - name: x\n";
        let o = options(yaml);
        assert_eq!(o.len(), 2);
        assert_eq!(o[0].name, "a");
        assert_eq!(o[0].get("type").as_deref(), Some("list"));
        assert_eq!(
            o[0].get("default").as_deref(),
            Some("[/etc/rc.conf.d, /usr/local]")
        );
        assert_eq!(o[1].get("default").as_deref(), Some("0555"));
        assert_eq!(o[1].get("choices").as_deref(), Some("[x, y]"));
        assert_eq!(o[0].get("choices"), None);
    }
}
