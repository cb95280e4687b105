// Live notifications: one SSE stream per browser (tabs.js), the bell, the dropdown, toasts
// and the inbox.
// Every piece of text goes through textContent: nothing from the server is parsed as HTML.
import { safeHref } from "./links.js";
import { shareStream } from "./tabs.js";

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

// The badge counts what is new since the bell was last opened (`unseen`); answers from
// servers before inbox states carry only `unread`.
const badgeOf = (data) => (typeof data?.unseen === "number" ? data.unseen : data?.unread);

// The newest notification the badge's counts include: the newest one this page had an
// event for, or the `newest` of the counts it shows. Counts computed before it (an answer,
// or an inbox change's event, that raced the notification's event: another request,
// another channel) are older than the badge: their `newest` says so, and the page asks for
// the counts again instead of showing them. A notification's own counts are shown only if
// it is newer: the badge already counts an older one (one user's notifications are stored
// in id order), and a replay after an absence brings many.
let newestHeard = 0;

function showCounts(data) {
  if (typeof data?.newest !== "number") setUnread(badgeOf(data)); // a server before `newest`
  else if (data.newest < newestHeard) refreshCount();
  else {
    newestHeard = data.newest;
    setUnread(badgeOf(data));
  }
}

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
  if (n.count > 1) main.append(el("span", "item-count", `×${n.count}`));
  main.append(time);
  li.append(main);
  if (!n.read) {
    const button = el("button", "link-button mark-read", compact ? "✓" : "Mark read");
    button.type = "button";
    button.title = "Mark read";
    li.append(button);
  }
  if (n.id !== undefined && !li.dataset.announcementId) li.append(...rowActions(n, compact));
  return li;
}

// Inbox states: mark unread, archive (or bring back), delete; each goes to every tab.
const ROW_ACTIONS = {
  "mark-unread": { label: "Mark unread", icon: "●", call: (id) => api(`/api/notifications/${id}/unread/`, { method: "POST" }) },
  archive: { label: "Archive", icon: "🗄", call: (id) => api(`/api/notifications/${id}/archive/`, { method: "POST" }) },
  unarchive: { label: "Move to inbox", icon: "↩", call: (id) => api(`/api/notifications/${id}/unarchive/`, { method: "POST" }) },
  delete: { label: "Delete", icon: "🗑", call: (id) => api(`/api/notifications/${id}/`, { method: "DELETE" }) },
};

function rowActions(n, compact) {
  const names = [n.archived ? "unarchive" : "archive"];
  if (!compact) names.unshift(...(n.read && !n.archived ? ["mark-unread"] : []));
  if (!compact) names.push("delete");
  return names.map((name) => {
    const button = el("button", `link-button row-action ${name}`, compact ? ROW_ACTIONS[name].icon : ROW_ACTIONS[name].label);
    button.type = "button";
    button.title = ROW_ACTIONS[name].label;
    button.dataset.action = name;
    return button;
  });
}

document.addEventListener("click", (event) => {
  const button = event.target.closest("button.row-action");
  const row = button?.closest("li.item[data-id]");
  if (!row) return;
  event.stopPropagation();
  const action = button.dataset.action;
  ROW_ACTIONS[action]
    .call(Number(row.dataset.id))
    .then((data) => {
      if (action === "mark-unread") markRowsUnread([row.dataset.id]);
      else removeRows([row.dataset.id]);
      showCounts(data);
    })
    .catch((err) => toast({ title: `Could not ${ROW_ACTIONS[action].label.toLowerCase()}`, body: err.message, level: "error" }));
});

function markRowsUnread(ids) {
  let missing = false;
  for (const id of ids) {
    const rows = document.querySelectorAll(`li.item[data-id="${Number(id)}"]`);
    if (!rows.length) missing = true;
    for (const row of rows) {
      if (inboxState() === "archived" && row.closest("#inbox-list")) {
        row.remove(); // marking unread brought it back to the inbox
        continue;
      }
      row.classList.add("unread");
      row.querySelector(".mark-unread")?.remove();
      if (!row.querySelector(".mark-read")) {
        const button = el("button", "link-button mark-read", row.closest("#bell-list") ? "✓" : "Mark read");
        button.type = "button";
        button.title = "Mark read";
        row.querySelector(".row-action")?.before(button);
      }
    }
  }
  // Marking unread brings an archived one back: the inbox shows it once reloaded.
  if (missing && inboxList && inboxState() === "") loadInbox();
}

