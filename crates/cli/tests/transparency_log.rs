//! The manifest log's commands as operators run them, on the stand-in lists: keys generated,
//! a table built, two organisations co-signing (a second manifest for the same epoch refused),
//! the manifest published and logged, `log verify` accepting it as a client does, `log audit`
//! passing from a folder and over HTTP, and a tampered hash tile, entry bundle, manifest file or
//! co-signature making the audit fail naming it.
//!
//! The first tests pin a policy of `quorum none` (no witness); the last runs two real witnesses
//! (`hashguard witness serve`) whose quorum the trust file requires: publish collects both
//! cosignatures, a refresh renews them, and a witness that lost its state is caught up through
//! a 409 and its size.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Output;

use common::{hashguard, hashguard_ok};

fn s(p: &Path) -> String {
    p.to_str().expect("UTF-8 path").to_string()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A deployment: the banks, the keys, and the table folder.
struct Deployment {
    dir: tempfile::TempDir,
    db: String,
    trust: PathBuf,
}

impl Deployment {
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn build(&self, out: &str) -> String {
        self.build_with(out, &[])
    }

    fn build_with(&self, out: &str, extra: &[&str]) -> String {
        let out = s(&self.path(out));
        let key = s(&self.path("opening.key"));
        let mut args = vec![
            "table", "build", "--db", &self.db, "--out", &out, "--key", &key, "--shards", "2",
        ];
        args.extend_from_slice(extra);
        hashguard_ok(&args)
    }

    fn cosign(&self, table: &str, org: u16) -> Output {
        self.cosign_with_state(table, org, &format!("org{org}.state"))
    }

    fn cosign_with_state(&self, table: &str, org: u16, state: &str) -> Output {
        hashguard(&[
            "table",
            "cosign",
            "--table",
            &s(&self.path(table)),
            "--org-id",
            &org.to_string(),
            "--org-key",
            &s(&self.path(&format!("org{org}.key"))),
            "--state",
            &s(&self.path(state)),
            "--db",
            &self.db,
        ])
    }

    fn publish(&self, table: &str, trust: bool) -> Output {
        let mut args = vec![
            "table".to_string(),
            "publish".into(),
            "--table".into(),
            s(&self.path(table)),
            "--service-key".into(),
            s(&self.path("service.key")),
            "--log-key".into(),
            s(&self.path("log.key")),
        ];
        if trust {
            args.extend(["--trust".to_string(), s(&self.trust)]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        hashguard(&args)
    }

    fn log_cmd(&self, what: &str, log: &str, extra: &[&str]) -> Output {
        let trust = s(&self.trust);
        let mut args = vec!["log", what, "--log", log, "--trust", &trust];
        args.extend_from_slice(extra);
        hashguard(&args)
    }
}

/// Banks of the two stand-in organisations (GB, US) and every key, with the trust file a
/// client of this deployment pins (its deployment id read from the first table's summary).
fn deployment() -> Deployment {
    deployment_with(|_| "# no witness in this test\nquorum none\n".to_string())
}

/// [`deployment`] with the policy lines `policy` returns (given the deployment's folder).
fn deployment_with(policy: impl FnOnce(&Path) -> String) -> Deployment {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = s(&dir.path().join("hashguard.db"));
    let standin = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../assets/standin");
    for (bank, org, j, file) in [
        ("standin-a", "Stand-in Org A", "GB", "org-a.txt"),
        ("standin-b", "Stand-in Org B", "US", "org-b.txt"),
    ] {
        hashguard_ok(&[
            "list",
            "--db",
            &db,
            "create",
            bank,
            "--org",
            org,
            "--jurisdiction",
            j,
        ]);
        hashguard_ok(&["list", "--db", &db, "import", bank, &s(&standin.join(file))]);
    }
    let key = |kind: &str, name: &str, file: &str| -> String {
        let path = dir.path().join(file);
        let out = hashguard(&[
            "keys",
            "generate",
            "--kind",
            kind,
            "--name",
            name,
            "--out",
            &s(&path),
        ]);
        assert!(out.status.success(), "{}", text(&out));
        let public = String::from_utf8(out.stdout.clone()).expect("UTF-8");
        let secret = std::fs::read_to_string(&path).expect("key file");
        // The secret is in the file only: never printed.
        // An skey is PRIVATE+KEY+<name>+<id>+<base64 seed> (base64 may hold '+'); ours ends
        // in the hex seed.
        let secret = secret.trim();
        let secret_part = match secret.strip_prefix("PRIVATE+KEY+") {
            Some(rest) => rest.splitn(3, '+').nth(2).expect("an skey"),
            None => secret.rsplit(' ').next().expect("a seed"),
        };
        assert!(secret_part.len() >= 44, "{secret_part}");
        assert!(!text(&out).contains(secret_part), "the secret was printed");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{file}");
        }
        public.trim().to_string()
    };
    let service = key("service", "example-service", "service.key");
    let log = key("log", "example.org/hashguard/manifests", "log.key");
    std::fs::write(dir.path().join("log.vkey"), format!("log {log}\n")).expect("write");
    let org1 = key("organisation", "org-a", "org1.key");
    let org2 = key("organisation", "org-b", "org2.key");
    // A key file is never overwritten.
    let again = hashguard(&[
        "keys",
        "generate",
        "--kind",
        "service",
        "--name",
        "x",
        "--out",
        &s(&dir.path().join("service.key")),
    ]);
    assert!(!again.status.success());
    assert!(
        text(&again).contains("refusing to overwrite"),
        "{}",
        text(&again)
    );
    let d = Deployment {
        trust: dir.path().join("trust.txt"),
        dir,
        db,
    };
    d.build("table");
    let summary = std::fs::read_to_string(d.path("table").join("manifest.txt")).expect("summary");
    let deployment = summary
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("deployment "))
        .expect("a deployment line")
        .to_string();
    std::fs::write(
        &d.trust,
        format!(
            "deployment {deployment}\nservice-key {service}\norganisation 1 GB {org1} Stand-in Org A\norganisation 2 US {org2} Stand-in Org B\nlog {log}\n{}",
            policy(d.dir.path())
        ),
    )
    .expect("trust file");
    d
}

/// Copies a folder tree.
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read_dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

fn flip(path: &Path, at: usize) {
    let mut bytes = std::fs::read(path).expect("read");
    let at = at.min(bytes.len() - 1);
    bytes[at] ^= 0x01;
    std::fs::write(path, bytes).expect("write");
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read_dir") {
        let p = entry.expect("entry").path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out.sort();
    out
}

/// Serves `root` over HTTP on loopback (GET only, one connection at a time) under `/v1/log/`.
fn serve_folder(root: PathBuf) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().expect("clone"));
            let mut request = String::new();
            if reader.read_line(&mut request).is_err() {
                continue;
            }
            loop {
                let mut header = String::new();
                match reader.read_line(&mut header) {
                    Ok(0) | Err(_) => break,
                    Ok(_) if header == "\r\n" => break,
                    Ok(_) => {}
                }
            }
            let path = request.split_whitespace().nth(1).unwrap_or("");
            let file = path
                .strip_prefix("/v1/log/")
                .filter(|p| !p.split('/').any(|c| c == ".." || c.is_empty()))
                .map(|p| root.join(p));
            let (status, body) = match file.map(std::fs::read) {
                Some(Ok(body)) => ("200 OK", body),
                _ => ("404 Not Found", b"not found\n".to_vec()),
            };
            let head = format!(
                "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(&body);
        }
    });
    format!("http://{addr}/v1/log/")
}

