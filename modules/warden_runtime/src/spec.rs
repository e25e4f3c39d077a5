//! Parameter specs with AnsibleModule's validation: unsupported and missing parameters,
//! `choices`, and the type coercion `module_utils/common/validation.py` does for values that
//! arrive as strings from `key=value` syntax. Messages follow ansible-core 2.19's wording
//! (`arg_spec.py`, `parameters.py`, `validation.py`); unlike AnsibleModule, which reports only
//! the first problem, every problem is reported at once.
//!
//! Validation produces a JSON object holding every declared parameter (defaults filled in,
//! values coerced) that a module then deserializes into its typed params struct: `choices`
//! come from a [`Choice`] enum (declared with [`choices!`](crate::choices)), durations arrive
//! as whole seconds for [`seconds`] to turn into a [`Duration`].

use std::collections::BTreeSet;
use std::time::Duration;

use serde::{Deserialize, Deserializer};
use serde_json::Map;
#[doc(hidden)]
pub use serde_json::Value;

/// The type of a parameter, as in an AnsibleModule `argument_spec`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    Str,
    Bool,
    Int,
    /// An absolute path (every path we take is a FreeBSD path), normalized: repeated and
    /// trailing slashes and `.` components go. Refused: `..` (a path must say where it goes
    /// without resolving), control characters such as newlines, quotes, backquotes and
    /// backslashes — paths are written into pf.conf (`include "…"`), rc.conf and rc.d
    /// scripts, where these end a string or start an escape.
    Path,
    /// A list whose elements are coerced to the inner kind.
    List(Box<Kind>),
    /// A dict whose values are coerced to the inner kind.
    Dict(Box<Kind>),
    /// A file mode, normalized to a four-digit octal string. A string is read as octal; an
    /// int is the mode's value (YAML 1.1 already turned `mode: 0555` into 365), as in
    /// Ansible's file modules.
    Mode,
    /// A timeout: whole seconds as an int or a string (`120`, `"120"`), or a number with `s`,
    /// `m` or `h` (`"90s"`, `"2m"`, `"1h"`); normalized to whole seconds. Documented as
    /// `raw`.
    Duration,
}

impl Kind {
    fn name(&self) -> &'static str {
        match self {
            Kind::Str => "str",
            Kind::Bool => "bool",
            Kind::Int => "int",
            Kind::Path => "path",
            Kind::List(_) => "list",
            Kind::Dict(_) => "dict",
            Kind::Mode => "mode",
            Kind::Duration => "duration",
        }
    }
}

/// One declared parameter.
#[derive(Debug, Clone)]
pub struct Param {
    pub name: &'static str,
    pub kind: Kind,
    pub required: bool,
    pub default: Option<Value>,
    pub choices: &'static [&'static str],
    pub no_log: bool,
    pub aliases: &'static [&'static str],
    /// The smallest value an int or duration parameter accepts.
    pub min: Option<i64>,
    /// The largest value an int or duration parameter accepts.
    pub max: Option<i64>,
}

