// The room list: online counts (and new rooms) refresh every few seconds while visible,
// and at once when the user's rooms change (left a private room: the notification
// stream's channels-changed; added to one: its notification), via notifications/live.js.
// Unread counts (and mentions among them) come with every refresh; a room read in another
// tab of this browser refreshes the list at once (chat.js posts on a BroadcastChannel),
// one read elsewhere by the next tick. Room titles are user text: textContent only.

const list = document.getElementById("room-list");
const REFRESH_MS = 5000;

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = text;
  return node;
}

function roomRow(room) {
  const li = el("li", "item room-row");
  li.dataset.slug = room.slug;
  const mark = el("span", "room-mark", "#");
  mark.setAttribute("aria-hidden", "true");
  const main = el("div", "item-main");
  const link = el("a", "item-title room-title", room.title);
  link.href = room.url;
  main.append(link);
  if (room.direct) main.append(el("span", "pill", "Direct message"));
  else if (room.is_private) main.append(el("span", "pill", "Private"));
  if (room.unread) {
    const badge = el("span", `unread-badge${room.mentions ? " mention" : ""}`, room.mentions ? `@${room.mentions} · ${room.unread}` : String(room.unread));
    badge.title = `${room.unread} unread${room.mentions ? `, ${room.mentions} mentioning you` : ""}`;
    li.classList.add("has-unread");
    main.append(badge);
  }
  const count = el("span", `online-count${room.online ? " live" : ""}`, `${room.online} online`);
  count.dataset.online = String(room.online);
  li.append(mark, main, count);
  return li;
}

async function refresh() {
  if (document.visibilityState !== "visible") return;
  try {
    const response = await fetch(list.dataset.api, { headers: { Accept: "application/json" }, credentials: "same-origin" });
    if (!response.ok) return;
    const { rooms } = await response.json();
    if (rooms.length === 0) {
      list.replaceChildren(el("li", "empty", "No rooms yet. Create the first one below."));
    } else {
      list.replaceChildren(...rooms.map(roomRow));
    }
  } catch {
    // offline: the next tick tries again
  }
}

setInterval(refresh, REFRESH_MS);
document.addEventListener("pulse:channels-changed", refresh);
document.addEventListener("pulse:notification", refresh);
document.addEventListener("visibilitychange", refresh);
if ("BroadcastChannel" in window) {
  new BroadcastChannel(`pulse-chat-read:${list.dataset.me}`).addEventListener("message", refresh);
}
