//! The browser pages of a session in a real headless Chromium: the links `session create`
//! prints, the candidate on real `ssh`. Screenshots of every page go to
//! `target/web-screenshots/`.
//!
//! Needs root (tandemd runs the session's sandbox) and Debian's `chromium` and
//! `chromium-driver` (`.ci/run` installs them).

mod common;
use common::tandem;
use serde_json::Value;
use std::path::PathBuf;
use std::time::Duration;
use tandem_testkit::{Browser, Daemon, SshClient};

const WAIT: Duration = Duration::from_secs(20);
/// WebDriver's Enter key.
const ENTER: &str = "\u{E007}";
/// The terminal's text as the page's DOM holds it (xterm.js's DOM renderer), one line per
/// row, non-breaking spaces as spaces.
const SCREEN: &str = "const rows = document.querySelector('.xterm-rows'); \
     return rows ? [...rows.children].map(r => r.textContent.replace(/\\u00a0/g, ' ')).join('\\n') : '';";

fn screenshot(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../target/web-screenshots")
        .join(name)
}

async fn wait_screen(browser: &Browser, what: &str, needle: &str) -> String {
    let script = format!(
        "{} return t.includes({}) ? t : '';",
        SCREEN.replace("return rows ?", "const t = rows ?"),
        Value::from(needle)
    );
    browser
        .wait_for(what, &script, WAIT)
        .await
        .as_str()
        .unwrap_or_default()
        .to_string()
}

