// A chat room: one WebSocket per tab (protocol: docs/chat-protocol.md).
// Reconnects with backoff, backfills what it missed, keeps unsent messages and resends
// them with their client_msg_id (the server stores each once). All user text goes
// through textContent: nothing from the server or other users is parsed as HTML.
//
// Where the socket cannot open (a proxy that refuses Upgrade), the room falls back to
// SSE on its channel, and where that stays silent (a proxy that buffers responses), to
// long polls of it; messages are then sent with HTTP POST. Every transport starts from
// completeId (all messages up to it are shown) and shows each message once (by id), so
// a switch loses and repeats nothing. The better transports are tried again every
// UPGRADE_MS. #chat-transport says which one is live.

import { csrfToken } from "../notifications/live.js";

const root = document.getElementById("chat");
const ROOM = root.dataset.room;
const ME = root.dataset.me;
const ROOMS_API = root.dataset.roomsApi;
const MESSAGES_API = root.dataset.messagesApi;
const READ_API = root.dataset.readApi;
const CHANNEL = root.dataset.channel; // the room's SSE channel, chat-<id>
// Staff and the room's creator may delete anyone's message (feeds.access.can_moderate).
const CAN_MODERATE = root.dataset.canModerate === "true";
// How far this user had read the room when the page opened: it opens at the next message.
const LAST_READ_AT_OPEN = Number(root.dataset.lastRead || 0);
// Read markers go to the server at most once per READ_SEND_MS (the server throttles too),
// and to the user's /chat/ pages in this browser at once (rooms.js).
const READ_SEND_MS = 1000;
// The emoji a message may get (feeds.protocol.REACTIONS).
const REACTIONS = ["👍", "❤️", "😂", "😮", "😢", "🎉"];
const readChannel = "BroadcastChannel" in window ? new BroadcastChannel(`pulse-chat-read:${ME}`) : null;
const EVENTS_URL = "/events/";
const POLL_URL = "/api/notifications/poll/";
const WS_URL = new URL(root.dataset.wsPath, window.location.href);
WS_URL.protocol = window.location.protocol === "https:" ? "wss:" : "ws:";

const CONTENT_MAX = 2000;
const TYPING_SEND_MS = 1500;
const TYPING_SHOW_MS = 4000;
// Shared by the room's tabs: each merges its own entries in (see savePending).
const PENDING_KEY = `pulse-chat-pending:${ME}:${ROOM}`;
const RETRY_AFTER_MS = { rate_limited: 3000, unavailable: 2000 };
const NOTICE_MS = 6000;
const CLOSE_SIGNED_OUT = 4001;
const CLOSE_ACCESS_REVOKED = 4003;
const CLOSE_RATE_LIMITED = 4008;
const CLOSE_TOO_MANY_CONNECTIONS = 4029;
const CLOSE_SERVICE_RESTART = 1012; // this server process restarts: another one takes the tab
const RESTART_JITTER_MS = 1000;
// Fallback: sockets that close before their welcome this many times in a row; a socket
// with no welcome in WS_OPEN_MS; a stream with no stream-open in STREAM_OPEN_MS, or no
// event (keep-alives come every 20 s) in STREAM_SILENT_MS.
const WS_FAILURES_TO_FALL_BACK = 2;
const WS_OPEN_MS = 5000;
const STREAM_OPEN_MS = 4000;
const STREAM_SILENT_MS = 45000;
const UPGRADE_MS = 60000;
const POLL_WAIT_S = 25;
const TRANSPORT_NAMES = { ws: "WebSocket", sse: "SSE", poll: "polling" };

const log = document.getElementById("chat-log");
const list = document.getElementById("chat-messages");
const empty = document.getElementById("chat-empty");
const olderButton = document.getElementById("chat-older");
const statusEl = document.getElementById("chat-status");
const transportEl = document.getElementById("chat-transport");
const banner = document.getElementById("chat-banner");
const typingEl = document.getElementById("chat-typing");
const form = document.getElementById("chat-form");
const input = document.getElementById("chat-input");
const counter = document.getElementById("chat-count");
const onlineList = document.getElementById("chat-online");
const onlineCount = document.getElementById("chat-online-count");
const jumpButton = document.getElementById("chat-jump");
const notice = document.getElementById("chat-notice");
const dmPresence = document.getElementById("dm-presence"); // a direct message: the other person

let socket = null;
let attempts = 0;
let reconnectTimer = null;
let stopped = false;
let lastSeenId = 0; // the newest message id this tab has shown
// Every message of the room up to completeId is shown (null until the first welcome).
// Live messages can arrive out of id order, and one whose broadcast was lost can lie
// below lastSeenId: backfill starts here, not at lastSeenId. Each message names the
// room's previous one (`prev`); nextOf holds those links above completeId.
let completeId = null;
const nextOf = new Map(); // prev id -> id
let oldestId = null;
let lastTypingSent = 0;
let hashShown = false;
let readTo = LAST_READ_AT_OPEN; // the furthest read, by this tab or the user's others
let readSent = LAST_READ_AT_OPEN;
let readTimer = null;
const shown = new Set();
const reactionsOf = new Map(); // message id -> Map(emoji -> Set(usernames))
const online = new Set();
const typers = new Map(); // username -> timer
const pending = new Map(loadPending()); // client_msg_id -> {content, failed, reason, retried}
const dropped = new Set(); // ids this tab resolved: to remove from the shared store
let noticeTimer = null;
let mode = "ws"; // the transport in use: ws, sse or poll
let wsFailures = 0; // sockets in a row that closed before their welcome
let fallback = null; // the open SSE stream or poll loop: {kind, close()}
let upgradeTimer = null;

