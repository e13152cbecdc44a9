//! The web front end's doors against a hostile client, without a browser: wrong and
//! candidate tokens, oversized bodies and WebSocket messages, sockets without the cookie
//! or from another origin, the live cookie after the end, the replay for interviewers
//! only, and the per-address limit on failed logins.
//!
//! Needs root: tandemd runs the session's sandbox (namespaces, cgroups).

mod common;
use common::tandem;
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use std::path::Path;
use std::sync::Arc;
use tandem_testkit::Daemon;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{self, Message};

/// A TLS connection to the web front end, trusting the daemon's CA.
async fn tls(certs: &Path, port: u16) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let mut roots = rustls::RootCertStore::empty();
    let pem = std::fs::read(certs.join("ca.crt")).unwrap();
    for cert in rustls_pki_certs(&pem) {
        roots.add(cert).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect("localhost".try_into().unwrap(), tcp)
        .await
        .unwrap()
}

fn rustls_pki_certs(pem: &[u8]) -> Vec<rustls::pki_types::CertificateDer<'static>> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::CertificateDer::pem_slice_iter(pem)
        .map(Result::unwrap)
        .collect()
}

/// One HTTP/1.1 request: (status, head, body).
async fn https(
    certs: &Path,
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String, String) {
    let mut stream = tls(certs, port).await;
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost:{port}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await.unwrap();
    // A server may answer (413) before it read an oversized body: ignore a reset here.
    let _ = stream.write_all(body).await;
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer).await;
    let text = String::from_utf8_lossy(&answer).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, head.to_string(), body.to_string())
}

