// tandem's live page: logs in with the token from the link's fragment (then drops it from
// the address bar), draws the shared terminal at the candidate's size (scaled to fit,
// never reflowed) and sends what an interviewer types. The terminal's text stays in the
// DOM (xterm.js's DOM renderer) for screen readers and tests. The timeline panel follows
// the session; an interviewer checks, reveals hints and takes notes from it.
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

  TandemTimeline.panelButton($('panel-button'), () => window.dispatchEvent(new Event('resize')));
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
  const timeline = TandemTimeline.panel($('timeline'), null);
  let hintsTotal;
  let lastProgress = null;
  window.tandem = { term, ws, timeline };
  let opened = false;
  ws.onopen = () => {
    opened = true;
    setState('live', 'live');
    if (role) $('role').textContent = role;
    if (role === 'interviewer') {
      $('actions').hidden = false;
      $('note').hidden = false;
    }
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
    } else if (message.type === 'timeline') {
      timeline.add(message.entries);
      lastProgress = message.progress;
      timeline.progress(lastProgress, hintsTotal);
      hintButton();
    } else if (message.type === 'ended') {
      setState('ended', 'the session has ended: ' + message.reason);
      offerReplay();
    }
  };
  ws.onclose = () => {
    if (!opened) setState('refused', 'refused: log in again with your link');
    else if (document.body.dataset.state === 'live') setState('closed', 'disconnected');
  };

  // An interviewer's buttons: the CLI's session verbs. Returns the answer's JSON (or
  // true), or null after saying what went wrong.
  let locked = false;
  const say = (text, kind) => {
    $('result').textContent = text;
    $('result').dataset.kind = kind;
  };
  const act = async (verb, text) => {
    let answer;
    try {
      answer = await fetch(base + 'action', { method: 'POST',
        body: text === undefined ? verb : `${verb}\n${text}`,
        headers: { 'content-type': 'text/plain' }, credentials: 'same-origin' });
    } catch (e) {
      say(`${verb}: cannot reach tandem: ${e}`, 'error');
      return null;
    }
    if (!answer.ok) {
      say(`${verb}: ${(await answer.text()).trim()}`, 'error');
      return null;
    }
    return answer.status === 204 ? true : answer.json();
  };
  $('check-button').onclick = async () => {
    $('check-button').disabled = true;
    say('checking…', 'busy');
    const result = await act('check');
    $('check-button').disabled = false;
    if (!result) return;
    const passing = result.conditions.filter((c) => c.passed).length;
    const count = result.conditions.length ? ` (${passing}/${result.conditions.length} conditions)` : '';
    const first = result.output.split('\n').find((l) => l.trim()) || '';
    say(`check ${result.outcome}${count}${first ? ': ' + first : ''}`, result.outcome);
  };
  $('hint-button').onclick = async () => {
    const next = (lastProgress ? lastProgress.hints_revealed : 0) + 1;
    if (!confirm(`Reveal hint ${next} of ${hintsTotal} to the candidate?`)) return;
    const hint = await act('hint');
    if (hint) say(`hint ${hint.number}/${hint.total} revealed: ${hint.text}`, 'hint');
  };
  const note = async () => {
    const text = $('note-text').value.trim();
    if (!text) return;
    if (await act('note', text)) {
      $('note-text').value = '';
      say('note taken', 'note');
    }
  };
  $('note-button').onclick = note;
  // No hint left (or none at all): the button says so.
  function hintButton() {
    const revealed = lastProgress ? lastProgress.hints_revealed : 0;
    const button = $('hint-button');
    button.disabled = hintsTotal !== undefined && revealed >= hintsTotal;
    button.textContent = hintsTotal ? `hint ${Math.min(revealed + 1, hintsTotal)}/${hintsTotal}` : 'hint';
  }
  $('note-text').addEventListener('keydown', (e) => { if (e.key === 'Enter') note(); });
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
    // Locked, an interviewer's keys would be dropped by the session: the page takes none.
    if (role === 'interviewer') term.options.disableStdin = locked;
    if (hintsTotal !== state.hints_total) {
      hintsTotal = state.hints_total;
      if (lastProgress) timeline.progress(lastProgress, hintsTotal);
    }
    hintButton();
    if (!role) {
      role = 'connected';
    }
  }

  // An interviewer still holds the token in this page: it opens the recording now.
  // (Observers have no replay: their token would only count as a failed login.)
  async function offerReplay() {
    if (!token || role !== 'interviewer') return;
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
