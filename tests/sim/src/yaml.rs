//! The YAML subset cloud-init seeds use, for the simulated guest's nuageinit (which reads
//! them with lyaml, freebsd-src libexec/nuageinit): block maps and lists by indentation,
//! `- key: value` list items that open a map, flow lists `[a, b]`, plain, single- and
//! double-quoted scalars, `#` comment lines. Anything else is an error, so a seed the
//! simulator cannot read fails loudly instead of being half-applied.

use anyhow::{anyhow, bail, Result};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Yaml {
    Str(String),
    List(Vec<Yaml>),
    Map(Vec<(String, Yaml)>),
    Null,
}

impl Yaml {
    pub fn get(&self, key: &str) -> Option<&Yaml> {
        match self {
            Yaml::Map(entries) => entries.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Yaml::Str(s) => Some(s),
            _ => None,
        }
    }
    /// A list of strings, or a single string as a one-element list (nuageinit accepts both
    /// for `doas`/`sudo`).
    pub fn strings(&self) -> Vec<String> {
        match self {
            Yaml::Str(s) => vec![s.clone()],
            Yaml::List(items) => items
                .iter()
                .filter_map(|i| i.as_str().map(str::to_string))
                .collect(),
            _ => Vec::new(),
        }
    }
    pub fn entries(&self) -> &[(String, Yaml)] {
        match self {
            Yaml::Map(entries) => entries,
            _ => &[],
        }
    }
    pub fn items(&self) -> &[Yaml] {
        match self {
            Yaml::List(items) => items,
            _ => &[],
        }
    }
}

struct Line {
    indent: usize,
    text: String,
}

pub fn parse(text: &str) -> Result<Yaml> {
    let lines: Vec<Line> = text
        .lines()
        .filter(|l| {
            let t = l.trim_start();
            !t.is_empty() && !t.starts_with('#')
        })
        .map(|l| Line {
            indent: l.len() - l.trim_start().len(),
            text: l.trim().to_string(),
        })
        .collect();
    if lines.is_empty() {
        return Ok(Yaml::Null);
    }
    let mut pos = 0;
    let value = block(&lines, &mut pos, lines[0].indent)?;
    if pos != lines.len() {
        bail!("unexpected line {:?}", lines[pos].text);
    }
    Ok(value)
}

fn block(lines: &[Line], pos: &mut usize, indent: usize) -> Result<Yaml> {
    if lines[*pos].text.starts_with("- ") || lines[*pos].text == "-" {
        list(lines, pos, indent)
    } else {
        map(lines, pos, indent)
    }
}

fn list(lines: &[Line], pos: &mut usize, indent: usize) -> Result<Yaml> {
    let mut items = Vec::new();
    while *pos < lines.len() && lines[*pos].indent == indent && lines[*pos].text.starts_with('-') {
        let rest = lines[*pos].text[1..].trim_start().to_string();
        let item_indent = indent + (lines[*pos].text.len() - rest.len());
        *pos += 1;
        if rest.is_empty() {
            items.push(nested(lines, pos, indent)?);
        } else if let Some((key, value)) = split_key(&rest) {
            // `- key: value` opens a map whose other keys sit at the item's indent.
            let mut entries = vec![(key, entry_value(lines, pos, item_indent, &value)?)];
            if *pos < lines.len() && lines[*pos].indent == item_indent {
                if let Yaml::Map(more) = map(lines, pos, item_indent)? {
                    entries.extend(more);
                }
            }
            items.push(Yaml::Map(entries));
        } else {
            items.push(scalar(&rest)?);
        }
    }
    Ok(Yaml::List(items))
}

fn map(lines: &[Line], pos: &mut usize, indent: usize) -> Result<Yaml> {
    let mut entries = Vec::new();
    while *pos < lines.len() && lines[*pos].indent == indent {
        let text = lines[*pos].text.clone();
        let (key, value) =
            split_key(&text).ok_or_else(|| anyhow!("expected `key: value`, got {text:?}"))?;
        *pos += 1;
        entries.push((key, entry_value(lines, pos, indent, &value)?));
    }
    Ok(Yaml::Map(entries))
}