#[test]
fn cosign_publish_verify_and_audit_the_manifest_log() {
    let d = deployment();

    // Two organisations in two jurisdictions run their checks and co-sign epoch 1.
    for org in [1, 2] {
        let out = d.cosign("table", org);
        let t = text(&out);
        assert!(out.status.success(), "{t}");
        assert!(t.contains("DLEQ proofs: ok"), "{t}");
        assert!(t.contains("build.json counts: ok"), "{t}");
        assert!(t.contains("co-signed epoch 1"), "{t}");
    }
    let cosig = std::fs::read_to_string(d.path("table/cosignatures/1")).expect("co-signature");
    assert!(cosig.starts_with("hashguard-cosignature v1\norganisation 1\nepoch 1\n"));
    let state = std::fs::read_to_string(d.path("org1.state")).expect("state");
    assert!(state.starts_with("epoch 1 "), "{state}");
    // Co-signing the same manifest again is harmless (the same signature).
    assert!(d.cosign("table", 1).status.success());
    assert_eq!(
        std::fs::read_to_string(d.path("table/cosignatures/1")).expect("co-signature"),
        cosig
    );

    // Another manifest for epoch 1 (built again elsewhere): organisation 1 refuses it, and
    // neither its state nor any co-signature file changes.
    d.build("table-other");
    let out = d.cosign("table-other", 1);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains(
            "refusing to co-sign epoch 1: organisation 1 already co-signed another manifest for epoch 1"
        ),
        "{}",
        text(&out)
    );
    assert_eq!(
        std::fs::read_to_string(d.path("org1.state")).expect("state"),
        state
    );
    assert!(!d.path("table-other/cosignatures/1").exists());

    // A copy with organisation 2's co-signature altered (kept for the last part).
    copy_tree(&d.path("table"), &d.path("table-badcosig"));
    let bad = d.path("table-badcosig/cosignatures/2");
    let original = std::fs::read_to_string(&bad).expect("read");
    let at = original.find("\nsignature ").expect("a signature line") + "\nsignature ".len();
    let mut altered = original.clone();
    let digit = if &original[at..=at] == "0" { "1" } else { "0" };
    altered.replace_range(at..=at, digit);
    std::fs::write(&bad, altered).expect("write");

    // Publish: signed, logged, printed as the settings screen shows it, accepted as a client.
    let out = d.publish("table", true);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(t.contains("logged epoch 1 as entry 0"), "{t}");
    assert!(
        t.contains("Safety database: epoch 1 · root ")
            && t.contains(" · logged as entry 0 of 1 · not witnessed"),
        "{t}"
    );
    assert!(t.contains("verified as a client would"), "{t}");
    // Publishing again does not append twice.
    let out = d.publish("table", true);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("already the log's entry 0"),
        "{}",
        text(&out)
    );

    // Epoch 2: built, co-signed by both, published as entry 1 of 2.
    d.build("table");
    for org in [1, 2] {
        let out = d.cosign("table", org);
        assert!(out.status.success(), "{}", text(&out));
    }
    let out = d.publish("table", true);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(t.contains("logged as entry 1 of 2"), "{t}");
    assert!(!t.contains("ignored"), "{t}");

    // A client accepts epoch 2; the settings line names it.
    let log = s(&d.path("table/log"));
    let out = d.log_cmd("verify", &log, &[]);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(t.contains("Safety database: epoch 2 · root "), "{t}");
    assert!(
        t.contains("co-signed by Stand-in Org A (GB), Stand-in Org B (US)"),
        "{t}"
    );

    // The audit passes, with the table roots recomputed from the shard files.
    let out = d.log_cmd("audit", &log, &["--tables", &s(&d.path("table"))]);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(
        t.contains("2 manifests, epochs 1 to 2, one per epoch, the chain intact"),
        "{t}"
    );
    assert!(t.contains("recomputed from the shard files"), "{t}");
    assert!(t.contains("audit: ok"), "{t}");
    // And over HTTP, from the layout the service serves under /v1/log/.
    let url = serve_folder(d.path("table/log"));
    let out = d.log_cmd("audit", &url, &[]);
    assert!(out.status.success(), "{}", text(&out));
    let out = d.log_cmd("verify", &url, &[]);
    assert!(out.status.success(), "{}", text(&out));

    // A client pinning another service key refuses the log.
    let trust = std::fs::read_to_string(&d.trust).expect("trust");
    let other = d.path("other-trust.txt");
    let other_key = hashguard_ok(&[
        "keys",
        "generate",
        "--kind",
        "service",
        "--name",
        "other",
        "--out",
        &s(&d.path("other-service.key")),
    ]);
    let swapped: String = trust
        .lines()
        .map(|l| {
            if l.starts_with("service-key ") {
                format!("service-key {}\n", other_key.trim())
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    std::fs::write(&other, swapped).expect("write");
    let out = hashguard(&["log", "verify", "--log", &log, "--trust", &s(&other)]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("service's signature"), "{}", text(&out));

    // Tampering: each change to a copy of the log is found and named.
    let tampered = |name: &str, change: &dyn Fn(&Path) -> String| -> String {
        let copy = d.path(name);
        copy_tree(&d.path("table/log"), &copy);
        let named = change(&copy);
        let out = d.log_cmd("audit", &s(&copy), &[]);
        let t = text(&out);
        assert_eq!(out.status.code(), Some(1), "{name}: {t}");
        assert!(t.contains("audit FAILED"), "{name}: {t}");
        assert!(t.contains(&named), "{name}: expected {named:?} in {t}");
        t
    };
    // A hash tile.
    tampered("log-tile", &|log| {
        let tile = log.join("tile/0/000.p/2");
        flip(&tile, 5);
        s(tile.strip_prefix(log).expect("inside"))
    });
    // An entry (inside entry 1's manifest hash, in the entry bundle).
    tampered("log-entry", &|log| {
        let bundle = log.join("tile/entries/000.p/2");
        let first_len = {
            let b = std::fs::read(&bundle).expect("read");
            usize::from(u16::from_be_bytes([b[0], b[1]]))
        };
        flip(&bundle, 2 + first_len + 2 + 80);
        format!(
            "{}: entry 1 is not",
            s(bundle.strip_prefix(log).expect("inside"))
        )
    });
    // A manifest file.
    tampered("log-manifest", &|log| {
        let manifests = walk(&log.join("manifests"));
        flip(&manifests[0], 100);
        s(manifests[0].strip_prefix(log).expect("inside"))
    });

    // A co-signature: the service must refuse to publish it against the trust file; published
    // without one (the service cannot check what it does not pin), the audit names it.
    let out = d.publish("table-badcosig", true);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("refusing to publish epoch 1: organisation 2 (Stand-in Org B)'s co-signature is not valid"),
        "{}",
        text(&out)
    );
    assert!(!d.path("table-badcosig/log").exists(), "nothing was logged");
    let out = d.publish("table-badcosig", false);
    assert!(out.status.success(), "{}", text(&out));
    let out = d.log_cmd("audit", &s(&d.path("table-badcosig/log")), &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains(
            "entry 0 (epoch 1): organisation 2 (Stand-in Org B)'s co-signature is not valid"
        ),
        "{}",
        text(&out)
    );
    let out = d.log_cmd("verify", &s(&d.path("table-badcosig/log")), &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("organisation 2's co-signature is not valid"),
        "{}",
        text(&out)
    );
}

#[test]
fn log_verify_with_state_follows_the_log_and_catches_a_fork() {
    let d = deployment();
    let state = s(&d.path("client.state"));
    let log = s(&d.path("table/log"));
    let publish_epoch = |table: &str, states: [&str; 2]| {
        for (org, st) in [1, 2].into_iter().zip(states) {
            let out = d.cosign_with_state(table, org, st);
            assert!(out.status.success(), "{}", text(&out));
        }
        let out = d.publish(table, true);
        assert!(out.status.success(), "{}", text(&out));
    };
    publish_epoch("table", ["org1.state", "org2.state"]);
    let out = d.log_cmd("verify", &log, &["--state", &state]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("state: first acceptance"),
        "{}",
        text(&out)
    );
    // The folder and the organisations' states as of epoch 1, for a second history below.
    copy_tree(&d.path("table"), &d.path("fork"));
    for org in [1, 2] {
        std::fs::copy(
            d.path(&format!("org{org}.state")),
            d.path(&format!("org{org}-fork.state")),
        )
        .expect("copy");
    }

    d.build("table");
    publish_epoch("table", ["org1.state", "org2.state"]);
    let out = d.log_cmd("verify", &log, &["--state", &state]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("extends the one of 1 accepted before (epoch 1 then, 2 now)"),
        "{}",
        text(&out)
    );
    // The same log again is fine.
    assert!(d
        .log_cmd("verify", &log, &["--state", &state])
        .status
        .success());
    let kept = std::fs::read(&state).expect("state");

    // A second history under the same keys from epoch 2 on (the service with two
    // organisations that ignored their co-signer state): the same size, another root. (Another
    // validity window makes another manifest even when both builds fall in the same second.)
    d.build_with("fork", &["--valid-days", "29"]);
    publish_epoch("fork", ["org1-fork.state", "org2-fork.state"]);
    // Without state, a client cannot tell: the forked log is valid on its own.
    let fork = s(&d.path("fork/log"));
    assert!(d.log_cmd("verify", &fork, &[]).status.success());
    // With state, the fork is caught and printed as evidence; the state is not changed.
    let out = d.log_cmd("verify", &fork, &["--state", &state]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(t.contains("NOT accepted: the log forked"), "{t}");
    assert!(
        t.contains("the evidence, for auditors and witnesses:"),
        "{t}"
    );
    assert!(t.contains("example.org/hashguard/manifests"), "{t}");
    assert_eq!(std::fs::read(&state).expect("state"), kept);
}

#[test]
fn publishing_needs_two_cosignatures_and_key_files_must_be_private() {
    let d = deployment();
    // Nothing co-signed: nothing is logged.
    let out = d.publish("table", true);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out).contains("refusing to publish epoch 1: 0 co-signature(s)"),
        "{}",
        text(&out)
    );
    // One organisation alone is not enough either.
    assert!(d.cosign("table", 1).status.success());
    let out = d.publish("table", false);
    assert!(text(&out).contains("1 co-signature(s)"), "{}", text(&out));
    assert!(!d.path("table/log").exists());
    // A key file others may read is refused.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let key = d.path("org2.key");
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let out = d.cosign("table", 2);
        assert_eq!(out.status.code(), Some(2));
        assert!(text(&out).contains("chmod 600"), "{}", text(&out));
        // A key of another kind is refused too.
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    }
    std::fs::copy(d.path("service.key"), d.path("org2.key")).expect("copy");
    let out = d.cosign("table", 2);
    assert!(
        text(&out).contains("holds a service key, not an organisation key"),
        "{}",
        text(&out)
    );
}

