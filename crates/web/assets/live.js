// tandem's live page: logs in with the token from the link's fragment (then drops it from
// the address bar), draws the shared terminal at the candidate's size (scaled to fit,
// never reflowed) and sends what an interviewer types. The terminal's text stays in the
// DOM (xterm.js's DOM renderer) for screen readers and tests.
'use strict';
(async () => {
  const $ = (id) => document.getElementById(id);
  const base = location.pathname.endsWith('/') ? location.pathname : location.pathname + '/';
  const token = location.hash.slice(1);
  // Another link of the same session pasted here changes only the fragment: log in anew.
  window.addEventListener('hashchange', () => location.reload());
  history.replaceState(null, '', base);
  const setState = (state, text) => {
    document.body.dataset.state = state;
    $('status').textContent = text;
  };

  let role = null;
  if (token) {
    let answer;
    try {
      answer = await fetch(base + 'login', { method: 'POST', body: token,
        headers: { 'content-type': 'text/plain' }, credentials: 'same-origin' });
    } catch (e) {
      setState('refused', 'cannot reach tandem: ' + e);
      return;
    }
    if (!answer.ok) {
      setState('refused', 'refused: this link is wrong, or its session has ended');
      return;
    }
    const grant = await answer.json();
    if (grant.mode === 'replay') {
      location.replace(base + 'replay');
      return;
    }
    role = grant.role;
  }

  const term = new Terminal({
    cols: 80, rows: 24, scrollback: 1000, cursorBlink: false,
    disableStdin: role === 'observer', fontSize: 15,
    fontFamily: 'ui-monospace, "DejaVu Sans Mono", Menlo, monospace',
  });
  term.open($('term'));
  term.onTitleChange((title) => { $('title').textContent = title; });
  const fit = () => {
    const screen = $('screen').getBoundingClientRect();
    const el = term.element;
    if (!el || !el.offsetWidth || !el.offsetHeight) return;
    const scale = Math.min(2, screen.width / el.offsetWidth, screen.height / el.offsetHeight);
    $('frame').style.transform = `scale(${scale})`;
  };
  window.addEventListener('resize', fit);

  const ws = new WebSocket((location.protocol === 'https:' ? 'wss://' : 'ws://') +
    location.host + base + 'ws');
  ws.binaryType = 'arraybuffer';
  window.tandem = { term, ws };
  let opened = false;
  ws.onopen = () => {
    opened = true;
    setState('live', 'live');
    if (role) $('role').textContent = role;
    if (role === 'interviewer') $('actions').hidden = false;
  };
  if (role !== 'observer') {
    const encoder = new TextEncoder();
    term.onData((data) => { if (ws.readyState === 1) ws.send(encoder.encode(data)); });
    term.onBinary((data) => {
      if (ws.readyState !== 1) return;
      ws.send(Uint8Array.from(data, (c) => c.charCodeAt(0) & 255));
    });
  }
  ws.onmessage = (event) => {
    if (typeof event.data !== 'string') {
      term.write(new Uint8Array(event.data));
      return;
    }
    const message = JSON.parse(event.data);
    if (message.type === 'size') {
      term.resize(message.cols, message.rows);
      $('size').textContent = `${message.cols}×${message.rows}`;
      requestAnimationFrame(fit);
    } else if (message.type === 'state') {
      showState(message);
    } else if (message.type === 'ended') {
      setState('ended', 'the session has ended: ' + message.reason);
      offerReplay();
    }
  };
  ws.onclose = () => {
    if (!opened) setState('refused', 'refused: log in again with your link');
    else if (document.body.dataset.state === 'live') setState('closed', 'disconnected');
  };

  // An interviewer's buttons: the CLI's session verbs.
  let locked = false;
  const act = async (verb) => {
    const answer = await fetch(base + 'action', { method: 'POST', body: verb,
      headers: { 'content-type': 'text/plain' }, credentials: 'same-origin' });
    if (!answer.ok) $('status').textContent = `${verb}: ${(await answer.text()).trim()}`;
  };
  $('lock-button').onclick = () => act(locked ? 'unlock' : 'lock');
  $('reset-button').onclick = () => {
    if (confirm('Reset the box? Everything the candidate changed is lost.')) act('reset');
  };
  $('end-button').onclick = () => {
    if (confirm('End the session for everyone?')) act('end');
  };

  function showState(state) {
    const list = $('participants');
    list.replaceChildren(...state.participants.map((p) => {
      const li = document.createElement('li');
      const r = document.createElement('span');
      r.className = 'role';
      r.textContent = p.role;
      li.append(`#${p.number} `, r, ` ${p.name} (${p.via})`);
      li.dataset.role = p.role;
      return li;
    }));
    const lock = $('lock');
    lock.textContent = state.locked ? 'locked: only the candidate types' : '';
    lock.classList.toggle('locked', state.locked);
    locked = state.locked;
    $('lock-button').textContent = locked ? 'unlock' : 'lock';
    if (!role) {
      role = 'connected';
    }
  }

  // An interviewer still holds the token in this page: it opens the recording now.
  async function offerReplay() {
    if (!token) return;
    const answer = await fetch(base + 'login', { method: 'POST', body: token,
      headers: { 'content-type': 'text/plain' }, credentials: 'same-origin' });
    if (!answer.ok) return;
    const link = document.createElement('a');
    link.href = base + 'replay';
    link.textContent = 'replay';
    link.id = 'replay-link';
    $('status').append(' — ', link);
  }
})();