// ---------------------------------------------------------------- helpers

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = text;
  return node;
}

function newId() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function avatar(name) {
  let hash = 0;
  for (const ch of name) hash = (hash * 31 + ch.codePointAt(0)) >>> 0;
  const node = el("span", "avatar", [...name][0] || "?");
  node.style.background = `hsl(${hash % 360} 55% 48%)`;
  node.setAttribute("aria-hidden", "true");
  return node;
}

function timeNode(iso) {
  const time = el("time", "msg-time");
  if (!iso) return time;
  const date = new Date(iso);
  time.dateTime = iso;
  time.title = date.toLocaleString();
  const today = new Date().toDateString() === date.toDateString();
  time.textContent = today
    ? date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })
    : date.toLocaleString([], { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });
  return time;
}

// Text with @mentions highlighted, built from text nodes and spans only.
function bodyNode(content) {
  const body = el("div", "msg-body");
  const parts = content.split(/(@[\w.@+-]+)/u);
  parts.forEach((part, i) => {
    if (i % 2 === 1) {
      const name = part.slice(1).replace(/[.-]+$/, "");
      body.append(el("span", `mention${name === ME ? " me" : ""}`, part));
    } else if (part) {
      body.append(document.createTextNode(part));
    }
  });
  return body;
}

function nearBottom() {
  return log.scrollHeight - log.scrollTop - log.clientHeight < 80;
}

function scrollToBottom() {
  log.scrollTop = log.scrollHeight;
  jumpButton.hidden = true;
}

// ---------------------------------------------------------------- read markers

// The newest message the reader has had on screen: the log's bottom edge, while the tab
// is visible.
function readableTo() {
  if (document.visibilityState !== "visible") return 0;
  const bottom = log.getBoundingClientRect().bottom;
  let newest = 0;
  for (const row of list.querySelectorAll("li.msg[data-id]")) {
    if (row.getBoundingClientRect().top < bottom) newest = Math.max(newest, Number(row.dataset.id));
  }
  return newest;
}

function markRead() {
  const id = readableTo();
  if (id <= readTo) return;
  readTo = id;
  readTimer ??= setTimeout(sendRead, READ_SEND_MS);
}

function sendRead() {
  readTimer = null;
  if (readTo <= readSent) return;
  const id = readTo;
  if (mode === "ws" && socket?.readyState === WebSocket.OPEN) {
    socket.send(JSON.stringify({ type: "read", id }));
  } else if (mode !== "ws") {
    // Without a socket (SSE or polls), the same frame over HTTP.
    fetch(READ_API, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", Accept: "application/json", "X-CSRFToken": csrfToken() },
      body: JSON.stringify({ id }),
    }).catch(() => {});
  } else {
    readTimer = setTimeout(sendRead, READ_SEND_MS); // the socket is reconnecting: try again
    return;
  }
  readSent = id;
  readChannel?.postMessage({ room: ROOM, id });
}

// Opening a room shows its first unread message under a "New" divider (a first visit or
// nothing new: the newest messages, as before).
function showFirstUnread() {
  const first = [...list.querySelectorAll("li.msg[data-id]")].find(
    (row) => Number(row.dataset.id) > LAST_READ_AT_OPEN && !row.classList.contains("mine"),
  );
  if (!LAST_READ_AT_OPEN || !first) return false;
  const divider = el("li", "unread-divider", "New messages");
  divider.id = "chat-unread-divider";
  list.insertBefore(divider, first);
  divider.scrollIntoView({ block: "start" });
  return true;
}

function showNotice(text) {
  notice.textContent = text;
  notice.hidden = false;
  clearTimeout(noticeTimer);
  noticeTimer = setTimeout(() => {
    notice.hidden = true;
  }, NOTICE_MS);
}

function setStatus(state, text) {
  statusEl.dataset.state = state;
  statusEl.textContent = text;
  // Presence needs the socket: over SSE and polls the online list is not kept current.
  onlineList.classList.toggle("stale", state !== "open" || mode !== "ws");
  transportEl.textContent = state === "open" ? TRANSPORT_NAMES[mode] : "";
  transportEl.hidden = state !== "open";
}

function showBanner(text, link) {
  banner.replaceChildren(document.createTextNode(`${text} `));
  if (link) {
    const a = el("a", null, link.text);
    a.href = link.href;
    banner.append(a);
  }
  banner.hidden = false;
}

// ---------------------------------------------------------------- messages

function messageNode(m) {
  const li = el("li", `msg${m.user === ME ? " mine" : ""}`);
  li.id = `m${m.id}`;
  li.dataset.id = String(m.id);
  const main = el("div", "msg-main");
  const head = el("div", "msg-head");
  head.append(el("span", "msg-author", m.user), timeNode(m.created_at));
  main.append(head, bodyNode(m.content));
  li.append(avatar(m.user), main);
  applyChange(li, m);
  return li;
}

