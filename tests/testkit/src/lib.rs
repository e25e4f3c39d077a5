//! Test helpers the warden modules' unit tests share (a dev-dependency only, never in a
//! module binary):
//!
//! * [`assert_params_agree`]: a module's params struct, its runtime spec (with the parameters
//!   the runtime adds: the host parameters, `trusted_links`, `tool_timeout`) and its sidecar
//!   docs (`library/<module>.yml`) name the same options, with the same types, `required`,
//!   defaults, choices and aliases — the three declarations of a parameter cannot drift;
//! * [`params`] / [`validated`]: a module's params struct from raw args, through the
//!   runtime's own validation, for tests of the module's settings.

pub mod docs;
mod fields;

use std::collections::BTreeSet;

use serde_json::{json, Map, Value};
use warden_runtime::runtime::full_spec;
use warden_runtime::spec::{validate, Kind, Param};
use warden_runtime::Module;

/// The params struct of `M` from raw args (as a task would give them), validated by the
/// runtime; panics with the validation problems.
pub fn params<M: Module>(raw: Value) -> M::Params {
    validated::<M>(raw).unwrap_or_else(|e| panic!("{e}"))
}

/// [`params`], or the validation problems (the `msg` the module would fail with).
pub fn validated<M: Module>(raw: Value) -> Result<M::Params, String> {
    let raw = raw.as_object().cloned().unwrap_or_default();
    let values = validate(M::NAME, &M::spec(), &raw, false)
        .map_err(|e| e.to_string())?
        .values;
    serde_json::from_value(Value::Object(values)).map_err(|e| format!("params struct: {e}"))
}

/// A value of the parameter's kind that validation would let through.
fn sample(param: &Param) -> Value {
    fn of(kind: &Kind, param: &Param) -> Value {
        if let Some(word) = param.choices.first() {
            if !matches!(kind, Kind::List(_)) {
                return json!(word);
            }
        }
        match kind {
            Kind::Str => json!("x"),
            Kind::Bool => json!(true),
            Kind::Int | Kind::Duration => json!(param.min.unwrap_or(1).max(1)),
            Kind::Path => json!("/x"),
            Kind::Mode => json!("0644"),
            Kind::List(element) => json!([of(element, param)]),
            Kind::Dict(element) => json!({ "K": of(element, param) }),
        }
    }
    of(&param.kind, param)
}

fn deserializes<M: Module>(values: &Map<String, Value>) -> Result<(), String> {
    serde_json::from_value::<M::Params>(Value::Object(values.clone()))
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// What a docs scalar or flow list says, for comparison: `[a, "b"]` → `[a, b]`.
fn shown(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Array(items) => format!(
            "[{}]",
            items.iter().map(shown).collect::<Vec<_>>().join(", ")
        ),
        other => other.to_string(),
    }
}

/// The docs' `type` (and `elements`) of a kind.
fn doc_type(kind: &Kind) -> (&'static str, Option<&'static str>) {
    let scalar = |k: &Kind| match k {
        Kind::Str => "str",
        Kind::Bool => "bool",
        Kind::Int => "int",
        Kind::Path => "path",
        Kind::Mode | Kind::Duration => "raw",
        Kind::List(_) => "list",
        Kind::Dict(_) => "dict",
    };
    match kind {
        Kind::List(element) => ("list", Some(scalar(element))),
        other => (scalar(other), None),
    }
}