fn entry_value(lines: &[Line], pos: &mut usize, indent: usize, value: &str) -> Result<Yaml> {
    if value.is_empty() {
        nested(lines, pos, indent)
    } else {
        scalar(value)
    }
}

/// The block under a `key:` line: deeper-indented lines, or a list at the same indent (YAML
/// allows `key:\n- a`).
fn nested(lines: &[Line], pos: &mut usize, indent: usize) -> Result<Yaml> {
    match lines.get(*pos) {
        Some(l) if l.indent > indent => block(lines, pos, l.indent),
        Some(l) if l.indent == indent && l.text.starts_with("- ") => list(lines, pos, indent),
        _ => Ok(Yaml::Null),
    }
}

fn split_key(text: &str) -> Option<(String, String)> {
    if text.starts_with(['"', '\'', '[']) {
        return None;
    }
    let idx = text
        .find(": ")
        .or_else(|| text.strip_suffix(':').map(|t| t.len()))?;
    let key = text[..idx].trim().to_string();
    let value = text[idx + 1..].trim().to_string();
    Some((key, value))
}

fn scalar(text: &str) -> Result<Yaml> {
    let text = text.trim();
    if let Some(inner) = text.strip_prefix('[') {
        let inner = inner
            .strip_suffix(']')
            .ok_or_else(|| anyhow!("unterminated flow list {text:?}"))?;
        if inner.trim().is_empty() {
            return Ok(Yaml::List(Vec::new()));
        }
        return inner
            .split(',')
            .map(scalar)
            .collect::<Result<Vec<_>>>()
            .map(Yaml::List);
    }
    if let Some(inner) = text.strip_prefix('"') {
        let inner = inner
            .strip_suffix('"')
            .ok_or_else(|| anyhow!("unterminated string {text:?}"))?;
        let mut out = String::new();
        let mut chars = inner.chars();
        while let Some(c) = chars.next() {
            if c == '\\' {
                match chars.next() {
                    Some('n') => out.push('\n'),
                    Some(other) => out.push(other),
                    None => bail!("dangling escape in {text:?}"),
                }
            } else {
                out.push(c);
            }
        }
        return Ok(Yaml::Str(out));
    }
    if let Some(inner) = text.strip_prefix('\'') {
        let inner = inner
            .strip_suffix('\'')
            .ok_or_else(|| anyhow!("unterminated string {text:?}"))?;
        return Ok(Yaml::Str(inner.replace("''", "'")));
    }
    Ok(Yaml::Str(text.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cloud_config_users_and_network_config() {
        let ud = parse(
            "#cloud-config\nresize_rootfs: True\nusers:\n  - name: admin\n    ssh_authorized_keys:\n      - \"ssh-ed25519 AAA k\"\n    doas:\n      - \"permit nopass %u\"\n  - default\n",
        )
        .unwrap();
        let users = ud.get("users").unwrap().items();
        assert_eq!(users[0].get("name").unwrap().as_str(), Some("admin"));
        assert_eq!(
            users[0].get("ssh_authorized_keys").unwrap().strings(),
            ["ssh-ed25519 AAA k"]
        );
        assert_eq!(
            users[0].get("doas").unwrap().strings(),
            ["permit nopass %u"]
        );
        assert_eq!(users[1].as_str(), Some("default"));
        let nc = parse(
            "version: 2\nethernets:\n  id0:\n    set-name: eth0\n    match:\n      macaddress: \"58:9c:fc:01:02:03\"\n    addresses:\n      - 10.0.0.5/24\n    gateway4: 10.0.0.1\n    nameservers:\n      search: []\n      addresses: [1.1.1.1, 9.9.9.9]\n",
        )
        .unwrap();
        let id0 = nc.get("ethernets").unwrap().get("id0").unwrap();
        assert_eq!(
            id0.get("match")
                .unwrap()
                .get("macaddress")
                .unwrap()
                .as_str(),
            Some("58:9c:fc:01:02:03")
        );
        assert_eq!(id0.get("addresses").unwrap().strings(), ["10.0.0.5/24"]);
        assert_eq!(
            id0.get("nameservers")
                .unwrap()
                .get("addresses")
                .unwrap()
                .strings(),
            ["1.1.1.1", "9.9.9.9"]
        );
        assert!(parse("a: [1, 2\n").is_err());
    }
}