// A message's current state on its row: edited text and mark, or a tombstone.
function applyChange(li, m) {
  const main = li.querySelector(".msg-main");
  const head = main.querySelector(".msg-head");
  head.querySelector(".msg-actions")?.remove();
  if (m.reactions) {
    reactionsOf.set(m.id, new Map(Object.entries(m.reactions).map(([e, names]) => [e, new Set(names)])));
  }
  if (m.deleted) {
    reactionsOf.delete(m.id);
    li.querySelector(".msg-reactions")?.remove();
    li.classList.add("deleted");
    li.dataset.content = "";
    main.querySelector(".msg-body").replaceWith(el("div", "msg-body msg-tombstone", "message deleted"));
    head.querySelector(".msg-edited")?.remove();
    return;
  }
  if (li.classList.contains("deleted")) return; // a delete is final; a late edit is stale
  if (m.edited_at && li.dataset.editedAt !== m.edited_at) {
    li.dataset.editedAt = m.edited_at;
    main.querySelector(".msg-body").replaceWith(bodyNode(m.content));
    if (!head.querySelector(".msg-edited")) head.append(el("span", "msg-edited", "(edited)"));
  }
  li.dataset.content = m.content;
  const actions = el("span", "msg-actions");
  if (m.user === ME) actions.append(actionButton("Edit", () => editMessage(li)));
  if (m.user === ME || CAN_MODERATE) actions.append(actionButton("Delete", () => deleteMessage(li)));
  actions.append(actionButton("React", () => li.querySelector(".reaction-picker")?.toggleAttribute("hidden")));
  if (m.user !== ME) actions.append(actionButton("Report", () => reportMessage(li)));
  if (m.user !== ME && CAN_MODERATE) {
    actions.append(actionButton("Mute", () => muteAuthor(m.user)), actionButton("Ban", () => banAuthor(m.user)));
  }
  head.append(actions);
  renderReactions(li);
}

// ---------------------------------------------------------------- reactions

// The row under a message: one chip per emoji used (its count; pressed if one's own),
// and a hidden picker of the whole set ("React"). Either toggles one's own reaction.
function renderReactions(li) {
  const id = Number(li.dataset.id);
  const bar = el("div", "msg-reactions");
  for (const [emoji, names] of reactionsOf.get(id) || []) {
    if (!names.size) continue;
    const chip = el("button", `reaction${names.has(ME) ? " mine" : ""}`, `${emoji} ${names.size}`);
    chip.type = "button";
    chip.title = [...names].join(", ");
    chip.setAttribute("aria-pressed", String(names.has(ME)));
    chip.addEventListener("click", () => react(id, emoji));
    bar.append(chip);
  }
  const picker = el("span", "reaction-picker");
  picker.hidden = true;
  for (const emoji of REACTIONS) picker.append(actionButton(emoji, () => react(id, emoji)));
  bar.append(picker);
  li.querySelector(".msg-reactions")?.remove();
  li.querySelector(".msg-main").append(bar);
}

function react(id, emoji) {
  if (mode === "ws" && socket?.readyState === WebSocket.OPEN) socket.send(JSON.stringify({ type: "react", id, emoji }));
  else showNotice("Reactions need a live connection; try again in a moment.");
}

function changeMessage(m) {
  const li = document.getElementById(`m${m.id}`);
  if (li) applyChange(li, m);
}

function link(m) {
  const prev = m.prev ?? 0;
  if (completeId === null || prev < completeId) return;
  nextOf.set(prev, m.id);
  while (nextOf.has(completeId)) {
    const next = nextOf.get(completeId);
    nextOf.delete(completeId);
    completeId = next;
  }
}

// Insert in id order: live messages append, backfilled and older ones slot in.
function showMessage(m, { animate = false } = {}) {
  link(m); // a history page may relink a message shown before
  if (shown.has(m.id)) return changeMessage(m); // edited or deleted since it was shown
  shown.add(m.id);
  const stick = nearBottom();
  const newest = m.id > lastSeenId;
  const node = messageNode(m);
  if (animate) node.classList.add("arriving");
  let next = list.querySelector("li.msg.pending"); // unsent messages stay last
  if (m.id < lastSeenId) {
    for (const row of list.querySelectorAll("li.msg[data-id]")) {
      if (Number(row.dataset.id) > m.id) {
        next = row;
        break;
      }
    }
  }
  list.insertBefore(node, next);
  lastSeenId = Math.max(lastSeenId, m.id);
  oldestId = oldestId === null ? m.id : Math.min(oldestId, m.id);
  empty.hidden = true;
  const mineNow = m.user === ME && m.client_msg_id && pending.has(m.client_msg_id);
  if (mineNow) resolvePending(m.client_msg_id);
  // New messages are followed only by a reader already at the bottom (and one's own just
  // sent); a reader who scrolled up to read gets a button instead of being yanked down.
  if (stick || (mineNow && animate)) scrollToBottom();
  else if (newest) jumpButton.hidden = false;
}

function showOlder(messages) {
  const before = log.scrollHeight - log.scrollTop;
  for (const m of messages) showMessage(m);
  log.scrollTop = log.scrollHeight - before; // keep what the reader was looking at
}

// A link to a message (a mention's notification) older than the welcome's history pages
// back to it, at most HASH_PAGES_MAX pages.
const HASH_PAGES_MAX = 10;
let hashPages = 0;

function revealHash() {
  if (hashShown || !window.location.hash.startsWith("#m")) return;
  const target = document.getElementById(window.location.hash.slice(1));
  const wanted = Number(window.location.hash.slice(2));
  if (!target && wanted > 0 && oldestId !== null && wanted < oldestId && !olderButton.hidden) {
    if (hashPages++ < HASH_PAGES_MAX && !historyQuery) requestHistory({ before: oldestId });
    return;
  }
  if (!target) return;
  hashShown = true;
  target.scrollIntoView({ block: "center" });
  target.classList.add("highlight");
  setTimeout(() => target.classList.remove("highlight"), 2500);
}

