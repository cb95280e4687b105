// The live ticker: one SSE stream of the page's `ticker-<SYMBOL>` channels. Each channel
// carries only its latest price: on open the server sends the current one at once, and a
// tab that falls behind gets the newest price instead of a queue of stale ones. Rows are
// redrawn at most a few times a second, always with the newest price received.

const root = document.getElementById("ticker");
const status = document.getElementById("ticker-status");
const rateLabel = document.getElementById("ticker-rate");
const idle = document.getElementById("ticker-idle");

const REDRAW_MS = 250; // longer than a flash, so each one shows
const STATES = {
  connecting: "Connecting…",
  live: "Live",
  offline: "Reconnecting…",
  "signed-out": "Signed out",
};

const money = new Intl.NumberFormat(undefined, { minimumFractionDigits: 2, maximumFractionDigits: 2 });
const signed = new Intl.NumberFormat(undefined, {
  minimumFractionDigits: 2,
  maximumFractionDigits: 2,
  signDisplay: "exceptZero",
});
const clock = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit", second: "2-digit" });

const rows = new Map(); // symbol -> { row, cells, seen (channel id), shown, next, timer }
for (const row of root?.querySelectorAll("tr[data-symbol]") || []) {
  const cell = (name) => row.querySelector(`.${name}`);
  rows.set(row.dataset.symbol, {
    row,
    cells: { price: cell("price"), change: cell("change"), pct: cell("change-pct"), time: cell("time") },
    seen: 0,
    shown: null,
    next: null,
    timer: 0,
  });
}

function setStatus(state) {
  if (!status) return;
  status.dataset.state = state;
  status.textContent = STATES[state] || state;
}

// The stream's event ids list a position per channel (`ticker-ACME:41,ticker-GLOBX:17`).
function positionOf(eventId, channel) {
  for (const part of (eventId || "").split(",")) {
    const at = part.lastIndexOf(":");
    if (at > 0 && decodeURIComponent(part.slice(0, at)) === channel) return Number(part.slice(at + 1));
  }
  return 0;
}

function flash(cell, direction) {
  cell.classList.remove("flash-up", "flash-down");
  void cell.offsetWidth; // restart the animation
  if (direction) cell.classList.add(direction > 0 ? "flash-up" : "flash-down");
}

function draw(entry) {
  entry.timer = 0;
  const quote = entry.next;
  if (!quote) return;
  entry.next = null;
  const { cells, row } = entry;
  const previous = entry.shown;
  entry.shown = quote;
  cells.price.textContent = money.format(quote.price);
  cells.change.textContent = signed.format(quote.change);
  cells.pct.textContent = `${signed.format(quote.change_pct)}%`;
  cells.time.textContent = clock.format(new Date(quote.time));
  row.classList.remove("waiting");
  row.classList.toggle("up", quote.change > 0);
  row.classList.toggle("down", quote.change < 0);
  if (previous) flash(cells.price, Math.sign(quote.price - previous.price));
  // Draw the next price when it comes, at most every REDRAW_MS.
  entry.timer = window.setTimeout(() => draw(entry), REDRAW_MS);
}

let received = 0;

function onPrice(event) {
  let quote;
  try {
    quote = JSON.parse(event.data);
  } catch {
    return;
  }
  const entry = rows.get(quote?.symbol);
  if (!entry || typeof quote.price !== "number") return;
  const position = positionOf(event.lastEventId, `ticker-${quote.symbol}`);
  if (position && position <= entry.seen) return; // never an older price after a newer one
  entry.seen = position || entry.seen;
  received += 1;
  if (idle) idle.hidden = true;
  entry.next = quote;
  if (!entry.timer) draw(entry);
}

// Updates per second actually received: with many symbols at 20/s each, a slow tab shows
// fewer than were published, as it skips stale prices.
let counted = 0;
window.setInterval(() => {
  if (rateLabel) rateLabel.textContent = received ? `${(received - counted).toLocaleString()} updates/s` : "";
  counted = received;
}, 1000);

let source = null;
let retries = 0;
const RESTART_JITTER_MS = 1000;

function connect() {
  const url = new URL(root.dataset.streamUrl, window.location.href);
  for (const channel of root.dataset.channels.split(" ").filter(Boolean)) {
    url.searchParams.append("channel", channel);
  }
  setStatus("connecting");
  source = new EventSource(url);
  source.addEventListener("open", () => {
    retries = 0;
    setStatus("live");
  });
  source.addEventListener("price", onPrice);
  source.addEventListener("stream-error", (event) => {
    source.close();
    let reason = null;
    try {
      reason = JSON.parse(event.data)?.reason;
    } catch {
      reason = null;
    }
    if (reason === "session-ended") setStatus("signed-out");
    // The server process restarts and spreads its streams out: another one takes this now.
    else if (reason === "server-restart") window.setTimeout(connect, Math.random() * RESTART_JITTER_MS);
    else reconnectLater();
  });
  source.addEventListener("error", () => {
    // EventSource retries a dropped connection by itself (and gets the newest prices
    // again); an HTTP error (signed out, too many tabs) closes it for good.
    if (source.readyState === EventSource.CLOSED) reconnectLater();
    else setStatus("offline");
  });
}

function reconnectLater() {
  setStatus("offline");
  retries += 1;
  const delay = Math.min(30000, 500 * 2 ** Math.min(retries, 6)) * (0.5 + Math.random());
  window.setTimeout(connect, delay);
}

if (root?.dataset.streamUrl) connect();
