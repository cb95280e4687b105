// Live notifications: one SSE stream per tab, the bell, the dropdown, toasts and the inbox.
// Every piece of text goes through textContent: nothing from the server is parsed as HTML.
import { safeHref } from "./links.js";

const body = document.body;
const STREAM_URL = body.dataset.streamUrl;
const TOAST_MS = 6000;

// ---------------------------------------------------------------- helpers

export function csrfToken() {
  const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
  return match ? decodeURIComponent(match[1]) : "";
}

export async function api(path, { method = "GET" } = {}) {
  const headers = { Accept: "application/json" };
  if (method !== "GET") headers["X-CSRFToken"] = csrfToken();
  const response = await fetch(path, { method, headers, credentials: "same-origin" });
  let data = null;
  try {
    data = await response.json();
  } catch {
    data = null;
  }
  if (!response.ok) {
    const error = new Error((data && data.error) || `HTTP ${response.status}`);
    error.status = response.status;
    throw error;
  }
  return data;
}

export function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = text;
  return node;
}

const relative = new Intl.RelativeTimeFormat(undefined, { numeric: "auto" });

export function timeAgo(iso) {
  const then = new Date(iso);
  const seconds = Math.round((then.getTime() - Date.now()) / 1000);
  const abs = Math.abs(seconds);
  if (abs < 45) return "just now";
  if (abs < 3600) return relative.format(Math.round(seconds / 60), "minute");
  if (abs < 86400) return relative.format(Math.round(seconds / 3600), "hour");
  if (abs < 86400 * 7) return relative.format(Math.round(seconds / 86400), "day");
  return then.toLocaleDateString();
}

// ---------------------------------------------------------------- bell badge

const badge = document.getElementById("bell-badge");

function setUnread(count) {
  if (!badge || typeof count !== "number") return;
  badge.dataset.count = String(count);
  badge.textContent = count > 99 ? "99+" : String(count);
  badge.hidden = count === 0;
  document.title = document.title.replace(/^\(\d+\+?\) /, "");
  if (count > 0) document.title = `(${count > 99 ? "99+" : count}) ${document.title}`;
}

// ---------------------------------------------------------------- toasts

const toasts = document.getElementById("toasts");

// A notification's toast (it has an id) reads it when clicked, like its row does.
export function toast({ id, title, body: text, level = "info", url }) {
  if (!toasts) return;
  const node = el("div", `toast level-${level}`);
  node.setAttribute("role", "status");
  const head = el("div", "toast-title", title);
  node.append(head);
  if (text) node.append(el("div", "toast-body", text));
  const href = safeHref(url);
  if (href || id) {
    node.classList.add("clickable");
    node.addEventListener("click", () => {
      const done = id ? markRead(id) : Promise.resolve();
      if (href) followAfter(done, href);
      else {
        done.catch(markFailed);
        node.remove();
      }
    });
  }
  const close = el("button", "toast-close", "×");
  close.type = "button";
  close.setAttribute("aria-label", "Dismiss");
  close.addEventListener("click", (event) => {
    event.stopPropagation();
    node.remove();
  });
  node.append(close);
  toasts.append(node);
  setTimeout(() => node.classList.add("leaving"), TOAST_MS);
  setTimeout(() => node.remove(), TOAST_MS + 400);
}

// ---------------------------------------------------------------- notification rows

function notificationRow(n, { compact = false } = {}) {
  const li = el("li", `item level-${n.level}${n.read ? "" : " unread"}`);
  li.dataset.id = String(n.id);
  li.append(el("span", "level-dot"));
  const main = el("div", "item-main");
  const title = el("div", "item-title");
  const href = safeHref(n.url);
  if (href) {
    const a = el("a", null, n.title);
    a.href = href;
    title.append(a);
  } else {
    title.textContent = n.title;
  }
  main.append(title);
  if (n.body && !compact) main.append(el("div", "item-body", n.body));
  const time = el("time", "item-time", timeAgo(n.created_at));
  time.dateTime = n.created_at;
  main.append(time);
  li.append(main);
  if (!n.read) {
    const button = el("button", "link-button mark-read", compact ? "✓" : "Mark read");
    button.type = "button";
    button.title = "Mark read";
    li.append(button);
  }
  return li;
}