impl Param {
    pub fn new(name: &'static str, kind: Kind) -> Self {
        Param {
            name,
            kind,
            required: false,
            default: None,
            choices: &[],
            no_log: false,
            aliases: &[],
            min: None,
            max: None,
        }
    }
    pub fn list_of_paths(name: &'static str) -> Self {
        Self::new(name, Kind::List(Box::new(Kind::Path)))
    }
    pub fn min(mut self, min: i64) -> Self {
        self.min = Some(min);
        self
    }
    /// Accepts `min..=max` only.
    pub fn range(mut self, min: i64, max: i64) -> Self {
        self.min = Some(min);
        self.max = Some(max);
        self
    }
    /// A timeout (see [`Kind::Duration`]) of `min..=max` seconds; every duration is bounded.
    pub fn duration(name: &'static str, min: u32, max: u32) -> Self {
        Self::new(name, Kind::Duration).range(min.into(), max.into())
    }
    /// A str parameter whose choices are the words of `C`.
    pub fn choice<C: Choice>(name: &'static str) -> Self {
        Self::str(name).choices(C::WORDS)
    }
    /// A list parameter whose elements are words of `C`.
    pub fn list_of_choices<C: Choice>(name: &'static str) -> Self {
        Self::list_of_str(name).choices(C::WORDS)
    }
    pub fn str(name: &'static str) -> Self {
        Self::new(name, Kind::Str)
    }
    pub fn bool(name: &'static str) -> Self {
        Self::new(name, Kind::Bool)
    }
    pub fn int(name: &'static str) -> Self {
        Self::new(name, Kind::Int)
    }
    pub fn path(name: &'static str) -> Self {
        Self::new(name, Kind::Path)
    }
    pub fn list_of_str(name: &'static str) -> Self {
        Self::new(name, Kind::List(Box::new(Kind::Str)))
    }
    pub fn mode(name: &'static str) -> Self {
        Self::new(name, Kind::Mode)
    }
    pub fn dict_of_str(name: &'static str) -> Self {
        Self::new(name, Kind::Dict(Box::new(Kind::Str)))
    }
    pub fn required(mut self) -> Self {
        self.required = true;
        self
    }
    pub fn default(mut self, value: impl Into<Value>) -> Self {
        self.default = Some(value.into());
        self
    }
    pub fn choices(mut self, choices: &'static [&'static str]) -> Self {
        self.choices = choices;
        self
    }
    pub fn no_log(mut self) -> Self {
        self.no_log = true;
        self
    }
    pub fn aliases(mut self, aliases: &'static [&'static str]) -> Self {
        self.aliases = aliases;
        self
    }
}

/// A module's whole argument spec.
#[derive(Debug, Clone)]
pub struct Spec {
    pub params: Vec<Param>,
}

impl Spec {
    pub fn new(params: Vec<Param>) -> Self {
        Spec { params }
    }
}

/// A parameter's choices as a Rust enum: the spec's `choices` are [`Choice::WORDS`], and the
/// params struct deserializes the validated word into the variant. Declared with
/// [`choices!`](crate::choices), which writes both from one list.
pub trait Choice: Copy + Eq + 'static {
    /// Every word, in declaration order.
    const WORDS: &'static [&'static str];
    fn word(self) -> &'static str;
}

/// Declares a [`Choice`] enum: each variant with its word, e.g.
/// `choices! { pub enum State { Present = "present", Absent = "absent" } }`. The enum gets
/// `WORDS`, `word()`, `Display`, `Deserialize` (from its word only) and `Into<Value>` (for
/// spec defaults).
#[macro_export]
macro_rules! choices {
    ($(#[$meta:meta])* $vis:vis enum $name:ident {
        $($(#[$vmeta:meta])* $variant:ident = $word:literal),+ $(,)?
    }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        $vis enum $name {
            $($(#[$vmeta])* $variant),+
        }

        impl $crate::spec::Choice for $name {
            const WORDS: &'static [&'static str] = &[$($word),+];
            fn word(self) -> &'static str {
                match self {
                    $($name::$variant => $word),+
                }
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str($crate::spec::Choice::word(*self))
            }
        }

        impl<'de> $crate::spec::serde::Deserialize<'de> for $name {
            fn deserialize<D: $crate::spec::serde::Deserializer<'de>>(
                deserializer: D,
            ) -> ::std::result::Result<Self, D::Error> {
                let word = <::std::string::String as $crate::spec::serde::Deserialize>::deserialize(deserializer)?;
                match word.as_str() {
                    $($word => Ok($name::$variant),)+
                    other => Err(<D::Error as $crate::spec::serde::de::Error>::unknown_variant(
                        other,
                        <$name as $crate::spec::Choice>::WORDS,
                    )),
                }
            }
        }

        impl ::std::convert::From<$name> for $crate::spec::Value {
            fn from(choice: $name) -> Self {
                $crate::spec::Value::String($crate::spec::Choice::word(choice).to_string())
            }
        }
    };
}

#[doc(hidden)]
pub use serde;

choices! {
    /// `state` of the modules whose thing exists or not.
    pub enum State {
        Present = "present",
        Absent = "absent",
    }
}

/// Deserializes a [`Kind::Duration`] value (whole seconds) into a [`Duration`]: use with
/// `#[serde(deserialize_with = "warden_runtime::spec::seconds")]`.
pub fn seconds<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    u64::deserialize(deserializer).map(Duration::from_secs)
}

