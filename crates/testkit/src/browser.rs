//! A headless Chromium driven over the W3C WebDriver protocol (Debian's `chromium` and
//! `chromium-driver`): the few commands tandem's browser tests need, over plain HTTP/1.1
//! to a `chromedriver` on a port the kernel picks.

use serde_json::{Value, json};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};

/// One browser window (chromedriver and Chromium end when dropped).
pub struct Browser {
    _driver: Child,
    port: u16,
    session: String,
    _profile: tempfile::TempDir,
}

/// Whether chromedriver is installed (tests that need it say so when it is not).
pub fn have_chromium() -> bool {
    Path::new("/usr/bin/chromedriver").exists() && Path::new("/usr/bin/chromium").exists()
}

impl Browser {
    /// Starts chromedriver and a headless Chromium with a window of `width`×`height`. TLS
    /// certificates are not checked (the tests use the development CA).
    pub async fn start(width: u32, height: u32) -> Self {
        assert!(
            have_chromium(),
            "this test needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)"
        );
        let mut driver = Command::new("/usr/bin/chromedriver")
            .arg("--port=0")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("run chromedriver");
        let stdout = driver.stdout.take().expect("piped stdout");
        let mut lines = BufReader::new(stdout).lines();
        let port = tokio::time::timeout(Duration::from_secs(30), async {
            while let Some(line) = lines.next_line().await.expect("chromedriver output") {
                if let Some(rest) = line.split("started successfully on port ").nth(1) {
                    return rest.trim_end_matches('.').parse::<u16>().expect("a port");
                }
            }
            panic!("chromedriver exited before it was ready");
        })
        .await
        .expect("chromedriver ready within 30 s");
        // Keep reading its stdout so that it never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let profile = tempfile::tempdir().expect("profile dir");
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "acceptInsecureCerts": true,
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--no-first-run", "--disable-extensions",
                    format!("--window-size={width},{height}"),
                    format!("--user-data-dir={}", profile.path().display()),
                ],
            },
        }}});
        let created = request(port, "POST", "/session", Some(caps)).await;
        let session = created["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no WebDriver session: {created}"))
            .to_string();
        Self {
            _driver: driver,
            port,
            session,
            _profile: profile,
        }
    }

    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let path = format!("/session/{}{path}", self.session);
        request(self.port, method, &path, body).await
    }

    /// Opens `url` as a new page (through `about:blank`, so that a link differing only
    /// in its fragment loads anew too).
    pub async fn goto(&self, url: &str) {
        self.call("POST", "/url", Some(json!({"url": "about:blank"})))
            .await;
        self.call("POST", "/url", Some(json!({"url": url}))).await;
    }

    /// Resizes the browser window.
    pub async fn set_window_size(&self, width: u32, height: u32) {
        self.call(
            "POST",
            "/window/rect",
            Some(json!({"width": width, "height": height})),
        )
        .await;
    }

    /// Runs `script` (a function body; `return` gives the value) in the page.
    pub async fn eval(&self, script: &str) -> Value {
        self.call(
            "POST",
            "/execute/sync",
            Some(json!({"script": script, "args": []})),
        )
        .await
    }

    /// Runs `script` until it returns something truthy (not null, false, 0 or ""),
    /// and returns that; panics with `what` and the last value after `timeout`.
    pub async fn wait_for(&self, what: &str, script: &str, timeout: Duration) -> Value {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut last;
        loop {
            last = self.eval(script).await;
            let truthy = match &last {
                Value::Null => false,
                Value::Bool(b) => *b,
                Value::Number(n) => n.as_f64() != Some(0.0),
                Value::String(s) => !s.is_empty(),
                _ => true,
            };
            if truthy {
                return last;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the page did not show {what} within {timeout:?}; last: {last}"
            );
            // Polling a page for a condition: there is no event to wait on from outside.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Types `text` into the element `css` selects (WebDriver's key events).
    pub async fn type_into(&self, css: &str, text: &str) {
        let found = self
            .call(
                "POST",
                "/element",
                Some(json!({"using": "css selector", "value": css})),
            )
            .await;
        let id = found
            .as_object()
            .and_then(|o| o.values().next())
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("no element {css}: {found}"))
            .to_string();
        self.call(
            "POST",
            &format!("/element/{id}/value"),
            Some(json!({"text": text})),
        )
        .await;
    }

    /// Saves a PNG screenshot of the window at `path`.
    pub async fn screenshot(&self, path: &Path) {
        let png = self.call("GET", "/screenshot", None).await;
        let data = base64_decode(png.as_str().expect("base64 PNG"));
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("screenshot dir");
        }
        std::fs::write(path, data).expect("write the screenshot");
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Closing the session ends Chromium; chromedriver is killed with its handle.
        let (port, session) = (self.port, self.session.clone());
        let _ = std::thread::spawn(move || {
            let _ = std::net::TcpStream::connect(("127.0.0.1", port)).and_then(|mut s| {
                use std::io::Write;
                write!(
                    s,
                    "DELETE /session/{session} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
                )?;
                // The answer comes once Chromium has quit (the connection stays open).
                s.set_read_timeout(Some(Duration::from_secs(10)))?;
                std::io::Read::read(&mut s, &mut [0u8; 4096])
            });
        })
        .join();
    }
}

/// One WebDriver request; returns its `value`, panics on an error answer.
async fn request(port: u16, method: &str, path: &str, body: Option<Value>) -> Value {
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect to chromedriver");
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\
         Content-Type: application/json; charset=utf-8\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.expect("send");
    stream.write_all(body.as_bytes()).await.expect("send");
    // chromedriver keeps the connection open: read the head, then Content-Length bytes.
    let mut answer = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let (head_len, body_len) = loop {
        let n = stream.read(&mut buf).await.expect("receive");
        assert!(n > 0, "chromedriver closed the connection mid-answer");
        answer.extend_from_slice(&buf[..n]);
        if let Some(end) = answer.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&answer[..end]).to_ascii_lowercase();
            let len = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok())
                .expect("chromedriver answers with a Content-Length");
            break (end + 4, len);
        }
    };
    while answer.len() < head_len + body_len {
        let n = stream.read(&mut buf).await.expect("receive");
        assert!(n > 0, "chromedriver closed the connection mid-answer");
        answer.extend_from_slice(&buf[..n]);
    }
    let body = String::from_utf8_lossy(&answer[head_len..head_len + body_len]).into_owned();
    let value: Value = serde_json::from_str(&body)
        .unwrap_or_else(|e| panic!("WebDriver {method} {path}: {e}: {body}"));
    if value["value"]["error"].is_string() {
        panic!("WebDriver {method} {path}: {}", value["value"]);
    }
    value["value"].clone()
}

fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0);
    for c in text.bytes().filter_map(value) {
        acc = (acc << 6) | c;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}
