//! `hashguard serve` as a person starts it: without a table it says how to publish one and
//! creates nothing; with one it listens on loopback, answers, and stops cleanly on SIGTERM.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::hashguard_ok;

/// Kills the server if the test ends early.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn serve_in(dir: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_hashguard"));
    c.current_dir(dir).arg("serve").args(args);
    c
}

#[test]
fn without_a_table_serve_says_how_to_publish_one_and_creates_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = serve_in(dir.path(), &[]).output().expect("runs");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no published table"), "{err}");
    assert!(err.contains("hashguard table build --out table"), "{err}");
    assert_eq!(
        std::fs::read_dir(dir.path()).expect("dir").count(),
        0,
        "files were created"
    );
    let out = serve_in(dir.path(), &["--listen", "localhost"])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("127.0.0.1:8640"), "{err}");
}

/// One HTTP/1.1 request over a plain socket; the status code.
fn get_status(addr: &str, path: &str) -> u16 {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    // One write: a request sent in pieces can meet a closed connection (a reset) after the
    // server has answered the first piece.
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    s.write_all(request.as_bytes()).expect("request");
    let mut bytes = Vec::new();
    if let Err(e) = s.read_to_end(&mut bytes) {
        panic!("GET {path}: {e} after {} bytes", bytes.len());
    }
    let response = String::from_utf8_lossy(&bytes);
    response
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

#[cfg(unix)]
#[test]
fn serve_answers_on_loopback_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("hashguard.db");
    let db = db.to_str().expect("utf-8 path");
    let standin = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../assets/standin");
    for (bank, org, j, file) in [
        ("standin-a", "Stand-in Org A", "GB", "org-a.txt"),
        ("standin-b", "Stand-in Org B", "US", "org-b.txt"),
    ] {
        hashguard_ok(&[
            "list",
            "--db",
            db,
            "create",
            bank,
            "--org",
            org,
            "--jurisdiction",
            j,
        ]);
        let list = standin.join(file);
        hashguard_ok(&[
            "list",
            "--db",
            db,
            "import",
            bank,
            list.to_str().expect("utf-8 path"),
        ]);
    }
    let table = dir.path().join("table");
    let key = dir.path().join("table.key");
    hashguard_ok(&[
        "table",
        "build",
        "--db",
        db,
        "--out",
        table.to_str().expect("path"),
        "--key",
        key.to_str().expect("path"),
    ]);
    let child = serve_in(dir.path(), &["--listen", "127.0.0.1:0"])
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("serve starts");
    let mut server = Running(child);
    let stderr = server.0.stderr.take().expect("stderr");
    // The first line that names the address; bounded by the reader thread's deadline.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(rest) = line.split("listening on http://").nth(1) {
                let addr = rest.split_whitespace().next().unwrap_or("").to_string();
                let _ = tx.send(addr);
            }
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the server says where it listens");
    assert!(addr.starts_with("127.0.0.1:"), "{addr}");
    assert_eq!(get_status(&addr, "/healthz"), 200);
    assert_eq!(get_status(&addr, "/readyz"), 200);
    assert_eq!(get_status(&addr, "/v1/table/manifest"), 200);
    assert_eq!(get_status(&addr, "/v1/attachments/00"), 401);
    // SIGTERM: it stops accepting, finishes, and exits 0.
    let pid = server.0.id().to_string();
    let killed = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(killed.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = server.0.try_wait().expect("wait") {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the server did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "exit status {status}");
}
