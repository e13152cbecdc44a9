// tandem's replay page: the recording of an ended session in asciinema-player, for an
// interviewer (the token in the link's fragment, or the cookie the live page got).
'use strict';
(async () => {
  const $ = (id) => document.getElementById(id);
  const base = location.pathname.replace(/replay$/, '');
  const token = location.hash.slice(1);
  // Another link of the same session pasted here changes only the fragment: log in anew.
  window.addEventListener('hashchange', () => location.reload());
  history.replaceState(null, '', base + 'replay');
  const setState = (state, text) => {
    document.body.dataset.state = state;
    $('status').textContent = text;
  };
  if (token) {
    const answer = await fetch(base + 'login', { method: 'POST', body: token,
      headers: { 'content-type': 'text/plain' }, credentials: 'same-origin' });
    const grant = answer.ok ? await answer.json() : null;
    if (!grant || grant.mode !== 'replay') {
      setState('refused', grant ? 'the session is still live: open its live page'
        : 'refused: this link is wrong');
      return;
    }
  }
  const answer = await fetch(base + 'recording.cast', { credentials: 'same-origin' });
  if (!answer.ok) {
    setState('refused', 'refused: open the replay with your interviewer link');
    return;
  }
  const cast = await answer.text();
  // No idle-time limit: the player's seconds stay the recording's (and the events log's),
  // so that a time from the timeline seeks to the right place.
  const player = AsciinemaPlayer.create({ data: cast }, $('player'),
    { fit: 'width', controls: true, preload: true });
  window.tandemPlayer = player;
  // The recording's length: the time of its last event.
  const last = cast.trimEnd().split('\n').pop();
  window.tandemDuration = last.startsWith('[') ? JSON.parse(last)[0] : 0;
  setState('ready', 'recording loaded');
})();
