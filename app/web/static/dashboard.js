// The volunteer and supervisor dashboard: WS /v1/volunteer for everything live (offers, chats,
// alerts), the dashboard REST API for lists (queue, live sessions, at-risk, volunteers).
// Protocol: docs/protocol.md. The token stays in this tab's sessionStorage until sign-out.
import { Link, h, newId } from "./common.js";
import {
  DISPOSITIONS, LEVELS, LEVEL_LABELS, duration, levelName, reasonWords, signalList, statusWords,
} from "./words.js";

const KEY = "beacon.volunteer.token";
const MAX_BYTES = 4096;
const $ = (id) => document.getElementById(id);

const state = {
  token: sessionStorage.getItem(KEY),
  me: null,
  ready: false, // this connection got `ready`
  presence: "online",
  offers: new Map(), // session_id -> {frame, deadline}
  chats: new Map(), // session_id -> chat (see newChat)
  alerts: [],
  handoffs: new Map(), // handoff_id -> {session_id, reason, at}
  volunteers: new Map(), // id -> name (supervisors)
  live: new Map(), // session_id -> live session row (supervisors)
  view: "work",
  sound: true,
  decidedMutes: new Set(), // mute ids this page saw confirmed, cancelled or lifted
};

// -- sound and the imminent alert ---------------------------------------------------------------

let audio = null;
function unlockAudio() {
  // Browsers allow sound only after a gesture: make the context on the first click or key.
  if (audio) return;
  const Ctx = window.AudioContext || window.webkitAudioContext;
  if (Ctx) audio = new Ctx();
}
document.addEventListener("pointerdown", unlockAudio, { once: true });
document.addEventListener("keydown", unlockAudio, { once: true });

function chime() {
  if (!state.sound) return;
  unlockAudio();
  if (!audio) return;
  if (audio.state === "suspended") {
    audio.resume().catch(() => {});
    // No click or key on this page yet (a reload signs in by itself): say so, so that the
    // next alert is heard.
    if (audio.state === "suspended") $("sound").textContent = "Sound blocked: press to allow";
  }
  const t0 = audio.currentTime;
  for (let i = 0; i < 3; i += 1) {
    const osc = audio.createOscillator();
    const gain = audio.createGain();
    osc.type = "square";
    osc.frequency.value = i % 2 ? 660 : 880;
    gain.gain.setValueAtTime(0.0001, t0 + i * 0.3);
    gain.gain.exponentialRampToValueAtTime(0.2, t0 + i * 0.3 + 0.02);
    gain.gain.exponentialRampToValueAtTime(0.0001, t0 + i * 0.3 + 0.25);
    osc.connect(gain).connect(audio.destination);
    osc.start(t0 + i * 0.3);
    osc.stop(t0 + i * 0.3 + 0.26);
  }
}

const alerted = new Set();
function imminentAlert(key, text) {
  if (alerted.has(key)) return;
  alerted.add(key);
  $("alert-text").textContent = text;
  $("alert-banner").hidden = false;
  document.body.dataset.alert = "imminent";
  chime();
}

$("alert-dismiss").addEventListener("click", () => {
  $("alert-banner").hidden = true;
  delete document.body.dataset.alert;
});

// -- helpers ------------------------------------------------------------------------------------

function shortId(sid) {
  return String(sid).slice(0, 8);
}

function badge(level) {
  const name = levelName(level);
  return h("span", { class: `badge lvl-${name}` }, LEVEL_LABELS[name] || name);
}

function signalsText(signals) {
  const words = signalList(signals);
  return words.length ? words.join(" · ") : "no signals";
}

let toastTimer = null;
function toast(text) {
  $("toast").textContent = text;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { $("toast").textContent = ""; }, 8000);
}

async function api(path, { method = "GET", body } = {}) {
  const response = await fetch(path.startsWith("/v1/") ? path : `/v1/dashboard${path}`, {
    method,
    headers: {
      Authorization: `Bearer ${state.token}`,
      ...(body ? { "Content-Type": "application/json" } : {}),
    },
    body: body ? JSON.stringify(body) : undefined,
  });
  const data = await response.json().catch(() => ({}));
  if (response.status === 401) signOut("Your token is no longer valid. Please sign in again.");
  if (!response.ok) throw new Error(data.detail && typeof data.detail === "string" ? data.detail : data.error || response.statusText);
  return data;
}

/** Replace a table's rows, unless the keyboard is on one of them: rebuilding the rows would throw
 *  the focus away mid-choice. The next refresh (a few seconds later) catches up. */
function replaceRows(tbody, rows) {
  if (tbody.contains(document.activeElement)) return false;
  tbody.replaceChildren(...rows);
  return true;
}

