//! tandem's SSH front end: the transport between OpenSSH clients and interview sessions.
//! It owns neither processes nor session state (both live in `tandem-session`).
//!
//! * Login: the SSH user name is a session token (`ssh -p 2222 <token>@host`), or the
//!   session id with a public key registered for that session. Wrong or expired
//!   credentials are plain authentication failures (nothing says which sessions exist),
//!   and failures are rate-limited per source address.
//! * One session channel with a shell ↔ one participant: their window size (clamped to
//!   the largest terminal tandem models), their input, and a sender task per channel that
//!   copies the participant's queue to the channel. `Handle::data` waits for SSH window
//!   space, so a slow client blocks only its own task. Input goes to the terminal from a
//!   task per channel too (`Typing`), never from russh's callback, which would stop the
//!   whole connection while the terminal takes no input.
//! * The front door ([`SshLimits`], `gate.rs`): a pre-authentication timeout, caps on
//!   connections, on connections waiting to log in (the oldest makes room), and on
//!   channels per connection. A connection that fails to log in counts as one failure
//!   against its address, however many keys its agent offered.
#![warn(missing_docs)]
#![forbid(unsafe_code)]

mod gate;

pub use gate::SshLimits;
use gate::{Gate, Pending};

use bytes::Bytes;
use russh::keys::ssh_key::LineEnding;
use russh::keys::{Algorithm, HashAlg, PrivateKey};
use russh::server::{self, Auth, ChannelOpenHandle, Msg, Session};
use russh::{Channel, ChannelId, MethodKind, MethodSet, Pty};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tandem_session::{Client, FailureLimiter, ParticipantRole, Sessions, TerminalSize};
use tokio::net::TcpListener;
use tokio::sync::watch;

/// Why the SSH server could not start.
#[derive(Debug, thiserror::Error)]
pub enum SshError {
    /// Reading or writing the host key.
    #[error("SSH host key {path}: {error}")]
    HostKey {
        /// The key file.
        path: String,
        /// What failed.
        error: String,
    },
}

/// Loads the host key from `path`, or generates an Ed25519 key there (mode 0600) on first
/// start. Returns the key and whether it was created.
pub fn host_key(path: &Path) -> Result<(PrivateKey, bool), SshError> {
    let err = |error: String| SshError::HostKey {
        path: path.display().to_string(),
        error,
    };
    if path.exists() {
        let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        let key = PrivateKey::from_openssh(text.as_bytes()).map_err(|e| err(e.to_string()))?;
        return Ok((key, false));
    }
    let key =
        PrivateKey::random(&mut rand::rng(), Algorithm::Ed25519).map_err(|e| err(e.to_string()))?;
    let text = key
        .to_openssh(LineEnding::LF)
        .map_err(|e| err(e.to_string()))?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| err(e.to_string()))?;
    }
    tandem_fsutil::write_atomic(path, text.as_bytes(), 0o600).map_err(|e| err(e.to_string()))?;
    Ok((key, true))
}

/// The key's fingerprint as OpenSSH prints it (`SHA256:…`).
pub fn fingerprint(key: &PrivateKey) -> String {
    key.public_key().fingerprint(HashAlg::Sha256).to_string()
}

