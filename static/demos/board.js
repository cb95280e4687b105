// The shared board demo: one WebSocket per tab (protocol: docs/demos.md).
// The tab keeps a copy of the board at a version and applies the server's operations in
// version order; it changes nothing itself until the server has ordered the change, so
// every tab shows the same board. On reconnect it asks for what it missed after its
// version. All text goes through textContent: nothing from the server is parsed as HTML.

const root = document.getElementById("board");
const ME = root.dataset.me;
const TEXT_MAX = Number(root.dataset.textMax);
const WS_URL = new URL(root.dataset.wsPath, window.location.href);
WS_URL.protocol = window.location.protocol === "https:" ? "wss:" : "ws:";

// A periodic sync renews the socket's group membership and fills a gap left by a
// dropped message when no later operation arrives to reveal it.
const SYNC_EVERY_MS = 30000;
const CLOSE_RATE_LIMITED = 4008;
const CLOSE_SERVICE_RESTART = 1012; // this server process restarts: another one takes us
const RESTART_JITTER_MS = 1000;
const NOTICE_MS = 6000;

const statusEl = document.getElementById("board-status");
const versionEl = document.getElementById("board-version");
const banner = document.getElementById("board-banner");
const activity = document.getElementById("board-activity");
const columns = new Map(); // column id -> {list, count, title, input, button}
for (const section of root.querySelectorAll(".board-column")) {
  const form = section.querySelector("[data-add]");
  columns.set(section.dataset.column, {
    section,
    list: section.querySelector("[data-cards]"),
    count: section.querySelector("[data-count]"),
    title: section.querySelector("h2").firstChild.textContent.trim(),
    form,
    input: form.querySelector("input"),
    button: form.querySelector("button"),
  });
}
const COLUMN_IDS = [...columns.keys()];

let socket = null;
let live = false;
let version = null; // the board version this tab shows; null before the first snapshot
let attempts = 0;
let syncTimer = null;
let stopped = false;
let noticeTimer = null;
const cards = new Map(); // card id -> {id, text, by, node}
const pending = new Map(); // client_op_id -> card id (or null for a new card)

// ---------------------------------------------------------------- helpers

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = text;
  return node;
}

