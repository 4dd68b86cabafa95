//! Shared helpers of the integration tests: signing, sample messages, and the real binary
//! started on a free port.
#![allow(dead_code)]

pub mod browser;
pub mod fake;
pub mod host;
pub mod logs;
pub mod pool;

use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sha1::{Digest, Sha1};

/// The token every test server is configured with.
pub const TOKEN: &str = "testtoken123";

/// Seconds since the epoch.
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// sha1 of the sorted parts, as WeChat signs.
pub fn sign(parts: &[&str]) -> String {
    let mut parts = parts.to_vec();
    parts.sort_unstable();
    let mut h = Sha1::new();
    for p in parts {
        h.update(p.as_bytes());
    }
    hex::encode(h.finalize())
}

/// `signature=…&timestamp=…&nonce=…` for `token` at `timestamp`.
pub fn signed_query_at(token: &str, timestamp: i64, nonce: &str) -> String {
    let ts = timestamp.to_string();
    format!(
        "signature={}&timestamp={ts}&nonce={nonce}",
        sign(&[token, &ts, nonce])
    )
}

/// A nonce not used before in this process, as WeChat picks a new one for every delivery
/// (the host refuses a signed query it has seen).
pub fn fresh_nonce() -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{}{n}", std::process::id())
}

/// A signed query for [`TOKEN`] now, with a fresh nonce.
pub fn signed_query() -> String {
    signed_query_at(TOKEN, now(), &fresh_nonce())
}

/// A text message from `from`.
pub fn text_xml(from: &str, content: &str, msg_id: u64) -> String {
    format!(
        "<xml><ToUserName><![CDATA[gh_account]]></ToUserName><FromUserName><![CDATA[{from}]]></FromUserName>\
         <CreateTime>1700000000</CreateTime><MsgType><![CDATA[text]]></MsgType>\
         <Content><![CDATA[{}]]></Content><MsgId>{msg_id}</MsgId></xml>",
        content.replace("]]>", "]]]]><![CDATA[>")
    )
}

/// An event from `from`, with an optional EventKey.
pub fn event_xml(from: &str, event: &str, key: Option<&str>) -> String {
    let key = key
        .map(|k| format!("<EventKey><![CDATA[{k}]]></EventKey>"))
        .unwrap_or_default();
    format!(
        "<xml><ToUserName><![CDATA[gh_account]]></ToUserName><FromUserName><![CDATA[{from}]]></FromUserName>\
         <CreateTime>1700000000</CreateTime><MsgType><![CDATA[event]]></MsgType>\
         <Event><![CDATA[{event}]]></Event>{key}</xml>"
    )
}

/// Reads one element's text out of a reply (enough for assertions).
pub fn element(xml: &str, name: &str) -> Option<String> {
    let open = format!("<{name}>");
    let start = xml.find(&open)? + open.len();
    let end = start + xml[start..].find(&format!("</{name}>"))?;
    let raw = &xml[start..end];
    Some(
        raw.replace("]]]]><![CDATA[>", "]]>")
            .trim_start_matches("<![CDATA[")
            .trim_end_matches("]]>")
            .to_string(),
    )
}

/// The real `wechat-lua` binary, serving on a free loopback port; killed on drop.
pub struct Server {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// Every line it has logged so far.
    pub log: Arc<Mutex<Vec<String>>>,
    /// Every line it printed on stdout.
    pub stdout: Arc<Mutex<Vec<String>>>,
}

impl Server {
    /// Starts `wechat-lua serve` with `args` and `envs` and waits until it listens.
    pub fn start(dir: &std::path::Path, args: &[&str], envs: &[(&str, &str)]) -> Server {
        Server::start_on(dir, "127.0.0.1:0", args, envs)
    }