/// [`seconds`] for a duration without a default (`None` when unset).
pub fn opt_seconds<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Duration>, D::Error> {
    Option::<u64>::deserialize(deserializer).map(|s| s.map(Duration::from_secs))
}

/// The outcome of validating user params against a spec.
#[derive(Debug, Clone, Default)]
pub struct Validated {
    /// Every declared parameter by its canonical name (null when unset and without default).
    pub values: Map<String, Value>,
    /// String values of `no_log` parameters, to be scrubbed from every output.
    pub secrets: Vec<String>,
}

/// All validation problems, in the order AnsibleModule would find them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidationError {
    pub problems: Vec<String>,
}

impl std::fmt::Display for ValidationError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.problems.join("; "))
    }
}

impl std::error::Error for ValidationError {}

/// Validates and coerces `raw` user params against `spec` for module `module`.
pub fn validate(
    module: &str,
    spec: &Spec,
    raw: &Map<String, Value>,
    ignore_unknown: bool,
) -> Result<Validated, ValidationError> {
    let mut problems = Vec::new();
    let mut given: Map<String, Value> = Map::new();

    // Aliases first (AnsibleModule's `_handle_aliases`), then unsupported names.
    let mut unsupported = Vec::new();
    for (key, value) in raw {
        match spec
            .params
            .iter()
            .find(|p| p.name == key || p.aliases.contains(&key.as_str()))
        {
            Some(param) => {
                if given.contains_key(param.name) && !value.is_null() {
                    problems.push(format!(
                        "both option {} and its alias {key} are set",
                        param.name
                    ));
                }
                if !value.is_null() {
                    given.insert(param.name.to_string(), value.clone());
                }
            }
            None => unsupported.push(key.clone()),
        }
    }
    if !unsupported.is_empty() && !ignore_unknown {
        unsupported.sort();
        problems.insert(0, unsupported_message(module, spec, &unsupported));
    }

    let missing: BTreeSet<&str> = spec
        .params
        .iter()
        .filter(|p| p.required && !given.contains_key(p.name))
        .map(|p| p.name)
        .collect();
    if !missing.is_empty() {
        problems.push(format!(
            "missing required arguments: {}",
            missing.into_iter().collect::<Vec<_>>().join(", ")
        ));
    }

    let mut validated = Validated::default();
    let mut choice_problems = Vec::new();
    for param in &spec.params {
        let value = match given.get(param.name) {
            Some(value) => match coerce(&param.kind, value) {
                Ok(value) => value,
                Err(reason) => {
                    problems.push(type_problem(param, value, &reason));
                    continue;
                }
            },
            None => param.default.clone().unwrap_or(Value::Null),
        };
        // AnsibleModule checks choices after every type check.
        choice_problems.extend(choice_problem(param, &value));
        choice_problems.extend(value.as_i64().and_then(|n| range_problem(param, n)));
        if param.no_log {
            collect_strings(&value, &mut validated.secrets);
        }
        validated.values.insert(param.name.to_string(), value);
    }

    problems.append(&mut choice_problems);
    if problems.is_empty() {
        Ok(validated)
    } else {
        Err(ValidationError { problems })
    }
}

fn unsupported_message(module: &str, spec: &Spec, unsupported: &[String]) -> String {
    let mut names: Vec<&str> = spec.params.iter().map(|p| p.name).collect();
    names.sort_unstable();
    let mut aliases: Vec<&str> = spec
        .params
        .iter()
        .flat_map(|p| p.aliases.iter().copied())
        .collect();
    aliases.sort_unstable();
    let mut supported = names.join(", ");
    if !aliases.is_empty() {
        supported.push_str(&format!(" ({})", aliases.join(", ")));
    }
    format!(
        "Unsupported parameters for ({module}) module: {}. Supported parameters include: {supported}.",
        unsupported.join(", ")
    )
}

fn type_problem(param: &Param, value: &Value, reason: &str) -> String {
    format!(
        "argument '{}' is of type {} and we were unable to convert to {}: {reason}",
        param.name,
        type_name(value),
        param.kind.name()
    )
}

