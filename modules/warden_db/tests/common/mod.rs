//! A throw-away PostgreSQL cluster per test (tests/pgcluster.sh) and a module runner.

#![allow(dead_code)] // each test file uses a part

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rustls_pki_types::pem::PemObject;
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

    /// The CA that signed the server's certificate (made by pgcluster.sh).
    pub fn ca_cert(&self) -> &str {
        &self.env["PGSSLROOTCERT"]
    }

    /// Module params that log in as the superuser over TCP, with TLS verified against the
    /// cluster's CA (the server takes nothing else over TCP).
    pub fn login(&self) -> Value {
        json!({
            "login_host": "127.0.0.1",
            "login_port": self.port(),
            "login_user": "postgres",
            "login_password": self.password(),
            "ssl_mode": "verify-full",
            "ca_cert": self.ca_cert(),
        })
    }

    /// A superuser client, through the unix socket (trust).
    pub fn client(&self) -> postgres::Client {
        postgres::Config::new()
            .host_path(&self.env["PGSOCKET"])
            .port(self.port())
            .user("postgres")
            .dbname("postgres")
            .connect(postgres::NoTls)
            .unwrap()
    }

    /// A session as `user` over TCP with verified TLS.
    pub fn connect_as(
        &self,
        user: &str,
        password: &str,
        database: &str,
    ) -> Result<postgres::Client, String> {
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls_pki_types::CertificateDer::pem_file_iter(self.ca_cert()).unwrap() {
            roots.add(cert.unwrap()).unwrap();
        }
        let tls = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        postgres::Config::new()
            .host("127.0.0.1")
            .port(self.port())
            .user(user)
            .password(password)
            .dbname(database)
            .ssl_mode(postgres::config::SslMode::Require)
            .connect(tokio_postgres_rustls::MakeRustlsConnect::new(tls))
            .map_err(|e| format!("{e:?}"))
    }

    /// Whether `user` can log in to `database` with `password`.
    pub fn can_login(&self, user: &str, password: &str, database: &str) -> Result<(), String> {
        self.connect_as(user, password, database).map(|_| ())
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
    module_within(args, 600)
}

/// Runs the module, killing it (and failing the test) if it has not finished within
/// `seconds`: for the cases where the bug was a wait without a bound.
pub fn module_within(args: &Value, seconds: u64) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("args");
    std::fs::write(&path, args.to_string()).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_warden_db"))
        .arg(&path)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("warden_db still ran after {seconds} s: a wait without a bound");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stdout = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    assert_eq!(
        stdout.lines().count(),
        1,
        "one JSON line expected: {stdout}"
    );
    Run {
        result: serde_json::from_str(&stdout).unwrap(),
        code: status.code().unwrap(),
        stdout,
    }
}

/// tests/rogue_pg.py on a loopback port: a server that answers like an attacker and records
/// what it receives.
pub struct Rogue {
    child: Child,
    pub port: u16,
    record: PathBuf,
    _dir: tempfile::TempDir,
}

impl Rogue {
    pub fn start(args: &[&str]) -> Rogue {
        let dir = tempfile::tempdir().unwrap();
        let record = dir.path().join("record.jsonl");
        let mut child = Command::new("python3")
            .arg(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/rogue_pg.py"))
            .arg("--record")
            .arg(&record)
            .args(args)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .trim()
            .strip_prefix("PORT ")
            .unwrap_or_else(|| panic!("rogue did not start: {line:?}"))
            .parse()
            .unwrap();
        Rogue {
            child,
            port,
            record,
            _dir: dir,
        }
    }

    /// What it recorded, one JSON object per event.
    pub fn events(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.record)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// The types of the frontend messages it received after the startup packet.
    pub fn message_types(&self) -> Vec<String> {
        self.events()
            .iter()
            .filter(|e| e["event"] == "message")
            .map(|e| e["type"].as_str().unwrap().to_string())
            .collect()
    }

    /// Everything it received, as text (startup parameters and message bodies).
    pub fn received(&self) -> String {
        self.events()
            .iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for Rogue {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A CA and a server certificate for 127.0.0.1 signed by it (tests/pgcluster.sh certs), and
/// a self-signed certificate for 127.0.0.1 that no CA vouches for.
pub struct Pki {
    pub dir: tempfile::TempDir,
}

impl Pki {
    pub fn new() -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new(script())
            .arg("certs")
            .arg(dir.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let out = Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-sha256",
                "-nodes",
                "-days",
                "2",
                "-subj",
                "/CN=127.0.0.1",
                "-addext",
                "subjectAltName=IP:127.0.0.1,DNS:localhost",
                "-addext",
                "basicConstraints=critical,CA:FALSE",
                "-keyout",
            ])
            .arg(dir.path().join("self.key"))
            .arg("-out")
            .arg(dir.path().join("self.crt"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        Pki { dir }
    }

    pub fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }
}

pub fn with(mut base: Value, extra: Value) -> Value {
    for (k, v) in extra.as_object().unwrap() {
        base[k] = v.clone();
    }
    base
}
