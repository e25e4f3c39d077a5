//! Simulated `pfctl(8)` with a real syntax check of the pf.conf subset warden and typical
//! host rulesets use. State (enabled, loaded rules) lives in `<root>/sim/pf.json`.
//!
//! Behaviour and messages, from freebsd/freebsd-src (sbin/pfctl/parse.y, pfctl.c,
//! pfctl_parser.c; checked against the source, not on a host):
//! * errors are `file:line: message` on stderr (`yyerror`); parsing goes on after an error
//!   line, and any error makes the run fail with exit 1; only without `-n` does pfctl add
//!   `pfctl: Syntax error in config file: pf rules not loaded` (`pfctl_rules`);
//! * an undefined macro prints `macro 'x' not defined` and then `syntax error` for the same
//!   line, and error recovery swallows the next line (`yylex`, the `ruleset error` rule);
//! * statement order is enforced unless `set require-order no`: `Rules must be in order:
//!   options, ethernet, normalization, queueing, translation, filtering` (`check_rulestate`);
//!   macros, `table`, `include`, `set skip` and a few options may appear anywhere;
//! * `include "f"` of a missing file: `pfctl: f: No such file or directory` then
//!   `file:N: failed to include file f`; a missing main file: `pfctl: f: No such file or
//!   directory` and `pfctl: cannot open the main config file!: No such file or directory`;
//! * `on ifname` and `-> (ifname)` are accepted for any name; `-> ifname` needs an interface
//!   with an IPv4 address, else `no IP address found for X` and `could not parse host
//!   specification`;
//! * `-s nat` / `-s rules` print normalized rules, one per list element: `nat on vtnet0 inet
//!   from 10.0.1.0/24 to any -> (vtnet0) round-robin`, `pass quick on warden0 inet from
//!   10.0.1.0/24 to any flags S/SA keep state` (`print_rule`, `print_pool`);
//! * without `-n` pfctl opens /dev/pf first: while pf.ko is not loaded (the simulator's
//!   `sim/kld`, see kld.rs) every such call fails with `pfctl: /dev/pf: No such file or
//!   directory`, exit 1 (pfctl.c `main`: `err(1, "%s", pf_device)`); `-n` needs no device;
//! * `block` prints as `block drop` unless `return…` is given (print_rule: PF_DROP without
//!   PFRULE_RETURN* flags), ` inet` comes before ` proto` (print_rule), `(self)` stays as
//!   written (a dynamic address, parse.y `dynaddr`; `self` means every address of the host,
//!   pfctl_parser.c `host_if`/`ifa_lookup`), an interface group (`on epair`) is accepted as
//!   any name is;
//! * `-e`: `pf enabled` on stderr (hidden by `-q`), `pfctl: pf already enabled` exit 1; `-d`
//!   likewise with `pf disabled` / `pfctl: pf not enabled`; `-s info` starts with
//!   `Status: Enabled for …` padded to 44 columns, then `Debug: Urgent`. `-n` turns off `-e`,
//!   `-d` and `-s`. Options act in the order `-d`, `-s`, `-f`, `-e` (`main`).

use std::collections::HashMap;
use std::fs;
use std::net::Ipv4Addr;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::dispatch::{Out, SIM_FAILURE};
use crate::ifconfig::IfState;

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct PfState {
    pub enabled: bool,
    pub ever_enabled: bool,
    pub nat: Vec<String>,
    pub rules: Vec<String>,
}

impl PfState {
    fn load(root: &Path) -> PfState {
        fs::read_to_string(root.join("sim/pf.json"))
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default()
    }

    fn save(&self, root: &Path) -> std::io::Result<()> {
        let text = serde_json::to_string_pretty(self).map_err(std::io::Error::other)?;
        fs::write(root.join("sim/pf.json"), text)
    }
}

const TRAILER: &str = "pfctl: Syntax error in config file: pf rules not loaded\n";

