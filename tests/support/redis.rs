//! Test support: a private `redis-server` on a free loopback port, killed on drop.
//!
//! Redis tests must really run, so a missing `redis-server` is a loud panic, not a skip.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `redis-server` owned by one test.
pub struct RedisServer {
    child: Child,
    port: u16,
    // Working directory of the server, so nothing lands in the repository.
    _dir: tempfile::TempDir,
}

fn redis_server_binary() -> PathBuf {
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join("redis-server"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("redis-server not found: apt-get install -y redis-server"))
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free loopback port");
    listener.local_addr().expect("local addr").port()
}

fn answers_ping(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    if s.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut buf = [0u8; 7];
    s.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n"
}

/// Whether the server answering on `port` is process `pid`: when two tests probe the same
/// free port, the loser's redis-server cannot bind, yet the winner answers its PING; a test
/// talking to another test's server then loses it when that test ends.
fn is_process(port: u16, pid: u32) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    if s.write_all(b"INFO server\r\n").is_err() {
        return false;
    }
    let mut reply = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = s.read(&mut buf) {
        if n == 0 {
            break;
        }
        reply.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&reply);
        if let Some(rest) = text.split("process_id:").nth(1) {
            if let Some((id, _)) = rest.split_once("\r\n") {
                return id.trim() == pid.to_string();
            }
        }
    }
    false
}

impl RedisServer {
    /// Starts a server and waits until it answers PING; panics if it cannot.
    pub fn start() -> Self {
        let binary = redis_server_binary();
        let mut last_failure = String::new();
        // The free port can be taken between probing and binding; try a few.
        for _ in 0..5 {
            let dir = tempfile::tempdir().expect("temp dir for redis-server");
            let port = free_port();
            let mut child = Command::new(&binary)
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                .args(["--save", "", "--appendonly", "no"])
                .arg("--dir")
                .arg(dir.path())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                if let Ok(Some(status)) = child.try_wait() {
                    last_failure = format!("redis-server on port {port} exited: {status}");
                    break;
                }
                if answers_ping(port) {
                    if !is_process(port, child.id()) {
                        let _ = child.kill();
                        let _ = child.wait();
                        last_failure = format!("port {port} was taken by another redis-server");
                        break;
                    }
                    return Self {
                        child,
                        port,
                        _dir: dir,
                    };
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    last_failure = format!("redis-server on port {port} did not answer PING");
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        panic!("could not start redis-server: {last_failure}");
    }

    /// Stops the server with SIGSTOP: connections stay open, commands queue unanswered, as
    /// with a Redis stalled by a long command, a fork or a paused VM.
    // Not every test binary that includes this file freezes Redis.
    #[allow(dead_code)]
    pub fn freeze(&self) {
        self.signal("-STOP");
    }

    /// Resumes a frozen server (SIGCONT): it then runs the commands queued meanwhile.
    #[allow(dead_code)]
    pub fn thaw(&self) {
        self.signal("-CONT");
    }

    #[allow(dead_code)]
    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill {signal} redis-server");
    }

    /// URL of database `db` on this server.
    pub fn url(&self, db: u8) -> String {
        format!("redis://127.0.0.1:{}/{db}", self.port)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