// ---------------------------------------------------------------- unsent messages

function loadPending() {
  try {
    const saved = JSON.parse(window.localStorage.getItem(PENDING_KEY) || "[]");
    return Array.isArray(saved) ? saved.filter((e) => Array.isArray(e) && typeof e[0] === "string") : [];
  } catch {
    return [];
  }
}

// Read, merge, write: another tab of the room may have stored its own unsent messages
// since, and they must survive this tab's save. A message adopted by two tabs is sent by
// both with one client_msg_id, which the server stores once.
function savePending() {
  try {
    const merged = new Map(loadPending());
    for (const id of dropped) merged.delete(id);
    for (const [id, entry] of pending) merged.set(id, entry);
    dropped.clear();
    if (merged.size) window.localStorage.setItem(PENDING_KEY, JSON.stringify([...merged]));
    else window.localStorage.removeItem(PENDING_KEY);
  } catch {
    // storage full or disabled: unsent messages then live as long as the tab
  }
}

function pendingNode(id) {
  let li = document.getElementById(`pending-${id}`);
  if (!li) {
    const entry = pending.get(id);
    li = el("li", "msg pending mine");
    li.id = `pending-${id}`;
    const main = el("div", "msg-main");
    const head = el("div", "msg-head");
    head.append(el("span", "msg-author", ME), el("span", "msg-state"));
    main.append(head, bodyNode(entry.content));
    li.append(avatar(ME), main);
    list.append(li);
    empty.hidden = true;
  }
  return li;
}

function renderPending(id) {
  const entry = pending.get(id);
  if (!entry) return;
  const li = pendingNode(id);
  li.classList.toggle("failed", Boolean(entry.failed));
  const state = li.querySelector(".msg-state");
  state.replaceChildren(document.createTextNode(entry.failed ? `Not sent: ${entry.reason}` : "Sending…"));
  if (entry.failed) {
    if (entry.retry) state.append(actionButton("Retry", () => retryPending(id)));
    state.append(actionButton("Discard", () => resolvePending(id)));
  }
}

function actionButton(label, onClick) {
  const button = el("button", "link-button", label);
  button.type = "button";
  button.addEventListener("click", onClick);
  return button;
}

function resolvePending(id) {
  if (!pending.delete(id)) return;
  dropped.add(id);
  document.getElementById(`pending-${id}`)?.remove();
  savePending();
}

// A refusal that may pass later (rate_limited, unavailable) is retried once by itself.
function retryLater(id, code) {
  const entry = pending.get(id);
  if (!entry) return;
  entry.retried = true;
  savePending();
  setTimeout(() => {
    if (pending.get(id) === entry && !entry.failed) transmit(id);
  }, RETRY_AFTER_MS[code]);
}

function failPending(id, reason, retry) {
  const entry = pending.get(id);
  if (!entry) return;
  Object.assign(entry, { failed: true, reason, retry });
  savePending();
  renderPending(id);
}

function transmit(id) {
  const entry = pending.get(id);
  if (!entry) return;
  if (mode !== "ws") {
    if (fallback?.live) post(id, entry);
    return;
  }
  if (!socket || socket.readyState !== WebSocket.OPEN) return;
  socket.send(JSON.stringify({ type: "message", content: entry.content, client_msg_id: id }));
}

// The socket's `message` frame as an HTTP POST; the answers map to the socket's frames.
async function post(id, entry) {
  let response;
  let body = {};
  try {
    response = await fetch(MESSAGES_API, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", Accept: "application/json", "X-CSRFToken": csrfToken() },
      body: JSON.stringify({ type: "message", content: entry.content, client_msg_id: id }),
    });
    body = await response.json();
  } catch {
    if (!response) return; // offline: it stays pending and goes again once live
  }
  if (response.ok && body.message) {
    showMessage(body.message, { animate: true });
    resolvePending(id);
  } else if (response.status === 403 || response.status === 404) {
    if (await stillWelcome()) failPending(id, body.error || `HTTP ${response.status}`, true);
  } else {
    handlers.error({ code: body.code || "unavailable", message: body.error || `HTTP ${response.status}`, client_msg_id: id });
  }
}

function retryPending(id) {
  const entry = pending.get(id);
  if (!entry) return;
  entry.failed = false;
  savePending();
  renderPending(id);
  transmit(id);
}

function sendMessage(content) {
  const id = newId();
  pending.set(id, { content, failed: false });
  savePending();
  renderPending(id);
  scrollToBottom(); // the writer wants to see what they sent
  transmit(id); // if the socket is down, the next welcome sends it
}

// Once per connection, after backfill: whatever is still unconfirmed goes again, same id.
function resendPending() {
  for (const [id, entry] of pending) {
    if (!entry.failed) transmit(id);
  }
}

// ---------------------------------------------------------------- presence and typing

