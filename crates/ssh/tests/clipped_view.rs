//! A viewer with a smaller window than the candidate's, with real OpenSSH clients on
//! pseudo-terminals: it sees the part of the screen around the cursor, unwrapped, with a
//! marker line, equal to the candidate's own screen there; it switches to the full raw
//! view when it grows and back when it shrinks; a small interviewer can type.
//!
//! Needs root: the session runs a real sandbox (namespaces, cgroups).

mod common;
use common::*;

/// Rows `top..top+n` of `screen`, columns `0..width`, as text without trailing blanks.
fn region(screen: &vt100::Screen, top: u16, n: u16, width: u16) -> Vec<String> {
    (top..top + n)
        .map(|r| {
            (0..width)
                .map(|c| match screen.cell(r, c) {
                    Some(cell) if !cell.contents().is_empty() => cell.contents().to_string(),
                    _ => " ".to_string(),
                })
                .collect::<String>()
                .trim_end()
                .to_string()
        })
        .collect()
}

/// Where the viewer's first `rows - 1` rows are in the candidate's screen, if they are.
fn offset(candidate: &vt100::Screen, viewer: &vt100::Screen, rows: u16, cols: u16) -> Option<u16> {
    let shown = region(viewer, 0, rows - 1, cols);
    let (total, _) = candidate.size();
    (0..=total.get() - (rows - 1)).find(|top| region(candidate, *top, rows - 1, cols) == shown)
}

/// Lets both clients take what is still on its way (at most 10 s), until the viewer's
/// screen is a region of the candidate's that holds the candidate's cursor (a screen read
/// halfway through a redraw, e.g. vim's status line written and the cursor not yet back,
/// is not settled).
async fn settle(cand: &mut SshClient, viewer: &mut SshClient, rows: u16, cols: u16) {
    for _ in 0..100 {
        let (cursor, _) = cand.screen.screen().cursor_position();
        if offset(cand.screen.screen(), viewer.screen.screen(), rows, cols)
            .is_some_and(|top| (top..top + rows - 1).contains(&cursor))
        {
            return;
        }
        cand.read_for(std::time::Duration::from_millis(50)).await;
        viewer.read_for(std::time::Duration::from_millis(50)).await;
    }
}

/// The viewer's first `rows - 1` rows equal the candidate's screen at some offset that
/// holds the candidate's cursor; the last row is the marker. Returns the offset.
fn assert_viewport(candidate: &vt100::Screen, viewer: &vt100::Screen, rows: u16, cols: u16) -> u16 {
    let (total, _) = candidate.size();
    let (cursor, _) = candidate.cursor_position();
    let top = offset(candidate, viewer, rows, cols).unwrap_or_else(|| {
        panic!(
            "the viewer's screen is no region of the candidate's:\n{}\n---\n{}",
            region(viewer, 0, rows - 1, cols).join("\n"),
            region(candidate, 0, total.get(), 100).join("\n")
        )
    });
    assert!(
        (top..top + rows - 1).contains(&cursor),
        "cursor row {cursor} outside rows {top}.."
    );
    let marker = region(viewer, rows - 1, 1, cols).remove(0);
    assert!(marker.contains("tandem: rows"), "{marker:?}");
    top
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_smaller_viewer_sees_a_clipped_screen_that_follows_the_cursor() {
    let server = Server::start().await;
    let (_session, tokens) = server.session(None).await;
    let mut cand = server.ssh(&tokens.candidate, 100, 30);
    cand.expect("demo$ ").await;
    cand.send("printf 'line one\\nline two\\nline three\\n' > /tmp/f; vim -u NONE -n /tmp/f\r");
    cand.expect("3 lines").await;

    // A late observer at 60x15: vim's screen from the top (the cursor is on line 1).
    let mut obs = server.ssh(&tokens.observer, 60, 15);
    obs.expect("tandem: rows 1-14 and columns 1-60 of the 100x30")
        .await;
    settle(&mut cand, &mut obs, 15, 60).await;
    assert_eq!(
        assert_viewport(cand.screen.screen(), obs.screen.screen(), 15, 60),
        0
    );
    assert_eq!(
        region(obs.screen.screen(), 0, 4, 60),
        ["line one", "line two", "line three", "~"]
    );
    // What the observer sees (`--nocapture` prints it).
    eprintln!("{}", region(obs.screen.screen(), 0, 15, 60).join("\n"));

    // Longer than the screen, to its last line: vim scrolls, the viewer follows.
    cand.clear();
    obs.clear();
    cand.send(":r !seq 40\rG");
    cand.expect("line three").await;
    obs.expect("line three").await;
    settle(&mut cand, &mut obs, 15, 60).await;
    let top = assert_viewport(cand.screen.screen(), obs.screen.screen(), 15, 60);
    assert!(top > 0, "the cursor is below the first 14 rows");
    cand.send(":q!\r");
    cand.expect("demo$ ").await;

    // 500 numbered lines: the viewer follows the cursor to the bottom. (Each step ends
    // its output with a `read`, so that both screens are compared at rest.)
    cand.clear();
    obs.clear();
    cand.send("seq -f 'number %g' 500; printf done-%s $((6*7)); read x\r");
    cand.expect("done-42").await;
    obs.expect("done-42").await;
    settle(&mut cand, &mut obs, 15, 60).await;
    let top = assert_viewport(cand.screen.screen(), obs.screen.screen(), 15, 60);
    assert!(top >= 15, "the view is at the bottom: {top}");
    assert!(
        region(obs.screen.screen(), 0, 14, 60)
            .iter()
            .any(|l| l == "number 500")
    );

    // Grown past the candidate's window: the raw stream again, from a snapshot of the
    // whole screen.
    cand.send("\r");
    cand.expect("demo$ ").await;
    obs.clear();
    obs.resize(120, 40);
    for _ in 0..100 {
        if region(obs.screen.screen(), 0, 30, 100) == region(cand.screen.screen(), 0, 30, 100) {
            break;
        }
        obs.read_for(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(
        region(obs.screen.screen(), 0, 30, 100),
        region(cand.screen.screen(), 0, 30, 100)
    );
    assert!(
        region(obs.screen.screen(), 30, 10, 120)
            .iter()
            .all(String::is_empty)
    );
    cand.send("echo grown-$((1+1))\r");
    obs.expect("grown-2").await;
    assert!(!obs.seen.contains("tandem: rows"));
    // Shrunk again: clipped again.
    obs.clear();
    obs.resize(60, 15);
    obs.expect("tandem: rows").await;
    settle(&mut cand, &mut obs, 15, 60).await;
    assert_viewport(cand.screen.screen(), obs.screen.screen(), 15, 60);

    // A 40x10 interviewer types and sees their typing.
    let mut ivy = server.ssh(&tokens.interviewer, 40, 10);
    ivy.expect("tandem: rows").await;
    cand.clear();
    ivy.send("\rprintf typed-by-%s $((2+3)); read x\r");
    cand.expect("typed-by-5").await;
    ivy.expect("typed-by-5").await;
    settle(&mut cand, &mut ivy, 10, 40).await;
    assert_viewport(cand.screen.screen(), ivy.screen.screen(), 10, 40);
}