fn choice_problem(param: &Param, value: &Value) -> Option<String> {
    if param.choices.is_empty() || value.is_null() {
        return None;
    }
    let choices = param.choices.join(", ");
    match value {
        Value::Array(items) => {
            let bad: Vec<String> = items
                .iter()
                .map(display_scalar)
                .filter(|item| !param.choices.contains(&item.as_str()))
                .collect();
            (!bad.is_empty()).then(|| {
                format!(
                    "value of {} must be one or more of: {choices}. Got no match for: {}",
                    param.name,
                    bad.join(", ")
                )
            })
        }
        other => {
            let shown = display_scalar(other);
            (!param.choices.contains(&shown.as_str())).then(|| {
                format!(
                    "value of {} must be one of: {choices}, got: {shown}",
                    param.name
                )
            })
        }
    }
}

fn range_problem(param: &Param, n: i64) -> Option<String> {
    let unit = if param.kind == Kind::Duration {
        " seconds"
    } else {
        ""
    };
    let name = param.name;
    match (param.min, param.max) {
        (Some(lo), Some(hi)) if n < lo || n > hi => Some(format!(
            "value of {name} must be between {lo} and {hi}{unit}, got: {n}"
        )),
        (Some(lo), None) if n < lo => Some(format!(
            "value of {name} must be at least {lo}{unit}, got: {n}"
        )),
        (None, Some(hi)) if n > hi => Some(format!(
            "value of {name} must be at most {hi}{unit}, got: {n}"
        )),
        _ => None,
    }
}

fn collect_strings(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::String(s) if !s.is_empty() => out.push(s.clone()),
        Value::Array(items) => items.iter().for_each(|v| collect_strings(v, out)),
        Value::Object(map) => map.values().for_each(|v| collect_strings(v, out)),
        _ => {}
    }
}

/// Python's name for a JSON value's type, as AnsibleModule messages print it.
pub fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "NoneType",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "float",
        Value::Number(_) => "int",
        Value::String(_) => "str",
        Value::Array(_) => "list",
        Value::Object(_) => "dict",
    }
}

/// A scalar as Python's `str()` would print it (for messages and str coercion).
fn display_scalar(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::Null => "None".into(),
        other => other.to_string(),
    }
}

/// Python's `repr()` of a str, close enough for error messages (control characters
/// escaped, so a newline in a value cannot forge a line of the message).
fn py_repr(s: &str) -> String {
    let s: String = s
        .chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect();
    if s.contains('\'') && !s.contains('"') {
        format!("\"{s}\"")
    } else {
        format!("'{}'", s.replace('\'', "\\'"))
    }
}

/// See [`Kind::Path`].
pub fn normalize_path(path: &str) -> Result<String, String> {
    if !path.starts_with('/') {
        return Err(format!("{} is not an absolute path", py_repr(path)));
    }
    if path.chars().any(char::is_control) {
        return Err(format!(
            "{} contains a control character (a newline, tab or the like); paths may not",
            py_repr(path)
        ));
    }
    if let Some(c) = path.chars().find(|c| matches!(c, '"' | '\'' | '`' | '\\')) {
        return Err(format!(
            "{} contains {c}; paths may not hold quotes or backslashes (they are written into pf.conf, rc.conf and rc.d scripts)",
            py_repr(path)
        ));
    }
    let mut parts = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                return Err(format!(
                    "{} contains `..`; give the path without it",
                    py_repr(path)
                ))
            }
            other => parts.push(other),
        }
    }
    Ok(format!("/{}", parts.join("/")))
}