/// Serves SSH on `listener` until `shutdown` turns true; then every connection is closed
/// (participants are told why).
pub async fn serve(
    listener: TcpListener,
    key: PrivateKey,
    sessions: Sessions,
    limits: SshLimits,
    mut shutdown: watch::Receiver<bool>,
) {
    let config = Arc::new(server::Config {
        keys: vec![key],
        methods: MethodSet::from(&[MethodKind::None, MethodKind::PublicKey][..]),
        auth_rejection_time: Duration::from_millis(500),
        auth_rejection_time_initial: Some(Duration::ZERO),
        // russh's default closes idle connections after 10 minutes: a candidate thinking
        // must not be disconnected. Keepalives detect dead peers instead.
        inactivity_timeout: None,
        keepalive_interval: Some(Duration::from_secs(30)),
        keepalive_max: 4,
        nodelay: true,
        ..Default::default()
    });
    let limiter = Arc::new(FailureLimiter::default());
    let gate = Arc::new(Gate::default());
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let accepted = tokio::select! {
            _ = stopped(&mut shutdown) => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(conn) => conn,
            Err(e) => {
                tracing::warn!(error = %e, "accepting an SSH connection failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        if connections.len() >= limits.max_connections {
            tracing::warn!(%peer, max = limits.max_connections, "SSH connection refused: too many connections");
            drop(stream);
            continue;
        }
        // Keystroke echo must not wait for Nagle.
        let _ = stream.set_nodelay(true);
        let login = gate.enter(limits.max_unauthenticated);
        let handler = Connection {
            peer,
            sessions: sessions.clone(),
            limiter: Arc::clone(&limiter),
            gate: Arc::clone(&gate),
            login: Arc::clone(&login),
            failed: false,
            max_channels: limits.max_channels,
            channels: 0,
            identity: None,
            early: None,
            clients: HashMap::new(),
            typing: HashMap::new(),
            senders: HashMap::new(),
            sizes: HashMap::new(),
        };
        let config = Arc::clone(&config);
        let gate = Arc::clone(&gate);
        let mut stop = shutdown.clone();
        connections.spawn(async move {
            connection(
                config,
                stream,
                handler,
                &login,
                limits.pre_auth_timeout,
                &mut stop,
            )
            .await;
            gate.leave(&login);
        });
    }
    // Connections close themselves on the same shutdown signal.
    while connections.join_next().await.is_some() {}
}

/// Runs one connection: the SSH handshake and login within `pre_auth` of its accept, and
/// until it ends, is evicted before login, or the daemon shuts down.
async fn connection(
    config: Arc<server::Config>,
    stream: tokio::net::TcpStream,
    handler: Connection,
    login: &Pending,
    pre_auth: Duration,
    stop: &mut watch::Receiver<bool>,
) {
    let peer = handler.peer;
    let deadline = tokio::time::Instant::now() + pre_auth;
    let session = tokio::select! {
        started = tokio::time::timeout_at(deadline, server::run_stream(config, stream, handler)) => match started {
            Ok(Ok(session)) => session,
            Ok(Err(e)) => {
                tracing::debug!(%peer, error = %e, "SSH handshake failed");
                return;
            }
            Err(_) => {
                tracing::info!(%peer, "SSH connection closed: no handshake within the pre-authentication timeout");
                return;
            }
        },
        _ = evicted(login) => {
            tracing::info!(%peer, "SSH connection closed: too many connections waiting to log in");
            return;
        }
    };
    let handle = session.handle();
    tokio::pin!(session);
    let close = |reason: &'static str| {
        let handle = handle.clone();
        async move {
            let _ = handle
                .disconnect(
                    russh::Disconnect::ByApplication,
                    reason.into(),
                    String::new(),
                )
                .await;
        }
    };
    loop {
        let waiting = !login.is_authenticated();
        tokio::select! {
            result = &mut session => {
                if let Err(e) = result {
                    tracing::debug!(%peer, error = %e, "SSH connection ended");
                }
                return;
            }
            _ = stopped(stop) => {
                close("tandemd is shutting down").await;
                return;
            }
            _ = tokio::time::sleep_until(deadline), if waiting => {
                tracing::info!(%peer, "SSH connection closed: no login within the pre-authentication timeout");
                close("authentication timed out").await;
                return;
            }
            _ = login.changed(), if waiting => {
                if login.is_evicted() && !login.is_authenticated() {
                    tracing::info!(%peer, "SSH connection closed: too many connections waiting to log in");
                    close("too many connections waiting to log in").await;
                    return;
                }
            }
        }
    }
}

/// Completes when the connection was evicted before logging in.
async fn evicted(login: &Pending) {
    while !login.is_evicted() {
        login.changed().await;
    }
}

/// Completes when the shutdown flag turns true (or its sender is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// Who authenticated on a connection.
#[derive(Debug, Clone)]
struct SshLogin {
    session: Arc<tandem_session::Session>,
    role: ParticipantRole,
    name: String,
    via: &'static str,
}

/// One SSH connection.
struct Connection {
    peer: SocketAddr,
    sessions: Sessions,
    limiter: Arc<FailureLimiter>,
    /// The queue of connections waiting to log in.
    gate: Arc<Gate>,
    /// This connection's place in it.
    login: Arc<Pending>,
    /// This connection already counted as a failed login.
    failed: bool,
    /// Session channels allowed, and open.
    max_channels: usize,
    channels: usize,
    identity: Option<SshLogin>,
    /// A valid login for a scheduled session that has not opened: its shell says when.
    early: Option<tandem_session::Upcoming>,
    /// Participants by channel.
    clients: HashMap<ChannelId, Arc<Client>>,
    /// Each participant's keystrokes on their way to the terminal, by channel.
    typing: HashMap<ChannelId, Typing>,
    /// The sender task of each open channel, aborted when the connection ends: the task
    /// holds its participant, who would otherwise stay listed until the next output
    /// failed to reach a connection that is gone (a client killed while nobody types).
    senders: HashMap<ChannelId, tokio::task::AbortHandle>,
    /// Window sizes asked for by `pty-req`, by channel.
    sizes: HashMap<ChannelId, TerminalSize>,
}