function removeRows(ids) {
  for (const id of ids) {
    for (const row of document.querySelectorAll(`li.item[data-id="${Number(id)}"]`)) row.remove();
  }
  showInboxEmptyState();
  if (bellList && !bellList.children.length) bellList.append(el("li", "empty", "No notifications yet."));
}

function markRowsRead(ids) {
  for (const id of ids) {
    for (const row of document.querySelectorAll(`li.item[data-id="${Number(id)}"]`)) {
      row.classList.remove("unread");
      row.querySelector(".mark-read")?.remove();
      if (inboxState() === "unread" && row.closest("#inbox-list")) row.remove();
      else if (row.closest("#inbox-list") && inboxState() === "" && !row.querySelector(".mark-unread")) {
        row.querySelector(".row-action")?.before(...rowActions({ read: true }, false).slice(0, 1));
      }
    }
  }
  if (inboxState() === "unread") showInboxEmptyState();
}

async function markRead(id) {
  const data = await api(`/api/notifications/${Number(id)}/read/`, { method: "POST" });
  markRowsRead([id]);
  showCounts(data);
}

async function markAllRead() {
  // What the page showed when asked: a notification that arrives while the request is on
  // its way was not read (its own `read` event says so if the server read it too).
  const rows = [...document.querySelectorAll("li.item.unread")].map((r) => r.dataset.id);
  const news = [...document.querySelectorAll("[data-announcement-id]")].map((n) => n.dataset.announcementId);
  const data = await api("/api/notifications/read-all/", { method: "POST" });
  markRowsRead(rows);
  markAnnouncementsRead(news);
  showCounts(data);
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
  if (event.target.closest(".mark-read, .row-action")) return;
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
    showCounts(page);
  } catch (err) {
    bellList.replaceChildren(el("li", "empty", `Could not load notifications (${err.message}).`));
  }
}

function setDropdown(open) {
  if (!dropdown) return;
  dropdown.hidden = !open;
  bellButton.setAttribute("aria-expanded", String(open));
  if (open) refreshDropdown().then(() => markSeen());
}

// Opening the bell sees what it shows: the badge starts again from zero, on every tab.
// Only up to the newest row shown: one arriving while the request is on its way stays new.
function markSeen() {
  const shown = [...(bellList?.querySelectorAll("li.item[data-id]") ?? [])].map((li) => Number(li.dataset.id));
  if (!shown.length) return; // nothing shown (none yet, or the list failed to load)
  api(`/api/notifications/seen/?through=${Math.max(...shown)}`, { method: "POST" })
    .then((data) => showCounts(data))
    .catch(() => {}); // the badge stays as it was; the next opening tries again
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
  if (n.replaces) bellList.querySelector(`li.item[data-id="${Number(n.replaces)}"]`)?.remove();
  bellList.insertBefore(notificationRow(n, { compact: true }), bellList.querySelector("li.item[data-id]"));
  const rows = bellList.querySelectorAll("li.item[data-id]");
  if (rows.length > 8) rows[rows.length - 1].remove();
  if (document.visibilityState === "visible") markSeen(); // shown in the open bell: seen
}

// ---------------------------------------------------------------- inbox page

const inboxList = document.getElementById("inbox-list");
const inboxMore = document.getElementById("inbox-more");
const inboxUnreadOnly = document.getElementById("inbox-unread-only");
const inboxArchived = document.getElementById("inbox-archived");

// What the inbox page lists: "" (the inbox), "unread" or "archived" (the API's ?state=).
function inboxState() {
  if (inboxArchived?.checked) return "archived";
  return inboxUnreadOnly?.checked ? "unread" : "";
}

async function loadInbox({ append = false } = {}) {
  const params = new URLSearchParams({ limit: "30" });
  if (inboxState()) params.set("state", inboxState());
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
  showCounts(page);
}

