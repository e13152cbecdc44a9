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
    wait_text(browser, what, SCREEN, needle).await
}

/// Waits until the text `script` returns (a `return …;` expression) contains `needle`;
/// returns that text.
async fn wait_text(browser: &Browser, what: &str, script: &str, needle: &str) -> String {
    let script = format!(
        "const t = (() => {{ {script} }})(); return t.includes({}) ? t : '';",
        Value::from(needle)
    );
    browser
        .wait_for(what, &script, WAIT)
        .await
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// The timeline panel's entries, one per line: `kind text | by`.
const TIMELINE: &str = "return [...document.querySelectorAll('#timeline-entries li')].map(li => \
     li.dataset.kind + ' ' + li.querySelector('.text').textContent + ' | ' + \
     (li.querySelector('.by') ? li.querySelector('.by').textContent : '')).join('\\n');";

/// Waits until the timeline panel has a line containing `needle`; returns the panel's text.
async fn wait_timeline(browser: &Browser, what: &str, needle: &str) -> String {
    wait_text(browser, what, TIMELINE, needle).await
}

/// Waits until the interviewer's result line starts with `prefix`.
async fn wait_result(browser: &Browser, prefix: &str) {
    let script = format!(
        "return document.getElementById('result').textContent.startsWith({});",
        Value::from(prefix)
    );
    browser.wait_for(prefix, &script, WAIT).await;
}

/// Clicks the element `css` (after `before`, e.g. answering confirm dialogs).
async fn click(browser: &Browser, css: &str) {
    let script = format!(
        "window.confirm = () => true; document.querySelector({}).click(); return true;",
        Value::from(css)
    );
    browser.eval(&script).await;
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
         difficulty: easy\ntime_limit: 10m\nhostname: box\n\
         check: |\n  if test -f /tmp/hello; then echo 'PASS hello'; else echo 'FAIL hello: no /tmp/hello'; exit 1; fi\n\
         hints:\n  - Look in /tmp.\n  - touch /tmp/hello\nsolution: |\n  touch /tmp/hello\n",
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
    cand.expect("root@box:").await;
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
    // There the panel is a drawer, closed until asked for, over the terminal.
    let panel_shown = "return document.querySelector('aside').offsetWidth > 0;";
    assert_eq!(browser.eval(panel_shown).await, false, "a closed drawer");
    click(&browser, "#panel-button").await;
    browser.wait_for("the drawer open", panel_shown, WAIT).await;
    browser
        .screenshot(&screenshot("live-small-window-panel.png"))
        .await;
    click(&browser, "#panel-button").await;
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

    // The timeline follows the session live: the candidate's command (typed before the
    // page opened) and the interviewer's, each with its author.
    wait_timeline(
        &browser,
        "the candidate's command",
        "command $ echo MARK-$((6*7))",
    )
    .await;
    wait_timeline(
        &browser,
        "the interviewer's command",
        "command $ echo FROM-WEB-$((2+3)) | interviewer (#",
    )
    .await;
    // What the candidate types is text on the page, never markup.
    cand.send("echo '<img src=x id=injected>' > /dev/null\r");
    wait_timeline(
        &browser,
        "the candidate's markup as text",
        "command $ echo '<img src=x id=injected>' > /dev/null",
    )
    .await;
    assert_eq!(
        browser
            .eval("return document.getElementById('injected') === null;")
            .await,
        true,
        "the candidate's <img> became an element"
    );
    // Check: the result, the entry and the condition.
    click(&browser, "#check-button").await;
    wait_result(
        &browser,
        "check failed (0/1 conditions): FAIL hello: no /tmp/hello",
    )
    .await;
    wait_timeline(&browser, "the failed check", "check failed: FAIL hello").await;
    browser
        .wait_for(
            "the failing condition",
            "return document.querySelector('#timeline [data-condition=\"hello\"].fail') !== null;",
            WAIT,
        )
        .await;
    // Hint: revealed to the candidate, who reads it with `hint` over ssh.
    click(&browser, "#hint-button").await;
    wait_result(&browser, "hint 1/2 revealed: Look in /tmp.").await;
    cand.expect("hint 1/2 revealed").await;
    cand.send("hint\r");
    cand.expect("Hint 1: Look in /tmp.").await;
    wait_timeline(&browser, "the hint", "hint hint 1/2: Look in /tmp.").await;
    browser
        .wait_for(
            "the hint button at the next hint",
            "return document.getElementById('hint-button').textContent === 'hint 2/2';",
            WAIT,
        )
        .await;
    // A private note, taken with Enter.
    browser
        .type_into("#note-text", &format!("slow on the first part{ENTER}"))
        .await;
    wait_timeline(
        &browser,
        "the note",
        "note slow on the first part | web interviewer",
    )
    .await;
    assert!(
        !cand.seen.contains("slow on the first part"),
        "a note never reaches the candidate: {}",
        cand.seen
    );
    // Solved: the check passes, the condition and the task say since when.
    cand.send("touch /tmp/hello\r");
    wait_timeline(&browser, "the fix", "command $ touch /tmp/hello").await;
    click(&browser, "#check-button").await;
    wait_result(&browser, "check passed (1/1 conditions)").await;
    browser
        .wait_for(
            "solved, with the condition passing",
            "return document.querySelector('#timeline .solved') !== null && \
             document.querySelector('#timeline [data-condition=\"hello\"].ok') !== null;",
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
    assert_eq!(
        browser
            .eval("return window.tandem.term.options.disableStdin;")
            .await,
        true,
        "a locked interviewer's page takes no keys"
    );
    wait_timeline(
        &browser,
        "the lock, with who locked",
        "lock terminal locked: only the candidate types | web interviewer",
    )
    .await;
    browser
        .eval("document.getElementById('lock-button').click(); return true;")
        .await;
    browser
        .wait_for(
            "the lock badge gone, the keys back",
            "return !document.getElementById('lock').classList.contains('locked') \
               && window.tandem.term.options.disableStdin === false;",
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
    // The observer follows the timeline too, without the interviewers' notes (the passed
    // check, recorded after the note, is there: the note was read and left out) and
    // without the interviewer's buttons.
    let timeline = wait_timeline(&browser, "the observer's timeline", "check passed").await;
    assert!(timeline.contains("hint hint 1/2"), "{timeline}");
    assert!(!timeline.contains("slow on the first part"), "{timeline}");
    let hidden = browser
        .eval(
            "return [document.getElementById('actions').hidden, \
             document.getElementById('note').hidden];",
        )
        .await;
    assert_eq!(
        hidden,
        serde_json::json!([true, true]),
        "no buttons for an observer"
    );
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
    cand.clear();
    cand.send(":q!\r");
    cand.expect("root@box:").await;
    // Reset from the page: a fresh box (the fix is gone), on the timeline.
    cand.clear();
    click(&browser, "#reset-button").await;
    cand.expect("web interviewer reset the box").await;
    wait_timeline(
        &browser,
        "the reset",
        "reset reset the box | web interviewer",
    )
    .await;
    cand.send("test -f /tmp/hello || echo GONE-$((3*3))\r");
    cand.expect("GONE-9").await;

    // A wrong token is refused.
    browser
        .goto(&format!("{}/s/{id}/#{}", daemon.web, "0".repeat(40)))
        .await;
    wait_state(&browser, "refused").await;
    browser.screenshot(&screenshot("refused.png")).await;

    // The end, from the interviewer's page; the page then links the replay, which plays
    // and seeks.
    browser.goto(&interviewer).await;
    wait_state(&browser, "live").await;
    click(&browser, "#end-button").await;
    wait_state(&browser, "ended").await;
    cand.expect("ended by web interviewer").await;
    browser
        .wait_for(
            "the replay link",
            "return document.getElementById('replay-link') !== null;",
            WAIT,
        )
        .await;
    click(&browser, "#replay-link").await;
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
    // The timeline beside the player, notes included; clicking an entry seeks there: the
    // first check (before the observer's part: no AFTER yet), then the AFTER command.
    wait_timeline(
        &browser,
        "the replay's timeline",
        "note slow on the first part",
    )
    .await;
    assert_eq!(
        browser
            .eval("return document.querySelector('#timeline .hints').textContent;")
            .await,
        "hints revealed: 1 of 2",
        "the task's hints, as recorded at the session's start"
    );
    let on_screen = |entry: &'static str, shown: &'static str, hidden: &'static str| {
        let browser = &browser;
        async move {
            let script = format!(
                "const li = [...document.querySelectorAll('#timeline-entries li')]\
                   .find(li => li.textContent.includes({})); li.click(); return true;",
                Value::from(entry)
            );
            browser.eval(&script).await;
            let script = format!(
                "const t = document.querySelector('.ap-term').textContent; \
                 return t.includes({}) && !t.includes({}) && \
                   document.querySelector('#timeline-entries li.current') !== null;",
                Value::from(shown),
                Value::from(hidden)
            );
            browser
                .wait_for(&format!("the player at {entry:?}"), &script, WAIT)
                .await;
        }
    };
    on_screen("check failed: FAIL hello", "FROM-WEB-5", "AFTER-").await;
    on_screen("$ echo AFTER-$((1+1))", "echo AFTER-$((1+1))", "VIM-TEXT").await;
    browser.screenshot(&screenshot("replay.png")).await;
    // The observer's token opens no replay.
    browser.goto(&observer.replace("/#", "/replay#")).await;
    wait_state(&browser, "refused").await;
}
