// tandem's timeline panel, shared by the live and the replay page: entries in time order
// (a command's entry arrives at its end, stamped at its start, and is put in its place),
// and the progress (conditions, solved, hints). Text only: nothing from the session is
// ever parsed as HTML.
'use strict';
window.TandemTimeline = (() => {
  const clock = (seconds) => {
    const s = Math.max(0, Math.floor(seconds));
    const hms = [Math.floor(s / 3600), Math.floor(s / 60) % 60, s % 60];
    const [h, m, sec] = hms.map((n) => String(n).padStart(2, '0'));
    return (hms[0] ? `${h}:` : '') + `${m}:${sec}`;
  };
  const el = (tag, className, text) => {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  };

  // Bidirectional overrides and isolates would let a candidate's text display in another
  // order than it was typed (a file name that reads as something else): shown as U+FFFD.
  const plain = (text) => text.replace(/[\u202a-\u202e\u2066-\u2069]/g, '\ufffd');

  // One entry's line: its time, its kind, what happened, who.
  function line(entry) {
    const li = el('li');
    li.dataset.kind = entry.kind;
    li.dataset.offset = entry.at.offset;
    if (entry.passed === true) li.classList.add('ok');
    if (entry.passed === false) li.classList.add('fail');
    const time = el('time', 'at', clock(entry.at.offset));
    time.dateTime = entry.at.time;
    time.title = entry.at.time;
    let text = entry.text;
    if (entry.kind === 'command') {
      text = `$ ${entry.text}`;
      if (entry.exit_code !== null && entry.exit_code !== 0) text += `  [exit ${entry.exit_code}]`;
    }
    li.append(time, ' ', el('span', 'kind', entry.kind), ' ', el('span', 'text', plain(text)));
    if (entry.by) li.append(' ', el('span', 'by', plain(entry.by)));
    if (entry.cwd) li.title = `in ${plain(entry.cwd)}`;
    return li;
  }

  // A panel in `root`: `add(entries)` puts entries in place, `progress(p)` shows the
  // progress; `onPick(entry)` is called when an entry is clicked.
  function panel(root, onPick) {
    const summary = el('div', 'progress');
    const list = el('ol', 'entries');
    list.id = 'timeline-entries';
    root.replaceChildren(el('h2', '', 'Timeline'), summary, list);
    root.hidden = false;
    // A list scrolled to its end (the latest entry) stays there, whatever is added or
    // however the panel around it changes size; scrolling up stops that until the reader
    // scrolls back down.
    let following = true;
    const toEnd = () => { if (following) list.scrollTop = list.scrollHeight; };
    list.addEventListener('scroll', () => {
      following = list.scrollHeight - list.scrollTop - list.clientHeight < 8;
    });
    new ResizeObserver(toEnd).observe(list);
    const keepEnd = (change) => {
      change();
      toEnd();
    };
    const add = (entries) => keepEnd(() => {
      for (const entry of entries) {
        const li = line(entry);
        if (onPick) li.onclick = () => onPick(entry, li);
        let next = null;
        for (let i = list.children.length - 1; i >= 0; i--) {
          if (Number(list.children[i].dataset.offset) <= entry.at.offset) break;
          next = list.children[i];
        }
        list.insertBefore(li, next);
      }
    });
    const progress = (p, hintsTotal) => keepEnd(() => {
      const parts = [];
      if (p.solved) parts.push(el('div', 'solved ok', `solved at ${clock(p.solved.offset)}`));
      const conditions = el('ul', 'conditions');
      for (const c of p.conditions || []) {
        const li = el('li', c.passing ? 'ok' : 'fail');
        li.dataset.condition = c.name;
        li.append(el('span', 'mark', c.passing ? '✔' : '✘'), ` ${c.name}`);
        if (c.first_passed) li.append(el('span', 'by', ` first passed ${clock(c.first_passed.offset)}`));
        conditions.append(li);
      }
      if (conditions.children.length) parts.push(conditions);
      const known = hintsTotal === undefined || hintsTotal === null ? p.hints_total : hintsTotal;
      const total = known === undefined || known === null ? '' : ` of ${known}`;
      parts.push(el('div', 'dim hints', `hints revealed: ${p.hints_revealed}${total}`));
      summary.replaceChildren(...parts);
    });
    // Marks the last entry at or before `seconds` as the current one.
    const current = (seconds) => {
      let at = null;
      for (const li of list.children) {
        if (Number(li.dataset.offset) > seconds) break;
        at = li;
      }
      for (const li of list.querySelectorAll('.current')) if (li !== at) li.classList.remove('current');
      if (at && !at.classList.contains('current')) {
        at.classList.add('current');
        at.scrollIntoView({ block: 'nearest' });
      }
    };
    return { add, progress, current, list };
  }

  // The button that opens and closes the side panel: open by default in a wide window,
  // closed (a drawer) in a narrow one (the stylesheet's 900px); `changed` is called after.
  function panelButton(button, changed) {
    const narrow = window.matchMedia('(max-width: 900px)');
    const open = () => (narrow.matches ? document.body.classList.contains('panel-open')
      : !document.body.classList.contains('panel-closed'));
    const label = () => { button.textContent = open() ? 'hide panel' : 'panel'; };
    button.onclick = () => {
      document.body.classList.toggle(narrow.matches ? 'panel-open' : 'panel-closed');
      label();
      if (changed) changed();
    };
    narrow.addEventListener('change', label);
    label();
  }

  return { panel, panelButton, clock };
})();
