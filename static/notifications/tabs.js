// One notification stream per browser, not per tab. The tabs of one browser profile that
// stream the same channels elect a leader with the Web Locks API; only the leader opens the
// EventSource, and it relays every event (type, data, id) to the other tabs over a
// BroadcastChannel. Closing the leader tab releases its lock, the next tab in the lock's
// queue takes it and reopens the stream from the last id the tabs saw, so nothing is lost;
// ids tell each tab what it has already had, so nothing is shown twice.
// Without Web Locks or BroadcastChannel, shareStream() returns null: each tab streams alone.

const REPLAY_KEEP = 200; // events the leader keeps for a tab that opens a moment late
// What a tab that opens late replays: events with a position, not a stream's end or reset.
const KEEP = new Set([
  "notification", "read", "unread", "seen", "archived", "unarchived", "deleted",
  "announcement", "announcement-expired", "activity", "activity-removed",
]);
const HELLO_WAIT_MS = 3000; // a new tab holds live events this long for the leader's replay

// An SSE id is per-channel positions, "user-7:42,user-7-read:3,announcements:5".
export function positions(id) {
  const out = new Map();
  for (const part of (id || "").split(",")) {
    const at = part.lastIndexOf(":");
    const pos = Number(part.slice(at + 1));
    if (at <= 0 || !Number.isInteger(pos)) return null;
    out.set(part.slice(0, at), pos);
  }
  return out.size ? out : null;
}

// Whether the event with `id` (the stream was at `prev` before it) is after position `since`.
// Only the channels the event moved count: the others may be ahead in a freshly rendered page.
export function isAfter(id, prev, since) {
  const at = positions(id);
  const seen = positions(since);
  if (!at || !seen) return true;
  const before = positions(prev);
  let moved = false;
  for (const [channel, pos] of at) {
    if (before && before.has(channel) && before.get(channel) >= pos) continue;
    moved = true;
    if (!seen.has(channel) || pos > seen.get(channel)) return true;
  }
  return !moved; // an event that moved no position (a stream-error) is never old
}

// `name` names the lock and the channel; `since()` is this tab's last event id.
// hooks: lead() when this tab takes the stream; relayed({type, data, lastEventId}, toastHere)
// for each event the leader shares; state(s) for the leader's connection state.
export function shareStream(name, { since, lead, relayed, state }) {
  if (!navigator.locks || typeof BroadcastChannel !== "function") return null;
  const me = crypto.randomUUID ? crypto.randomUUID() : String(Math.random()).slice(2);
  const channel = new BroadcastChannel(name);
  let leading = false;
  let focused = null; // the tab that toasts: the focused one, else the leader
  let lastState = null; // the leader's last state(), passed on as it came
  const kept = [];

  let open = true;
  const post = (message) => open && channel.postMessage({ ...message, from: me });
  const hasFocus = () => document.visibilityState === "visible" && document.hasFocus();

  function noteFocus(tab, on) {
    if (on) focused = tab;
    else if (focused === tab) focused = null;
  }

  function sayFocus(event) {
    const on = event.type !== "pagehide" && hasFocus();
    if (leading) noteFocus(me, on);
    else post({ kind: "focus", on });
  }
  for (const type of ["focus", "blur", "visibilitychange", "pagehide"]) {
    window.addEventListener(type, sayFocus);
  }

  // A tab that just opened asks the leader for what it missed since its page was rendered;
  // live events wait until that answer, so that they are handled after it, in order.
  let pending = [];
  let asked = 0;
  const hello = () => {
    pending ??= [];
    const ask = ++asked;
    post({ kind: "hello", since: since() });
    if (hasFocus()) post({ kind: "focus", on: true }); // a new tab may never fire "focus"
    // No leader yet: stop waiting; the next leader's "leader" makes this tab ask again.
    setTimeout(() => ask === asked && flush(), HELLO_WAIT_MS);
  };

  function flush(events = []) {
    const queued = pending || [];
    pending = null;
    for (const event of [...events, ...queued]) take(event.event || event, event.toast === me);
  }

  function take(event, toastHere) {
    const always = event.type === "stream-reset" || event.type === "stream-error";
    if (!always && event.lastEventId && !isAfter(event.lastEventId, event.prev, since())) return;
    relayed(event, toastHere);
  }

  channel.addEventListener("message", ({ data: m }) => {
    if (!m || m.from === me) return;
    if (leading) {
      if (m.kind === "focus") noteFocus(m.from, m.on);
      else if (m.kind === "hello") {
        const missed = kept.filter((e) => isAfter(e.lastEventId, e.prev, m.since));
        post({ kind: "replay", to: m.from, events: missed, state: lastState });
      }
      return;
    }
    if (m.kind === "event") {
      if (pending) pending.push(m);
      else take(m.event, m.toast === me);
    } else if (m.kind === "replay" && m.to === me) {
      state(m.state);
      flush(m.events);
    } else if (m.kind === "state") state(m.state);
    else if (m.kind === "leader") hello();
  });

  state(null);
  hello();
  const quit = new AbortController();
  let release = null;
  navigator.locks
    .request(name, { signal: quit.signal }, () => {
      leading = true;
      flush();
      if (hasFocus()) focused = me;
      post({ kind: "leader" });
      lead();
      return new Promise((resolve) => (release = resolve)); // held until this tab goes away
    })
    .catch(() => {}); // left the queue (leave())

  return {
    // Leader: hand an EventSource event to the other tabs; true if this tab should toast it.
    publish(event, prev) {
      const shared = { type: event.type, data: event.data, lastEventId: event.lastEventId, prev };
      if (KEEP.has(event.type) && positions(shared.lastEventId)) {
        kept.push(shared);
        if (kept.length > REPLAY_KEEP) kept.shift();
      }
      const toast = focused || me;
      post({ kind: "event", event: shared, toast });
      return toast === me;
    },
    // Leader: tell the other tabs how the stream is doing (a follower's own states stay home).
    state(s) {
      if (!leading) return;
      lastState = s;
      post({ kind: "state", state: s });
    },
    // A signed-out page is done: it stops leading (the next tab takes the stream, with the
    // session a new login gave the browser) and stops waiting for the lock.
    leave() {
      if (release) release();
      else quit.abort();
      leading = false;
      open = false;
      channel.close();
      for (const type of ["focus", "blur", "visibilitychange", "pagehide"]) {
        window.removeEventListener(type, sayFocus);
      }
    },
  };
}