function markRowsRead(ids) {
  for (const id of ids) {
    for (const row of document.querySelectorAll(`li.item[data-id="${Number(id)}"]`)) {
      row.classList.remove("unread");
      row.querySelector(".mark-read")?.remove();
      if (inboxUnreadOnly?.checked && row.closest("#inbox-list")) row.remove();
    }
  }
  if (inboxUnreadOnly?.checked) showInboxEmptyState();
}

async function markRead(id) {
  const data = await api(`/api/notifications/${Number(id)}/read/`, { method: "POST" });
  markRowsRead([id]);
  setUnread(data.unread);
}

async function markAllRead() {
  const data = await api("/api/notifications/read-all/", { method: "POST" });
  markRowsRead([...document.querySelectorAll("li.item.unread")].map((r) => r.dataset.id));
  markAnnouncementsRead([...document.querySelectorAll("[data-announcement-id]")].map((n) => n.dataset.announcementId));
  setUnread(data.unread);
}

function markRowRead(row) {
  return row.dataset.announcementId ? markAnnouncementRead(row.dataset.announcementId) : markRead(row.dataset.id);
}

const markFailed = (err) => toast({ title: "Could not mark read", body: err.message, level: "error" });

document.addEventListener("click", (event) => {
  const row = event.target.closest(".mark-read")?.closest("li.item");
  if (row) markRowRead(row).catch(markFailed);
});

// Opening an unread item reads it. The link waits for the POST (at most a moment), so the
// page it leads to, and every other tab, already count it read.
const FOLLOW_WAIT_MS = 1500;

document.addEventListener("click", (event) => {
  if (event.target.closest(".mark-read")) return;
  const row = event.target.closest("li.item.unread");
  if (!row?.closest("#bell-list, #inbox-list, #inbox-announcements")) return;
  const done = markRowRead(row);
  const link = event.target.closest("a[href]");
  const newTab = event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey;
  if (!link || newTab || event.defaultPrevented) {
    done.catch(markFailed);
    return;
  }
  event.preventDefault();
  followAfter(done, link.href);
});

function followAfter(done, href) {
  const waited = new Promise((resolve) => setTimeout(resolve, FOLLOW_WAIT_MS));
  Promise.race([done.catch(() => {}), waited]).then(() => window.location.assign(href));
}

// ---------------------------------------------------------------- dropdown

const bellButton = document.getElementById("bell-button");
const dropdown = document.getElementById("bell-dropdown");
const bellList = document.getElementById("bell-list");

async function refreshDropdown() {
  if (!bellList) return;
  try {
    // Unread announcements first: the badge counts them, so the list must show them too.
    // If only they fail to load, the notifications still show.
    const news = api("/api/announcements/?unread=1").catch(() => ({ results: [] }));
    const page = await api("/api/notifications/?limit=8");
    const { results: unreadNews } = await news;
    bellList.replaceChildren();
    for (const a of unreadNews) bellList.append(announcementRow(a, { compact: true }));
    for (const n of page.results) bellList.append(notificationRow(n, { compact: true }));
    if (!bellList.children.length) bellList.append(el("li", "empty", "No notifications yet."));
    setUnread(page.unread);
  } catch (err) {
    bellList.replaceChildren(el("li", "empty", `Could not load notifications (${err.message}).`));
  }
}

function setDropdown(open) {
  if (!dropdown) return;
  dropdown.hidden = !open;
  bellButton.setAttribute("aria-expanded", String(open));
  if (open) refreshDropdown();
}

bellButton?.addEventListener("click", (event) => {
  event.stopPropagation();
  setDropdown(dropdown.hidden);
});
document.addEventListener("click", (event) => {
  if (dropdown && !dropdown.hidden && !event.target.closest("#bell")) setDropdown(false);
});
document.addEventListener("keydown", (event) => {
  if (event.key === "Escape") setDropdown(false);
});
document.getElementById("bell-read-all")?.addEventListener("click", () => {
  markAllRead().catch((err) => toast({ title: "Could not mark all read", body: err.message, level: "error" }));
});

function prependToDropdown(n) {
  if (!bellList || dropdown.hidden) return;
  bellList.querySelector(".empty")?.remove();
  // Announcements stay pinned above the notifications.
  bellList.insertBefore(notificationRow(n, { compact: true }), bellList.querySelector("li.item[data-id]"));
  const rows = bellList.querySelectorAll("li.item[data-id]");
  if (rows.length > 8) rows[rows.length - 1].remove();
}

// ---------------------------------------------------------------- inbox page