/// A running `hashguard witness serve`, stopped when dropped.
struct Witness {
    child: std::process::Child,
    url: String,
}

impl Drop for Witness {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts a witness on a loopback port with the key `key`, witnessing the log in `logs`, its
/// state in the SQLite file `db`.
fn start_witness(key: &Path, logs: &Path, db: &Path) -> Witness {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_hashguard"))
        .args([
            "witness",
            "serve",
            "--key",
            &s(key),
            "--logs",
            &s(logs),
            "--db",
            &s(db),
            "--listen",
            "127.0.0.1:0",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the witness starts");
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = BufReader::new(stderr).lines();
    let mut url = None;
    for line in lines.by_ref() {
        let line = line.expect("stderr line");
        if let Some(rest) = line.split("listening on ").nth(1) {
            url = rest.split_whitespace().next().map(str::to_string);
            break;
        }
    }
    // Keep draining its log so it never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    let url = url.expect("the witness says where it listens");
    Witness { child, url }
}

#[test]
fn publish_collects_the_witnesses_quorum_and_refresh_renews_it() {
    let mut started: Vec<(String, Witness)> = Vec::new();
    let d = deployment_with(|dir| {
        let mut policy = String::new();
        for name in ["witness-gb", "witness-de"] {
            let key = dir.join(format!("{name}.key"));
            let vkey = hashguard_ok(&[
                "keys",
                "generate",
                "--kind",
                "witness",
                "--name",
                &format!("{name}.example.org"),
                "--out",
                &s(&key),
            ]);
            let w = start_witness(&key, &dir.join("log.vkey"), &dir.join(format!("{name}.db")));
            policy.push_str(&format!("witness {name} {} {}\n", vkey.trim(), w.url));
            started.push((name.to_string(), w));
        }
        policy.push_str("group gb any witness-gb\ngroup de any witness-de\n");
        policy.push_str("group both all gb de\nquorum both\n");
        policy
    });
    let url = |i: usize| started[i].1.url.clone();

    // Epoch 1: the witnesses are taken from the trust file and both cosign from size 0.
    for org in [1, 2] {
        assert!(d.cosign("table", org).status.success());
    }
    let out = d.publish("table", true);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(
        t.contains("logged as entry 0 of 1 · witnessed by witness-gb, witness-de"),
        "{t}"
    );
    assert!(t.contains("verified as a client would"), "{t}");

    // Epoch 2, witnesses given on the command line: they are asked from size 1.
    d.build("table");
    for org in [1, 2] {
        assert!(d.cosign("table", org).status.success());
    }
    let table = s(&d.path("table"));
    let log_key = s(&d.path("log.key"));
    let trust = s(&d.trust);
    let (gb, de) = (url(0), url(1));
    let out = hashguard(&[
        "table",
        "publish",
        "--table",
        &table,
        "--service-key",
        &s(&d.path("service.key")),
        "--log-key",
        &log_key,
        "--trust",
        &trust,
        "--witness",
        &gb,
        "--witness",
        &de,
    ]);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(
        t.contains("logged as entry 1 of 2 · witnessed by witness-gb, witness-de"),
        "{t}"
    );
    let log = s(&d.path("table/log"));
    let out = d.log_cmd("verify", &log, &[]);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(t.contains("witnessed by witness-gb, witness-de"), "{t}");

    // witness-de loses its state (a new database on a new port): the refresh tells it size 2,
    // it answers 409 with 0, and is caught up from 0. witness-gb simply cosigns again.
    let fresh = start_witness(
        &d.path("witness-de.key"),
        &d.path("log.vkey"),
        &d.path("witness-de-fresh.db"),
    );
    let checkpoint_before = std::fs::read_to_string(d.path("table/log/checkpoint")).expect("cp");
    let out = hashguard(&[
        "log",
        "witness",
        "--table",
        &table,
        "--log-key",
        &log_key,
        "--trust",
        &trust,
        "--witness",
        &gb,
        "--witness",
        &fresh.url,
    ]);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(
        t.contains("checkpoint of 2 entries now cosigned by witness-gb, witness-de"),
        "{t}"
    );
    let checkpoint_after = std::fs::read_to_string(d.path("table/log/checkpoint")).expect("cp");
    // Within the same second the renewed lines are byte-identical (Ed25519 is deterministic);
    // the fresh witness now holds the tree, which it only cosigns after the 409 and retry.
    let _ = checkpoint_before;
    let status = hashguard_ok(&[
        "witness",
        "status",
        "--db",
        &s(&d.path("witness-de-fresh.db")),
    ]);
    assert!(
        status.contains("example.org/hashguard/manifests: size 2 "),
        "{status}"
    );
    assert_eq!(
        checkpoint_after
            .lines()
            .filter(|l| l.starts_with('—'))
            .count(),
        3,
        "the log's signature and one line per witness"
    );

    // A witness that is down is reported and the command fails, keeping the older lines.
    drop(fresh);
    let out = hashguard(&[
        "log",
        "witness",
        "--table",
        &table,
        "--log-key",
        &log_key,
        "--trust",
        &trust,
        "--witness",
        "http://127.0.0.1:9/",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("FAILED"), "{}", text(&out));
    assert_eq!(
        std::fs::read_to_string(d.path("table/log/checkpoint")).expect("cp"),
        checkpoint_after
    );

    // The audit passes under the witness quorum.
    let out = d.log_cmd("audit", &log, &["--tables", &table]);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(t.contains("witness quorum ok (witness-gb at"), "{t}");
}
