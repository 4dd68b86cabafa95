//! Headless Chromium for the browser tests: Debian's `chromium`, driven over WebDriver by
//! `fantoccini` through Debian's `chromedriver` (package `chromium-driver`), started on a free
//! loopback port and torn down with every browser process it started.
//!
//! The browser tests must really run: a missing `chromium` or `chromedriver` is a loud panic
//! naming the Debian package to install, never a skip (`.ci/run` installs both).

use std::ops::Deref;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use fantoccini::{Client, ClientBuilder};
use serde_json::{json, Value};

use super::{free_port, wait_for_port};

/// What to run to get both packages, for the failure messages.
const INSTALL: &str = "apt-get install -y chromium chromium-driver; .ci/run does";

/// `name` on the PATH, or a panic naming the Debian `package` that provides it.
fn debian_binary(name: &str, package: &str) -> PathBuf {
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "{name} not found on PATH: the browser tests drive headless Chromium; install \
                 Debian's {package} package ({INSTALL})"
            )
        })
}

/// `chromedriver` on a free port, in a process group of its own; the group is killed on drop.
struct Driver {
    child: Child,
    url: String,
}

impl Driver {
    fn start() -> Driver {
        let binary = debian_binary("chromedriver", "chromium-driver");
        let port = free_port();
        let child = Command::new(&binary)
            .arg(format!("--port={port}"))
            // Chromium and its helpers inherit the group: killing chromedriver alone would
            // leave them running after a test that panicked before closing its session.
            .process_group(0)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start {} ({e}): install Debian's chromium-driver package ({INSTALL})",
                    binary.display()
                )
            });
        let driver = Driver {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        wait_for_port(port, "chromedriver");
        driver
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // The group's id is chromedriver's pid, not reused before the `wait` below reaps it.
        let group = format!("-{}", self.child.id());
        let killed = Command::new("kill")
            .args(["-KILL", "--", &group])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !killed {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// A WebDriver session with headless Chromium, used as its [`Client`]. Dropping it (a test's
/// end, or a panic) kills chromedriver and every browser process it started;
/// [`Browser::close`] first ends the session cleanly.
pub struct Browser {
    client: Client,
    // Dropped after the client, so the session's shutdown request has a driver to reach.
    driver: Driver,
}

impl Browser {
    /// Starts chromedriver and opens a headless Chromium window of `width`×`height` with the
    /// WebDriver `page_load_strategy` (`"normal"` waits for every resource, `"eager"` only for
    /// the document).
    pub async fn start(width: u32, height: u32, page_load_strategy: &str) -> Browser {
        let chromium = debian_binary("chromium", "chromium");
        let driver = Driver::start();
        let capabilities = json!({
            "browserName": "chrome",
            "pageLoadStrategy": page_load_strategy,
            "goog:chromeOptions": {
                "binary": chromium,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", format!("--window-size={width},{height}")],
            },
        });
        let Value::Object(capabilities) = capabilities else {
            unreachable!("a JSON object literal")
        };
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(capabilities)
            .connect(&driver.url)
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "no WebDriver session with headless Chromium ({e}); chromedriver is up, so \
                     check that {} runs (Debian's chromium package: {INSTALL})",
                    chromium.display()
                )
            });
        Browser { client, driver }
    }

    /// The process group of chromedriver and the browser it started, for checking that
    /// nothing of it outlives the test.
    pub fn process_group(&self) -> u32 {
        self.driver.child.id()
    }

    /// Ends the WebDriver session (closing the browser), then kills what is left of the
    /// group.
    pub async fn close(self) {
        let Browser { client, driver } = self;
        client.close().await.expect("end the WebDriver session");
        drop(driver);
    }
}

impl Deref for Browser {
    type Target = Client;

    fn deref(&self) -> &Client {
        &self.client
    }
}
