// The activity feed: newest first, older pages on scroll, new items slide in live.
// Reconnect replay comes from live.js (Last-Event-ID); items are deduplicated by id here.
// `activity-removed` (a room made private or deleted) takes items off the page, live or replayed.
import { safeHref } from "../notifications/links.js";
import { api, el, stream, timeAgo, toast } from "../notifications/live.js";

const list = document.getElementById("feed-list");
const more = document.getElementById("feed-more");
const moreButton = document.getElementById("feed-more-button");
let loading = false;

function itemRow(a) {
  const li = el("li", "feed-item");
  li.dataset.id = String(a.id);
  const line = el("div", "feed-line");
  line.append(el("strong", "feed-actor", a.actor || "Someone"), ` ${a.verb} `);
  const href = safeHref(a.url);
  const target = el(href ? "a" : "span", "feed-target", a.target);
  if (href) target.href = href;
  line.append(target);
  const time = el("time", "item-time", timeAgo(a.created_at));
  time.dateTime = a.created_at;
  li.append(line, time);
  return li;
}

// Newest first by id, whatever order items arrive in (live, replayed, paged).
function insert(a, { live = false } = {}) {
  const id = Number(a.id);
  if (list.querySelector(`li.feed-item[data-id="${id}"]`)) return;
  document.getElementById("feed-empty")?.remove();
  const row = itemRow(a);
  if (live) row.classList.add("arriving");
  const older = [...list.querySelectorAll("li.feed-item")].find((li) => Number(li.dataset.id) < id);
  list.insertBefore(row, older || null);
}

function remove(ids) {
  for (const id of ids) list.querySelector(`li.feed-item[data-id="${Number(id)}"]`)?.remove();
}

async function loadOlder() {
  if (loading || !list.dataset.next) return;
  loading = true;
  try {
    const page = await api(`/api/feed/?before=${Number(list.dataset.next)}`);
    for (const a of page.results) insert(a);
    list.dataset.next = page.next ?? "";
    more.hidden = !page.next;
  } catch (err) {
    toast({ title: "Could not load older activity", body: err.message, level: "error" });
  } finally {
    loading = false;
  }
}

// After a stream reset nothing says what was removed meanwhile: rows the fresh first page
// covers but no longer lists are gone.
async function reload() {
  const page = await api("/api/feed/");
  const listed = new Set(page.results.map((a) => Number(a.id)));
  const oldest = page.next ? Math.min(...listed) : 0;
  for (const li of list.querySelectorAll("li.feed-item")) {
    const id = Number(li.dataset.id);
    if (id >= oldest && !listed.has(id)) li.remove();
  }
  for (const a of page.results) insert(a);
  list.dataset.next = page.next ?? list.dataset.next;
}

for (const time of list.querySelectorAll("time.item-time")) time.textContent = timeAgo(time.dateTime);
// Older pages load as the "Load older" row scrolls into view (the button is the fallback).
const observer = new IntersectionObserver((entries) => {
  if (entries.some((entry) => entry.isIntersecting)) {
    loadOlder().then(() => {
      // Still in view after a short page: observing afresh reports it again.
      observer.unobserve(more);
      if (!more.hidden) observer.observe(more);
    });
  }
});
observer.observe(more);
moreButton.addEventListener("click", () => loadOlder());

stream.on("activity", (a) => insert(a, { live: true }));
stream.on("activity-removed", (data) => remove(data.ids || []));
stream.on("reset", () => reload());