    /// [`Server::start`] listening on `listen` (a port chosen beforehand, for settings that
    /// name the server's own address).
    pub fn start_on(
        dir: &std::path::Path,
        listen: &str,
        args: &[&str],
        envs: &[(&str, &str)],
    ) -> Server {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_wechat-lua"));
        cmd.arg("serve")
            .args(["--listen", listen])
            .args(args)
            .current_dir(dir)
            .env_remove("WECHAT_TOKEN")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("start wechat-lua");
        let log = Arc::new(Mutex::new(Vec::new()));
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        let log_lines = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("listening on http://").nth(1) {
                    let addr = rest.split('/').next().unwrap_or_default().to_string();
                    let _ = tx.send(addr);
                }
                log_lines.lock().unwrap().push(line);
            }
        });
        let out = child.stdout.take().unwrap();
        let out_lines = stdout.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                out_lines.lock().unwrap().push(line);
            }
        });
        let addr = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(addr) => addr,
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "wechat-lua did not start listening; its log:\n{}",
                    log.lock().unwrap().join("\n")
                );
            }
        };
        Server {
            child,
            base: format!("http://{addr}"),
            log,
            stdout,
        }
    }

    /// POSTs a message signed with [`TOKEN`]; returns status and body.
    pub fn post(&self, body: &str) -> (u16, String) {
        self.post_with_query(&signed_query(), body)
    }

    /// POSTs with the given query string.
    pub fn post_with_query(&self, query: &str, body: &str) -> (u16, String) {
        http("POST", &format!("{}/wechat?{query}", self.base), body)
    }

    /// Whether a line logged so far contains `needle`.
    pub fn logged(&self, needle: &str) -> bool {
        self.log.lock().unwrap().iter().any(|l| l.contains(needle))
    }

    /// Waits until a log line contains `needle`.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) -> bool {
        let start = Instant::now();
        while start.elapsed() < timeout {
            if self.log.lock().unwrap().iter().any(|l| l.contains(needle)) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// Sends SIGTERM and waits up to `limit` for the exit status (`None`: still running, and
    /// killed when dropped).
    pub fn terminate_within(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let start = Instant::now();
        while start.elapsed() < limit {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Kills the process with SIGKILL, as a crash or the OOM killer would: no shutdown runs.
    pub fn kill(mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("wait");
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let status = self.child.wait().expect("wait");
        std::mem::forget(self);
        status
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A blocking HTTP request over a throwaway runtime, so synchronous tests can call the server.
pub fn http(method: &str, url: &str, body: &str) -> (u16, String) {
    let (method, url, body) = (method.to_string(), url.to_string(), body.to_string());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let resp = reqwest::Client::new()
            .request(method.parse().unwrap(), url)
            .body(body)
            .send()
            .await
            .expect("request");
        let status = resp.status().as_u16();
        (status, resp.text().await.unwrap_or_default())
    })
}

/// The fake WeChat API on a loopback port, served by its own runtime thread so synchronous
/// tests (driving the real binary) can use it.
pub struct FakeApi {
    /// The fake, for recorded calls and failure injection.
    pub fake: wechat_lua::fake_wechat::FakeWechat,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    _runtime: tokio::runtime::Runtime,
}

impl FakeApi {
    /// Starts the fake.
    pub fn start() -> FakeApi {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let (fake, base) = runtime
            .block_on(wechat_lua::fake_wechat::FakeWechat::start())
            .unwrap();
        FakeApi {
            fake,
            base,
            _runtime: runtime,
        }
    }

    /// Environment for a host talking to this fake.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("WECHAT_TOKEN", TOKEN.to_string()),
            (
                "WECHAT_APPID",
                wechat_lua::fake_wechat::FAKE_APPID.to_string(),
            ),
            (
                "WECHAT_APPSECRET",
                wechat_lua::fake_wechat::FAKE_SECRET.to_string(),
            ),
            ("WECHAT_API_BASE", self.base.clone()),
        ]
    }

    /// Waits until `path` has been called `n` times.
    pub fn wait_for_calls(&self, path: &str, n: usize, timeout: Duration) -> bool {
        let start = Instant::now();
        while start.elapsed() < timeout {
            if self.fake.calls_to(path).len() >= n {
                return true;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        false
    }
}

/// `(name, value)` pairs as `Server::start` takes them.
pub fn env_refs<'a>(env: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    env.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

/// A free loopback port (there is a moment between choosing and binding it; nothing else on
/// a test machine races for it).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits up to 30 s until something listens on loopback `port`; panics naming `what` if
/// nothing does.
pub fn wait_for_port(port: u16, what: &str) {
    let started = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{what} did not listen on port {port} within 30 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