/// Asserts that the params struct of `M`, its spec (with what the runtime adds) and its
/// sidecar docs `docs` (the text of `library/<module>.yml`) agree: names, types, `required`,
/// defaults, choices and aliases. Every problem is listed at once.
pub fn assert_params_agree<M: Module>(docs: &str) {
    let own = M::spec();
    let full = full_spec::<M>();
    let mut problems: Vec<String> = Vec::new();

    let mut seen = BTreeSet::new();
    for p in &full.params {
        if !seen.insert(p.name) {
            problems.push(format!(
                "{} is declared twice (the module and the runtime?)",
                p.name
            ));
        }
        if p.kind == Kind::Duration && !(p.min.is_some_and(|m| m >= 0) && p.max.is_some()) {
            problems.push(format!(
                "duration {} needs a range of 0 or more seconds",
                p.name
            ));
        }
    }

    // The params struct holds exactly the module's own parameters.
    let fields: BTreeSet<&str> = fields::of::<M::Params>().iter().copied().collect();
    let names: BTreeSet<&str> = own.params.iter().map(|p| p.name).collect();
    for missing in names.difference(&fields) {
        problems.push(format!(
            "{missing} is in the spec but not in the params struct"
        ));
    }
    for extra in fields.difference(&names) {
        problems.push(format!(
            "{extra} is in the params struct but not in the spec"
        ));
    }

    // Types: defaults (null when unset), a sample of each kind, every choice.
    let defaults: Map<String, Value> = own
        .params
        .iter()
        .map(|p| {
            let v = match (&p.default, p.required) {
                (Some(d), _) => d.clone(),
                (None, true) => sample(p),
                (None, false) => Value::Null,
            };
            (p.name.to_string(), v)
        })
        .collect();
    if let Err(e) = deserializes::<M>(&defaults) {
        problems.push(format!("the spec's defaults do not deserialize: {e}"));
    }
    for p in &own.params {
        let mut values = defaults.clone();
        values.insert(p.name.into(), sample(p));
        if let Err(e) = deserializes::<M>(&values) {
            problems.push(format!(
                "{} = {} (a {:?}) does not deserialize: {e}",
                p.name,
                sample(p),
                p.kind
            ));
        }
        if p.default.is_some() || p.required {
            values.insert(p.name.into(), Value::Null);
            if deserializes::<M>(&values).is_ok() {
                problems.push(format!(
                    "{} always has a value (default or required), so its field should not be an Option",
                    p.name
                ));
            }
        }
        for word in p.choices {
            let value = match p.kind {
                Kind::List(_) => json!([word]),
                _ => json!(word),
            };
            values.insert(p.name.into(), value);
            if let Err(e) = deserializes::<M>(&values) {
                problems.push(format!(
                    "choice {word} of {} does not deserialize: {e}",
                    p.name
                ));
            }
        }
    }

    // The docs.
    let documented = docs::options(docs);
    let doc_names: BTreeSet<&str> = documented.iter().map(|o| o.name.as_str()).collect();
    let spec_names: BTreeSet<&str> = full.params.iter().map(|p| p.name).collect();
    for missing in spec_names.difference(&doc_names) {
        problems.push(format!("{missing} is not documented"));
    }
    for extra in doc_names.difference(&spec_names) {
        problems.push(format!("{extra} is documented but not in the spec"));
    }
    for p in &full.params {
        let Some(doc) = documented.iter().find(|o| o.name == p.name) else {
            continue;
        };
        let name = p.name;
        let (ty, elements) = doc_type(&p.kind);
        let mut expect = |key: &str, want: Option<String>| {
            let got = doc.get(key);
            if got != want {
                problems.push(format!(
                    "{name}: the docs say {key}: {}, the spec {}",
                    got.as_deref().unwrap_or("(nothing)"),
                    want.as_deref().unwrap_or("(nothing)")
                ));
            }
        };
        expect("type", Some(ty.to_string()));
        if elements.is_some() || doc.get("elements").is_some() {
            expect("elements", elements.map(String::from));
        }
        expect("required", p.required.then(|| "true".to_string()));
        expect("default", p.default.as_ref().map(shown));
        expect(
            "choices",
            (!p.choices.is_empty()).then(|| format!("[{}]", p.choices.join(", "))),
        );
        expect(
            "aliases",
            (!p.aliases.is_empty()).then(|| format!("[{}]", p.aliases.join(", "))),
        );
    }

    assert!(
        problems.is_empty(),
        "{}: params struct, spec and docs disagree:\n  {}",
        M::NAME,
        problems.join("\n  ")
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use warden_runtime::spec::{Spec, State};
    use warden_runtime::{Context, Plan};

    struct Probe;

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Params {
        name: String,
        state: State,
        count: Option<i64>,
    }

    impl Module for Probe {
        const NAME: &'static str = "probe";
        const RUNS_TOOLS: bool = false;
        const HOST: bool = false;
        type Params = Params;
        fn spec() -> Spec {
            Spec::new(vec![
                Param::str("name").required(),
                Param::choice::<State>("state").default(State::Present),
                Param::int("count"),
            ])
        }
        fn plan(_: Params, _: &mut Context) -> anyhow::Result<Plan> {
            Ok(Plan::new())
        }
    }

    const DOCS: &str = "DOCUMENTATION:\n  module: probe\n  options:\n    name:\n      description: The name.\n      type: str\n      required: true\n    state:\n      description:\n        - What it is.\n      type: str\n      choices: [present, absent]\n      default: present\n    count:\n      description: How many.\n      type: int\n    trusted_links:\n      description: Links.\n      type: list\n      elements: path\n      default: []\n  attributes:\n    check_mode:\n      support: full\n";

    #[test]
    fn agreeing_declarations_pass() {
        assert_params_agree::<Probe>(DOCS);
    }

    #[test]
    fn each_disagreement_is_named() {
        let docs = DOCS
            .replace("default: present", "default: absent")
            .replace("choices: [present, absent]", "choices: [present, gone]")
            .replace("      type: int\n", "      type: str\n")
            .replace("      required: true\n", "");
        let err = std::panic::catch_unwind(|| assert_params_agree::<Probe>(&docs))
            .unwrap_err()
            .downcast::<String>()
            .unwrap();
        for needle in [
            "name: the docs say required: (nothing), the spec true",
            "state: the docs say default: absent, the spec present",
            "state: the docs say choices: [present, gone], the spec [present, absent]",
            "count: the docs say type: str, the spec int",
        ] {
            assert!(err.contains(needle), "{needle} missing: {err}");
        }
    }

    #[test]
    fn params_come_through_validation() {
        let p = params::<Probe>(json!({"name": 5, "count": "7"}));
        assert_eq!(
            (p.name.as_str(), p.state, p.count),
            ("5", State::Present, Some(7))
        );
        assert_eq!(
            validated::<Probe>(json!({"state": "gone"})).err().unwrap(),
            "missing required arguments: name; value of state must be one of: present, absent, got: gone"
        );
    }
}