impl Connection {
    /// A rejected attempt. The connection counts once against its address: an agent that
    /// offers several keys before the right one is one client, not several failures.
    fn reject(&mut self, with_keys: bool) -> Auth {
        if !self.failed {
            self.failed = true;
            self.limiter.failed(self.peer.ip());
        }
        Auth::Reject {
            proceed_with_methods: with_keys.then(|| MethodSet::from(&[MethodKind::PublicKey][..])),
            partial_success: false,
        }
    }

    /// A successful login: the connection leaves the queue of those waiting, and its
    /// earlier rejected attempts (the `none` probe, other keys) are forgiven.
    fn accept(&mut self, identity: SshLogin) -> Auth {
        self.identity = Some(identity);
        self.login.authenticated(&self.gate);
        if self.failed {
            self.limiter.forgive(self.peer.ip());
        }
        Auth::Accept
    }

    /// A login too early for its scheduled session: accepted, so that its shell can say
    /// when to come back.
    fn accept_early(&mut self, upcoming: tandem_session::Upcoming) -> Auth {
        self.early = Some(upcoming);
        self.login.authenticated(&self.gate);
        if self.failed {
            self.limiter.forgive(self.peer.ip());
        }
        Auth::Accept
    }

    fn key_text(key: &russh::keys::PublicKey) -> Option<String> {
        // `type base64`, without any comment: what sessions register.
        let text = key.to_openssh().ok()?;
        Some(
            text.split_whitespace()
                .take(2)
                .collect::<Vec<_>>()
                .join(" "),
        )
    }

    fn key_login(&self, user: &str, key: &russh::keys::PublicKey) -> Option<SshLogin> {
        let text = Self::key_text(key)?;
        let (session, role, name) = self.sessions.by_key(user, &text)?;
        Some(SshLogin {
            session,
            role,
            name,
            via: "key",
        })
    }

    fn key_upcoming(
        &self,
        user: &str,
        key: &russh::keys::PublicKey,
    ) -> Option<tandem_session::Upcoming> {
        self.sessions.upcoming_by_key(user, &Self::key_text(key)?)
    }
}

fn size(cols: u32, rows: u32) -> TerminalSize {
    TerminalSize::clamped(cols, rows)
}

impl server::Handler for Connection {
    type Error = russh::Error;

    async fn auth_none(&mut self, user: &str) -> Result<Auth, Self::Error> {
        if self.limiter.blocked(self.peer.ip()) {
            tracing::info!(peer = %self.peer, "SSH login refused: too many failures from this address");
            return Ok(Auth::reject());
        }
        if let Some((session, role)) = self.sessions.by_token(user) {
            return Ok(self.accept(SshLogin {
                session,
                role,
                name: role.to_string(),
                via: "token",
            }));
        }
        if let Some(upcoming) = self.sessions.upcoming_by_token(user) {
            return Ok(self.accept_early(upcoming));
        }
        let with_keys = self.sessions.has_keys(user);
        Ok(self.reject(with_keys))
    }

    async fn auth_password(&mut self, _user: &str, _password: &str) -> Result<Auth, Self::Error> {
        Ok(self.reject(false))
    }

    async fn auth_publickey_offered(
        &mut self,
        user: &str,
        offer: server::PublicKeyOffer<'_>,
    ) -> Result<Auth, Self::Error> {
        if self.limiter.blocked(self.peer.ip()) {
            return Ok(Auth::reject());
        }
        let known = self.key_login(user, offer.public_key).is_some()
            || self.key_upcoming(user, offer.public_key).is_some();
        Ok(if known {
            Auth::Accept
        } else {
            self.reject(false)
        })
    }

    async fn auth_publickey(
        &mut self,
        user: &str,
        key: server::VerifiedPublicKey<'_>,
    ) -> Result<Auth, Self::Error> {
        // russh verified the signature: the client holds the private key.
        if let Some(identity) = self.key_login(user, key.public_key) {
            return Ok(self.accept(identity));
        }
        match self.key_upcoming(user, key.public_key) {
            Some(upcoming) => Ok(self.accept_early(upcoming)),
            None => Ok(self.reject(false)),
        }
    }