function renderOnline() {
  onlineList.replaceChildren();
  const names = [...online].sort((a, b) => (a === ME ? -1 : b === ME ? 1 : a.localeCompare(b)));
  for (const name of names) {
    const li = el("li");
    if (name === ME) {
      li.append(avatar(name), el("span", "online-name", name), el("span", "you", "(you)"));
    } else {
      const link = el("a", "online-name", name);
      link.href = `/chat/dm/${encodeURIComponent(name)}/`;
      link.title = `Message ${name}`;
      li.append(avatar(name), link);
    }
    onlineList.append(li);
  }
  onlineCount.textContent = String(online.size);
  if (dmPresence) {
    const here = online.has(dmPresence.dataset.user);
    dmPresence.textContent = here ? "online" : "offline";
    dmPresence.classList.toggle("live", here);
  }
}

function renderTyping() {
  const names = [...typers.keys()];
  if (names.length === 0) typingEl.textContent = "";
  else if (names.length === 1) typingEl.textContent = `${names[0]} is typing…`;
  else if (names.length === 2) typingEl.textContent = `${names[0]} and ${names[1]} are typing…`;
  else typingEl.textContent = "Several people are typing…";
}

function setTyping(name) {
  clearTimeout(typers.get(name));
  typers.set(name, setTimeout(() => stopTyping(name), TYPING_SHOW_MS));
  renderTyping();
}

function stopTyping(name) {
  if (!typers.has(name)) return;
  clearTimeout(typers.get(name));
  typers.delete(name);
  renderTyping();
}

// ---------------------------------------------------------------- frames

const handlers = {
  welcome(frame) {
    attempts = 0;
    banner.hidden = true;
    setStatus("open", "Live");
    online.clear();
    for (const name of frame.online) online.add(name);
    renderOnline();
    const first = oldestId === null;
    // The first welcome anchors the chain: nothing older than its history is needed.
    if (completeId === null) completeId = frame.history.length ? (frame.history[0].prev ?? 0) : 0;
    for (const m of frame.history) showMessage(m);
    // A message this tab never got lies below the newest it has (a lost broadcast, or more
    // missed than the welcome holds): fetch everything after the last point with no gap.
    const gap = completeId < lastSeenId;
    // Fewer than 50 can still mean more: the server caps the welcome's history at 48 KiB.
    if (first) olderButton.hidden = frame.history.length < 50 && JSON.stringify(frame.history).length < 40000;
    empty.hidden = shown.size > 0 || pending.size > 0;
    if (gap) {
      requestHistory({ after: completeId });
    } else {
      resendPending();
      if (first && !showFirstUnread()) scrollToBottom();
    }
    revealHash();
    markRead();
  },
  broadcast(frame) {
    stopTyping(frame.data.user);
    showMessage(frame.data, { animate: true });
    markRead();
  },
  message_edited(frame) {
    changeMessage(frame.data);
  },
  message_deleted(frame) {
    changeMessage({ id: frame.id, deleted: true });
  },
  reaction(frame) {
    if (!reactionsOf.has(frame.id)) reactionsOf.set(frame.id, new Map());
    const byEmoji = reactionsOf.get(frame.id);
    if (!byEmoji.has(frame.emoji)) byEmoji.set(frame.emoji, new Set());
    byEmoji.get(frame.emoji)[frame.on ? "add" : "delete"](frame.user);
    const li = document.getElementById(`m${frame.id}`);
    if (li && !li.classList.contains("deleted")) renderReactions(li);
  },
  read(frame) {
    // Sent to every socket of the user: another tab (or device) read a room this far.
    if (frame.room !== ROOM) return;
    readTo = Math.max(readTo, frame.id);
    readSent = Math.max(readSent, frame.id);
  },
  history(frame) {
    historyQuery = null;
    if (frame.before !== undefined) {
      showOlder(frame.messages);
      olderButton.hidden = !frame.has_more;
      olderButton.disabled = false;
      revealHash();
      return;
    }
    for (const m of frame.messages) showMessage(m);
    const last = frame.messages.at(-1);
    if (frame.has_more && last) requestHistory({ after: last.id });
    else resendPending(); // backfill done
  },
  ack(frame) {
    if (frame.for === "message" && frame.client_msg_id) resolvePending(frame.client_msg_id);
    else if (frame.for === "report") showNotice("Thanks: the message was reported to the staff.");
    else if (frame.for === "mute") showNotice(`${frame.user} is muted until ${new Date(frame.until).toLocaleTimeString()}.`);
    else if (frame.for === "ban") showNotice(`${frame.user} is banned from this room.`);
  },
  typing(frame) {
    if (frame.user !== ME) setTyping(frame.user);
  },
  presence(frame) {
    for (const name of frame.joined) online.add(name);
    for (const name of frame.left) {
      online.delete(name);
      stopTyping(name);
    }
    renderOnline();
  },
  error(frame) {
    const id = frame.client_msg_id;
    if (id && pending.has(id)) {
      const transient = Object.hasOwn(RETRY_AFTER_MS, frame.code);
      if (transient && !pending.get(id).retried) return retryLater(id, frame.code);
      const reason = {
        rate_limited: "you are sending too fast",
        muted: `a moderator muted you here: ${Math.ceil((frame.remaining_seconds || 0) / 60)} more minutes`,
      }[frame.code];
      failPending(id, reason || frame.message, transient);
    } else if (frame.code === "rate_limited" && historyQuery) {
      // A long backfill can outrun the frame budget: ask for the same page again shortly.
      const query = historyQuery;
      setTimeout(() => requestHistory(query), 1000);
    } else if (frame.code === "rate_limited") {
      typingEl.textContent = "Slow down: you are sending too fast.";
    } else {
      showNotice(`The server refused a request: ${frame.message}`);
    }
  },
};

