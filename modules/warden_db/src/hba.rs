//! The agent's pg_hba.conf line: `host <db> <role> <subnet> scram-sha-256` (auth-pg-hba-conf
//! .html). The first matching record wins and there is no fall-through, so the line goes
//! before the first record that would also match the agent's connections; nothing else in
//! the file moves (no re-sorting). Names are double-quoted when pg_hba would read them as
//! keywords or they hold upper case or punctuation.

use ipnet::Ipv4Net;

/// One record, split into fields (comments and blank lines are not records).
fn fields(line: &str) -> Vec<String> {
    let code = line.split('#').next().unwrap_or("");
    code.split_whitespace()
        .map(|w| w.trim_matches('"').to_string())
        .collect()
}

/// How pg_hba.conf writes a database or user name.
fn hba_name(name: &str) -> String {
    if name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    {
        name.to_string()
    } else {
        format!("\"{name}\"")
    }
}

/// The line for the agent.
pub fn line(kind: &str, database: &str, role: &str, subnet: &Ipv4Net, method: &str) -> String {
    format!(
        "{kind}\t{}\t{}\t{subnet}\t{method}",
        hba_name(database),
        hba_name(role)
    )
}

fn is_ours(line: &str, kind: &str, database: &str, role: &str, subnet: &Ipv4Net) -> bool {
    let f = fields(line);
    f.len() >= 4
        && f[0] == kind
        && f[1] == database
        && f[2] == role
        && f[3].parse::<Ipv4Net>().ok() == Some(*subnet)
}

/// Whether an existing record would also match the agent's TCP connections from `subnet`.
fn shadows(line: &str, database: &str, role: &str, subnet: &Ipv4Net) -> bool {
    let f = fields(line);
    if f.len() < 4 || !f[0].starts_with("host") {
        return false;
    }
    let db_match = f[1]
        .split(',')
        .any(|d| d == "all" || d == database || d == "sameuser" && database == role);
    let user_match = f[2].split(',').any(|u| u == "all" || u == role);
    let address_match = match f[3].as_str() {
        "all" => true,
        "samehost" | "samenet" => false,
        text => text
            .parse::<Ipv4Net>()
            .map(|net| net.contains(&subnet.network()))
            .unwrap_or(false),
    };
    db_match && user_match && address_match
}

/// The file with the agent's line present (`true`) or absent (`false`); `None` when the file
/// already is that way.
pub fn edit(
    text: &str,
    wanted: bool,
    kind: &str,
    database: &str,
    role: &str,
    subnet: &Ipv4Net,
    method: &str,
) -> Option<String> {
    let lines: Vec<&str> = text.lines().collect();
    let ours = lines
        .iter()
        .position(|l| is_ours(l, kind, database, role, subnet));
    let new_line = line(kind, database, role, subnet, method);
    let mut out: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
    match (wanted, ours) {
        (true, Some(i)) => {
            // Present with another method: rewrite it in place.
            if fields(lines[i]).get(4).map(String::as_str) == Some(method) {
                return None;
            }
            out[i] = new_line;
        }
        (true, None) => {
            let at = lines
                .iter()
                .position(|l| shadows(l, database, role, subnet))
                .unwrap_or(lines.len());
            out.insert(at, new_line);
        }
        (false, Some(_)) => out.retain(|l| !is_ours(l, kind, database, role, subnet)),
        (false, None) => return None,
    }
    Some(out.join("\n") + "\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEBIAN: &str = "# TYPE  DATABASE        USER            ADDRESS                 METHOD\nlocal   all             postgres                                peer\nlocal   all             all                                     peer\nhost    all             all             127.0.0.1/32            scram-sha-256\nhost    all             all             10.0.0.0/8              reject\n";

    fn subnet() -> Ipv4Net {
        "10.0.1.0/24".parse().unwrap()
    }

    #[test]
    fn inserted_before_the_first_record_that_would_match() {
        let text = edit(
            DEBIAN,
            true,
            "host",
            "mevy",
            "mevy",
            &subnet(),
            "scram-sha-256",
        )
        .unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[4], "host\tmevy\tmevy\t10.0.1.0/24\tscram-sha-256");
        assert_eq!(
            lines[5],
            "host    all             all             10.0.0.0/8              reject"
        );
        assert_eq!(
            edit(
                &text,
                true,
                "host",
                "mevy",
                "mevy",
                &subnet(),
                "scram-sha-256"
            ),
            None
        );
        let removed = edit(
            &text,
            false,
            "host",
            "mevy",
            "mevy",
            &subnet(),
            "scram-sha-256",
        )
        .unwrap();
        assert_eq!(removed, DEBIAN);
        assert_eq!(
            edit(
                DEBIAN,
                false,
                "host",
                "mevy",
                "mevy",
                &subnet(),
                "scram-sha-256"
            ),
            None
        );
    }

    #[test]
    fn appended_when_nothing_matches_and_method_rewritten() {
        let text = edit(
            "local all all trust\n",
            true,
            "host",
            "Agent-B",
            "Agent-B",
            &subnet(),
            "scram-sha-256",
        )
        .unwrap();
        assert_eq!(
            text,
            "local all all trust\nhost\t\"Agent-B\"\t\"Agent-B\"\t10.0.1.0/24\tscram-sha-256\n"
        );
        let md5 = "host mevy mevy 10.0.1.0/24 md5\n";
        assert_eq!(
            edit(
                md5,
                true,
                "host",
                "mevy",
                "mevy",
                &subnet(),
                "scram-sha-256"
            )
            .unwrap(),
            "host\tmevy\tmevy\t10.0.1.0/24\tscram-sha-256\n"
        );
    }
}