fn coerce(kind: &Kind, value: &Value) -> Result<Value, String> {
    match kind {
        Kind::Str => coerce_str(value).map(Value::String),
        Kind::Path => normalize_path(&coerce_str(value)?).map(Value::String),
        Kind::Bool => coerce_bool(value).map(Value::Bool),
        Kind::Mode => coerce_mode(value).map(|m| Value::String(format!("{m:04o}"))),
        Kind::Int => coerce_int(value).map(|n| Value::Number(n.into())),
        Kind::Duration => coerce_duration(value).map(|n| Value::Number(n.into())),
        Kind::List(element) => {
            let items = match value {
                Value::Array(items) => items.clone(),
                // check_type_list: a comma string is split, without stripping.
                Value::String(s) => s.split(',').map(|s| Value::String(s.into())).collect(),
                Value::Number(_) => vec![Value::String(value.to_string())],
                other => return Err(format!("{} cannot be converted to a list", py_class(other))),
            };
            items
                .iter()
                .map(|item| {
                    coerce(element, item).map_err(|reason| {
                        format!(
                            "element {} is of type {} and cannot be converted to {}: {reason}",
                            py_repr(&display_scalar(item)),
                            type_name(item),
                            element.name()
                        )
                    })
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Value::Array)
        }
        Kind::Dict(element) => {
            let map = match value {
                Value::Object(map) => map.clone(),
                Value::String(s) => parse_dict_string(s)?,
                other => return Err(format!("{} cannot be converted to a dict", py_class(other))),
            };
            map.into_iter()
                .map(|(k, v)| {
                    coerce(element, &v)
                        .map(|v| (k.clone(), v))
                        .map_err(|reason| format!("value of key {}: {reason}", py_repr(&k)))
                })
                .collect::<Result<Map<_, _>, _>>()
                .map(Value::Object)
        }
    }
}

fn py_class(value: &Value) -> String {
    format!("<class '{}'>", type_name(value))
}

fn coerce_str(value: &Value) -> Result<String, String> {
    match value {
        Value::String(s) => Ok(s.clone()),
        // check_type_str converts scalars with str(); lists and dicts are refused here
        // because a stringified Python list is never what a FreeBSD name or path means.
        Value::Bool(_) | Value::Number(_) => Ok(display_scalar(value)),
        other => Err(format!("{} is not a string", py_class(other))),
    }
}

/// `check_type_bool` / `boolean()`: bools, the strings of BOOLEANS_TRUE/FALSE (any case,
/// surrounding blanks ignored) and the numbers 0/1.
pub fn coerce_bool(value: &Value) -> Result<bool, String> {
    const TRUE: [&str; 6] = ["y", "yes", "on", "1", "true", "t"];
    const FALSE: [&str; 6] = ["n", "no", "off", "0", "false", "f"];
    let normalized = match value {
        Value::Bool(b) => return Ok(*b),
        Value::String(s) => s.trim().to_lowercase(),
        Value::Number(n) => match n.as_f64() {
            Some(1.0) => return Ok(true),
            Some(0.0) => return Ok(false),
            _ => n.to_string(),
        },
        other => return Err(format!("{} cannot be converted to a bool", py_class(other))),
    };
    if TRUE.contains(&normalized.as_str()) {
        Ok(true)
    } else if FALSE.contains(&normalized.as_str()) {
        Ok(false)
    } else {
        Err(format!(
            "The value '{}' is not a valid boolean. Valid booleans include: 'y', 'yes', 'on', '1', 'true', 't', 'n', 'no', 'off', '0', 'false', 'f'",
            display_scalar(value)
        ))
    }
}

fn coerce_mode(value: &Value) -> Result<u32, String> {
    let mode = match value {
        Value::Number(n) => n.as_u64().and_then(|n| u32::try_from(n).ok()),
        Value::String(s) => crate::fs::parse_mode(s.trim()).ok(),
        _ => None,
    };
    mode.filter(|m| *m <= 0o7777).ok_or_else(|| {
        format!(
            "{} is not an octal file mode such as '0555'",
            py_repr(&display_scalar(value))
        )
    })
}

/// `check_type_int`: ints, integral floats, and strings holding an integral decimal.
fn coerce_int(value: &Value) -> Result<i64, String> {
    let failure = || {
        format!(
            "\"{}\" cannot be converted to an int",
            py_repr(&display_scalar(value))
        )
    };
    match value {
        Value::Number(n) => n
            .as_i64()
            .or_else(|| {
                n.as_f64()
                    .filter(|x| x.fract() == 0.0 && x.abs() < 9.0e15)
                    .map(|x| x as i64)
            })
            .ok_or_else(failure),
        Value::String(s) => {
            let s = s.trim();
            if let Ok(n) = s.parse::<i64>() {
                return Ok(n);
            }
            // Decimal("5.0") == 5 is accepted, "5.5" is not.
            match s.split_once('.') {
                Some((whole, fraction))
                    if !fraction.is_empty() && fraction.bytes().all(|b| b == b'0') =>
                {
                    whole.parse::<i64>().map_err(|_| failure())
                }
                _ => Err(failure()),
            }
        }
        _ => Err(failure()),
    }
}

/// See [`Kind::Duration`]: whole seconds (an int, or a string holding one, as
/// `check_type_int` takes them), or a string with a unit.
fn coerce_duration(value: &Value) -> Result<i64, String> {
    if let Ok(n) = coerce_int(value) {
        return Ok(n);
    }
    let failure = || {
        format!(
            "{} is not a duration: give seconds (e.g. 120) or a number with s, m or h (e.g. 2m)",
            py_repr(&display_scalar(value))
        )
    };
    let Value::String(text) = value else {
        return Err(failure());
    };
    let text = text.trim();
    let (digits, factor) = match text.char_indices().last() {
        Some((at, 's')) => (&text[..at], 1),
        Some((at, 'm')) => (&text[..at], 60),
        Some((at, 'h')) => (&text[..at], 3600),
        _ => return Err(failure()),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(failure());
    }
    digits
        .parse::<i64>()
        .ok()
        .and_then(|n| n.checked_mul(factor))
        .ok_or_else(failure)
}

/// `check_type_dict` for strings: JSON when it starts with `{`, else `k=v` pairs separated
/// by commas or blanks, with quotes and backslash escapes.
fn parse_dict_string(s: &str) -> Result<Map<String, Value>, String> {
    if s.starts_with('{') {
        return match serde_json::from_str::<Value>(s) {
            Ok(Value::Object(map)) => Ok(map),
            _ => Err("unable to evaluate string as dictionary".into()),
        };
    }
    if !s.contains('=') {
        return Err("dictionary requested, could not parse JSON or key=value".into());
    }
    let mut fields = Vec::new();
    let mut buffer = String::new();
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for c in s.trim().chars() {
        if escaped {
            buffer.push(c);
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if quote.is_none() && (c == '\'' || c == '"') {
            quote = Some(c);
        } else if quote == Some(c) {
            quote = None;
        } else if quote.is_none() && (c == ',' || c == ' ') {
            if !buffer.is_empty() {
                fields.push(std::mem::take(&mut buffer));
            }
        } else {
            buffer.push(c);
        }
    }
    if !buffer.is_empty() {
        fields.push(buffer);
    }
    fields
        .into_iter()
        .map(|field| match field.split_once('=') {
            Some((k, v)) => Ok((k.to_string(), Value::String(v.to_string()))),
            None => {
                Err("unable to evaluate string in the \"key=value\" format as dictionary".into())
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec() -> Spec {
        Spec::new(vec![
            Param::str("name").required(),
            Param::str("state")
                .choices(&["present", "absent"])
                .default("present"),
            Param::bool("enabled").default(true),
            Param::int("count"),
            Param::list_of_str("items").aliases(&["item"]),
            Param::dict_of_str("env"),
            Param::str("password").no_log(),
            Param::path("rc_conf").default("/etc/rc.conf"),
            Param::mode("mode").default("0555"),
        ])
    }

    fn run(raw: Value) -> Result<Validated, ValidationError> {
        validate("probe", &spec(), raw.as_object().unwrap(), false)
    }

    #[test]
    fn fills_defaults_and_nulls() {
        let v = run(json!({"name": "mevy"})).unwrap();
        assert_eq!(v.values["state"], json!("present"));
        assert_eq!(v.values["enabled"], json!(true));
        assert_eq!(v.values["count"], Value::Null);
        assert_eq!(v.values["rc_conf"], json!("/etc/rc.conf"));
        assert_eq!(v.values.len(), spec().params.len());
    }

    #[test]
    fn unsupported_message_matches_ansible() {
        let err = run(json!({"name": "x", "foo": 1, "bar": 2})).unwrap_err();
        assert_eq!(
            err.problems[0],
            "Unsupported parameters for (probe) module: bar, foo. Supported parameters include: \
             count, enabled, env, items, mode, name, password, rc_conf, state (item)."
        );
    }

    #[test]
    fn ignore_unknown_opts_drops_unsupported_only() {
        let v = validate(
            "probe",
            &spec(),
            json!({"name": "x", "foo": 1}).as_object().unwrap(),
            true,
        )
        .unwrap();
        assert!(!v.values.contains_key("foo"));
    }

    #[test]
    fn reports_every_problem_at_once() {
        let err = run(json!({"state": "gone", "enabled": "maybe", "count": "5.5"})).unwrap_err();
        assert_eq!(err.problems.len(), 4, "{:?}", err.problems);
        assert_eq!(err.problems[0], "missing required arguments: name");
        assert!(err.problems[1].starts_with(
            "argument 'enabled' is of type str and we were unable to convert to bool: The value 'maybe' is not a valid boolean"
        ));
        assert_eq!(
            err.problems[2],
            "argument 'count' is of type str and we were unable to convert to int: \"'5.5'\" cannot be converted to an int"
        );
        assert_eq!(
            err.problems[3],
            "value of state must be one of: present, absent, got: gone"
        );
    }

    #[test]
    fn coerces_key_value_strings_like_ansible() {
        let v = run(json!({
            "name": 5, "enabled": "no", "count": "5", "items": "a,b", "env": "A=1 B='two words'"
        }))
        .unwrap();
        assert_eq!(v.values["name"], json!("5"));
        assert_eq!(v.values["enabled"], json!(false));
        assert_eq!(v.values["count"], json!(5));
        assert_eq!(v.values["items"], json!(["a", "b"]));
        assert_eq!(v.values["env"], json!({"A": "1", "B": "two words"}));
    }

    #[test]
    fn bool_coercion_table() {
        for yes in ["yes", "YES", " true ", "1", "on", "t", "y"] {
            assert_eq!(coerce_bool(&json!(yes)), Ok(true), "{yes}");
        }
        for no in ["no", "False", "0", "off", "f", "n"] {
            assert_eq!(coerce_bool(&json!(no)), Ok(false), "{no}");
        }
        assert_eq!(coerce_bool(&json!(1)), Ok(true));
        assert_eq!(coerce_bool(&json!(0.0)), Ok(false));
        assert!(coerce_bool(&json!(2)).is_err());
        assert!(coerce_bool(&json!([true])).is_err());
    }

    #[test]
    fn int_coercion_accepts_integral_values_only() {
        assert_eq!(coerce_int(&json!("42")), Ok(42));
        assert_eq!(coerce_int(&json!("5.0")), Ok(5));
        assert_eq!(coerce_int(&json!(7.0)), Ok(7));
        assert!(coerce_int(&json!(7.5)).is_err());
        assert!(coerce_int(&json!("x")).is_err());
        assert!(coerce_int(&json!(true)).is_err());
    }

    #[test]
    fn modes_normalize_to_octal_strings() {
        assert_eq!(
            run(json!({"name": "x", "mode": "755"})).unwrap().values["mode"],
            json!("0755")
        );
        assert_eq!(
            run(json!({"name": "x", "mode": 365})).unwrap().values["mode"],
            json!("0555")
        );
        assert_eq!(
            run(json!({"name": "x"})).unwrap().values["mode"],
            json!("0555")
        );
        let err = run(json!({"name": "x", "mode": "0999"})).unwrap_err();
        assert!(
            err.problems[0].contains("not an octal file mode"),
            "{:?}",
            err.problems
        );
    }

    #[test]
    fn alias_maps_to_canonical_name() {
        let v = run(json!({"name": "x", "item": ["a"]})).unwrap();
        assert_eq!(v.values["items"], json!(["a"]));
    }

    #[test]
    fn no_log_values_are_collected() {
        let v = run(json!({"name": "x", "password": "hunter2"})).unwrap();
        assert_eq!(v.secrets, vec!["hunter2".to_string()]);
    }

    #[test]
    fn list_elements_are_type_checked() {
        let err = run(json!({"name": "x", "items": ["a", ["nested"]]})).unwrap_err();
        assert!(
            err.problems[0].contains("argument 'items' is of type list"),
            "{:?}",
            err.problems
        );
    }

    #[test]
    fn path_must_be_absolute() {
        let err = run(json!({"name": "x", "rc_conf": "etc/rc.conf"})).unwrap_err();
        assert!(
            err.problems[0].contains("'etc/rc.conf' is not an absolute path"),
            "{:?}",
            err.problems
        );
    }

    #[test]
    fn paths_are_normalized() {
        for (given, normal) in [
            ("/etc/rc.conf", "/etc/rc.conf"),
            ("//usr/local//etc/rc.d/", "/usr/local/etc/rc.d"),
            ("/etc/./pf.conf", "/etc/pf.conf"),
            ("/", "/"),
            ("/home/my agent/.env", "/home/my agent/.env"),
        ] {
            assert_eq!(normalize_path(given).as_deref(), Ok(normal), "{given}");
        }
        let v = run(json!({"name": "x", "rc_conf": "/etc//rc.conf/"})).unwrap();
        assert_eq!(v.values["rc_conf"], json!("/etc/rc.conf"));
    }

    #[test]
    fn path_parameters_refuse_dot_dot_control_characters_and_quotes() {
        let spec = Spec::new(vec![
            Param::path("a"),
            Param::path("b"),
            Param::path("c"),
            Param::path("d"),
            Param::path("e"),
            Param::list_of_paths("f"),
            Param::str("name").required(),
        ]);
        let raw = json!({
            "a": "/etc/../etc/master.passwd",
            "b": "/etc/pf.warden.conf\"\npass all",
            "c": "/etc/pf.conf\u{0}",
            "d": "/etc/it's",
            "e": "/etc/back\\slash",
            "f": ["/home", "/jails/../etc"],
        });
        let err = validate("probe", &spec, raw.as_object().unwrap(), false).unwrap_err();
        // Every problem at once, the missing name included.
        assert_eq!(err.problems.len(), 7, "{:?}", err.problems);
        let all = err.problems.join("\n");
        assert!(all.contains("missing required arguments: name"), "{all}");
        assert!(all.contains("argument 'a' is of type str and we were unable to convert to path: '/etc/../etc/master.passwd' contains `..`"), "{all}");
        assert!(
            all.contains("argument 'b'") && all.contains("control character"),
            "{all}"
        );
        assert!(
            !all.contains("\npass all"),
            "a newline reached the message: {all}"
        );
        assert!(
            all.contains("argument 'c'") && all.contains("control character"),
            "{all}"
        );
        assert!(
            all.contains("argument 'd'") && all.contains("contains '"),
            "{all}"
        );
        assert!(
            all.contains("argument 'e'") && all.contains("backslashes"),
            "{all}"
        );
        assert!(
            all.contains("argument 'f'") && all.contains("contains `..`"),
            "{all}"
        );
    }

    #[test]
    fn ints_below_their_minimum_are_refused_with_the_others() {
        let spec = Spec::new(vec![
            Param::int("tool_timeout").default(120).min(1),
            Param::str("name").required(),
        ]);
        let err = validate(
            "probe",
            &spec,
            json!({"tool_timeout": 0}).as_object().unwrap(),
            false,
        )
        .unwrap_err();
        assert_eq!(
            err.problems,
            vec![
                "missing required arguments: name".to_string(),
                "value of tool_timeout must be at least 1, got: 0".to_string()
            ]
        );
    }

    #[test]
    fn null_counts_as_unset() {
        let err = run(json!({"name": null})).unwrap_err();
        assert_eq!(
            err.problems,
            vec!["missing required arguments: name".to_string()]
        );
        let v = run(json!({"name": "x", "state": null})).unwrap();
        assert_eq!(v.values["state"], json!("present"));
    }

    #[test]
    fn dict_string_parsing() {
        assert_eq!(parse_dict_string(r#"{"a": "1"}"#).unwrap()["a"], json!("1"));
        assert!(parse_dict_string("novalue").is_err());
        assert!(parse_dict_string("a=1, b").is_err());
    }
}