// ---------------------------------------------------------------- edit and delete

// Over the socket when it is open (the room's message_edited / message_deleted confirms
// it, an error frame refuses it), else over HTTP; the row changes when the room is told.
async function sendChange(frame) {
  if (mode === "ws" && socket && socket.readyState === WebSocket.OPEN) {
    socket.send(JSON.stringify(frame));
    return;
  }
  const url = new URL(`${frame.id}/`, new URL(MESSAGES_API, window.location.href));
  const editing = frame.type === "edit";
  try {
    const response = await fetch(url, {
      method: editing ? "PATCH" : "DELETE",
      headers: { "Content-Type": "application/json", "X-CSRFToken": csrfToken(), Accept: "application/json" },
      credentials: "same-origin",
      body: editing ? JSON.stringify({ content: frame.content }) : undefined,
    });
    if (response.status === 204) return changeMessage({ id: frame.id, deleted: true });
    const body = await response.json();
    if (response.ok) changeMessage(body.message);
    else showNotice(`The server refused a request: ${body.error}`);
  } catch {
    showNotice("Could not reach the server: try again.");
  }
}

function editMessage(li) {
  const content = window.prompt("Edit your message", li.dataset.content || "");
  if (content === null || !content.trim() || content.trim() === li.dataset.content) return;
  if (content.length > CONTENT_MAX) return showNotice(`Messages are at most ${CONTENT_MAX} characters.`);
  sendChange({ type: "edit", id: Number(li.dataset.id), content });
}

function deleteMessage(li) {
  if (window.confirm("Delete this message for everyone?")) sendChange({ type: "delete", id: Number(li.dataset.id) });
}

// Moderation (docs/chat-protocol.md, "Moderation"): answered by an `ack` or an `error`.
function sendModeration(frame) {
  if (mode === "ws" && socket?.readyState === WebSocket.OPEN) socket.send(JSON.stringify(frame));
  else showNotice("This needs a live connection; try again in a moment.");
}

function reportMessage(li) {
  const reason = window.prompt("Report this message to the site's staff. Why?", "");
  if (reason !== null) sendModeration({ type: "report", id: Number(li.dataset.id), reason: reason.slice(0, 500) });
}

function muteAuthor(username) {
  const minutes = Number(window.prompt(`Mute ${username} for how many minutes?`, "10"));
  if (Number.isInteger(minutes) && minutes > 0) sendModeration({ type: "mute", username, minutes });
}

function banAuthor(username) {
  if (window.confirm(`Ban ${username} from this room for good?`)) sendModeration({ type: "ban", username });
}

let historyQuery = null; // the history page asked for and not answered yet

function requestHistory(query) {
  historyQuery = query;
  if (socket && socket.readyState === WebSocket.OPEN) {
    socket.send(JSON.stringify({ type: "history", ...query }));
  } else if (mode !== "ws" && query.before !== undefined) {
    // Without the socket only older pages are asked for: the channel replays the rest.
    fetchHistory(query).then((page) => page && handlers.history(page));
  }
}

async function fetchHistory(query) {
  const url = new URL(MESSAGES_API, window.location.href);
  for (const [name, value] of Object.entries(query)) url.searchParams.set(name, String(value));
  try {
    const response = await fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" });
    return response.ok ? await response.json() : null;
  } catch {
    return null;
  }
}

// ---------------------------------------------------------------- connection

function connect() {
  reconnectTimer = null;
  setStatus("connecting", attempts ? "Reconnecting…" : "Connecting…");
  openSocket(null);
}

// A socket; `probe` (in a fallback) is called with true once it is welcomed, and then it
// takes over, or with false if it closed before.
function openSocket(probe) {
  const ws = new WebSocket(WS_URL);
  let welcomed = false;
  if (!probe) socket = ws;
  const unwelcome = setTimeout(() => ws.close(), WS_OPEN_MS); // a proxy may hold it open
  ws.addEventListener("message", (event) => {
    let frame;
    try {
      frame = JSON.parse(event.data);
    } catch {
      return;
    }
    if (!welcomed && frame?.type === "welcome") {
      welcomed = true;
      clearTimeout(unwelcome);
      wsFailures = 0;
      if (probe) {
        probe(true);
        if (stopped) return ws.close();
        mode = "ws";
        socket = ws;
      }
    }
    if (socket === ws && frame && Object.hasOwn(handlers, frame.type)) handlers[frame.type](frame);
  });
  ws.addEventListener("close", (event) => {
    clearTimeout(unwelcome);
    if (probe && !welcomed) return probe(false);
    if (socket !== ws) return;
    socket = null;
    for (const name of [...typers.keys()]) stopTyping(name);
    if (!welcomed && event.code < 4000 && ++wsFailures >= WS_FAILURES_TO_FALL_BACK) {
      // Only when the server answers HTTP: a server that is down (a restart) is waited
      // for on the socket, not taken for a proxy in the way.
      answersHttp().then((answers) => (answers ? fallBack("sse") : onClose(event.code)));
      return;
    }
    onClose(event.code);
  });
}

