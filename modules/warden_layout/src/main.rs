//! `warden_layout`: the controller-side half of the `warden_agent_layout` action plugin.
//! Reads one request as JSON on stdin — `{"derive": {...host...}}` or
//! `{"shared_llm": {"layout": {...}, "ip": "10.0.9.4/24"}}` — and prints one JSON object:
//! `{"layout": {...}}`, exit 0, or `{"failed": true, "msg": ..., "problems": [...]}`,
//! exit 1. It never touches a host.

use std::io::{Read, Write};
use std::process::ExitCode;

use serde::Deserialize;
use serde_json::json;

use warden_layout::{derive, use_shared_llm, Failure, Host, Layout, KINDS};

#[derive(Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
enum Request {
    Derive(Box<Host>),
    SharedLlm { layout: Box<Layout>, ip: String },
}

fn main() -> ExitCode {
    let mut text = String::new();
    let result = match std::io::stdin().read_to_string(&mut text) {
        Err(e) => Err(Failure::new(format!(
            "warden_layout: cannot read its input: {e}"
        ))),
        Ok(_) => match serde_json::from_str::<Request>(&text) {
            Err(e) => Err(Failure::new(format!(
                "warden_layout: its input is not a request: {e}"
            ))),
            Ok(Request::Derive(host)) => derive(&host, KINDS),
            Ok(Request::SharedLlm { layout, ip }) => use_shared_llm(*layout, &ip, KINDS),
        },
    };
    let (out, code) = match result {
        Ok(layout) => (json!({ "layout": layout }), ExitCode::SUCCESS),
        Err(f) => (
            json!({ "failed": true, "msg": f.msg, "problems": f.problems }),
            ExitCode::FAILURE,
        ),
    };
    let mut stdout = std::io::stdout().lock();
    if writeln!(stdout, "{out}").is_err() {
        return ExitCode::FAILURE;
    }
    code
}