function newOpId() {
  const bytes = crypto.getRandomValues(new Uint8Array(12));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function setStatus(state, text) {
  statusEl.dataset.state = state;
  statusEl.textContent = text;
  for (const column of columns.values()) {
    column.input.disabled = state !== "open";
    column.button.disabled = state !== "open";
  }
  for (const button of root.querySelectorAll(".board-card button")) button.disabled = state !== "open";
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

function showActivity(text) {
  activity.textContent = text;
  clearTimeout(noticeTimer);
  noticeTimer = setTimeout(() => {
    activity.textContent = "";
  }, NOTICE_MS);
}

function quote(text) {
  return text.length > 40 ? `“${text.slice(0, 39)}…”` : `“${text}”`;
}

// ---------------------------------------------------------------- cards on the page

function cardNode(card) {
  const li = el("li", "board-card");
  li.dataset.id = String(card.id);
  li.draggable = true;
  const text = el("p", "board-card-text", card.text);
  const foot = el("div", "board-card-foot");
  const actions = el("span", "board-card-actions");
  for (const [act, label, symbol] of [
    ["left", "Move to the previous column", "←"],
    ["up", "Move up", "↑"],
    ["down", "Move down", "↓"],
    ["right", "Move to the next column", "→"],
    ["edit", "Edit", "✎"],
  ]) {
    const button = el("button", "icon-button", symbol);
    button.type = "button";
    button.dataset.act = act;
    button.title = label;
    button.setAttribute("aria-label", label);
    button.disabled = !live;
    actions.append(button);
  }
  foot.append(el("span", "board-card-by", card.by ? `by ${card.by}` : ""), actions);
  li.append(text, foot);
  return li;
}

function place(card, columnId, index) {
  const list = columns.get(columnId).list;
  const others = [...list.children].filter((node) => node !== card.node);
  list.insertBefore(card.node, others[Math.min(index, others.length)] || null);
}

function locate(card) {
  const list = card.node.parentElement;
  const columnId = list.closest(".board-column").dataset.column;
  return { columnId, index: [...list.children].indexOf(card.node), size: list.children.length };
}

function refreshCounts() {
  for (const column of columns.values()) column.count.textContent = String(column.list.children.length);
  versionEl.textContent = version === null ? "" : `v${version}`;
}

function flash(node) {
  node.classList.remove("arriving");
  void node.offsetWidth; // restart the animation
  node.classList.add("arriving");
}

// ---------------------------------------------------------------- applying server frames

function applySnapshot(frame) {
  const seen = new Set();
  for (const column of frame.columns) {
    column.cards.forEach((data, index) => {
      let card = cards.get(data.id);
      if (!card) {
        card = { ...data, node: cardNode(data) };
        cards.set(data.id, card);
      }
      setText(card, data.text);
      place(card, column.id, index);
      seen.add(data.id);
    });
  }
  for (const [id, card] of cards) {
    if (!seen.has(id)) {
      card.node.remove();
      cards.delete(id);
    }
  }
  version = frame.version;
  refreshCounts();
}

function setText(card, text) {
  card.text = text;
  card.node.querySelector(".board-card-text").textContent = text;
}

function applyOp(op) {
  if (op.op === "create") {
    const card = { id: op.card, text: op.text, by: op.by };
    card.node = cardNode(card);
    cards.set(card.id, card);
    place(card, op.column, op.index);
  } else if (op.op === "edit") {
    setText(cards.get(op.card), op.text);
  } else if (op.op === "move") {
    place(cards.get(op.card), op.column, op.index);
  }
  version = op.version;
  const card = cards.get(op.card);
  const mine = op.client_op_id && pending.has(op.client_op_id);
  if (mine) {
    pending.delete(op.client_op_id);
    if (card) card.node.classList.remove("pending");
  } else if (card) {
    flash(card.node);
    describe(op, card);
  }
}

function describe(op, card) {
  const who = op.by === ME ? "You" : op.by;
  const title = columns.get(op.column)?.title;
  if (op.op === "create") showActivity(`${who} added ${quote(card.text)} to ${title}.`);
  if (op.op === "edit") showActivity(`${who} edited ${quote(card.text)}.`);
  if (op.op === "move") showActivity(`${who} moved ${quote(card.text)} to ${title}.`);
}

const handlers = {
  snapshot(frame) {
    applySnapshot(frame);
    goLive();
  },
  ops(frame) {
    for (const op of frame.ops) {
      if (version === null || op.version <= version) continue; // had it already
      if (op.version !== version + 1 || !validOp(op)) {
        sync(null); // a gap or a card this tab does not know: start again from a snapshot
        return;
      }
      applyOp(op);
    }
    refreshCounts();
    goLive();
  },
  error(frame) {
    const id = frame.client_op_id;
    if (id && pending.has(id)) {
      const card = cards.get(pending.get(id));
      if (card) card.node.classList.remove("pending");
      pending.delete(id);
    }
    const text = frame.code === "rate_limited" ? "You are going too fast: that change was not made." : `Not saved: ${frame.message}`;
    showActivity(text);
  },
};

function validOp(op) {
  if (op.op === "create") return columns.has(op.column) && !cards.has(op.card);
  if (op.op === "edit") return cards.has(op.card);
  if (op.op === "move") return cards.has(op.card) && columns.has(op.column);
  return false;
}

function goLive() {
  if (live) return;
  live = true;
  attempts = 0;
  banner.hidden = true;
  setStatus("open", "Live");
}

// ---------------------------------------------------------------- sending

function send(frame) {
  if (!socket || socket.readyState !== WebSocket.OPEN) return false;
  socket.send(JSON.stringify(frame));
  return true;
}

function sync(since) {
  send({ type: "sync", since });
}

function sendOp(frame, cardId) {
  const client_op_id = newOpId();
  if (!live || !send({ ...frame, client_op_id })) return;
  pending.set(client_op_id, cardId);
  const card = cards.get(cardId);
  if (card) card.node.classList.add("pending");
}

function moveCard(card, columnId, index) {
  sendOp({ type: "move", card: card.id, column: columnId, index }, card.id);
}

for (const [columnId, column] of columns) {
  column.form.addEventListener("submit", (event) => {
    event.preventDefault();
    const text = column.input.value.trim();
    if (!text || text.length > TEXT_MAX) return;
    sendOp({ type: "create", column: columnId, text }, null);
    column.input.value = "";
  });
}

root.addEventListener("click", (event) => {
  const button = event.target.closest(".board-card button[data-act]");
  if (!button) return;
  const card = cards.get(Number(button.closest(".board-card").dataset.id));
  if (!card) return;
  const { columnId, index, size } = locate(card);
  const at = COLUMN_IDS.indexOf(columnId);
  const act = button.dataset.act;
  if (act === "edit") return startEdit(card);
  if (act === "up" && index > 0) moveCard(card, columnId, index - 1);
  if (act === "down" && index < size - 1) moveCard(card, columnId, index + 1);
  if (act === "left" && at > 0) moveCard(card, COLUMN_IDS[at - 1], index);
  if (act === "right" && at < COLUMN_IDS.length - 1) moveCard(card, COLUMN_IDS[at + 1], index);
});

// ---------------------------------------------------------------- editing

function startEdit(card) {
  const textNode = card.node.querySelector(".board-card-text");
  if (card.node.querySelector(".board-edit")) return;
  const form = el("form", "board-edit");
  const area = el("textarea");
  area.maxLength = TEXT_MAX;
  area.value = card.text;
  area.setAttribute("aria-label", "Card text");
  const actions = el("div", "board-edit-actions");
  const cancel = el("button", "button", "Cancel");
  cancel.type = "button";
  const save = el("button", "button primary", "Save");
  save.type = "submit";
  actions.append(cancel, save);
  form.append(area, actions);
  textNode.hidden = true;
  card.node.draggable = false;
  card.node.insertBefore(form, textNode.nextSibling);
  const done = () => {
    form.remove();
    textNode.hidden = false;
    card.node.draggable = true;
  };
  cancel.addEventListener("click", done);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const text = area.value.trim();
    if (text && text !== card.text) sendOp({ type: "edit", card: card.id, text }, card.id);
    done();
  });
  area.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      form.requestSubmit();
    } else if (event.key === "Escape") {
      done();
    }
  });
  area.focus();
  area.select();
}