function showInboxEmptyState() {
  if (!inboxList || inboxList.querySelector("li.item")) return;
  const text = { unread: "No unread notifications.", archived: "Nothing archived." }[inboxState()] || "You're all caught up.";
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
  inboxArchived?.addEventListener("change", () => loadInbox());
  document.getElementById("inbox-read-all")?.addEventListener("click", () => {
    markAllRead().catch((err) => toast({ title: "Could not mark all read", body: err.message, level: "error" }));
  });
}

function prependToInbox(n) {
  if (n.replaces) inboxList?.querySelector(`li.item[data-id="${Number(n.replaces)}"]`)?.remove();
  if (!inboxList || inboxState() === "archived" || inboxList.querySelector(`li.item[data-id="${Number(n.id)}"]`)) return;
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
  for (const button of row.querySelectorAll(".row-action")) button.remove(); // read or not, no more
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
  showCounts(data);
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
let tabs = null; // the other tabs of this browser, when they share one stream (tabs.js)
let toastsHere = true; // one tab of the browser toasts an event: the focused one
const RESTART_JITTER_MS = 1000;
// Where the stream cannot get through (a proxy that buffers responses: no stream-open
// within STREAM_OPEN_MS, or no event, keep-alives included, in STREAM_SILENT_MS), the tab
// long-polls the same events from the same position (/api/notifications/poll/), and tries
// the stream again every UPGRADE_MS; it takes over once it opens.
const POLL_URL = "/api/notifications/poll/";
const STREAM_OPEN_MS = 4000;
const STREAM_SILENT_MS = 45000;
const UPGRADE_MS = 60000;
const POLL_WAIT_S = 25;
let transport = "sse"; // or "poll"
let polling = null; // the poll loop's AbortController

// A reconnect that works within a few seconds (a server restarting, a proxy moving the
// stream) reads "Connecting…"; the dot says offline only when the trouble lasts.
const OFFLINE_AFTER_MS = 5000;
let offlineTimer = null;

function setConnState(state) {
  if (state === "offline" && connState?.dataset.state !== "offline") {
    offlineTimer ??= setTimeout(() => {
      offlineTimer = null;
      showConnState("offline");
    }, OFFLINE_AFTER_MS);
    state = "connecting";
  } else if (state !== "offline") {
    clearTimeout(offlineTimer);
    offlineTimer = null;
  }
  showConnState(state);
}

function showConnState(state) {
  tabs?.state({ state, transport });
  if (connState) {
    connState.dataset.state = state;
    connState.dataset.transport = transport;
    const live = `Live · ${transport === "poll" ? "polling" : "SSE"}`;
    connState.title = { open: live, connecting: "Connecting…", offline: "Offline, retrying…", "signed-out": "Signed out" }[state] || state;
    connState.setAttribute("aria-label", connState.title);
  }
}

// The session is gone (logout elsewhere, password change): say so where it is seen,
// with the way back; the dot alone is easy to miss.
function showSignedOut() {
  setConnState("signed-out");
  tabs?.leave(); // a new login opens new pages, and they take the stream
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
  if (n.id > newestHeard) {
    newestHeard = n.id;
    setUnread(badgeOf(n)); // counted after it was stored
  }
  if (seen.has(n.id)) return;
  seen.add(n.id);
  prependToDropdown(n);
  prependToInbox(n);
  if (toastsHere && shouldToast(n)) toast(n);
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

// Kinds the user turned off (their settings): an announcement reaches everyone on a shared
// channel, so the page drops those; the server leaves them out of lists and counts.
const mutedKinds = new Set((document.body.dataset.mutedKinds || "").split(" ").filter(Boolean));

function onAnnouncement(event) {
  const a = parse(event);
  if (!a || seenAnnouncements.has(a.id) || mutedKinds.has(a.kind)) return;
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
  showCounts(data);
  emit("read", data);
}

// The other inbox changes (README, "Events"): every tab shows the state the user chose.
function onInboxChange(type, apply) {
  return (event) => {
    const data = parse(event);
    if (!data) return;
    apply(data.ids || []);
    showCounts(data);
    emit(type, data);
  };
}

const inboxChanges = {
  seen: onInboxChange("seen", () => {}),
  unread: onInboxChange("unread", markRowsUnread),
  archived: onInboxChange("archived", (ids) => {
    if (inboxState() !== "archived") removeRows(ids);
    else if (ids.some((id) => !inboxList.querySelector(`li.item[data-id="${Number(id)}"]`))) loadInbox();
  }),
  unarchived: onInboxChange("unarchived", (ids) => {
    if (inboxState() === "archived") removeRows(ids);
    else if (inboxList && ids.some((id) => !inboxList.querySelector(`li.item[data-id="${Number(id)}"]`))) loadInbox();
  }),
  deleted: onInboxChange("deleted", removeRows),
};

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
    const asked = newestHeard;
    const data = await api("/api/notifications/unread-count/");
    // A notification that came while this was on its way is newer than these counts: the
    // badge shows its counts already.
    if (newestHeard > asked && data.newest < newestHeard) return true;
    // Otherwise they are the newest there are (below newestHeard: that one was deleted).
    if (typeof data.newest === "number") newestHeard = data.newest;
    setUnread(badgeOf(data));
    return true;
  } catch (err) {
    if (err.status === 403) {
      showSignedOut();
      return false;
    }
    return true;
  }
}