    async fn channel_open_session(
        &mut self,
        channel: Channel<Msg>,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        // Callbacks by channel id are used instead of the Channel stream; dropping it is
        // fine (keeping it unread would stall the connection).
        drop(channel);
        if (self.identity.is_none() && self.early.is_none()) || self.channels >= self.max_channels {
            // Dropping the reply refuses the channel.
            return Ok(());
        }
        self.channels += 1;
        reply.accept().await;
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    async fn pty_request(
        &mut self,
        channel: ChannelId,
        _term: &str,
        cols: u32,
        rows: u32,
        _pix_width: u32,
        _pix_height: u32,
        _modes: &[(Pty, u32)],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.sizes.insert(channel, size(cols, rows));
        session.channel_success(channel)?;
        Ok(())
    }

    async fn shell_request(
        &mut self,
        channel: ChannelId,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        if let Some(upcoming) = self.early {
            // Too early: say when, then close (exit status 1: not logged in to a box).
            session.channel_success(channel)?;
            let message = upcoming.message(std::time::SystemTime::now());
            tracing::info!(peer = %self.peer, session = %upcoming.session, role = %upcoming.role, "a login before its session opened");
            let handle = session.handle();
            let closer = tokio::spawn(async move {
                let _ = handle.data(channel, bytes::Bytes::from(message)).await;
                let _ = handle.exit_status_request(channel, 1).await;
                let _ = handle.eof(channel).await;
                let _ = handle.close(channel).await;
            });
            self.senders.insert(channel, closer.abort_handle());
            return Ok(());
        }
        let Some(identity) = self.identity.clone() else {
            session.channel_failure(channel)?;
            return Ok(());
        };
        // One participant per channel: a second shell request on it would join again
        // (another queue, another screen snapshot) for as long as the connection lives.
        if identity.session.info().ended.is_some() || self.clients.contains_key(&channel) {
            session.channel_failure(channel)?;
            return Ok(());
        }
        session.channel_success(channel)?;
        let size = self.sizes.get(&channel).copied().unwrap_or_default();
        let client = Arc::new(identity.session.join(
            identity.role,
            &identity.name,
            identity.via,
            Some(self.peer),
            size,
        ));
        self.clients.insert(channel, Arc::clone(&client));
        self.typing
            .insert(channel, Typing::start(Arc::clone(&client)));
        let handle = session.handle();
        let welcome = welcome(&identity, size);
        // The channel's sender: owned by the client's life (it ends when the session ends
        // or the connection goes away).
        let sender = tokio::spawn(async move {
            if handle.data(channel, welcome).await.is_err() {
                return;
            }
            while let Some(bytes) = client.next_output().await {
                if handle.data(channel, bytes).await.is_err() {
                    return;
                }
            }
            // The session ended: close the channel and the connection. The reason also
            // goes in the disconnect message, which OpenSSH prints even if the channel's
            // last bytes did not make it out first.
            let reason = client
                .session
                .info()
                .ended
                .unwrap_or_else(|| "you were removed".into());
            let _ = handle.exit_status_request(channel, 0).await;
            let _ = handle.eof(channel).await;
            let _ = handle.close(channel).await;
            let _ = handle
                .disconnect(
                    russh::Disconnect::ByApplication,
                    format!("the tandem session has ended: {reason}"),
                    String::new(),
                )
                .await;
        });
        self.senders.insert(channel, sender.abort_handle());
        Ok(())
    }

    async fn exec_request(
        &mut self,
        channel: ChannelId,
        _data: &[u8],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        // Only the shared terminal is offered.
        session.channel_failure(channel)?;
        Ok(())
    }

    async fn subsystem_request(
        &mut self,
        channel: ChannelId,
        _name: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        // No sftp or any other subsystem. (Without an answer, `ssh -s` waits forever.)
        session.channel_failure(channel)?;
        Ok(())
    }

    async fn x11_request(
        &mut self,
        channel: ChannelId,
        _single_connection: bool,
        _x11_auth_protocol: &str,
        _x11_auth_cookie: &str,
        _x11_screen_number: u32,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_failure(channel)?;
        Ok(())
    }

    async fn env_request(
        &mut self,
        channel: ChannelId,
        _variable_name: &str,
        _variable_value: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        // The shell's environment is the task's; clients set none of it. (A failure is
        // sent only if the client asked for an answer.)
        session.channel_failure(channel)?;
        Ok(())
    }

    async fn data(
        &mut self,
        channel: ChannelId,
        data: &[u8],
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        if let Some(typing) = self.typing.get(&channel) {
            typing.send(data);
        }
        Ok(())
    }

    async fn window_change_request(
        &mut self,
        channel: ChannelId,
        cols: u32,
        rows: u32,
        _pix_width: u32,
        _pix_height: u32,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        if let Some(client) = self.clients.get(&channel) {
            client.resize(size(cols, rows));
        }
        Ok(())
    }

    async fn channel_eof(
        &mut self,
        channel: ChannelId,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.clients.remove(&channel);
        Ok(())
    }

    async fn channel_close(
        &mut self,
        channel: ChannelId,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.clients.remove(&channel);
        self.typing.remove(&channel);
        self.sizes.remove(&channel);
        // Not aborted: after a close the sender may still be saying goodbye.
        self.senders.remove(&channel);
        self.channels = self.channels.saturating_sub(1);
        Ok(())
    }
}

/// Bytes of a participant's input that may wait for the terminal (beyond it, input is
/// dropped until the terminal takes some).
const INPUT_BUDGET: usize = 64 * 1024;

/// One participant's keystrokes on their way to the terminal, written by a task of their
/// own. russh awaits `Handler::data` before it reads or writes anything else on the
/// connection, and a write to a terminal waits while the terminal takes no input (a
/// program that does not read, a full tty buffer, a flood of output being echoed into):
/// written there, that wait would stop this participant's screen and window updates too.
/// The task ends when this is dropped (channel closed, connection gone).
struct Typing {
    tx: tokio::sync::mpsc::UnboundedSender<(Bytes, tokio::sync::OwnedSemaphorePermit)>,
    /// Bytes that may be waiting: bounds the queue.
    budget: Arc<tokio::sync::Semaphore>,
    task: tokio::task::AbortHandle,
}

impl Typing {
    fn start(client: Arc<Client>) -> Self {
        let (tx, mut rx) =
            tokio::sync::mpsc::unbounded_channel::<(Bytes, tokio::sync::OwnedSemaphorePermit)>();
        let task = tokio::spawn(async move {
            while let Some((bytes, _permit)) = rx.recv().await {
                client.input(&bytes).await;
            }
        });
        Self {
            tx,
            budget: Arc::new(tokio::sync::Semaphore::new(INPUT_BUDGET)),
            task: task.abort_handle(),
        }
    }