pub fn run(root: &Path, args: &[String]) -> Out {
    let mut dry_run = false;
    let mut quiet = false;
    let (mut enable, mut disable) = (false, false);
    let mut file: Option<String> = None;
    let mut show: Option<String> = None;
    let mut i = 0;
    while i < args.len() {
        let Some(flags) = args[i].strip_prefix('-').filter(|f| !f.is_empty()) else {
            return Out::err(1, format!("pfctl: unexpected argument {}\n", args[i]));
        };
        let chars: Vec<char> = flags.chars().collect();
        for (k, c) in chars.iter().enumerate() {
            let takes_arg = matches!(c, 'f' | 's');
            if takes_arg {
                let rest: String = chars[k + 1..].iter().collect();
                let value = if rest.is_empty() {
                    i += 1;
                    match args.get(i) {
                        Some(v) => v.clone(),
                        None => {
                            return Out::err(
                                1,
                                format!("pfctl: option requires an argument -- {c}\n"),
                            )
                        }
                    }
                } else {
                    rest
                };
                if *c == 'f' {
                    file = Some(value);
                } else {
                    show = Some(value);
                }
                break;
            }
            match c {
                'n' => dry_run = true,
                'q' => quiet = true,
                'e' => enable = true,
                'd' => disable = true,
                'v' => {}
                other => {
                    return Out::err(
                        SIM_FAILURE,
                        format!("freebsd-sim: pfctl option -{other} is not simulated\n"),
                    )
                }
            }
        }
        i += 1;
    }
    // sbin/pfctl/pfctl.c `main`: without -n (PF_OPT_NOACTION) pfctl opens /dev/pf and
    // `err(1, "%s", pf_device)`s when it cannot; /dev/pf exists only while pf.ko is loaded.
    if !dry_run && !crate::kld::is_loaded(root, "pf") {
        return Out::err(1, "pfctl: /dev/pf: No such file or directory\n");
    }
    let mut state = PfState::load(root);
    let before = state.clone();
    let mut out = Out::default();
    if dry_run {
        enable = false;
        disable = false;
        show = None;
    }
    if disable {
        if !state.enabled {
            return Out::err(1, "pfctl: pf not enabled\n");
        }
        state.enabled = false;
        if !quiet {
            out.stderr.push_str("pf disabled\n");
        }
    }
    if let Some(what) = show {
        match show_state(&state, &what) {
            Ok(text) => out.stdout.push_str(&text),
            Err(e) => return e,
        }
    }
    if let Some(path) = file {
        let interfaces = IfState::load(root).map(|s| s.ifaces).unwrap_or_default();
        let with_address: Vec<String> = interfaces
            .iter()
            .filter(|i| !i.inet.is_empty())
            .map(|i| i.name.clone())
            .collect();
        let mut parser = Parser::new(with_address);
        parser.main_file(&path);
        out.stderr.push_str(&parser.errors);
        if parser.error_count > 0 {
            if !dry_run {
                out.stderr.push_str(TRAILER);
            }
            out.rc = 1;
            return out;
        }
        if !dry_run {
            state.nat = parser.nat;
            state.rules = parser.rules;
        }
    }
    if enable {
        if state.enabled {
            out.stderr.push_str("pfctl: pf already enabled\n");
            out.rc = 1;
            return out;
        }
        state.enabled = true;
        state.ever_enabled = true;
        if !quiet {
            out.stderr.push_str("pf enabled\n");
        }
    }
    if state != before {
        if let Err(e) = state.save(root) {
            return Out::err(
                SIM_FAILURE,
                format!("freebsd-sim: cannot save pf state: {e}\n"),
            );
        }
    }
    out
}

