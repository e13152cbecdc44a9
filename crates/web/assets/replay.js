// tandem's replay page: the recording of an ended session in asciinema-player, for an
// interviewer (the token in the link's fragment, or the cookie the live page got), with
// the session's timeline beside it: clicking an entry seeks the player there, and the
// entry of the moment playing is marked.
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
  TandemTimeline.panelButton($('panel-button'), null);
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
  // The timeline: its times are the recording's (both are stamped from the session's
  // start), so an entry's offset is where the player seeks.
  const timelineAnswer = await fetch(base + 'timeline', { credentials: 'same-origin' });
  if (timelineAnswer.ok) {
    const timeline = await timelineAnswer.json();
    const panel = TandemTimeline.panel($('timeline'), async (entry) => {
      // Just after the moment, so what it printed is on the screen.
      await player.seek(Math.min(entry.at.offset + 0.05, window.tandemDuration));
      panel.current(player.getCurrentTime());
    });
    panel.add(timeline.entries);
    panel.progress(timeline.progress);
    window.tandemTimeline = panel;
    // Follows the player: marks the entry of the moment playing (cheap: a few hundred
    // entries compared four times a second).
    setInterval(async () => panel.current(await player.getCurrentTime()), 250);
  }
  setState('ready', 'recording loaded');
})();