    /// Queues `data` for the terminal, in order; dropped (with a note in the log) when
    /// [`INPUT_BUDGET`] bytes are already waiting.
    fn send(&self, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        // A packet is at most a few tens of KiB; one larger than the whole budget takes
        // all of it.
        let want = u32::try_from(data.len().min(INPUT_BUDGET)).unwrap_or(u32::MAX);
        match Arc::clone(&self.budget).try_acquire_many_owned(want) {
            Ok(permit) => {
                let _ = self.tx.send((Bytes::copy_from_slice(data), permit));
            }
            Err(_) => tracing::info!(
                bytes = data.len(),
                "input dropped: the terminal has not taken the last {INPUT_BUDGET} bytes"
            ),
        }
    }
}

impl Drop for Typing {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Drop for Connection {
    /// The connection is gone (closed, reset, the client killed): its participants leave
    /// now, without waiting for output that could no longer reach them.
    fn drop(&mut self) {
        for sender in self.senders.values() {
            sender.abort();
        }
    }
}

/// The participant's own greeting, in their terminal's title (it never touches the
/// shared screen): the task, their role, the time left.
fn welcome(identity: &SshLogin, _size: TerminalSize) -> Bytes {
    let session = &identity.session;
    let left = session
        .info()
        .expires_at
        .duration_since(std::time::SystemTime::now())
        .map(|d| Duration::from_secs(d.as_secs() / 60 * 60))
        .unwrap_or_default();
    let role = match identity.role {
        ParticipantRole::Candidate => "you are the candidate",
        ParticipantRole::Interviewer => "you are an interviewer",
        ParticipantRole::Observer => "you are an observer (read-only)",
    };
    Bytes::from(format!(
        "\x1b]2;tandem: {} — {role} — {} left\x07",
        session.instance().task.title,
        humantime_short(left)
    ))
}

fn humantime_short(d: Duration) -> String {
    let minutes = d.as_secs() / 60;
    if minutes >= 60 {
        format!("{}h{:02}m", minutes / 60, minutes % 60)
    } else {
        format!("{minutes}m")
    }
}