function timeOf(iso) {
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? "" : d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

// -- the socket ---------------------------------------------------------------------------------

const link = new Link("/v1/volunteer", {
  onOpen() {
    state.ready = false; // until this connection's `ready`
    const lastSeq = {};
    for (const [sid, chat] of state.chats) if (!chat.over) lastSeq[sid] = chat.highest;
    link.send({ type: "auth", token: state.token, last_seq: lastSeq });
  },
  onFrame: handle,
  onClose(code) {
    if (code === 1008 && !state.ready) return false; // refused at auth: see the error frame
    return true;
  },
  onState: connState,
});

let offlineTick = null;
function connState(kind) {
  clearInterval(offlineTick);
  document.body.dataset.conn = kind;
  const el = $("conn");
  if (kind === "open") el.textContent = "Connected";
  else if (kind === "connecting") el.textContent = "Connecting…";
  else if (kind === "offline") {
    const tick = () => {
      const s = Math.max(0, Math.ceil((link.retryAt - Date.now()) / 1000));
      el.textContent = `Offline — reconnecting${s > 0 ? ` in ${s} s` : "…"} Messages you send are kept.`;
    };
    tick();
    offlineTick = setInterval(tick, 1000);
  } else el.textContent = state.token ? "Disconnected" : "Signed out";
  for (const chat of state.chats.values()) renderPending(chat);
}

function handle(f) {
  switch (f.type) {
    case "ready": onReady(f); break;
    case "offer": onOffer(f); break;
    case "assigned": onAssigned(f); break;
    case "message": onMessage(f); break;
    case "ack": onAck(f); break;
    case "session": onSession(f); break;
    case "typing": onTyping(f); break;
    case "queue": onQueueCounts(f.counts || {}); break;
    case "alert": onAlert(f); break;
    case "presence":
      state.presence = f.status;
      $("presence").value = f.status;
      document.body.dataset.presence = f.status;
      break;
    case "handoff": onHandoffReply(f); break;
    case "supervision": onSupervision(f); break;
    case "whisper": onWhisper(f); break;
    case "whisper_ack": break; // the note itself comes back as a "whisper" frame
    case "mute": onMute(f); break;
    case "consent_asked": toast("Consent question sent to the visitor"); break;
    case "error": onError(f); break;
    default: break; // pong, and frame types a later server may add
  }
}

function onMute(f) {
  toast(f.status === "requested" ? "Mute requested: a second supervisor must confirm it" : `Mute ${f.status}`);
  if (f.status !== "requested") {
    state.decidedMutes.add(f.mute_id);
    renderAlerts();
  }
}

function onReady(f) {
  const first = state.me === null;
  state.me = f;
  state.ready = true;
  link.established();
  $("signin").hidden = true;
  $("app").hidden = false;
  $("who").hidden = false;
  $("me-name").textContent = f.name;
  $("me-role").textContent = f.role;
  const supervisor = f.role === "supervisor" || f.role === "admin";
  $("view-supervise").hidden = !supervisor;
  // The server sets everyone online on connect: a volunteer who chose "away" stays away.
  if (state.presence === "away") link.send({ type: "presence", status: "away" });
  else document.body.dataset.presence = "online";
  // Whatever was typed while offline goes out now, same client_msg_id (stored once).
  for (const chat of state.chats.values()) {
    for (const [cmid, text] of chat.pending) sendMessage(chat.sid, cmid, text);
  }
  refreshQueue();
  if (supervisor) refreshSupervisor();
  if (first) $("main").focus();
}

function onError(f) {
  // Refused at auth, also on a reconnect (a token revoked or expired meanwhile): sign out
  // rather than knock again and again with a token that will never work.
  if (!state.ready && (f.code === "unauthorized" || f.code === "invalid_frame" || f.code === "auth_timeout")) {
    signOut("That token was not accepted. Check it and try again.");
    return;
  }
  if (f.session_id && (f.code === "no_offer" || f.code === "session_taken")) {
    removeOffer(f.session_id);
  }
  const chat = f.session_id && state.chats.get(f.session_id);
  if (chat && f.client_msg_id && (f.code === "rate_limited" || f.code === "temporarily_unavailable")) {
    const text = chat.pending.get(f.client_msg_id);
    if (text !== undefined) setTimeout(() => sendMessage(chat.sid, f.client_msg_id, text), 2000);
    return;
  }
  if (chat && f.client_msg_id && f.code === "text_too_large") {
    chat.pending.delete(f.client_msg_id);
    renderPending(chat);
  }
  toast(`${f.code.replaceAll("_", " ")}${f.detail ? `: ${f.detail}` : ""}`);
}

// -- offers -------------------------------------------------------------------------------------

let offerCount = 0;
function onOffer(f) {
  const isNew = !state.offers.has(f.session_id);
  state.offers.set(f.session_id, { frame: f, deadline: Date.now() + f.expires_in_s * 1000 });
  renderOffers();
  const urgency = levelName(f.urgency);
  if (urgency === "imminent" && isNew) {
    // Every new imminent offer sounds, also one offered again after a decline elsewhere.
    offerCount += 1;
    imminentAlert(`offer:${f.session_id}:${offerCount}`, `Imminent risk waiting for you: chat ${shortId(f.session_id)} — ${signalsText(f.signals)}. Accept it now or decline so it goes to someone else.`);
  }
}

function removeOffer(sid) {
  if (state.offers.delete(sid)) renderOffers();
}

function renderOffers() {
  const box = $("offers");
  const keep = new Set(state.offers.keys());
  for (const card of box.querySelectorAll("[data-session]")) {
    if (!keep.has(card.dataset.session)) card.remove();
  }
  for (const [sid, offer] of state.offers) {
    if (box.querySelector(`[data-session="${sid}"]`)) continue;
    const f = offer.frame;
    const name = levelName(f.urgency);
    const title = `offer-${sid}`;
    box.append(h("article", { class: `offer lvl-${name}`, "data-session": sid, "aria-labelledby": title },
      h("h3", { id: title }, badge(name), ` Chat ${shortId(sid)}`, f.kind === "transfer" ? " (transfer to you)" : ""),
      h("p", { class: "signals" }, h("span", { class: "label" }, "Signals: "), signalsText(f.signals)),
      h("p", {}, `Waiting ${duration(f.waited_s)}`),
      h("p", { class: "countdown" },
        h("span", { class: "secs" }, String(Math.ceil(f.expires_in_s))), " s left to answer ",
        h("progress", { max: String(Math.max(1, f.expires_in_s)), value: String(f.expires_in_s), "aria-label": "Time left to answer" })),
      h("div", { class: "buttons" },
        h("button", { type: "button", class: "primary accept", onclick: () => link.send({ type: "accept", session_id: sid }) }, `Accept chat ${shortId(sid)}`),
        h("button", { type: "button", class: "decline", onclick: () => { link.send({ type: "decline", session_id: sid }); removeOffer(sid); } }, "Decline"))));
  }
  $("no-offers").hidden = state.offers.size > 0;
  tickOffers();
}

function tickOffers() {
  const now = Date.now();
  for (const [sid, offer] of state.offers) {
    const left = Math.max(0, (offer.deadline - now) / 1000);
    const card = $("offers").querySelector(`[data-session="${sid}"]`);
    if (!card) continue;
    card.querySelector(".secs").textContent = String(Math.ceil(left));
    card.querySelector("progress").value = left;
    if (left <= 0) card.classList.add("expired");
  }
}
setInterval(tickOffers, 250);

// -- chats ----------------------------------------------------------------------------------------

function newChat(f) {
  return {
    sid: f.session_id,
    urgency: f.urgency_value,
    signals: f.signals || [],
    locale: f.locale,
    waitedS: f.waited_s,
    kind: f.kind,
    seen: new Set(),
    highest: 0,
    pending: new Map(), // client_msg_id -> text, not yet acknowledged
    history: [],
    over: false,
    el: null,
  };
}

function onAssigned(f) {
  removeOffer(f.session_id);
  let chat = state.chats.get(f.session_id);
  if (!chat || chat.over) {
    if (chat) chat.el.remove();
    chat = newChat(f);
    state.chats.set(f.session_id, chat);
    chat.el = buildPane(chat);
    $("chats").prepend(chat.el);
    noteUrgency(chat, f.urgency_value, "when you took the chat");
  } else {
    setUrgency(chat, f.urgency_value, f.signals);
  }
  $("no-chats").hidden = true;
  if (f.urgency_value >= 4) {
    $("alert-banner").hidden = true; // the imminent offer was answered: the chat pane takes over
    delete document.body.dataset.alert;
  }
  refreshQueue();
}

function buildPane(chat) {
  const sid = chat.sid;
  const title = `chat-${sid}`;
  const riskOptions = LEVELS.map((name) => h("option", { value: name }, LEVEL_LABELS[name]));
  const transferOptions = [
    h("option", { value: "queue" }, "the queue (cold)"),
    h("option", { value: "supervisor" }, "any free supervisor (warm)"),
    ...[...state.volunteers].filter(([id]) => id !== state.me.volunteer_id)
      .map(([id, name]) => h("option", { value: id }, `${name} (warm)`)),
  ];
  const pane = h("section", { class: "chat", "data-session": sid, "aria-labelledby": title },
    h("header", { class: "chat-head" },
      h("h3", { id: title }, `Chat ${shortId(sid)}`),
      h("span", { class: "urgency" }),
      h("p", { class: "signals" }),
      h("p", { class: "meta" }, `Language ${chat.locale || "unknown"} · waited ${duration(chat.waitedS)} · ${chat.kind}`)),
    h("p", { class: "chat-status", role: "status" }),
    h("details", { class: "history" }, h("summary", {}, "Urgency history"), h("ol", { class: "history-list" })),
    h("div", { class: "transcript", role: "log", tabindex: 0, "aria-label": `Transcript of chat ${shortId(sid)}` },
      h("ol", { class: "messages" })),
    h("p", { class: "typing", "aria-live": "polite" }),
    h("form", { class: "compose", novalidate: true, onsubmit: (e) => { e.preventDefault(); compose(chat); } },
      h("label", { for: `msg-${sid}` }, "Message to the visitor"),
      h("textarea", {
        id: `msg-${sid}`, rows: 3, maxlength: 4096, onkeydown: (e) => {
          if (e.key === "Enter" && !e.shiftKey && !e.isComposing) { e.preventDefault(); compose(chat); }
        },
      }),
      h("button", { type: "submit", class: "primary" }, "Send")),
    staffTools(chat),
    helpers(chat),
    h("div", { class: "actions" },
      h("button", { type: "button", onclick: () => link.send({ type: "handoff", session_id: sid }) }, "Hand off to a hotline partner"),
      h("button", { type: "button", onclick: () => link.send({ type: "release", session_id: sid }) }, "Release to the queue"),
      h("label", { for: `to-${sid}` }, "Transfer to"),
      h("select", { id: `to-${sid}`, class: "transfer-to" }, transferOptions),
      h("button", { type: "button", onclick: () => transfer(sid, pane.querySelector(".transfer-to").value) }, "Transfer")),
    h("form", { class: "close-form", novalidate: true, onsubmit: (e) => { e.preventDefault(); closeChat(chat, e.target); } },
      h("fieldset", {},
        h("legend", {}, "Close this chat"),
        h("label", { for: `disp-${sid}` }, "Disposition"),
        h("select", { id: `disp-${sid}`, name: "disposition", required: true },
          h("option", { value: "" }, "Choose…"),
          DISPOSITIONS.map(([value, label]) => h("option", { value }, label))),
        h("label", { for: `risk-${sid}` }, "Your risk assessment"),
        h("select", { id: `risk-${sid}`, name: "risk", required: true, "aria-describedby": `risk-help-${sid}` },
          h("option", { value: "" }, "Choose…"), riskOptions),
        h("p", { id: `risk-help-${sid}`, class: "help" },
          "Your assessment becomes this chat's urgency. It is the only way urgency can go down, and it is recorded in the audit log."),
        h("label", { for: `notes-${sid}` }, "Notes (optional)"),
        h("textarea", { id: `notes-${sid}`, name: "notes", rows: 2, maxlength: 4000 }),
        h("p", { class: "error close-error", role: "alert" }),
        h("button", { type: "submit" }, "Close chat"))));
  chat.el = pane;
  renderUrgency(chat);
  return pane;
}

/** Whispers (staff only, never the visitor), and for supervisors join and mute. */
function staffTools(chat) {
  const sid = chat.sid;
  const supervisor = state.me && (state.me.role === "supervisor" || state.me.role === "admin");
  const whisper = h("form", { class: "whisper-form", novalidate: true, onsubmit: (e) => {
    e.preventDefault();
    const box = e.target.querySelector("input");
    const text = box.value.trim();
    if (!text) return;
    link.send({ type: "whisper", session_id: sid, client_msg_id: newId(), text });
    box.value = "";
  } },
  h("label", { for: `whisper-${sid}` }, "Whisper (staff only; the visitor never sees it)"),
  h("input", { id: `whisper-${sid}`, type: "text", maxlength: 4096, autocomplete: "off" }),
  h("button", { type: "submit" }, "Whisper"));
  if (!supervisor) {
    return h("div", { class: "staff" }, whisper,
      h("button", { type: "button", onclick: () => link.send({ type: "ask_consent", session_id: sid }) }, "Ask consent to share with a hotline"));
  }
  const mute = h("form", { class: "mute-form", novalidate: true, onsubmit: (e) => {
    e.preventDefault();
    const reason = e.target.querySelector("input").value.trim() || "abusive messages";
    link.send({ type: "mute", session_id: sid, duration_s: 600, reason });
  } },
  h("label", { for: `mute-reason-${sid}` }, "Reason to mute"),
  h("input", { id: `mute-reason-${sid}`, type: "text", maxlength: 200, autocomplete: "off" }),
  h("button", { type: "submit" }, "Mute 10 minutes"),
  h("button", { type: "button", class: "unmute", onclick: () => link.send({ type: "unmute", session_id: sid }) }, "Lift the mute"));
  return h("div", { class: "staff" }, whisper,
    h("button", { type: "button", class: "join", onclick: () => link.send({ type: "join", session_id: sid }) }, "Join the chat (the visitor is told)"),
    h("button", { type: "button", onclick: () => link.send({ type: "unobserve", session_id: sid }) }, "Stop observing"),
    mute);
}

function onSupervision(f) {
  if (f.action === "observe_ended") {
    const chat = state.chats.get(f.session_id);
    if (chat && chat.watching) { chat.el.remove(); state.chats.delete(f.session_id); }
    return;
  }
  let chat = state.chats.get(f.session_id);
  if (!chat) {
    const row = state.live.get(f.session_id) || {};
    chat = newChat({ session_id: f.session_id, urgency_value: row.urgency_value ?? 0, signals: row.signals || [], locale: row.locale, waited_s: 0, kind: "observing" });
    chat.watching = true;
    state.chats.set(f.session_id, chat);
    chat.el = buildPane(chat);
    $("chats").prepend(chat.el);
    $("no-chats").hidden = true;
  }
  chat.el.querySelector(".chat-status").textContent = f.action === "joined" ? "You joined this chat" : "Observing silently";
  showView("work");
}

function onWhisper(f) {
  const chat = state.chats.get(f.session_id);
  if (!chat || chat.whispers?.has(f.whisper_id)) return;
  (chat.whispers ||= new Set()).add(f.whisper_id);
  const who = f.author_id === state.me.volunteer_id ? "You (whisper)" : `Whisper from the ${f.author_role}`;
  chat.el.querySelector(".messages").append(h("li", { class: "msg whisper", "data-whisper": f.whisper_id },
    h("span", { class: "who" }, who), h("span", { class: "when" }, timeOf(f.sent_at)), h("p", { class: "text" }, f.text ?? "(erased)")));
  scrollDown(chat);
}

// -- canned replies and resources: reviewed text the helpline wrote, never generated ----------------

const cannedByLocale = new Map(); // locale -> promise of replies (filled on the server for me)

function cannedFor(locale) {
  const key = (locale || "").split(/[-_]/)[0].toLowerCase() || "en";
  if (!cannedByLocale.has(key)) {
    cannedByLocale.set(key, api(`/v1/canned-replies?locale=${encodeURIComponent(key)}`)
      .then((r) => r.replies).catch((err) => {
        cannedByLocale.delete(key);
        toast(`Could not load the canned replies: ${err.message}`);
        return [];
      }));
  }
  return cannedByLocale.get(key);
}

function helpers(chat) {
  const sid = chat.sid;
  const picker = h("select", { id: `canned-${sid}`, class: "canned" }, h("option", { value: "" }, "Choose a canned reply…"));
  cannedFor(chat.locale).then((replies) => {
    for (const r of replies) picker.append(h("option", { value: r.filled }, r.title));
  });
  picker.addEventListener("change", () => {
    if (!picker.value) return;
    const box = chat.el.querySelector(".compose textarea");
    box.value = box.value ? `${box.value} ${picker.value}` : picker.value;
    picker.value = "";
    box.focus();
  });
  const results = h("ul", { class: "resource-results", "aria-live": "polite" });
  const search = async (e) => {
    e.preventDefault();
    const q = e.target.querySelector("input").value.trim();
    const locale = (chat.locale || "en").split(/[-_]/)[0];
    let found = [];
    try {
      found = (await api(`/v1/resources?locale=${encodeURIComponent(locale)}&q=${encodeURIComponent(q)}`)).resources;
    } catch (err) {
      toast(`Could not search resources: ${err.message}`);
    }
    results.replaceChildren(...(found.length ? found.map((r) => h("li", {},
      h("strong", {}, r.title), ` — ${r.text} `,
      h("button", { type: "button", onclick: () => sendResource(chat, r.id) }, "Send card"))) : [h("li", {}, "No resources found.")]));
  };
  return h("details", { class: "helpers" },
    h("summary", {}, "Canned replies and resources"),
    h("label", { for: `canned-${sid}` }, "Canned reply (goes into your message box)"), picker,
    h("form", { class: "resource-search", role: "search", onsubmit: search },
      h("label", { for: `res-${sid}` }, "Search resources"),
      h("input", { id: `res-${sid}`, type: "search", maxlength: 100 }),
      h("button", { type: "submit" }, "Search")),
    results);
}

async function sendResource(chat, resourceId) {
  try {
    await api(`/sessions/${chat.sid}/resources`, { method: "POST", body: { resource_id: resourceId, client_msg_id: newId() } });
  } catch (err) {
    toast(`The card was not sent: ${err.message}`);
  }
}

function renderUrgency(chat) {
  chat.el.querySelector(".urgency").replaceChildren(badge(chat.urgency));
  chat.el.querySelector(".signals").replaceChildren(h("span", { class: "label" }, "Signals: "), signalsText(chat.signals));
  chat.el.className = `chat lvl-${levelName(chat.urgency)}${chat.over ? " over" : ""}`;
  chat.el.querySelector(".history-list").replaceChildren(
    ...chat.history.map((e) => h("li", {}, badge(e.level), ` ${e.why} (${timeOf(e.at)})`)));
}

function noteUrgency(chat, level, why) {
  const last = chat.history[chat.history.length - 1];
  if (last && last.level === level) return;
  chat.history.push({ level, why, at: new Date().toISOString() });
}

function setUrgency(chat, level, signals) {
  if (typeof level === "number" && level !== chat.urgency) {
    chat.urgency = level;
    noteUrgency(chat, level, "urgency rose");
    if (level >= 4) imminentAlert(`chat:${chat.sid}`, `Chat ${shortId(chat.sid)} is now imminent. Follow your safety steps; hand off if you need to.`);
  }
  if (signals) chat.signals = signals;
  renderUrgency(chat);
}

function onMessage(f) {
  const chat = state.chats.get(f.session_id);
  if (!chat) return;
  if (f.sender === "volunteer" && f.client_msg_id) chat.pending.delete(f.client_msg_id);
  showMessage(chat, f);
  renderPending(chat);
  if (f.sender === "visitor") {
    chat.el.querySelector(".typing").textContent = "";
    if (typeof f.level === "number" && f.level > (chat.history.at(-1)?.level ?? -1)) {
      noteUrgency(chat, f.level, `message ${f.seq}`);
      renderUrgency(chat);
    }
  }
}

function showMessage(chat, m) {
  if (chat.seen.has(m.seq)) return;
  chat.seen.add(m.seq);
  chat.highest = Math.max(chat.highest, m.seq);
  const who = { visitor: "Visitor", volunteer: m.client_msg_id && chat.mine?.has(m.client_msg_id) ? "You" : "Volunteer", system: "Beacon" }[m.sender] || m.sender;
  const text = m.muted ? "(muted by a supervisor: text withheld; it is in the audited transcript)" : m.text === null ? "(erased)" : m.text;
  const item = h("li", { class: `msg from-${m.sender}${m.kind === "safety" ? " safety" : ""}`, "data-seq": m.seq },
    h("span", { class: "who" }, m.kind === "safety" ? "Safety message sent" : who),
    h("span", { class: "when" }, `#${m.seq} · ${timeOf(m.sent_at)}`),
    typeof m.level === "number" ? h("span", { class: "level" }, badge(m.level), " ", signalsText(m.signals)) : null,
    m.resource ? h("p", { class: "text card" }, h("strong", {}, `Resource card: ${m.resource.title}`), ` — ${m.resource.text}`) : h("p", { class: "text" }, text));
  const list = chat.el.querySelector(".messages");
  const after = [...list.querySelectorAll("li[data-seq]")].find((li) => Number(li.dataset.seq) > m.seq);
  list.insertBefore(item, after || list.querySelector("li.pending"));
  scrollDown(chat);
}

function renderPending(chat) {
  if (!chat.el) return;
  const list = chat.el.querySelector(".messages");
  for (const li of list.querySelectorAll("li.pending")) li.remove();
  for (const [cmid, text] of chat.pending) {
    list.append(h("li", { class: "msg from-volunteer pending", "data-pending": cmid },
      h("span", { class: "who" }, "You"),
      h("span", { class: "when" }, link.open ? "sending…" : "offline: will send when back"),
      h("p", { class: "text" }, text)));
  }
  scrollDown(chat);
}

function scrollDown(chat) {
  const box = chat.el.querySelector(".transcript");
  box.scrollTop = box.scrollHeight;
}

function onAck(f) {
  const chat = state.chats.get(f.session_id);
  if (!chat) return;
  const text = chat.pending.get(f.client_msg_id);
  chat.pending.delete(f.client_msg_id);
  if (text !== undefined) {
    showMessage(chat, { seq: f.seq, sender: "volunteer", text, sent_at: new Date().toISOString(), client_msg_id: f.client_msg_id });
  }
  renderPending(chat);
}

function compose(chat) {
  const box = chat.el.querySelector(".compose textarea");
  const text = box.value;
  if (!text.trim()) return;
  if (new TextEncoder().encode(text).length > MAX_BYTES) {
    toast("That message is too long; split it up.");
    return;
  }
  const cmid = newId();
  chat.mine = chat.mine || new Set();
  chat.mine.add(cmid);
  chat.pending.set(cmid, text);
  box.value = "";
  renderPending(chat);
  sendMessage(chat.sid, cmid, text);
}

function sendMessage(sid, cmid, text) {
  link.send({ type: "message", session_id: sid, client_msg_id: cmid, text });
}

function transfer(sid, target) {
  const frame = { type: "transfer", session_id: sid };
  if (target === "supervisor") frame.to_supervisor = true;
  else if (target !== "queue") frame.to_volunteer_id = target;
  link.send(frame);
}

function closeChat(chat, form) {
  const disposition = form.elements.disposition.value;
  const risk = form.elements.risk.value;
  const error = form.querySelector(".close-error");
  if (!disposition || !risk) {
    error.textContent = "Choose a disposition and your risk assessment first.";
    (disposition ? form.elements.risk : form.elements.disposition).focus();
    return;
  }
  error.textContent = "";
  const notes = form.elements.notes.value.trim();
  link.send({ type: "close", session_id: chat.sid, disposition, risk_level: risk, ...(notes ? { notes } : {}) });
}

function onSession(f) {
  const chat = state.chats.get(f.session_id);
  if (typeof f.urgency_value === "number" && chat) setUrgency(chat, f.urgency_value);
  if (typeof f.urgency_value === "number" && state.offers.has(f.session_id)) {
    const offer = state.offers.get(f.session_id);
    offer.frame.urgency = f.urgency;
    offer.frame.urgency_value = f.urgency_value;
  }
  if (!f.status) return;
  if (f.status.startsWith("offer_")) {
    removeOffer(f.session_id);
    toast(`Chat ${shortId(f.session_id)}: ${statusWords(f.status)}.`);
    return;
  }
  // Once a chat is no longer ours, later updates about it (its new holder's "active") are not.
  if (!chat || chat.over) return;
  const ended = ["closed", "abandoned", "handed_off", "released", "transferred", "requeued", "transferred_to_queue"];
  const line = chat.el.querySelector(".chat-status");
  if (ended.includes(f.status)) {
    chat.over = true;
    line.textContent = `This chat was ${statusWords(f.status)}. It is no longer yours.`;
    for (const control of chat.el.querySelectorAll("textarea, select, button:not(.dismiss)")) control.disabled = true;
    if (!chat.el.querySelector(".dismiss")) {
      chat.el.querySelector(".chat-head").append(h("button", {
        type: "button", class: "dismiss",
        onclick: () => { chat.el.remove(); state.chats.delete(chat.sid); $("no-chats").hidden = state.chats.size > 0; },
      }, `Remove chat ${shortId(chat.sid)} from the screen`));
    }
    renderUrgency(chat);
    refreshQueue();
  } else {
    line.textContent = `Status: ${statusWords(f.status)}.`;
  }
}

function onTyping(f) {
  const chat = state.chats.get(f.session_id);
  if (!chat) return;
  const el = chat.el.querySelector(".typing");
  el.textContent = "The visitor is typing…";
  clearTimeout(chat.typingTimer);
  chat.typingTimer = setTimeout(() => { el.textContent = ""; }, 5000);
}

function onHandoffReply(f) {
  const chat = state.chats.get(f.session_id);
  if (chat) chat.el.querySelector(".chat-status").textContent = `Handoff ${f.status} (${f.trigger}).`;
  recordHandoff({ session_id: f.session_id, handoff_id: f.handoff_id, reason: f.status });
}

// -- queue ----------------------------------------------------------------------------------------

function onQueueCounts(counts) {
  const parts = LEVELS.slice().reverse().filter((n) => counts[n]).map((n) => `${counts[n]} ${LEVEL_LABELS[n].toLowerCase()}`);
  $("queue-counts").textContent = parts.length ? `Waiting: ${parts.join(", ")}.` : "Nobody is waiting.";
  scheduleQueue();
}

let queueTimer = null;
function scheduleQueue() {
  clearTimeout(queueTimer);
  queueTimer = setTimeout(refreshQueue, 250);
}

async function refreshQueue() {
  if (!state.me) return;
  let listing;
  try {
    listing = await api("/queue?limit=50");
  } catch {
    return;
  }
  const rows = listing.items.map((item) => h("tr", { class: `lvl-${item.urgency}`, "data-session": item.session_id },
    h("td", {}, badge(item.urgency)),
    h("td", {}, duration(item.waited_s)),
    h("td", {}, item.language || "unknown"),
    h("td", { class: "signals" }, signalsText(item.signals)),
    h("td", {}, h("button", { type: "button", onclick: () => claim(item.session_id) }, `Take chat ${shortId(item.session_id)}`))));
  if (replaceRows($("queue-rows"), rows)) $("queue-empty").hidden = rows.length > 0;
}
setInterval(() => { if (state.me && link.open) refreshQueue(); }, 5000);

async function claim(sid) {
  try {
    await api(`/sessions/${sid}/claim`, { method: "POST" });
  } catch (err) {
    toast(`Could not take chat ${shortId(sid)}: ${err.message}`);
  }
  refreshQueue();
}

$("take-next").addEventListener("click", () => link.send({ type: "next" }));

// -- supervisor view ------------------------------------------------------------------------------

function onAlert(f) {
  state.alerts.unshift({ ...f, at: new Date().toISOString() });
  state.alerts.length = Math.min(state.alerts.length, 200);
  if (f.handoff_id) recordHandoff(f);
  renderAlerts();
  const urgent = levelName(f.urgency) === "imminent";
  if (urgent && (f.reason === "urgency_raised" || f.reason === "escalation_started" || f.reason === "imminent_in_chat")) {
    imminentAlert(`alert:${f.session_id}`, `Imminent risk: chat ${shortId(f.session_id)} — ${reasonWords(f.reason)}.`);
  }
  scheduleSupervisor();
}

function recordHandoff(f) {
  if (!f.handoff_id) return;
  const known = state.handoffs.get(f.handoff_id) || {};
  state.handoffs.set(f.handoff_id, { ...known, session_id: f.session_id, reason: f.reason, at: new Date().toISOString() });
  renderHandoffs();
}

function renderHandoffs() {
  const rows = [...state.handoffs].map(([id, x]) => h("tr", { "data-handoff": id },
    h("td", {}, shortId(x.session_id)),
    h("td", {}, shortId(id)),
    h("td", { class: "handoff-state" }, x.status ? statusWords(x.status) : "…", ` (last alert: ${reasonWords(x.reason)})`),
    h("td", {}, x.partner || "—"),
    h("td", {}, x.attempts === undefined ? "—" : String(x.attempts)),
    h("td", {}, timeOf(x.at))));
  $("handoff-rows").replaceChildren(...rows);
  $("handoffs-empty").hidden = rows.length > 0;
}

async function refreshHandoffs() {
  await Promise.all([...state.handoffs.keys()].map(async (id) => {
    try {
      const detail = await api(`/v1/handoffs/${id}`);
      Object.assign(state.handoffs.get(id), { status: detail.status, partner: detail.partner, attempts: detail.attempts });
    } catch { /* gone or not allowed: keep what the alerts said */ }
  }));
  renderHandoffs();
}

function renderAlerts() {
  $("alerts").replaceChildren(...state.alerts.map((a) => h("li", { class: `alert lvl-${levelName(a.urgency)}`, "data-session": a.session_id },
    badge(a.urgency), ` ${timeOf(a.at)} · chat ${shortId(a.session_id)} · ${reasonWords(a.reason)}`,
    a.signals ? ` · ${signalsText(a.signals)}` : "",
    muteDecision(a))));
  $("no-alerts").hidden = state.alerts.length > 0;
}

/** A mute a supervisor asked for on a high+ chat waits for a second one: confirm or cancel it
 * from the alert (the server refuses a confirmation by the one who asked). */
function muteDecision(a) {
  if (a.reason !== "mute_requested" || !a.mute_id || state.decidedMutes.has(a.mute_id)) return "";
  if (state.me && a.requested_by === state.me.volunteer_id) return " · waiting for a second supervisor";
  return h("span", { class: "mute-decision" }, " ",
    h("button", { type: "button", class: "confirm-mute", onclick: () => link.send({ type: "confirm_mute", mute_id: a.mute_id }) }, `Confirm the mute of chat ${shortId(a.session_id)}`),
    " ",
    h("button", { type: "button", class: "cancel-mute", onclick: () => link.send({ type: "cancel_mute", mute_id: a.mute_id }) }, "Cancel it"));
}

let supervisorTimer = null;
function scheduleSupervisor() {
  clearTimeout(supervisorTimer);
  supervisorTimer = setTimeout(refreshSupervisor, 300);
}

async function refreshSupervisor() {
  const role = state.me && state.me.role;
  if (role !== "supervisor" && role !== "admin") return;
  let sessions; let risk; let team;
  try {
    [sessions, risk, team] = await Promise.all([api("/sessions"), api("/at-risk"), api("/volunteers")]);
  } catch {
    return;
  }
  state.volunteers = new Map(team.volunteers.map((v) => [v.volunteer_id, v.name]));
  state.live = new Map(sessions.sessions.map((s) => [s.session_id, s]));
  const online = team.volunteers.filter((v) => v.presence === "online");
  replaceRows($("live-rows"), sessions.sessions.map((s) => {
    const select = h("select", { id: `reassign-${s.session_id}`, "aria-label": `Reassign chat ${shortId(s.session_id)} to` },
      h("option", { value: "" }, "Choose…"),
      online.filter((v) => v.volunteer_id !== s.volunteer_id).map((v) => h("option", { value: v.volunteer_id }, v.name)));
    return h("tr", { class: `lvl-${s.urgency}`, "data-session": s.session_id },
      h("td", {}, shortId(s.session_id)),
      h("td", {}, statusWords(s.status)),
      h("td", {}, badge(s.urgency)),
      h("td", { class: "signals" }, signalsText(s.signals)),
      h("td", {}, timeOf(s.waiting_since)),
      h("td", {}, s.volunteer_id ? state.volunteers.get(s.volunteer_id) || shortId(s.volunteer_id) : "nobody"),
      h("td", {}, s.status === "active" ? [select, h("button", {
        type: "button", onclick: () => { if (select.value) transfer(s.session_id, select.value); },
      }, "Reassign")] : "—",
      state.chats.has(s.session_id) ? null : h("button", {
        type: "button", class: "observe", onclick: () => link.send({ type: "observe", session_id: s.session_id }),
      }, "Observe")));
  }));
  $("live-empty").hidden = sessions.sessions.length > 0;
  refreshHandoffs();
  $("risk-rows").replaceChildren(...risk.sessions.map((s) => h("tr", { class: `lvl-${s.urgency}` },
    h("td", {}, shortId(s.session_id)), h("td", {}, badge(s.urgency)), h("td", {}, statusWords(s.status)),
    h("td", {}, duration(s.gone_s)), h("td", { class: "signals" }, signalsText(s.signals)))));
  $("risk-empty").hidden = risk.sessions.length > 0;
  $("team-rows").replaceChildren(...team.volunteers.map((v) => h("tr", {},
    h("td", {}, v.name), h("td", {}, v.role), h("td", {}, v.presence), h("td", {}, `${v.load} of ${v.capacity}`),
    h("td", {}, v.languages.join(", ")))));
}
setInterval(() => { if (state.view === "supervise" && link.open) refreshSupervisor(); }, 5000);

function showView(view) {
  state.view = view;
  $("work").hidden = view !== "work";
  $("supervise").hidden = view !== "supervise";
  $("view-work").setAttribute("aria-pressed", String(view === "work"));
  $("view-supervise").setAttribute("aria-pressed", String(view === "supervise"));
  if (view === "supervise") refreshSupervisor();
}
$("view-work").addEventListener("click", () => showView("work"));
$("view-supervise").addEventListener("click", () => showView("supervise"));

// -- sign in / out ---------------------------------------------------------------------------------

function signIn(token) {
  state.token = token;
  sessionStorage.setItem(KEY, token);
  $("signin-error").textContent = "";
  link.start();
}

function signOut(reason) {
  link.stop();
  sessionStorage.removeItem(KEY);
  state.token = null;
  state.me = null;
  state.offers.clear();
  state.chats.clear();
  $("chats").replaceChildren();
  renderOffers();
  $("app").hidden = true;
  $("who").hidden = true;
  $("signin").hidden = false;
  $("signin-error").textContent = reason || "";
  connState("stopped");
  $("token").focus();
}

$("signin-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const token = $("token").value.trim();
  if (!token) {
    $("signin-error").textContent = "Paste your volunteer token first.";
    $("token").focus();
    return;
  }
  $("token").value = "";
  unlockAudio();
  signIn(token);
});
$("sign-out").addEventListener("click", () => signOut("You are signed out."));
$("presence").addEventListener("change", (event) => {
  state.presence = event.target.value;
  link.send({ type: "presence", status: state.presence });
});
$("sound").addEventListener("click", () => {
  if (audio && audio.state === "suspended") {
    audio.resume().catch(() => {});
    state.sound = true;
    $("sound").setAttribute("aria-pressed", "true");
    $("sound").textContent = "Sound on";
    return;
  }
  state.sound = !state.sound;
  $("sound").setAttribute("aria-pressed", String(state.sound));
  $("sound").textContent = state.sound ? "Sound on" : "Sound off";
});

renderOffers();
if (state.token) link.start();
else $("token").focus();