/// The cookie a successful login set (`tandem=…`).
fn cookie(head: &str) -> String {
    head.lines()
        .find_map(|l| l.strip_prefix("set-cookie: "))
        .and_then(|c| c.split(';').next())
        .unwrap_or_else(|| panic!("no cookie in {head}"))
        .to_string()
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>;

/// Opens the live WebSocket: Ok(socket), or Err(HTTP status) when refused.
async fn socket(
    certs: &Path,
    port: u16,
    id: &str,
    cookie: Option<&str>,
    origin: &str,
) -> Result<Socket, u16> {
    let mut request = format!("wss://localhost:{port}/s/{id}/ws")
        .into_client_request()
        .unwrap();
    let headers = request.headers_mut();
    headers.insert("origin", origin.parse().unwrap());
    if let Some(cookie) = cookie {
        headers.insert("cookie", cookie.parse().unwrap());
    }
    let stream = tls(certs, port).await;
    match tokio_tungstenite::client_async(request, stream).await {
        Ok((socket, _)) => Ok(socket),
        Err(tungstenite::Error::Http(response)) => Err(response.status().as_u16()),
        Err(e) => panic!("WebSocket handshake: {e}"),
    }
}

/// A daemon started with `args` and a live session of the hello task: the daemon, the
/// certificates directory, the web port, the pages' origin and `session create`'s JSON.
async fn daemon_with_session(
    dir: &Path,
    args: &[&str],
) -> (Daemon, std::path::PathBuf, u16, String, Value) {
    let daemon = Daemon::start_with(dir, args).await;
    let certs = dir.join("certs");
    let port: u16 = daemon.web.rsplit(':').next().unwrap().parse().unwrap();
    let origin = format!("https://localhost:{port}");
    let (code, out, err) = tandem(
        dir,
        &daemon.grpc,
        &["-o", "json", "session", "create", "--task", "hello"],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    let created: Value = serde_json::from_str(&out).unwrap();
    (daemon, certs, port, origin, created)
}

/// The hello task, a bare shell.
const HELLO: &str = "name: hello\ntitle: Say hello\ndescription: |\n  Nothing.\ndifficulty: easy\n\
     time_limit: 10m\nshell: /bin/bash --norc -i\nenv:\n  PS1: 'box$ '\n\
     check: |\n  true\nsolution: |\n  true\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_web_front_end_refuses_what_it_should() {
    tandem_testkit::require_root();
    let dir = common::dir_with_hello_task("tandem-test-webauth-", HELLO);
    let (daemon, certs, port, origin, created) = daemon_with_session(dir.path(), &[]).await;
    let id = created["id"].as_str().unwrap().to_string();
    let token = |role: &str| created["tokens"][role].as_str().unwrap().to_string();
    let login = format!("/s/{id}/login");
    let post = |body: String| {
        let (certs, login) = (certs.clone(), login.clone());
        async move { https(&certs, port, "POST", &login, &[], body.as_bytes()).await }
    };

    // Wrong, candidate and oversized: refused, the same way.
    let (status, _, body) = post("0".repeat(40)).await;
    assert_eq!((status, body.as_str()), (403, "refused\n"));
    let (status, _, body) = post(token("candidate")).await;
    assert_eq!(
        (status, body.as_str()),
        (403, "refused\n"),
        "no candidate in the browser"
    );
    let (status, _, _) = post("a".repeat(64 * 1024)).await;
    assert_eq!(status, 413, "a login body is bounded");
    // Another session's path with a good token: refused too.
    let (status, _, _) = https(
        &certs,
        port,
        "POST",
        "/s/00000000-0000-4000-8000-000000000000/login",
        &[],
        token("interviewer").as_bytes(),
    )
    .await;
    assert_eq!(status, 403);

    // The interviewer's token: a cookie for this session's path only.
    let (status, head, body) = post(token("interviewer")).await;
    assert_eq!(status, 200, "{head}{body}");
    let set = head
        .lines()
        .find(|l| l.starts_with("set-cookie: "))
        .unwrap();
    for attribute in [
        &format!("Path=/s/{id}/") as &str,
        "HttpOnly",
        "Secure",
        "SameSite=Strict",
    ] {
        assert!(set.contains(attribute), "{set}");
    }
    let live = cookie(&head);

    // The socket wants the cookie, and a page of this origin.
    assert_eq!(
        socket(&certs, port, &id, None, &origin).await.err(),
        Some(403)
    );
    assert_eq!(
        socket(&certs, port, &id, Some(&live), "https://evil.example")
            .await
            .err(),
        Some(403)
    );
    assert_eq!(
        socket(&certs, port, &id, Some("tandem=0000"), &origin)
            .await
            .err(),
        Some(403)
    );
    // An oversized message closes that socket, and only that one.
    let mut ok = socket(&certs, port, &id, Some(&live), &origin)
        .await
        .unwrap();
    let mut big = socket(&certs, port, &id, Some(&live), &origin)
        .await
        .unwrap();
    let _ = big.send(Message::Binary(vec![b'x'; 1 << 20].into())).await;
    loop {
        match big.next().await {
            None | Some(Err(_)) | Some(Ok(Message::Close(_))) => break,
            Some(Ok(_)) => {}
        }
    }
    ok.send(Message::Text("echo STILL-$((20+1))\r".into()))
        .await
        .unwrap();
    let mut seen = Vec::new();
    while !String::from_utf8_lossy(&seen).contains("STILL-21") {
        match ok.next().await {
            Some(Ok(Message::Binary(bytes))) => seen.extend_from_slice(&bytes),
            Some(Ok(_)) => {}
            other => panic!("the other socket ended: {other:?}"),
        }
    }
    // Actions: interviewers only, from this origin; the CLI sees the lock.
    let action = format!("/s/{id}/action");
    let (_, head, _) = post(token("observer")).await;
    let observer = cookie(&head);
    let act_answer = |cookie: String, origin: Option<String>, verb: String| {
        let (certs, action) = (certs.clone(), action.clone());
        async move {
            let mut headers = vec![("Cookie", cookie.as_str())];
            if let Some(origin) = &origin {
                headers.push(("Origin", origin.as_str()));
            }
            let (status, _, body) =
                https(&certs, port, "POST", &action, &headers, verb.as_bytes()).await;
            (status, body)
        }
    };
    let act = |cookie: String, origin: Option<String>, verb: &'static str| {
        let answer = act_answer(cookie, origin, verb.to_string());
        async move { answer.await.0 }
    };
    for verb in ["lock", "check", "hint", "note\nobserved"] {
        assert_eq!(
            act(observer.clone(), Some(origin.clone()), verb).await,
            403,
            "{verb}"
        );
    }
    // Bad notes and a hint of a task without hints: the status and the reason.
    let (status, body) = act_answer(live.clone(), Some(origin.clone()), "note\n  ".into()).await;
    assert_eq!((status, body.as_str()), (400, "text: the note is empty\n"));
    // One byte over the longest note (4096 bytes).
    let long = format!("note\n{}", "n".repeat(4097));
    let (status, body) = act_answer(live.clone(), Some(origin.clone()), long).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("at most 4096 bytes"), "{body}");
    let huge = format!("note\n{}", "n".repeat(64 * 1024));
    assert_eq!(
        act_answer(live.clone(), Some(origin.clone()), huge).await.0,
        413
    );
    let (status, body) = act_answer(live.clone(), Some(origin.clone()), "hint".into()).await;
    assert_eq!(status, 409, "{body}");
    assert!(body.contains("every hint of task hello is out"), "{body}");
    // A check answers with its result; the check, the note and the lock are audited.
    let (status, body) = act_answer(live.clone(), Some(origin.clone()), "check".into()).await;
    assert_eq!(status, 200, "{body}");
    let result: Value = serde_json::from_str(&body).unwrap();
    assert!(
        ["passed", "failed"].contains(&result["outcome"].as_str().unwrap()),
        "{result}"
    );
    assert_eq!(
        act_answer(
            live.clone(),
            Some(origin.clone()),
            "note\nfrom the web".into()
        )
        .await
        .0,
        204
    );
    // A live cookie opens no timeline (the live page gets it over its socket).
    let timeline_path = format!("/s/{id}/timeline");
    let (status, _, _) = https(
        &certs,
        port,
        "GET",
        &timeline_path,
        &[("Cookie", &live)],
        b"",
    )
    .await;
    assert_eq!(status, 403);
    assert_eq!(act(live.clone(), None, "lock").await, 403, "no origin");
    assert_eq!(
        act(live.clone(), Some("https://evil.example".into()), "lock").await,
        403
    );
    assert_eq!(act(live.clone(), Some(origin.clone()), "lock").await, 204);
    let (_, show, _) = tandem(
        dir.path(),
        &daemon.grpc,
        &["-o", "json", "session", "show", &id],
    )
    .await;
    let show: Value = serde_json::from_str(&show).unwrap();
    assert_eq!(show["locked"], true, "{show}");
    assert_eq!(act(live.clone(), Some(origin.clone()), "dance").await, 400);
    assert_eq!(act(live.clone(), Some(origin.clone()), "unlock").await, 204);

    // A live cookie opens no recording.
    let recording = format!("/s/{id}/recording.cast");
    let (status, _, _) = https(&certs, port, "GET", &recording, &[("Cookie", &live)], b"").await;
    assert_eq!(status, 403);

    // The end: the live cookie and the observer's token are done; the interviewer's token
    // opens the replay.
    let (code, _, err) = tandem(dir.path(), &daemon.grpc, &["session", "end", &id]).await;
    assert_eq!(code, 0, "{err}");
    loop {
        match ok.next().await {
            None | Some(Err(_)) | Some(Ok(Message::Close(_))) => break,
            Some(Ok(_)) => {}
        }
    }
    assert_eq!(
        socket(&certs, port, &id, Some(&live), &origin).await.err(),
        Some(403)
    );
    let (status, _, _) = post(token("observer")).await;
    assert_eq!(status, 403, "an ended session's observer token");
    let (status, head, body) = post(token("interviewer")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["mode"],
        "replay"
    );
    let replay = cookie(&head);
    let (status, _, timeline) = https(
        &certs,
        port,
        "GET",
        &timeline_path,
        &[("Cookie", &replay)],
        b"",
    )
    .await;
    assert_eq!(status, 200, "{timeline}");
    let timeline: Value = serde_json::from_str(&timeline).unwrap();
    let audited: Vec<String> = timeline["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["by"] == "web interviewer")
        .map(|e| {
            format!(
                "{} {}",
                e["kind"].as_str().unwrap(),
                e["text"].as_str().unwrap()
            )
        })
        .collect();
    assert!(
        audited.iter().any(|e| e.starts_with("check ")),
        "{audited:?}"
    );
    assert!(
        audited.contains(&"note from the web".to_string()),
        "{audited:?}"
    );
    let (status, _, cast) =
        https(&certs, port, "GET", &recording, &[("Cookie", &replay)], b"").await;
    assert_eq!(status, 200);
    assert!(
        cast.starts_with("{\"env\"") || cast.contains("\"version\":2"),
        "{cast}"
    );
    assert_eq!(
        socket(&certs, port, &id, Some(&replay), &origin)
            .await
            .err(),
        Some(403),
        "a replay cookie opens no live socket"
    );

    // Another site's page posting guesses in a visitor's browser: refused unread, and not
    // counted against the visitor's address (the right token still logs in after twelve).
    for _ in 0..12 {
        let (status, _, _) = https(
            &certs,
            port,
            "POST",
            &login,
            &[("Origin", "https://evil.example")],
            "f".repeat(40).as_bytes(),
        )
        .await;
        assert_eq!(status, 403);
    }
    assert_eq!(post(token("interviewer")).await.0, 200);

    // Failed logins are limited per address: after ten, even the right token is refused.
    for _ in 0..10 {
        assert_eq!(post("f".repeat(40)).await.0, 403);
    }
    assert_eq!(post(token("interviewer")).await.0, 403);
}