const inboxList = document.getElementById("inbox-list");
const inboxMore = document.getElementById("inbox-more");
const inboxUnreadOnly = document.getElementById("inbox-unread-only");

async function loadInbox({ append = false } = {}) {
  const params = new URLSearchParams({ limit: "30" });
  if (inboxUnreadOnly.checked) params.set("unread", "1");
  if (append && inboxList.dataset.next) params.set("before", inboxList.dataset.next);
  inboxList.querySelector(".load-error")?.remove();
  let page;
  try {
    page = await api(`/api/notifications/?${params}`);
  } catch (err) {
    showInboxError(err, { append });
    return;
  }
  if (!append) inboxList.replaceChildren();
  for (const n of page.results) inboxList.append(notificationRow(n));
  showInboxEmptyState();
  inboxList.dataset.next = page.next ?? "";
  inboxMore.hidden = !page.next;
  setUnread(page.unread);
}

function showInboxEmptyState() {
  if (!inboxList || inboxList.querySelector("li.item")) return;
  const text = inboxUnreadOnly?.checked ? "No unread notifications." : "You're all caught up.";
  inboxList.replaceChildren(el("li", "empty", text));
}

function showInboxError(err, { append }) {
  if (err.status === 403) showSignedOut();
  const row = el("li", "empty load-error", `Could not load notifications (${err.message}). `);
  row.setAttribute("role", "alert");
  const retry = el("button", "link-button", "Try again");
  retry.type = "button";
  retry.addEventListener("click", () => loadInbox({ append }));
  row.append(retry);
  if (append) inboxList.append(row);
  else inboxList.replaceChildren(row);
}

if (inboxList) {
  for (const time of inboxList.querySelectorAll("time.item-time")) time.textContent = timeAgo(time.dateTime);
  inboxMore?.addEventListener("click", () => loadInbox({ append: true }));
  inboxUnreadOnly?.addEventListener("change", () => loadInbox());
  document.getElementById("inbox-read-all")?.addEventListener("click", () => {
    markAllRead().catch((err) => toast({ title: "Could not mark all read", body: err.message, level: "error" }));
  });
}

function prependToInbox(n) {
  if (!inboxList || inboxList.querySelector(`li.item[data-id="${Number(n.id)}"]`)) return;
  inboxList.querySelector(".empty")?.remove();
  const row = notificationRow({ ...n, read: false });
  row.classList.add("arriving");
  inboxList.prepend(row);
}

// ---------------------------------------------------------------- announcements
// Sent once per audience channel, so an announcement is shown once per tab whatever
// the number of its groups the user is in; the banner stays until read or expired.

const banner = document.getElementById("announcement-banner");
const inboxAnnouncements = document.getElementById("inbox-announcements");
const seenAnnouncements = new Set();

function announcementRow(a, options) {
  const row = notificationRow({ ...a, url: "" }, options);
  delete row.dataset.id;
  row.dataset.announcementId = String(a.id);
  row.querySelector(".item-title").prepend(el("span", "pin", "Announcement"), " ");
  scheduleExpiry(a.id, a.expires_at);
  return row;
}

// At expires_at an announcement leaves the banner, the lists and the count. The count is
// read back a moment later, so a client clock a little ahead of the server's still gets it.
const expiring = new Set();
const RECOUNT_AFTER_EXPIRY_MS = 1000;

function scheduleExpiry(id, expiresAt) {
  const left = expiresAt ? new Date(expiresAt).getTime() - Date.now() : NaN;
  if (!(left < 2 ** 31) || expiring.has(Number(id))) return;
  expiring.add(Number(id));
  setTimeout(() => expireAnnouncement(id), Math.max(0, left));
}

function expireAnnouncement(id) {
  hideBanner(id);
  for (const row of document.querySelectorAll(`li.item[data-announcement-id="${Number(id)}"]`)) row.remove();
  if (inboxAnnouncements && !inboxAnnouncements.querySelector("li.item")) inboxAnnouncements.hidden = true;
  if (bellList && !dropdown.hidden && !bellList.children.length) bellList.append(el("li", "empty", "No notifications yet."));
  setTimeout(refreshCount, RECOUNT_AFTER_EXPIRY_MS);
}

