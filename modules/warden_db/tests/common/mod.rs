//! A throw-away PostgreSQL cluster per test (tests/pgcluster.sh) and a module runner.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;

use serde_json::{json, Value};

pub struct Cluster {
    dir: tempfile::TempDir,
    pub env: HashMap<String, String>,
}

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/pgcluster.sh")
}

impl Cluster {
    pub fn start() -> Cluster {
        let dir = tempfile::Builder::new()
            .prefix("wpg")
            .tempdir_in("/tmp")
            .unwrap();
        let out = Command::new(script())
            .arg("start")
            .arg(dir.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "cluster did not start: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let env = std::fs::read_to_string(dir.path().join("env"))
            .unwrap()
            .lines()
            .filter_map(|l| {
                l.split_once('=')
                    .map(|(k, v)| (k.to_string(), v.to_string()))
            })
            .collect();
        Cluster { dir, env }
    }

    pub fn port(&self) -> u16 {
        self.env["PGPORT"].parse().unwrap()
    }

    pub fn password(&self) -> &str {
        &self.env["PGPASSWORD"]
    }

    pub fn hba_file(&self) -> String {
        format!("{}/pg_hba.conf", self.env["PGDATA"])
    }

    pub fn stop(&self) {
        Command::new(script())
            .arg("stop")
            .arg(self.dir.path())
            .output()
            .unwrap();
    }

    /// The server log (every statement, `log_statement=all`).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.env["PGLOG"]).unwrap_or_default()
    }

    /// Module params that log in as the superuser over TCP.
    pub fn login(&self) -> Value {
        json!({
            "login_host": "127.0.0.1",
            "login_port": self.port(),
            "login_user": "postgres",
            "login_password": self.password(),
            "ssl_mode": "disable",
        })
    }

    /// A superuser client.
    pub fn client(&self) -> postgres::Client {
        postgres::Config::new()
            .host("127.0.0.1")
            .port(self.port())
            .user("postgres")
            .password(self.password())
            .dbname("postgres")
            .connect(postgres::NoTls)
            .unwrap()
    }

    /// Whether `user` can log in to `database` with `password`.
    pub fn can_login(&self, user: &str, password: &str, database: &str) -> Result<(), String> {
        postgres::Config::new()
            .host("127.0.0.1")
            .port(self.port())
            .user(user)
            .password(password)
            .dbname(database)
            .connect(postgres::NoTls)
            .map(|_| ())
            .map_err(|e| format!("{e:?}"))
    }

    /// One value as text.
    pub fn value(&self, sql: &str) -> Option<String> {
        self.client()
            .query_opt(sql, &[])
            .unwrap()
            .map(|r| r.get::<_, Option<String>>(0).unwrap_or_default())
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop();
    }
}

pub struct Run {
    pub result: Value,
    pub code: i32,
    pub stdout: String,
}

impl Run {
    pub fn msg(&self) -> &str {
        self.result["msg"].as_str().unwrap_or_default()
    }
}

pub fn module(args: &Value) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("args");
    std::fs::write(&path, args.to_string()).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_warden_db"))
        .arg(&path)
        .output()
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        stdout.lines().count(),
        1,
        "one JSON line expected: {stdout}"
    );
    Run {
        result: serde_json::from_str(&stdout).unwrap(),
        code: out.status.code().unwrap(),
        stdout,
    }
}

pub fn with(mut base: Value, extra: Value) -> Value {
    for (k, v) in extra.as_object().unwrap() {
        base[k] = v.clone();
    }
    base
}