/// One request on a connection kept open: (status, head, body).
async fn request_on(
    stream: &mut tokio_rustls::client::TlsStream<tokio::net::TcpStream>,
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String, String) {
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost:{port}\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(body).await.unwrap();
    let mut answer = Vec::new();
    let mut byte = [0u8; 1];
    while !answer.ends_with(b"\r\n\r\n") {
        assert_eq!(
            stream.read(&mut byte).await.unwrap(),
            1,
            "the connection closed"
        );
        answer.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&answer).into_owned();
    let length: usize = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length: ")
                .map(str::to_string)
        })
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    stream.read_exact(&mut body).await.unwrap();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, head, String::from_utf8_lossy(&body).into_owned())
}

/// Idle and trickling connections cannot keep interviewers out, and one link cannot open
/// pages without end. With room for 4 connections: 4 idle ones, and a login still works
/// (the oldest idle one makes room); a logged-in connection keeps its place while idle
/// ones keep coming; a request whose body never comes ends at the request timeout; a
/// session's pages per role are bounded, and a closed page gives its place back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_cannot_keep_interviewers_out() {
    tandem_testkit::require_root();
    let dir = common::dir_with_hello_task("tandem-test-webflood-", HELLO);
    let args = [
        "--web-max-connections",
        "4",
        "--web-request-timeout",
        "3s",
        "--web-max-pages",
        "2",
    ];
    let (_daemon, certs, port, origin, created) = daemon_with_session(dir.path(), &args).await;
    let id = created["id"].as_str().unwrap().to_string();
    let interviewer = created["tokens"]["interviewer"]
        .as_str()
        .unwrap()
        .to_string();
    let login = format!("/s/{id}/login");
    let idle = || async {
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap()
    };

    // Every place taken by idle connections: a login still gets in, and the oldest idle
    // one is what made room.
    let mut oldest = idle().await;
    let mut others = Vec::new();
    for _ in 0..3 {
        others.push(idle().await);
    }
    let (status, head, body) =
        https(&certs, port, "POST", &login, &[], interviewer.as_bytes()).await;
    assert_eq!(status, 200, "{head}{body}");
    let cookie = cookie(&head);
    let mut byte = [0u8; 1];
    let closed = tokio::time::timeout(std::time::Duration::from_secs(20), oldest.read(&mut byte))
        .await
        .expect("the oldest idle connection was closed");
    assert!(matches!(closed, Ok(0) | Err(_)), "{closed:?}");

    // A logged-in connection keeps its place while idle ones keep coming.
    let mut kept = tls(&certs, port).await;
    let (status, _, _) =
        request_on(&mut kept, port, "POST", &login, &[], interviewer.as_bytes()).await;
    assert_eq!(status, 200);
    for _ in 0..8 {
        others.push(idle().await);
    }
    let (status, _, _) =
        request_on(&mut kept, port, "POST", &login, &[], interviewer.as_bytes()).await;
    assert_eq!(status, 200, "the logged-in connection still answers");

    // A body that never comes: the request ends at the request timeout.
    let mut stream = tls(&certs, port).await;
    let head =
        format!("POST {login} HTTP/1.1\r\nHost: localhost:{port}\r\nContent-Length: 40\r\n\r\n");
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(20),
        stream.read_to_end(&mut answer),
    )
    .await
    .expect("the server answered the body that never came");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");

    // Two pages per session and role here; a third is refused until one closes.
    let first = socket(&certs, port, &id, Some(&cookie), &origin)
        .await
        .unwrap();
    let _second = socket(&certs, port, &id, Some(&cookie), &origin)
        .await
        .unwrap();
    assert_eq!(
        socket(&certs, port, &id, Some(&cookie), &origin)
            .await
            .err(),
        Some(429)
    );
    drop(first);
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        match socket(&certs, port, &id, Some(&cookie), &origin).await {
            Ok(_) => break,
            Err(429) if tokio::time::Instant::now() < deadline => {
                // The closed page's place comes back when the server has seen it go.
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            Err(status) => panic!("a page after one closed: {status}"),
        }
    }
    drop(others);
}