fn show_state(state: &PfState, what: &str) -> Result<String, Out> {
    let lines = |v: &[String]| v.iter().map(|l| format!("{l}\n")).collect::<String>();
    match what {
        "nat" | "n" => Ok(lines(&state.nat)),
        "rules" | "r" => Ok(lines(&state.rules)),
        "info" | "i" => {
            let status = match (state.enabled, state.ever_enabled) {
                (true, _) => "Status: Enabled for 0 days 00:00:00".to_string(),
                (false, true) => "Status: Disabled for 0 days 00:00:00".to_string(),
                (false, false) => "Status: Disabled".to_string(),
            };
            Ok(format!(
                "{status:<44}{:>15}\n\nState Table                          Total             Rate\n  current entries                        0               \n",
                "Debug: Urgent"
            ))
        }
        other => Err(Out::err(
            SIM_FAILURE,
            format!("freebsd-sim: pfctl -s {other} is not simulated\n"),
        )),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Section {
    Options,
    Normalization,
    Queueing,
    Translation,
    Filtering,
}

struct Parser {
    macros: HashMap<String, String>,
    section: Section,
    require_order: bool,
    interfaces_with_address: Vec<String>,
    errors: String,
    error_count: usize,
    nat: Vec<String>,
    rules: Vec<String>,
    depth: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Word(String),
    Quoted(String),
    Sym(&'static str),
}

impl Tok {
    fn text(&self) -> &str {
        match self {
            Tok::Word(w) | Tok::Quoted(w) => w,
            Tok::Sym(s) => s,
        }
    }
}

impl Parser {
    fn new(interfaces_with_address: Vec<String>) -> Parser {
        Parser {
            macros: HashMap::new(),
            section: Section::Options,
            require_order: true,
            interfaces_with_address,
            errors: String::new(),
            error_count: 0,
            nat: Vec::new(),
            rules: Vec::new(),
            depth: 0,
        }
    }

    fn error(&mut self, file: &str, line: usize, msg: &str) {
        self.errors.push_str(&format!("{file}:{line}: {msg}\n"));
        self.error_count += 1;
    }

    fn main_file(&mut self, path: &str) {
        match fs::read_to_string(path) {
            Ok(text) => self.parse(path, &text),
            Err(_) => {
                self.errors.push_str(&format!(
                    "pfctl: {path}: No such file or directory\npfctl: cannot open the main config file!: No such file or directory\n"
                ));
                self.error_count += 1;
            }
        }
    }

    fn parse(&mut self, file: &str, text: &str) {
        let mut skip_next = false;
        for (number, line) in logical_lines(text) {
            if std::mem::take(&mut skip_next) {
                continue;
            }
            let expanded = match self.expand(&line) {
                Ok(l) => l,
                Err(name) => {
                    self.error(file, number, &format!("macro '{name}' not defined"));
                    self.error(file, number, "syntax error");
                    skip_next = true;
                    continue;
                }
            };
            let tokens = match tokenize(&expanded) {
                Some(t) => t,
                None => {
                    self.error(file, number, "syntax error");
                    continue;
                }
            };
            if tokens.is_empty() {
                continue;
            }
            if let Err(msg) = self.statement(&tokens) {
                self.error(file, number, &msg);
            }
        }
    }

    /// `$name` outside quotes → its value.
    fn expand(&self, line: &str) -> Result<String, String> {
        let mut out = String::new();
        let mut chars = line.chars().peekable();
        let mut in_quotes = false;
        while let Some(c) = chars.next() {
            if c == '"' {
                in_quotes = !in_quotes;
            }
            if c == '$' && !in_quotes {
                let mut name = String::new();
                while let Some(&n) = chars.peek() {
                    if n.is_ascii_alphanumeric() || n == '_' {
                        name.push(n);
                        chars.next();
                    } else {
                        break;
                    }
                }
                match self.macros.get(&name) {
                    Some(value) => out.push_str(value),
                    None => return Err(name),
                }
            } else {
                out.push(c);
            }
        }
        Ok(out)
    }

    fn order(&mut self, section: Section) -> Result<(), String> {
        if self.require_order && section < self.section {
            return Err("Rules must be in order: options, ethernet, normalization, queueing, translation, filtering".into());
        }
        self.section = self.section.max(section);
        Ok(())
    }

    fn statement(&mut self, t: &[Tok]) -> Result<(), String> {
        let first = t[0].text();
        if t.len() >= 3 && t[1] == Tok::Sym("=") && is_name(first) {
            if t.len() != 3 {
                return Err("syntax error".into());
            }
            self.macros
                .insert(first.to_string(), t[2].text().to_string());
            return Ok(());
        }
        match first {
            "set" => {
                let option = t.get(1).map(Tok::text).unwrap_or_default();
                match option {
                    "skip"
                    | "state-policy"
                    | "ruleset-optimization"
                    | "state-defaults"
                    | "keepcounters"
                    | "syncookies"
                    | "hostid" => Ok(()),
                    "require-order" => {
                        self.require_order = t.get(2).map(Tok::text) != Some("no");
                        Ok(())
                    }
                    "reassemble" | "optimization" | "timeout" | "limit" | "loginterface"
                    | "block-policy" | "fail-policy" | "fingerprints" | "debug" => {
                        self.order(Section::Options)
                    }
                    _ => Err("syntax error".into()),
                }
            }
            "include" => {
                let Some(Tok::Quoted(path)) = t.get(1) else {
                    return Err("syntax error".into());
                };
                match fs::read_to_string(path) {
                    Ok(text) if self.depth < 8 => {
                        self.depth += 1;
                        self.parse(path, &text);
                        self.depth -= 1;
                        Ok(())
                    }
                    Ok(_) => Err(format!("failed to include file {path}")),
                    Err(_) => {
                        self.errors
                            .push_str(&format!("pfctl: {path}: No such file or directory\n"));
                        Err(format!("failed to include file {path}"))
                    }
                }
            }
            "table" => match t.get(1) {
                Some(Tok::Sym("<")) if matches!(t.get(3), Some(Tok::Sym(">"))) => Ok(()),
                _ => Err("syntax error".into()),
            },
            "scrub" => self.order(Section::Normalization),
            "altq" | "queue" => self.order(Section::Queueing),
            "nat" => {
                self.order(Section::Translation)?;
                let rules = self.nat_rule(t)?;
                self.nat.extend(rules);
                Ok(())
            }
            "rdr" | "binat" | "nat-anchor" | "rdr-anchor" | "binat-anchor" => {
                self.order(Section::Translation)
            }
            "no" => match t.get(1).map(Tok::text) {
                Some("nat" | "rdr") => self.order(Section::Translation),
                Some("scrub") => self.order(Section::Normalization),
                _ => Err("syntax error".into()),
            },
            "pass" | "block" => {
                self.order(Section::Filtering)?;
                let rules = filter_rule(t)?;
                self.rules.extend(rules);
                Ok(())
            }
            "match" | "anchor" | "antispoof" => self.order(Section::Filtering),
            "load" => Ok(()),
            _ => Err("syntax error".into()),
        }
    }

    /// `nat [pass] [on IF] [inet] from SRC to DST -> TARGET`
    fn nat_rule(&mut self, t: &[Tok]) -> Result<Vec<String>, String> {
        let mut i = 1;
        let mut on = None;
        if t.get(i).map(Tok::text) == Some("pass") {
            i += 1;
        }
        if t.get(i).map(Tok::text) == Some("on") {
            on = Some(t.get(i + 1).ok_or("syntax error")?.text().to_string());
            i += 2;
        }
        if matches!(t.get(i).map(Tok::text), Some("inet" | "inet6")) {
            i += 1;
        }
        let (from, next) = endpoint(t, i, "from")?;
        let (to, next) = endpoint(t, next, "to")?;
        if t.get(next) != Some(&Tok::Sym("->")) {
            return Err("syntax error".into());
        }
        let target = match (t.get(next + 1), t.get(next + 2), t.get(next + 3)) {
            (Some(Tok::Sym("(")), Some(Tok::Word(ifname)), Some(Tok::Sym(")"))) => {
                format!("({ifname})")
            }
            (Some(Tok::Word(word)), _, _)
                if word.parse::<Ipv4Addr>().is_ok() || parse_cidr(word).is_some() =>
            {
                word.clone()
            }
            (Some(Tok::Word(ifname)), _, _) => {
                if !self.interfaces_with_address.contains(ifname) {
                    self.errors
                        .push_str(&format!("no IP address found for {ifname}\n"));
                    return Err("could not parse host specification".into());
                }
                ifname.clone()
            }
            _ => return Err("syntax error".into()),
        };
        let on = on.map(|i| format!("on {i} ")).unwrap_or_default();
        let pool = if target.starts_with('(') {
            " round-robin"
        } else {
            ""
        };
        Ok(from
            .iter()
            .flat_map(|f| to.iter().map(move |d| (f.clone(), d.clone())))
            .map(|(f, d)| format!("nat {on}inet from {f} to {d} -> {target}{pool}"))
            .collect())
    }
}

/// `pass|block [in|out] [log] [quick] [on IF] [inet] [proto P] [all | from SRC to DST]
/// [flags F] [keep state|no state]`
fn filter_rule(t: &[Tok]) -> Result<Vec<String>, String> {
    let action = t[0].text().to_string();
    let mut i = 1;
    let mut head = vec![action.clone()];
    // parse.y `blockspec`: `drop`, `return`, `return-rst`, `return-icmp`; print_rule
    // (pfctl_parser.c) prints a plain `block` as `block drop` (no PFRULE_RETURN* flag).
    if action == "block" {
        match t.get(i).map(Tok::text) {
            Some(word @ ("drop" | "return" | "return-rst" | "return-icmp")) => {
                head.push(word.into());
                i += 1;
            }
            _ => head.push("drop".into()),
        }
    }
    for word in ["in", "out"] {
        if t.get(i).map(Tok::text) == Some(word) {
            head.push(word.into());
            i += 1;
        }
    }
    for word in ["log", "quick"] {
        if t.get(i).map(Tok::text) == Some(word) {
            head.push(word.into());
            i += 1;
        }
    }
    if t.get(i).map(Tok::text) == Some("on") {
        head.push(format!("on {}", t.get(i + 1).ok_or("syntax error")?.text()));
        i += 2;
    }
    // print_rule prints ` inet` before ` proto P`.
    if matches!(t.get(i).map(Tok::text), Some("inet" | "inet6")) {
        head.push(t[i].text().to_string());
        i += 1;
    }
    if t.get(i).map(Tok::text) == Some("proto") {
        head.push(format!(
            "proto {}",
            t.get(i + 1).ok_or("syntax error")?.text()
        ));
        i += 2;
    }
    let (pairs, next) = if t.get(i).map(Tok::text) == Some("all") {
        (vec![("any".to_string(), "any".to_string())], i + 1)
    } else {
        let (from, n) = endpoint(t, i, "from")?;
        let (to, n) = endpoint(t, n, "to")?;
        let pairs = from
            .iter()
            .flat_map(|f| to.iter().map(move |d| (f.clone(), d.clone())))
            .collect();
        (pairs, n)
    };
    let mut state = if action == "pass" {
        " flags S/SA keep state".to_string()
    } else {
        String::new()
    };
    let rest: Vec<&str> = t[next..].iter().map(Tok::text).collect();
    let (flags, rest) = match rest.as_slice() {
        ["flags", f, tail @ ..] => (Some(*f), tail),
        tail => (None, tail),
    };
    match rest {
        [] if flags.is_none() => {}
        [] => return Err("syntax error".into()),
        ["no", "state"] => state = " no state".into(),
        ["keep", "state", options @ ..] => {
            state = format!(
                " flags {} keep state{}",
                flags.unwrap_or("S/SA"),
                state_options(options)?
            )
        }
        _ => return Err("syntax error".into()),
    }
    let head = head.join(" ");
    Ok(pairs
        .into_iter()
        .map(|(f, d)| {
            if f == "any" && d == "any" {
                format!("{head} all{state}")
            } else {
                format!("{head} from {f} to {d}{state}")
            }
        })
        .collect())
}

/// `keep state (…)` options, printed the way `print_rule` in sbin/pfctl/pfctl_parser.c
/// does: a fixed order, `, `-separated. parse.y turns on source tracking for the per-source
/// limits: `max-src-conn` and `max-src-conn-rate` per rule (PFRULE_RULESRCTRACK, printed
/// `source-track rule`), `max-src-states` and `max-src-nodes` globally (`source-track global`).
fn state_options(t: &[&str]) -> Result<String, String> {
    let inner = match t {
        [] => return Ok(String::new()),
        ["(", inner @ .., ")"] if !inner.is_empty() => inner,
        _ => return Err("syntax error".into()),
    };
    const ORDER: [&str; 10] = [
        "max",
        "no-sync",
        "source-track",
        "max-src-states",
        "max-src-conn",
        "max-src-conn-rate",
        "max-src-nodes",
        "overload",
        "if-bound",
        "sloppy",
    ];
    let mut found: Vec<(usize, String)> = Vec::new();
    for option in inner.split(|w| *w == ",") {
        let text = match option {
            [word @ ("max" | "max-src-states" | "max-src-conn" | "max-src-nodes"), n]
                if n.parse::<u32>().is_ok() =>
            {
                format!("{word} {n}")
            }
            ["max-src-conn-rate", rate]
                if rate
                    .split_once('/')
                    .is_some_and(|(a, b)| a.parse::<u32>().is_ok() && b.parse::<u32>().is_ok()) =>
            {
                format!("max-src-conn-rate {rate}")
            }
            ["source-track"] => "source-track rule".into(),
            ["source-track", scope @ ("rule" | "global")] => format!("source-track {scope}"),
            ["overload", "<", table, ">", tail @ ..] if is_name(table) => match tail {
                [] => format!("overload <{table}>"),
                ["flush"] => format!("overload <{table}> flush"),
                ["flush", "global"] => format!("overload <{table}> flush global"),
                _ => return Err("syntax error".into()),
            },
            [word @ ("no-sync" | "if-bound" | "sloppy")] => word.to_string(),
            _ => return Err("syntax error".into()),
        };
        let key = text.split(' ').next().unwrap_or_default();
        let rank = ORDER.iter().position(|o| *o == key).unwrap_or(ORDER.len());
        found.push((rank, text));
    }
    if !found.iter().any(|(rank, _)| *rank == 2) {
        let has = |key: &str| {
            found
                .iter()
                .any(|(_, text)| text.split(' ').next() == Some(key))
        };
        if has("max-src-conn") || has("max-src-conn-rate") {
            found.push((2, "source-track rule".into()));
        } else if has("max-src-states") || has("max-src-nodes") {
            found.push((2, "source-track global".into()));
        }
    }
    found.sort_by_key(|(rank, _)| *rank);
    let texts: Vec<String> = found.into_iter().map(|(_, text)| text).collect();
    Ok(format!(" ({})", texts.join(", ")))
}

/// `from X` / `to X` where X is `any`, an address, a CIDR, `<table>`, `(if)` or `{ list }`.
fn endpoint(t: &[Tok], i: usize, keyword: &str) -> Result<(Vec<String>, usize), String> {
    if t.get(i).map(Tok::text) != Some(keyword) {
        return Ok((vec!["any".into()], i));
    }
    let mut i = i + 1;
    let mut items = Vec::new();
    match t.get(i) {
        // `to port 22` means `to any port 22`.
        Some(Tok::Word(w)) if w == "port" => items.push("any".to_string()),
        Some(Tok::Sym("{")) => {
            i += 1;
            loop {
                match t.get(i) {
                    Some(Tok::Sym("}")) => {
                        i += 1;
                        break;
                    }
                    Some(Tok::Sym(",")) => i += 1,
                    Some(Tok::Word(w)) => {
                        items.push(host(w)?);
                        i += 1;
                    }
                    _ => return Err("syntax error".into()),
                }
            }
            if items.is_empty() {
                return Err("syntax error".into());
            }
        }
        Some(Tok::Sym("<")) => match (t.get(i + 1), t.get(i + 2)) {
            (Some(Tok::Word(name)), Some(Tok::Sym(">"))) => {
                items.push(format!("<{name}>"));
                i += 3;
            }
            _ => return Err("syntax error".into()),
        },
        Some(Tok::Sym("(")) => match (t.get(i + 1), t.get(i + 2)) {
            (Some(Tok::Word(name)), Some(Tok::Sym(")"))) => {
                items.push(format!("({name})"));
                i += 3;
            }
            _ => return Err("syntax error".into()),
        },
        Some(Tok::Word(w)) => {
            items.push(host(w)?);
            i += 1;
        }
        _ => return Err("syntax error".into()),
    }
    if t.get(i).map(Tok::text) == Some("port") {
        // `port 22` or a list, `port { 22 443 }`, which pfctl expands into one rule each.
        let mut ports = Vec::new();
        i += 1;
        match t.get(i) {
            Some(Tok::Sym("{")) => {
                i += 1;
                loop {
                    match t.get(i) {
                        Some(Tok::Sym("}")) => break,
                        Some(Tok::Sym(",")) => {}
                        Some(Tok::Word(port)) => ports.push(port.clone()),
                        _ => return Err("syntax error".into()),
                    }
                    i += 1;
                }
                if ports.is_empty() {
                    return Err("syntax error".into());
                }
            }
            Some(Tok::Word(port)) => ports.push(port.clone()),
            _ => return Err("syntax error".into()),
        }
        i += 1;
        items = items
            .iter()
            .flat_map(|x| ports.iter().map(move |port| format!("{x} port = {port}")))
            .collect();
    }
    Ok((items, i))
}

fn host(word: &str) -> Result<String, String> {
    if word == "any" {
        return Ok(word.into());
    }
    if let Some(net) = parse_cidr(word) {
        return Ok(net);
    }
    if word.parse::<Ipv4Addr>().is_ok() {
        return Ok(word.into());
    }
    Err("could not parse host specification".into())
}

fn parse_cidr(word: &str) -> Option<String> {
    let (addr, prefix) = word.split_once('/')?;
    let addr: Ipv4Addr = addr.parse().ok()?;
    let prefix: u8 = prefix.parse().ok().filter(|p| *p <= 32)?;
    let mask = if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(prefix))
    };
    Some(format!(
        "{}/{prefix}",
        Ipv4Addr::from(u32::from(addr) & mask)
    ))
}

fn is_name(word: &str) -> bool {
    word.starts_with(|c: char| c.is_ascii_alphabetic())
        && word.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Lines with comments removed and `\` continuations joined, numbered by their first line.
fn logical_lines(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut pending: Option<(usize, String)> = None;
    for (index, raw) in text.lines().enumerate() {
        let mut line = strip_comment(raw);
        let continued = line.ends_with('\\');
        if continued {
            line.pop();
        }
        let entry = pending.get_or_insert((index + 1, String::new()));
        entry.1.push_str(&line);
        entry.1.push(' ');
        if !continued {
            out.extend(pending.take());
        }
    }
    out.extend(pending);
    out
}

fn strip_comment(line: &str) -> String {
    let mut in_quotes = false;
    for (i, c) in line.char_indices() {
        match c {
            '"' => in_quotes = !in_quotes,
            '#' if !in_quotes => return line[..i].to_string(),
            _ => {}
        }
    }
    line.to_string()
}

fn tokenize(line: &str) -> Option<Vec<Tok>> {
    let mut out = Vec::new();
    let chars: Vec<char> = line.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            ' ' | '\t' => i += 1,
            '"' => {
                let end = chars[i + 1..].iter().position(|&x| x == '"')? + i + 1;
                let inner: String = chars[i + 1..end].iter().collect();
                out.push(Tok::Quoted(inner));
                i = end + 1;
            }
            '-' if chars.get(i + 1) == Some(&'>') => {
                out.push(Tok::Sym("->"));
                i += 2;
            }
            '{' | '}' | ',' | '(' | ')' | '<' | '>' | '=' | '!' => {
                out.push(Tok::Sym(match c {
                    '{' => "{",
                    '}' => "}",
                    ',' => ",",
                    '(' => "(",
                    ')' => ")",
                    '<' => "<",
                    '>' => ">",
                    '=' => "=",
                    _ => "!",
                }));
                i += 1;
            }
            _ => {
                let start = i;
                while i < chars.len()
                    && !" \t\"{},()<>=!".contains(chars[i])
                    && !(chars[i] == '-' && chars.get(i + 1) == Some(&'>'))
                {
                    i += 1;
                }
                out.push(Tok::Word(chars[start..i].iter().collect()));
            }
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str) -> (String, Vec<String>, Vec<String>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pf.conf");
        fs::write(&path, text).unwrap();
        let mut p = Parser::new(vec!["vtnet0".into()]);
        p.main_file(path.to_str().unwrap());
        let errors = p.errors.replace(path.to_str().unwrap(), "pf.conf");
        (errors, p.nat, p.rules)
    }

    #[test]
    fn seed_rules_normalize_like_pfctl() {
        let (errors, nat, rules) = check(concat!(
            "ext_if = \"vtnet0\"\n",
            "set skip on lo0\n",
            "warden_net = \"{ 10.0.0.0/24, 10.0.1.0/24 }\"\n",
            "nat on $ext_if from $warden_net to any -> ($ext_if)\n",
            "pass quick on warden0 inet from $warden_net to any keep state\n",
            "pass out all\n",
        ));
        assert_eq!(errors, "");
        assert_eq!(
            nat,
            [
                "nat on vtnet0 inet from 10.0.0.0/24 to any -> (vtnet0) round-robin",
                "nat on vtnet0 inet from 10.0.1.0/24 to any -> (vtnet0) round-robin"
            ]
        );
        assert_eq!(
            rules,
            [
                "pass quick on warden0 inet from 10.0.0.0/24 to any flags S/SA keep state",
                "pass quick on warden0 inet from 10.0.1.0/24 to any flags S/SA keep state",
                "pass out all flags S/SA keep state"
            ]
        );
    }

    #[test]
    fn undefined_macro_swallows_the_next_line() {
        let (errors, _, _) =
            check("nat on $nosuch from any to any -> (vtnet0)\nthis is garbage\npass all\n");
        assert_eq!(
            errors,
            "pf.conf:1: macro 'nosuch' not defined\npf.conf:1: syntax error\n"
        );
    }

    #[test]
    fn order_and_syntax_errors() {
        let (errors, _, _) =
            check("pass all\nnat on vtnet0 from any to any -> (vtnet0)\nfoo bar\n");
        assert_eq!(
            errors,
            "pf.conf:2: Rules must be in order: options, ethernet, normalization, queueing, translation, filtering\npf.conf:3: syntax error\n"
        );
        let (errors, _, _) =
            check("set require-order no\npass all\nnat on vtnet0 from any to any -> (vtnet0)\n");
        assert_eq!(errors, "");
    }

    #[test]
    fn unknown_interfaces() {
        let (errors, _, _) = check("nat on foo0 from any to any -> (foo0)\npass on foo0 all\n");
        assert_eq!(errors, "");
        let (errors, _, _) = check("nat on foo0 from any to any -> foo0\n");
        assert_eq!(
            errors,
            "no IP address found for foo0\npf.conf:1: could not parse host specification\n"
        );
    }

    #[test]
    fn ports_and_protocols() {
        let (errors, _, rules) = check("pass in on vtnet0 proto tcp to port 22 keep state\npass in proto tcp from any to 10.0.0.1 port 80\n");
        assert_eq!(errors, "");
        assert_eq!(
            rules,
            [
                "pass in on vtnet0 proto tcp from any to any port = 22 flags S/SA keep state",
                "pass in proto tcp from any to 10.0.0.1 port = 80 flags S/SA keep state"
            ]
        );
    }

    #[test]
    fn port_lists_and_state_options() {
        let (errors, _, rules) = check(
            "table <bruteforce> persist\npass in proto tcp to port { 22, 443 } keep state (overload <bruteforce> flush global, max-src-conn 10)\npass out flags S/SAFR keep state (no-sync)\n",
        );
        assert_eq!(errors, "");
        assert_eq!(
            rules,
            [
                "pass in proto tcp from any to any port = 22 flags S/SA keep state (source-track rule, max-src-conn 10, overload <bruteforce> flush global)",
                "pass in proto tcp from any to any port = 443 flags S/SA keep state (source-track rule, max-src-conn 10, overload <bruteforce> flush global)",
                "pass out all flags S/SAFR keep state (no-sync)"
            ]
        );
        let (_, _, rules) = check("pass keep state (max-src-states 5)\n");
        assert_eq!(
            rules,
            ["pass all flags S/SA keep state (source-track global, max-src-states 5)"]
        );
        for bad in [
            "pass keep state (max-src-conn ten)\n",
            "pass keep state ()\n",
            "pass to port { } keep state\n",
        ] {
            assert_eq!(check(bad).0, "pf.conf:1: syntax error\n", "{bad}");
        }
    }

    #[test]
    fn block_actions_and_family_before_proto() {
        let (errors, _, rules) = check(
            "block in all\nblock return in quick on warden0 inet from 10.0.0.0/24 to (self)\npass in inet proto tcp to port 22\n",
        );
        assert_eq!(errors, "");
        assert_eq!(
            rules,
            [
                "block drop in all",
                "block return in quick on warden0 inet from 10.0.0.0/24 to (self)",
                "pass in inet proto tcp from any to any port = 22 flags S/SA keep state"
            ]
        );
    }

    #[test]
    fn include_missing_file() {
        let (errors, _, _) = check("include \"/nonexistent/pf.warden.conf\"\n");
        assert_eq!(
            errors,
            "pfctl: /nonexistent/pf.warden.conf: No such file or directory\npf.conf:1: failed to include file /nonexistent/pf.warden.conf\n"
        );
    }

    #[test]
    fn comments_continuations_and_tables() {
        let (errors, nat, _) = check(
            "# comment\ntable <agents> persist { 10.0.0.0/24 }\nnat on vtnet0 \\\n  from <agents> to any -> (vtnet0) # trailing\n",
        );
        assert_eq!(errors, "");
        assert_eq!(
            nat,
            ["nat on vtnet0 inet from <agents> to any -> (vtnet0) round-robin"]
        );
    }
}