async fn wait_state(browser: &Browser, state: &str) {
    let script = format!(
        "return document.body.dataset.state === {};",
        Value::from(state)
    );
    browser
        .wait_for(&format!("state {state}"), &script, WAIT)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interviewers_and_observers_follow_the_candidate_in_the_browser() {
    tandem_testkit::require_root();
    let dir = common::dir_with_hello_task(
        "tandem-test-web-",
        "name: hello\ntitle: Say hello\ndescription: |\n  Create /tmp/hello.\n\
         difficulty: easy\ntime_limit: 10m\nshell: /bin/bash --norc -i\nenv:\n  PS1: 'box$ '\n\
         check: |\n  test -f /tmp/hello\nsolution: |\n  touch /tmp/hello\n",
    );
    let mut daemon = Daemon::start(dir.path()).await;
    let grpc = daemon.grpc.clone();
    daemon.wait_log("warm sandbox ready").await;
    let browser = Browser::start(1280, 800).await;

    let (code, out, err) = tandem(
        dir.path(),
        &grpc,
        &["-o", "json", "session", "create", "--task", "hello"],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    let created: Value = serde_json::from_str(&out).unwrap();
    let id = created["id"].as_str().unwrap().to_string();
    let interviewer = created["web"]["interviewer"].as_str().unwrap().to_string();
    let observer = created["web"]["observer"].as_str().unwrap().to_string();
    assert!(
        interviewer.starts_with(&format!("{}/s/{id}/#", daemon.web)),
        "{interviewer}"
    );
    let cmd = created["ssh"]["candidate"].as_str().unwrap();
    let words: Vec<&str> = cmd.split_whitespace().collect();
    let port: u16 = words[2].parse().unwrap();
    let user = words[3].split('@').next().unwrap();
    let mut cand = SshClient::spawn(port, user, 100, 30, &[]);
    cand.expect("box$ ").await;
    cand.send("echo MARK-$((6*7))\r");
    cand.expect("MARK-42").await;

    // The interviewer's page: the late joiner's snapshot, at the candidate's size.
    browser.goto(&interviewer).await;
    wait_state(&browser, "live").await;
    wait_screen(&browser, "the candidate's marker", "MARK-42").await;
    let size = browser
        .eval("return [window.tandem.term.cols, window.tandem.term.rows];")
        .await;
    assert_eq!(size, serde_json::json!([100, 30]), "the candidate's size");
    // Scaled to the window, never reflowed: a small window still shows all 100×30, smaller.
    let fits = "const s = document.getElementById('screen').getBoundingClientRect(); \
         const t = window.tandem.term.element.querySelector('.xterm-screen').getBoundingClientRect(); \
         return t.width > 0 && t.left >= s.left - 1 && t.right <= s.right + 1 \
           && t.top >= s.top - 1 && t.bottom <= s.bottom + 1 \
           && window.tandem.term.cols === 100 && window.tandem.term.rows === 30;";
    browser
        .wait_for("the terminal inside its frame", fits, WAIT)
        .await;
    browser.set_window_size(640, 420).await;
    browser
        .wait_for("the terminal scaled into a small window", fits, WAIT)
        .await;
    browser
        .screenshot(&screenshot("live-small-window.png"))
        .await;
    browser.set_window_size(1280, 800).await;
    let url = browser.eval("return location.href;").await;
    assert!(
        !url.as_str().unwrap().contains('#'),
        "the token leaves the address bar: {url}"
    );
    // Typing from the page reaches the candidate's terminal.
    browser
        .type_into(
            ".xterm-helper-textarea",
            &format!("echo FROM-WEB-$((2+3)){ENTER}"),
        )
        .await;
    cand.expect("FROM-WEB-5").await;
    browser
        .wait_for(
            "the participants with their roles",
            "return [...document.querySelectorAll('#participants li')].map(l => l.dataset.role).sort().join(',') === 'candidate,interviewer';",
            WAIT,
        )
        .await;
    browser
        .screenshot(&screenshot("live-interviewer.png"))
        .await;
    // The interviewer's lock button locks the session for everyone (the badge says so).
    browser
        .eval("document.getElementById('lock-button').click(); return true;")
        .await;
    browser
        .wait_for(
            "the lock badge",
            "return document.getElementById('lock').classList.contains('locked');",
            WAIT,
        )
        .await;
    browser.screenshot(&screenshot("live-locked.png")).await;
    browser
        .eval("document.getElementById('lock-button').click(); return true;")
        .await;
    browser
        .wait_for(
            "the lock badge gone",
            "return !document.getElementById('lock').classList.contains('locked');",
            WAIT,
        )
        .await;

    // The observer's page watches and cannot type.
    browser.goto(&observer).await;
    wait_state(&browser, "live").await;
    wait_screen(&browser, "the screen for the observer", "FROM-WEB-5").await;
    browser
        .type_into(
            ".xterm-helper-textarea",
            &format!("echo OBSERVER-TYPED{ENTER}"),
        )
        .await;
    cand.clear();
    cand.send("echo AFTER-$((1+1))\r");
    cand.expect("AFTER-2").await;
    let screen = wait_screen(&browser, "the candidate's new line", "AFTER-2").await;
    assert!(!screen.contains("OBSERVER-TYPED"), "{screen}");
    assert!(!cand.seen.contains("OBSERVER-TYPED"), "{}", cand.seen);
    browser.screenshot(&screenshot("live-observer.png")).await;

    // A page opened while vim runs shows vim's screen.
    cand.send("vim -u NONE /tmp/notes\r");
    cand.expect("/tmp/notes").await;
    cand.send("iVIM-TEXT-HERE\x1b");
    cand.expect("VIM-TEXT-HERE").await;
    browser.goto(&interviewer).await;
    wait_state(&browser, "live").await;
    let screen = wait_screen(&browser, "vim's screen", "VIM-TEXT-HERE").await;
    assert!(
        screen.lines().skip(1).take(5).all(|l| l.starts_with('~')),
        "vim's empty lines: {screen}"
    );
    browser.screenshot(&screenshot("live-vim.png")).await;
    cand.send(":q!\r");
    cand.expect("box$ ").await;

    // A wrong token is refused.
    browser
        .goto(&format!("{}/s/{id}/#{}", daemon.web, "0".repeat(40)))
        .await;
    wait_state(&browser, "refused").await;
    browser.screenshot(&screenshot("refused.png")).await;

    // The end: the replay, for the interviewer, plays and seeks.
    let (code, _, err) = tandem(dir.path(), &grpc, &["session", "end", &id]).await;
    assert_eq!(code, 0, "{err}");
    let replay = interviewer.replace("/#", "/replay#");
    browser.goto(&replay).await;
    wait_state(&browser, "ready").await;
    browser
        .eval("window.tandemPlayer.play(); return true;")
        .await;
    browser
        .wait_for(
            "the player playing",
            "return document.querySelector('.ap-term') !== null && \
             window.tandemPlayer.getCurrentTime() > 0;",
            WAIT,
        )
        .await;
    // Seek to just after the candidate's `AFTER-2` was printed: the player shows it.
    let cast = std::fs::read_to_string(
        dir.path()
            .join(format!("state/sessions/{id}/recording.cast")),
    )
    .unwrap();
    let at = cast
        .lines()
        .skip(1)
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|e| e[1] == "o" && e[2].as_str().unwrap_or("").contains("AFTER-2"))
        .and_then(|e| e[0].as_f64())
        .expect("the recording has the candidate's AFTER-2");
    browser
        .eval(&format!(
            "window.tandemPlayer.pause(); window.tandemPlayer.seek({}); return true;",
            at + 0.05
        ))
        .await;
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let text = browser
            .eval("const t = document.querySelector('.ap-term'); return t ? t.textContent : '';")
            .await;
        let text = text.as_str().unwrap_or_default();
        if text.contains("AFTER-2") && !text.contains("VIM-TEXT") {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the player did not show the seek to {at}: {text:?}"
        );
        // Polling the page: there is no event to wait on from outside.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    browser.screenshot(&screenshot("replay.png")).await;
    // The observer's token opens no replay.
    browser.goto(&observer.replace("/#", "/replay#")).await;
    wait_state(&browser, "refused").await;
}