function showBanner(a, { newest = false } = {}) {
  if (!banner || banner.querySelector(`[data-announcement-id="${Number(a.id)}"]`)) return;
  const node = el("div", `announcement level-${a.level}`);
  node.dataset.announcementId = String(a.id);
  node.setAttribute("role", "status");
  const text = el("div", "announcement-text");
  text.append(el("strong", "announcement-title", a.title));
  if (a.body) text.append(el("div", "announcement-body", a.body));
  const dismiss = el("button", "link-button announcement-dismiss", "Dismiss");
  dismiss.type = "button";
  dismiss.title = "Mark read and hide";
  node.append(text, dismiss);
  if (newest) banner.prepend(node);
  else banner.append(node);
  banner.hidden = false;
  scheduleExpiry(a.id, a.expires_at);
}

function hideBanner(id) {
  banner?.querySelector(`[data-announcement-id="${Number(id)}"]`)?.remove();
  if (banner && !banner.children.length) banner.hidden = true;
}

function markAnnouncementsRead(ids) {
  for (const id of ids) {
    hideBanner(id);
    for (const row of document.querySelectorAll(`li.item[data-announcement-id="${Number(id)}"]`)) {
      row.classList.remove("unread");
      row.querySelector(".mark-read")?.remove();
    }
  }
}

async function markAnnouncementRead(id) {
  const data = await api(`/api/announcements/${Number(id)}/read/`, { method: "POST" });
  markAnnouncementsRead([id]);
  setUnread(data.unread);
}

async function loadBanners() {
  try {
    const page = await api("/api/announcements/?unread=1");
    for (const a of page.results) {
      seenAnnouncements.add(a.id);
      showBanner(a);
    }
  } catch {
    // the bell still counts them; the inbox lists them
  }
}

for (const time of inboxAnnouncements?.querySelectorAll("time.item-time") ?? []) time.textContent = timeAgo(time.dateTime);
for (const row of inboxAnnouncements?.querySelectorAll("[data-expires-at]") ?? []) {
  scheduleExpiry(row.dataset.announcementId, row.dataset.expiresAt);
}

banner?.addEventListener("click", (event) => {
  const node = event.target.closest(".announcement-dismiss")?.closest("[data-announcement-id]");
  if (!node) return;
  markAnnouncementRead(node.dataset.announcementId).catch((err) => toast({ title: "Could not dismiss", body: err.message, level: "error" }));
});

// ---------------------------------------------------------------- the stream

const connState = document.getElementById("conn-state");
// A page that streams more than the defaults (the feed) names its channels and start.
const streamPage = document.querySelector("[data-stream-channels]")?.dataset || body.dataset;
let lastEventId = streamPage.streamStart || body.dataset.streamStart || "";
let source = null;
let retries = 0;
const RESTART_JITTER_MS = 1000;

function setConnState(state) {
  if (connState) {
    connState.dataset.state = state;
    connState.title = { open: "Live", connecting: "Connecting…", offline: "Offline, retrying…", "signed-out": "Signed out" }[state] || state;
  }
}

// The session is gone (logout elsewhere, password change): say so where it is seen,
// with the way back; the dot alone is easy to miss.
function showSignedOut() {
  setConnState("signed-out");
  if (document.getElementById("signed-out")) return;
  const bar = el("div", "session-banner");
  bar.id = "signed-out";
  bar.setAttribute("role", "alert");
  const link = el("a", null, "Log in again");
  link.href = `/login/?next=${encodeURIComponent(window.location.pathname + window.location.search)}`;
  bar.append(el("span", null, "You have been signed out. "), link);
  const topbar = document.querySelector(".topbar");
  if (topbar) topbar.after(bar);
  else body.prepend(bar);
}

function emit(type, detail) {
  document.dispatchEvent(new CustomEvent(`pulse:${type}`, { detail }));
}

function parse(event) {
  if (event.lastEventId) lastEventId = event.lastEventId;
  try {
    return JSON.parse(event.data);
  } catch {
    return null;
  }
}

const seen = new Set();

function onNotification(event) {
  const n = parse(event);
  if (!n) return;
  setUnread(n.unread);
  if (seen.has(n.id)) return;
  seen.add(n.id);
  prependToDropdown(n);
  prependToInbox(n);
  if (shouldToast(n)) toast(n);
  emit("notification", n);
}

// A replay after a long absence can bring dozens of events at once: toast only what is
// fresh, and at most a few per burst; the badge and the lists still get every one.
const TOAST_MAX_AGE_MS = 2 * 60 * 1000;
const TOAST_BURST = 3;
let burstStart = 0;
let burstCount = 0;