// The stream's events, whether an EventSource or a poll brought them ({data, lastEventId}).
const eventHandlers = {
  message: parse,
  notification: onNotification,
  read: onRead,
  ...inboxChanges,
  "stream-reset": onReset,
  announcement: onAnnouncement,
  "announcement-expired": (event) => {
    const data = parse(event);
    if (data) expireAnnouncement(data.id); // staff pressed "Expire now"
  },
  activity: (event) => {
    const data = parse(event);
    if (data) emit("activity", data);
  },
  "activity-removed": (event) => {
    const data = parse(event);
    if (data) emit("activity-removed", data); // a room made private or deleted
  },
};

// Every tab: an event of the browser's stream, from this tab's own or relayed by the leader.
function handle(event, toastHere = true) {
  toastsHere = toastHere;
  try {
    if (event.type !== "stream-error") eventHandlers[event.type]?.(event);
    else if (errorReason(event) === "session-ended") showSignedOut();
  } finally {
    toastsHere = true;
  }
}

// The leader (or a tab alone): an event of this tab's stream or polls; the others get it too.
function deliver(type, { data, lastEventId: id }) {
  const event = { type, data, lastEventId: id };
  const toastHere = tabs ? tabs.publish(event, lastEventId) : true;
  if (type !== "stream-error") handle(event, toastHere);
}

// Not parse(): a kick's `id: error` is no position to resume from.
function errorReason(event) {
  try {
    return JSON.parse(event.data)?.reason ?? null;
  } catch {
    return null;
  }
}

function streamParams(url) {
  for (const channel of (streamPage.streamChannels || "").split(" ").filter(Boolean)) {
    url.searchParams.append("channel", channel);
  }
  return url;
}

// Not parse(): a kick's `id: error` is no position to resume from.
function onStreamError(data) {
  const reason = data?.reason;
  if (reason === "session-ended") showSignedOut();
  else if (reason === "channels-changed") {
    connect(); // joined or left a group
    emit("channels-changed", {}); // the chat room list re-reads the rooms it shows
  }
  // The server process restarts and spreads its streams out: another one takes this now.
  else if (reason === "server-restart") setTimeout(connect, Math.random() * RESTART_JITTER_MS);
  else scheduleReconnect();
}