// ---------------------------------------------------------------- drag and drop

let dragged = null;
let marker = null;

function clearMarkers() {
  marker?.classList.remove("drop-before", "drop-after");
  marker = null;
  for (const column of columns.values()) column.section.classList.remove("drop-target");
}

// Where a drop at clientY lands: the index among the column's cards without the dragged one.
function dropIndex(list, clientY) {
  const others = [...list.children].filter((node) => node !== dragged.node);
  const index = others.findIndex((node) => {
    const box = node.getBoundingClientRect();
    return clientY < box.top + box.height / 2;
  });
  return { others, index: index === -1 ? others.length : index };
}

root.addEventListener("dragstart", (event) => {
  const node = event.target.closest?.(".board-card");
  if (!node || !live) return event.preventDefault();
  dragged = cards.get(Number(node.dataset.id));
  event.dataTransfer.effectAllowed = "move";
  event.dataTransfer.setData("text/plain", node.dataset.id);
  node.classList.add("dragging");
});

root.addEventListener("dragend", () => {
  dragged?.node.classList.remove("dragging");
  dragged = null;
  clearMarkers();
});

for (const [columnId, column] of columns) {
  column.section.addEventListener("dragover", (event) => {
    if (!dragged) return;
    event.preventDefault();
    clearMarkers();
    column.section.classList.add("drop-target");
    const { others, index } = dropIndex(column.list, event.clientY);
    marker = others[index] || others.at(-1) || null;
    marker?.classList.add(index < others.length ? "drop-before" : "drop-after");
  });
  column.section.addEventListener("dragleave", (event) => {
    if (!column.section.contains(event.relatedTarget)) clearMarkers();
  });
  column.section.addEventListener("drop", (event) => {
    if (!dragged) return;
    event.preventDefault();
    const { index } = dropIndex(column.list, event.clientY);
    const from = locate(dragged);
    if (from.columnId !== columnId || from.index !== index) moveCard(dragged, columnId, index);
    clearMarkers();
  });
}

// ---------------------------------------------------------------- connection

function connect() {
  setStatus("connecting", attempts ? "Reconnecting…" : "Connecting…");
  const ws = new WebSocket(WS_URL);
  socket = ws;
  ws.addEventListener("open", () => sync(version));
  ws.addEventListener("message", (event) => {
    let frame;
    try {
      frame = JSON.parse(event.data);
    } catch {
      return;
    }
    if (frame && Object.hasOwn(handlers, frame.type)) handlers[frame.type](frame);
  });
  ws.addEventListener("close", (event) => {
    if (socket !== ws) return;
    socket = null;
    live = false;
    onClose(event.code);
  });
}

async function onClose(code) {
  if (pending.size) {
    showActivity("Disconnected: your last change may not have been saved.");
    for (const card of cards.values()) card.node.classList.remove("pending");
    pending.clear();
  }
  if (code === CLOSE_SERVICE_RESTART) {
    // This server process restarts and spreads its clients out: another one takes us now.
    setStatus("connecting", "Reconnecting…");
    setTimeout(connect, Math.random() * RESTART_JITTER_MS);
    return;
  }
  attempts += 1;
  // A refused handshake looks like any network error from here: after a few, ask why.
  if (attempts >= 3 && (await signedOut())) {
    stopped = true;
    setStatus("closed", "Disconnected");
    showBanner("You were signed out.", { text: "Log in again", href: `/login/?next=${encodeURIComponent(window.location.pathname)}` });
    return;
  }
  const slow = code === CLOSE_RATE_LIMITED;
  const base = slow ? 10000 : Math.min(15000, 500 * 2 ** Math.min(attempts - 1, 5));
  const delay = slow ? base * (0.75 + Math.random() * 0.5) : base * Math.random();
  setStatus("connecting", `Reconnecting in ${Math.max(1, Math.round(delay / 1000))} s…`);
  if (slow) showBanner("Disconnected for sending too fast. Reconnecting shortly.");
  setTimeout(connect, delay);
}

async function signedOut() {
  try {
    const response = await fetch(window.location.href, { redirect: "manual", credentials: "same-origin" });
    return response.type === "opaqueredirect" || response.status === 403;
  } catch {
    return false; // offline: keep retrying
  }
}

syncTimer = setInterval(() => {
  if (live && !stopped) sync(version);
}, SYNC_EVERY_MS);

refreshCounts();
connect();