function shouldToast(n) {
  if (Date.now() - new Date(n.created_at).getTime() > TOAST_MAX_AGE_MS) return false;
  const now = Date.now();
  if (now - burstStart > 2000) {
    burstStart = now;
    burstCount = 0;
  }
  burstCount += 1;
  return burstCount <= TOAST_BURST;
}

function onAnnouncement(event) {
  const a = parse(event);
  if (!a || seenAnnouncements.has(a.id)) return;
  seenAnnouncements.add(a.id);
  setUnread(Number(badge?.dataset.count || 0) + 1);
  showBanner(a, { newest: true });
  if (inboxAnnouncements && !inboxAnnouncements.querySelector(`[data-announcement-id="${Number(a.id)}"]`)) {
    const row = announcementRow({ ...a, read: false });
    row.classList.add("arriving");
    inboxAnnouncements.prepend(row);
    inboxAnnouncements.hidden = false;
  }
  if (bellList && !dropdown.hidden) {
    bellList.querySelector(".empty")?.remove();
    bellList.prepend(announcementRow({ ...a, read: false }, { compact: true }));
  }
  emit("announcement", a);
}

function onRead(event) {
  const data = parse(event);
  if (!data) return;
  markRowsRead(data.ids || []);
  markAnnouncementsRead(data.announcement_ids || []);
  setUnread(data.unread);
  emit("read", data);
}

function onReset() {
  // The server could not replay what this tab missed: reload the state from the API.
  lastEventId = "";
  refreshCount();
  if (dropdown && !dropdown.hidden) refreshDropdown();
  if (inboxList) loadInbox();
  loadBanners();
  emit("reset", {});
}

async function refreshCount() {
  try {
    setUnread((await api("/api/notifications/unread-count/")).unread);
    return true;
  } catch (err) {
    if (err.status === 403) {
      showSignedOut();
      return false;
    }
    return true;
  }
}

function connect() {
  if (!STREAM_URL) return;
  const url = new URL(STREAM_URL, window.location.href);
  for (const channel of (streamPage.streamChannels || "").split(" ").filter(Boolean)) {
    url.searchParams.append("channel", channel);
  }
  if (lastEventId) url.searchParams.set("lastEventId", lastEventId);
  setConnState("connecting");
  source = new EventSource(url);
  source.addEventListener("open", () => {
    retries = 0;
    setConnState("open");
  });
  source.addEventListener("message", (event) => parse(event));
  source.addEventListener("notification", onNotification);
  source.addEventListener("read", onRead);
  source.addEventListener("stream-reset", onReset);
  source.addEventListener("announcement", onAnnouncement);
  source.addEventListener("announcement-expired", (event) => {
    const data = parse(event);
    if (data) expireAnnouncement(data.id); // staff pressed "Expire now"
  });
  source.addEventListener("activity", (event) => {
    const data = parse(event);
    if (data) emit("activity", data);
  });
  source.addEventListener("activity-removed", (event) => {
    const data = parse(event);
    if (data) emit("activity-removed", data); // a room made private or deleted
  });
  source.addEventListener("stream-error", (event) => {
    source.close();
    // Not parse(): a kick's `id: error` is no position to resume from.
    let reason = null;
    try {
      reason = JSON.parse(event.data)?.reason;
    } catch {
      reason = null;
    }
    if (reason === "session-ended") showSignedOut();
    else if (reason === "channels-changed") connect(); // joined or left a group
    // The server process restarts and spreads its streams out: another one takes this now.
    else if (reason === "server-restart") setTimeout(connect, Math.random() * RESTART_JITTER_MS);
    else scheduleReconnect();
  });
  source.addEventListener("error", () => {
    // EventSource retries network errors itself (with Last-Event-ID); an HTTP error
    // closes it for good, so this tab reconnects with its own backoff.
    if (source.readyState === EventSource.CLOSED) scheduleReconnect();
    else setConnState("offline");
  });
}

async function scheduleReconnect() {
  setConnState("offline");
  retries += 1;
  const delay = Math.min(30000, 500 * 2 ** Math.min(retries, 6)) * (0.5 + Math.random());
  setTimeout(async () => {
    if (await refreshCount()) connect();
  }, delay);
}

export const stream = {
  on(type, handler) {
    document.addEventListener(`pulse:${type}`, (event) => handler(event.detail));
  },
  get lastEventId() {
    return lastEventId;
  },
};
window.pulse = stream;

setUnread(Number(body.dataset.unread || 0));
if (Number(body.dataset.unread || 0) > 0) loadBanners();
connect();
