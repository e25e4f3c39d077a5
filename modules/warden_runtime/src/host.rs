//! The parameters every module that works on a host takes, declared once: the rc.conf chain
//! (`rc_conf`, `rc_conf_local`, `rc_conf_d`, read the way rc.subr's `load_rc_config` reads
//! it, see [`crate::rcconf`]) and the host lock (`lock_file`, `lock_timeout`, see
//! [`crate::lock`]). The runtime adds them to the spec of every module with
//! [`Module::HOST`](crate::Module::HOST), validates them with the module's own, and hands
//! them to the module as one [`Host`] value (`ctx.host()`), so no module's params struct
//! repeats them.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{anyhow, Result};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::lock::DEFAULT_LOCK_FILE;
use crate::rcconf::{RcFiles, RC_CONF, RC_CONF_D, RC_CONF_LOCAL};
use crate::spec::Param;

/// The host parameters, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    /// The rc.conf chain: `rc_conf`, `rc_conf_local`, `rc_conf_d`.
    pub rc: RcFiles,
    pub lock_file: PathBuf,
    pub lock_timeout: Duration,
}

/// The longest wait for the host lock: a day (every wait is bounded).
pub const MAX_LOCK_TIMEOUT: u32 = 86_400;

impl Default for Host {
    fn default() -> Self {
        Host {
            rc: RcFiles::default(),
            lock_file: DEFAULT_LOCK_FILE.into(),
            lock_timeout: Duration::from_secs(300),
        }
    }
}

/// The values as the spec delivers them.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Values {
    rc_conf: PathBuf,
    rc_conf_local: PathBuf,
    rc_conf_d: Vec<PathBuf>,
    lock_file: PathBuf,
    #[serde(deserialize_with = "crate::spec::seconds")]
    lock_timeout: Duration,
}

impl Host {
    /// The parameters' names.
    pub const NAMES: [&'static str; 5] = [
        "rc_conf",
        "rc_conf_local",
        "rc_conf_d",
        "lock_file",
        "lock_timeout",
    ];

    /// The parameters, with FreeBSD's defaults. `lock_timeout` 0 tries the lock once.
    pub fn params() -> Vec<Param> {
        vec![
            Param::path("rc_conf").default(RC_CONF),
            Param::path("rc_conf_local").default(RC_CONF_LOCAL),
            Param::list_of_paths("rc_conf_d").default(json!(RC_CONF_D)),
            Param::path("lock_file").default(DEFAULT_LOCK_FILE),
            Param::duration("lock_timeout", 0, MAX_LOCK_TIMEOUT).default(300),
        ]
    }

    /// Takes the host parameters out of validated values.
    pub fn take(values: &mut Map<String, Value>) -> Result<Host> {
        let mut mine = Map::new();
        for name in Self::NAMES {
            if let Some(value) = values.remove(name) {
                mine.insert(name.to_string(), value);
            }
        }
        let v: Values = serde_json::from_value(Value::Object(mine))
            .map_err(|e| anyhow!("internal error: the host parameters do not match: {e}"))?;
        Ok(Host {
            rc: RcFiles {
                rc_conf: v.rc_conf,
                rc_conf_local: v.rc_conf_local,
                rc_conf_d: v.rc_conf_d,
            },
            lock_file: v.lock_file,
            lock_timeout: v.lock_timeout,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{validate, Spec};

    #[test]
    fn defaults_are_freebsds_and_durations_take_units() {
        let spec = Spec::new(Host::params());
        let raw = json!({"lock_timeout": "2m", "rc_conf_d": ["/etc//rc.conf.d/"]});
        let mut values = validate("probe", &spec, raw.as_object().unwrap(), false)
            .unwrap()
            .values;
        let host = Host::take(&mut values).unwrap();
        assert!(values.is_empty());
        assert_eq!(host.lock_timeout, Duration::from_secs(120));
        assert_eq!(host.rc.rc_conf, PathBuf::from("/etc/rc.conf"));
        assert_eq!(host.rc.rc_conf_d, [PathBuf::from("/etc/rc.conf.d")]);
        let mut values = validate("probe", &spec, &Map::new(), false).unwrap().values;
        assert_eq!(Host::take(&mut values).unwrap(), Host::default());
    }

    #[test]
    fn lock_timeout_zero_tries_once_and_a_day_is_the_most() {
        let spec = Spec::new(Host::params());
        let check = |v: Value| {
            validate(
                "probe",
                &spec,
                json!({ "lock_timeout": v }).as_object().unwrap(),
                false,
            )
            .map(|v| v.values["lock_timeout"].clone())
            .map_err(|e| e.to_string())
        };
        assert_eq!(check(json!(0)), Ok(json!(0)));
        assert_eq!(check(json!("300")), Ok(json!(300)));
        assert_eq!(check(json!("24h")), Ok(json!(86_400)));
        assert_eq!(
            check(json!(-1)),
            Err("value of lock_timeout must be between 0 and 86400 seconds, got: -1".into())
        );
        assert!(check(json!("soon")).unwrap_err().contains(
            "argument 'lock_timeout' is of type str and we were unable to convert to duration: 'soon' is not a duration"
        ));
    }
}