// An EventSource from lastEventId. `probe` (while polling): called with true once it
// opened (it then takes over) or false if it did not.
function connect(probe = null) {
  if (!STREAM_URL) return;
  const url = streamParams(new URL(STREAM_URL, window.location.href));
  if (lastEventId) url.searchParams.set("lastEventId", lastEventId);
  if (!probe) {
    transport = "sse";
    setConnState("connecting");
  }
  const own = new EventSource(url);
  if (!probe) source = own;
  let opened = false;
  let silence = null;
  const silent = async () => {
    if (probe && !opened) {
      own.close();
      return probe(false);
    }
    if (source !== own) return own.close();
    // A server that does not answer at all (a restart) is waited for on the stream; one
    // that answers HTTP but whose stream never opens sits behind a buffering proxy.
    if (!opened && !(await answersHttp())) return heard();
    own.close();
    startPolling();
  };
  const heard = () => {
    clearTimeout(silence);
    silence = setTimeout(silent, opened ? STREAM_SILENT_MS : STREAM_OPEN_MS);
  };
  heard();
  own.addEventListener("stream-open", () => {
    if (!opened && probe) {
      probe(true);
      source = own;
    }
    opened = true;
    heard();
    retries = 0;
    if (source === own) setConnState("open");
  });
  own.addEventListener("keep-alive", heard);
  for (const [name, handler] of Object.entries(eventHandlers)) {
    own.addEventListener(name, (event) => {
      heard();
      if (source === own) deliver(name, event);
    });
  }
  own.addEventListener("stream-error", (event) => {
    own.close();
    clearTimeout(silence);
    if (probe && !opened) return probe(false);
    if (source !== own) return;
    deliver("stream-error", event); // the other tabs show what it means for them
    onStreamError({ reason: errorReason(event) });
  });
  own.addEventListener("error", () => {
    if (probe && !opened) return silent();
    if (source !== own) return;
    // EventSource retries network errors itself (with Last-Event-ID); an HTTP error
    // closes it for good, so this tab reconnects with its own backoff.
    if (own.readyState === EventSource.CLOSED) {
      clearTimeout(silence);
      scheduleReconnect();
    } else setConnState("offline");
  });
}

async function answersHttp() {
  try {
    await api("/api/notifications/unread-count/");
    return true;
  } catch (err) {
    return Boolean(err.status); // an HTTP answer, even an error, is an answer
  }
}

// The same events by long polls from lastEventId, each answer's cursor the next position.
function startPolling() {
  source?.close();
  source = null;
  transport = "poll";
  const controller = new AbortController();
  polling?.abort();
  polling = controller;
  setConnState("connecting");
  let upgrade = setTimeout(tryStream, UPGRADE_MS);
  function tryStream() {
    connect((opened) => {
      if (!opened) {
        upgrade = setTimeout(tryStream, UPGRADE_MS);
        return;
      }
      controller.abort();
      transport = "sse";
    });
  }
  (async () => {
    let failures = 0;
    let wait = 0; // the first poll answers at once: live from then on
    while (!controller.signal.aborted) {
      const url = streamParams(new URL(POLL_URL, window.location.href));
      if (lastEventId) url.searchParams.set("cursor", lastEventId);
      url.searchParams.set("wait", String(wait));
      try {
        const response = await fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin", signal: controller.signal });
        if (response.status === 403 && !(await refreshCount())) break;
        if (!response.ok) throw new Error(`HTTP ${response.status}`);
        const answer = await response.json();
        if (controller.signal.aborted) break;
        failures = 0;
        wait = POLL_WAIT_S;
        setConnState("open");
        for (const event of answer.events) {
          const data = JSON.stringify(event.data);
          if (event.event !== "stream-error") deliver(event.event, { data, lastEventId: event.id });
          else if (!["channels-changed", "server-restart"].includes(event.data?.reason)) {
            controller.abort(); // the next poll would carry the new channels, or another server
            deliver("stream-error", { data, lastEventId: "" });
            onStreamError(event.data);
          }
        }
        if (!controller.signal.aborted) lastEventId = answer.cursor; // after a reset, too
      } catch {
        if (controller.signal.aborted) break;
        failures += 1;
        setConnState("offline");
        await new Promise((resolve) => setTimeout(resolve, Math.min(15000, 500 * 2 ** failures) * Math.random()));
      }
    }
    clearTimeout(upgrade);
  })();
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
if (STREAM_URL) {
  // Tabs share a stream only with tabs of the same user streaming the same channels.
  const name = ["pulse-stream", body.dataset.user, streamPage.streamChannels].filter(Boolean).join(" ");
  tabs = shareStream(name, {
    since: () => lastEventId,
    lead: () => {
      if (connState) connState.dataset.stream = "leader"; // this tab holds the browser's stream
      connect();
    },
    relayed: handle,
    // The leader's connection state and transport (null: no leader has said yet).
    state: (shared) => {
      transport = shared?.transport || transport;
      if (shared?.state === "signed-out") showSignedOut();
      else setConnState(shared?.state || "connecting");
    },
  });
  if (connState) connState.dataset.stream = tabs ? "follower" : "own";
  if (!tabs) connect(); // no Web Locks or BroadcastChannel: this tab streams alone
}