async function answersHttp() {
  try {
    const response = await fetch(ROOMS_API, { headers: { Accept: "application/json" }, credentials: "same-origin" });
    return response.ok;
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------- fallback transports

function cursor() {
  return `${CHANNEL}:${completeId}`;
}

// Live on `kind`: say so, and send what is waiting (the same ids: stored once).
function nowLive(transport) {
  if (fallback !== transport || transport.live) return;
  transport.live = true;
  attempts = 0;
  banner.hidden = true;
  setStatus("open", "Live");
  resendPending();
}

function onStreamEvent(transport, event, data) {
  if (event === "message") {
    stopTyping(data.user);
    showMessage(data, { animate: true });
    empty.hidden = shown.size > 0 || pending.size > 0;
  } else if (event === "message_edited") {
    changeMessage(data);
  } else if (event === "message_deleted") {
    changeMessage({ id: data.id, deleted: true });
  } else if (event === "reaction") {
    handlers.reaction(data);
  } else if (event === "stream-reset") {
    window.location.reload(); // the server cannot replay from here: start over
  } else if (event === "stream-error" && data?.reason === "session-ended") {
    transport.close();
    stop("You were signed out.", { text: "Log in again", href: loginUrl() });
  } else if (event === "stream-error" && transport.kind === "sse") {
    // channels-changed (left a private room: the new stream is refused), server-restart:
    // a new stream from where the page is. A poll simply polls again.
    transport.close();
    setTimeout(() => fallback === transport && fallBack("sse"), Math.random() * RESTART_JITTER_MS);
  }
}

// The newest page over HTTP, for a tab whose socket never welcomed it.
async function firstPage() {
  if (completeId !== null) return true;
  const page = await fetchHistory({ limit: 50 });
  if (!page) return false;
  if (completeId === null) completeId = page.messages.length ? (page.messages[0].prev ?? 0) : 0;
  for (const m of page.messages) showMessage(m);
  olderButton.hidden = !page.has_more;
  empty.hidden = shown.size > 0 || pending.size > 0;
  scrollToBottom();
  revealHash();
  return true;
}

async function fallBack(kind) {
  fallback?.close();
  fallback = null;
  mode = kind;
  setStatus("connecting", "Connecting…");
  if (!(await firstPage())) {
    if (!(await stillWelcome())) return;
    attempts += 1;
    reconnectTimer = setTimeout(() => fallBack(kind), Math.min(15000, 1000 * 2 ** attempts) * Math.random());
    return;
  }
  if (stopped || mode !== kind || fallback) return;
  fallback = kind === "sse" ? openStream(null) : openPoll();
  clearTimeout(upgradeTimer);
  upgradeTimer = setTimeout(upgrade, UPGRADE_MS);
}

// The room's channel over SSE. `probe` (from polling): called with true on stream-open,
// and the stream takes over, or with false when it failed.
function openStream(probe) {
  const url = new URL(EVENTS_URL, window.location.href);
  url.searchParams.set("channel", CHANNEL);
  url.searchParams.set("lastEventId", cursor());
  const source = new EventSource(url);
  const transport = { kind: "sse", live: false };
  let opened = false;
  let silence = null;
  const failed = () => {
    transport.close();
    if (probe && !opened) probe(false);
    else if (fallback === transport) fallBack("poll");
  };
  const heard = () => {
    clearTimeout(silence);
    silence = setTimeout(failed, STREAM_SILENT_MS);
  };
  const unopened = setTimeout(failed, STREAM_OPEN_MS);
  transport.close = () => {
    clearTimeout(unopened);
    clearTimeout(silence);
    source.close();
  };
  source.addEventListener("stream-open", () => {
    heard();
    if (opened) {
      // EventSource reconnected by itself, from its last id
      if (fallback === transport) setStatus("open", "Live");
      return;
    }
    opened = true;
    clearTimeout(unopened);
    if (probe) {
      probe(true);
      fallback = transport;
    }
    nowLive(transport);
  });
  source.addEventListener("keep-alive", heard);
  for (const name of ["message", "message_edited", "message_deleted", "reaction", "stream-reset", "stream-error"]) {
    source.addEventListener(name, (event) => {
      heard();
      let data = null;
      try {
        data = JSON.parse(event.data);
      } catch {
        return;
      }
      if (fallback === transport) onStreamEvent(transport, name, data);
    });
  }
  source.addEventListener("error", () => {
    // Refused (403, 429) or never opened: fall back; once open, EventSource reconnects
    // by itself with Last-Event-ID unless the server answered with an error.
    if (!opened || source.readyState === EventSource.CLOSED) failed();
    else if (fallback === transport) setStatus("connecting", "Reconnecting…");
  });
  return transport;
}

// The room's channel by long polls, each from the last answer's cursor.
function openPoll() {
  const controller = new AbortController();
  const transport = { kind: "poll", live: false, close: () => controller.abort() };
  let position = cursor();
  (async () => {
    let failures = 0;
    let wait = 0; // the first answers at once: live from then on
    while (!controller.signal.aborted) {
      const url = new URL(POLL_URL, window.location.href);
      url.searchParams.set("channel", CHANNEL);
      url.searchParams.set("cursor", position);
      url.searchParams.set("wait", String(wait));
      try {
        const response = await fetch(url, {
          headers: { Accept: "application/json" },
          credentials: "same-origin",
          signal: controller.signal,
        });
        if (response.status === 403 && !(await stillWelcome())) return;
        if (!response.ok) throw new Error(`HTTP ${response.status}`);
        const body = await response.json();
        if (controller.signal.aborted) return;
        nowLive(transport);
        failures = 0;
        wait = POLL_WAIT_S;
        for (const event of body.events) onStreamEvent(transport, event.event, event.data);
        position = body.cursor;
      } catch {
        if (controller.signal.aborted) return;
        failures += 1;
        transport.live = false;
        setStatus("connecting", "Reconnecting…");
        await new Promise((resolve) => setTimeout(resolve, Math.min(15000, 500 * 2 ** failures) * Math.random()));
      }
    }
  })();
  return transport;
}

// In a fallback: try the socket again, then (from polling) SSE; the first that opens
// takes over from where the page is, and the one in use is closed only then.
function upgrade() {
  upgradeTimer = null;
  if (stopped || mode === "ws") return;
  const from = fallback;
  const tookOver = () => {
    from?.close();
    if (fallback === from) fallback = null;
  };
  const again = () => {
    if (!stopped && fallback === from) upgradeTimer = setTimeout(upgrade, UPGRADE_MS);
  };
  openSocket((ok) => {
    if (ok) return tookOver();
    if (mode !== "poll" || fallback !== from) return again();
    openStream((streamOk) => {
      if (!streamOk) return again();
      tookOver();
      mode = "sse";
      upgradeTimer = setTimeout(upgrade, UPGRADE_MS);
    });
  });
}

async function onClose(code) {
  if (code === CLOSE_SIGNED_OUT) return stop("You were signed out.", { text: "Log in again", href: loginUrl() });
  if (code === CLOSE_ACCESS_REVOKED) return stop("You no longer have access to this room.", { text: "All rooms", href: "/chat/" });
  if (code === CLOSE_SERVICE_RESTART) {
    // Not an error: the server spreads these out, so come back at once; the welcome and
    // the backfill after lastSeenId cover the gap.
    setStatus("connecting", "Reconnecting…");
    reconnectTimer = setTimeout(connect, Math.random() * RESTART_JITTER_MS);
    return;
  }
  attempts += 1;
  // A refused handshake looks like any network error from here: after a few, ask the API why.
  if (attempts >= 3 && !(await stillWelcome())) return;
  const slow = code === CLOSE_RATE_LIMITED || code === CLOSE_TOO_MANY_CONNECTIONS;
  const base = slow ? 10000 : Math.min(15000, 500 * 2 ** Math.min(attempts - 1, 5));
  // Full jitter: after a server restart every tab reconnects at once, and a delay anywhere
  // in the window spreads them out; ±25 % around the base kept most in one second.
  const delay = slow ? base * (0.75 + Math.random() * 0.5) : base * Math.random();
  setStatus("connecting", `Reconnecting in ${Math.round(delay / 1000)} s…`);
  if (code === CLOSE_RATE_LIMITED) showBanner("Disconnected for sending too fast. Reconnecting shortly.");
  if (code === CLOSE_TOO_MANY_CONNECTIONS) showBanner("Too many chat tabs open. Close some; reconnecting shortly.");
  reconnectTimer = setTimeout(connect, delay);
}

async function stillWelcome() {
  try {
    const response = await fetch(ROOMS_API, { headers: { Accept: "application/json" }, credentials: "same-origin" });
    if (response.status === 403) {
      stop("You were signed out.", { text: "Log in again", href: loginUrl() });
      return false;
    }
    if (response.ok) {
      const data = await response.json();
      if (!data.rooms.some((room) => room.slug === ROOM)) {
        stop("This room is gone, or you no longer have access to it.", { text: "All rooms", href: "/chat/" });
        return false;
      }
    }
  } catch {
    // offline: keep retrying
  }
  return true;
}

function loginUrl() {
  return `/login/?next=${encodeURIComponent(window.location.pathname)}`;
}

function stop(text, link) {
  stopped = true;
  fallback?.close();
  clearTimeout(upgradeTimer);
  setStatus("closed", "Disconnected");
  showBanner(text, link);
  input.disabled = true;
  form.querySelector("button").disabled = true;
}

function reconnectNow() {
  if (stopped || socket || !reconnectTimer || mode !== "ws") return;
  clearTimeout(reconnectTimer);
  connect();
}

window.addEventListener("online", reconnectNow);
document.addEventListener("visibilitychange", () => {
  if (document.visibilityState === "visible") reconnectNow();
});

// ---------------------------------------------------------------- composer

function updateCounter() {
  const left = CONTENT_MAX - input.value.length;
  counter.textContent = left <= 200 ? `${left} characters left` : "";
  counter.classList.toggle("over", left < 0);
}

form.addEventListener("submit", (event) => {
  event.preventDefault();
  const content = input.value.trim();
  if (!content || content.length > CONTENT_MAX || stopped) return;
  sendMessage(content);
  input.value = "";
  lastTypingSent = 0;
  updateCounter();
  input.focus();
});

input.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    form.requestSubmit();
  }
});

input.addEventListener("input", () => {
  updateCounter();
  const now = Date.now();
  if (input.value.trim() && now - lastTypingSent > TYPING_SEND_MS && socket?.readyState === WebSocket.OPEN) {
    lastTypingSent = now;
    socket.send(JSON.stringify({ type: "typing" }));
  }
});

jumpButton.addEventListener("click", scrollToBottom);
log.addEventListener("scroll", () => {
  if (nearBottom()) jumpButton.hidden = true;
  markRead();
});
document.addEventListener("visibilitychange", markRead);

olderButton.addEventListener("click", () => {
  if (oldestId === null) return;
  olderButton.disabled = true;
  requestHistory({ before: oldestId });
});

for (const id of pending.keys()) renderPending(id);
scrollToBottom();
connect();
