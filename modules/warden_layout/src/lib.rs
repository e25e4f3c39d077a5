//! The warden agent's layout, in one place: the table of jail kinds (name suffix, host
//! octet, packages, services, `.env` keys, whether it runs by default, which kinds are
//! alternatives on one octet), the derivation of every name and address from the agent's
//! name, its subnet base, its overrides and the host's Bastille version, and the rules
//! that check them — all problems at once.
//!
//! Used on the controller by the `warden_layout` binary, which the `warden_agent_layout`
//! action plugin runs for the `warden_agent` role (JSON in on stdin, the `warden_agent`
//! fact out), and by the modules that take the same values ([`rules`]).
//!
//! Adding a jail kind is one row in [`KINDS`]: `tests/layout.rs` derives a layout with an
//! extra row and finds its address, jail name, packages, services and `.env` keys.

pub mod layout;
pub mod rules;
pub mod settings;
pub mod table;

pub use layout::{derive, env_file, use_shared_llm, Failure, Host, Layout};
pub use settings::Settings;
pub use table::{Kind, KINDS};
