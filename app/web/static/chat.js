// The visitor chat page: the reference client of WS /v1/chat (docs/protocol.md).
// Keeps only the resume token and unacknowledged messages, in this tab's sessionStorage, so a
// reload or a dropped network resumes the chat; quick exit clears both and leaves.
import { Link, diallable, h, newId, withPhoneLinks } from "./common.js";

const KEY = "beacon.chat";
const MAX_BYTES = 4096;
const TYPING_EVERY_MS = 2500; // the server passes on one every 2 s
const $ = (id) => document.getElementById(id);

const locale = (() => {
  const lang = (navigator.language || "en").slice(0, 16);
  return /^[A-Za-z]{2,8}(-[A-Za-z0-9]{1,8})*$/.test(lang) ? lang : "en";
})();

function loadSaved() {
  try {
    const saved = JSON.parse(sessionStorage.getItem(KEY) || "{}");
    return {
      token: typeof saved.token === "string" ? saved.token : null,
      pending: Array.isArray(saved.pending) ? saved.pending : [],
    };
  } catch {
    return { token: null, pending: [] };
  }
}

const saved = loadSaved();
const state = {
  token: saved.token,
  sessionId: null,
  pending: saved.pending, // [{id, text}] in the order typed, not yet acknowledged
  seen: new Set(), // seqs shown on this page
  highest: 0, // highest seq seen on this page: the last_seq to resume from
  status: null,
  spoke: saved.pending.length > 0,
  ended: false,
  exiting: false,
  typingSentAt: 0,
  retryTimer: null,
  calmRetry: false, // the server asked us to come back later (too_many_sessions)
  consentForm: null, // the consent question last answered, where its confirmation goes
};

function persist() {
  if (state.exiting) return;
  if (!state.token && state.pending.length === 0) {
    sessionStorage.removeItem(KEY);
    return;
  }
  sessionStorage.setItem(KEY, JSON.stringify({ token: state.token, pending: state.pending }));
}

// -- the socket ---------------------------------------------------------------------------------

const link = new Link("/v1/chat", {
  onOpen() {
    link.send({
      type: "hello",
      resume_token: state.token,
      // After a reload nothing is on the page yet: 0 replays the whole chat.
      last_seq: state.token ? state.highest : null,
      locale,
      channel: "web",
    });
  },
  onFrame: handle,
  onClose(code) {
    if (code === 1000) {
      if (!state.ended) endChat("This chat has ended.");
      return false;
    }
    if (code === 1003 || code === 1007 || code === 1009) {
      showConn("This page could not talk to the server. Please reload.", "bad");
      return false;
    }
    if (code === 1008 && state.token) return false; // a refusal we did not expect: see error
    return true; // 1006, 1011, 1012, 1013, network: come back and resume
  },
  onState: connState,
});

let offlineTick = null;
function connState(kind, delay) {
  clearInterval(offlineTick);
  document.body.dataset.conn = kind;
  if (kind === "open") showConn("Connected", "ok");
  else if (kind === "connecting") showConn("Connecting…", "wait");
  else if (kind === "offline" && state.calmRetry) {
    // Refused for now (too many new chats from this network): not the person's fault, and not
    // an error to alarm them with.
    showConn("Connecting…", "wait");
  } else if (kind === "offline") {
    const tick = () => {
      const s = Math.max(0, Math.ceil((link.retryAt - Date.now()) / 1000));
      showConn(`Offline — reconnecting${s > 0 ? ` in ${s} s` : "…"} Your messages are kept and will be sent.`, "bad");
    };
    tick();
    offlineTick = setInterval(tick, 1000);
  } else if (kind === "stopped" && !state.ended) showConn("Disconnected", "bad");
}

function showConn(text, tone) {
  const el = $("conn");
  el.textContent = text;
  el.dataset.tone = tone;
}

function handle(frame) {
  switch (frame.type) {
    case "session":
      state.calmRetry = false;
      // When a person can start typing: what bench/page_load.py calls time to interactive.
      if (!performance.getEntriesByName("beacon-ready").length) performance.mark("beacon-ready");
      state.token = frame.resume_token;
      state.sessionId = frame.session_id;
      if (frame.last_seq > 0) state.spoke = true;
      persist();
      link.established();
      setComposeEnabled(true);
      for (const p of state.pending) sendPending(p);
      renderPending();
      break;
    case "message":
      show(frame);
      if (frame.sender === "visitor" && frame.client_msg_id) settle(frame.client_msg_id);
      break;
    case "ack": {
      const p = state.pending.find((x) => x.id === frame.client_msg_id);
      if (p) show({ seq: frame.seq, sender: "visitor", text: p.text, sent_at: new Date().toISOString() });
      settle(frame.client_msg_id);
      break;
    }
    case "status":
      onStatus(frame);
      break;
    case "typing":
      showTyping();
      break;
    case "consent":
      onConsent(frame);
      break;
    case "error":
      onError(frame);
      break;
    default:
      break; // pong, and frame types a later server may add
  }
}

// -- the transcript -----------------------------------------------------------------------------

const SENDERS = { visitor: "You", volunteer: "Volunteer", system: "Beacon" };

function timeOf(iso) {
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? "" : d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

function show(m) {
  if (typeof m.seq !== "number" || state.seen.has(m.seq)) return;
  state.seen.add(m.seq);
  state.highest = Math.max(state.highest, m.seq);
  if (m.sender === "visitor") state.spoke = true;
  const safety = m.sender === "system" && m.kind === "safety";
  const card = m.kind === "resource" && m.resource ? m.resource : null;
  const asking = m.sender === "system" && m.kind === "consent";
  const text = m.text === null ? "(this message was removed)" : m.text;
  const item = h(
    "li",
    { class: `msg from-${m.sender}${safety ? " safety" : ""}${card ? " card" : ""}`, "data-seq": m.seq },
    h("span", { class: "who" }, safety ? "Safety message" : SENDERS[m.sender] || m.sender),
    h("span", { class: "when" }, timeOf(m.sent_at)),
    card ? resourceCard(card) : h("p", { class: "text" }, safety ? withPhoneLinks(text) : text),
    asking ? consentForm(m) : null,
  );
  const list = $("transcript");
  const after = [...list.querySelectorAll("li[data-seq]")].find((li) => Number(li.dataset.seq) > m.seq);
  list.insertBefore(item, after || list.querySelector("li.pending"));
  if (m.sender === "volunteer") $("typing").textContent = "";
  scrollDown();
}

// A resource the volunteer shared: reviewed text from the helpline's library (never generated),
// with a tap-to-call number and/or a link. Links open in a new tab so the chat stays open.
function resourceCard(card) {
  const tel = card.phone ? diallable(card.phone) : null;
  const url = typeof card.url === "string" && card.url.startsWith("https://") ? card.url : null;
  return h("div", { class: "resource", role: "group", "aria-label": `Resource: ${card.title}` },
    h("p", { class: "resource-title" }, card.title),
    h("p", { class: "text" }, card.text),
    h("p", { class: "resource-actions" },
      tel ? h("a", { href: `tel:${tel}`, class: "tel" }, `Call ${card.phone}`) : null,
      url ? h("a", { href: url, target: "_blank", rel: "noopener noreferrer" }, "Open link") : null));
}

// The consent question (docs/protocol.md, "Consent"): nothing is ticked in advance, and "Don't
// share" is as easy as sharing. The visitor may answer again to change their mind; the last
// answer counts. Only what is asked about (m.asks) is offered.
function consentForm(m) {
  const asks = Array.isArray(m.asks) ? m.asks : ["transcript", "contact"];
  const id = `consent-${m.seq}`;
  const status = h("p", { class: "consent-status", role: "status", id: `${id}-status` });
  const number = h("input", {
    type: "tel", id: `${id}-number`, name: "contact_number", autocomplete: "tel", maxlength: "32",
    "aria-describedby": `${id}-status`,
  });
  const form = h("form", { class: "consent", novalidate: true, "aria-label": "Your answer" },
    asks.includes("transcript")
      ? h("label", {}, h("input", { type: "checkbox", name: "transcript" }), " Share this conversation")
      : null,
    asks.includes("contact")
      ? h("label", {}, h("input", { type: "checkbox", name: "contact" }), " Share a phone number:")
      : null,
    asks.includes("contact") ? h("label", { for: `${id}-number`, class: "visually-hidden" }, "Phone number") : null,
    asks.includes("contact") ? number : null,
    h("p", { class: "consent-actions" },
      h("button", { type: "submit", name: "share" }, "Send my answer"),
      h("button", { type: "button", name: "none", onclick: () => answerConsent(form, false) }, "Don't share anything")),
    status);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    answerConsent(form, true);
  });
  return form;
}

function answerConsent(form, ticked) {
  const transcript = ticked && Boolean(form.elements.transcript?.checked);
  const contact = ticked && Boolean(form.elements.contact?.checked);
  const number = form.elements.contact_number?.value.trim() || "";
  const status = form.querySelector(".consent-status");
  if (contact && !number) {
    status.textContent = "Write the number, or untick it.";
    form.elements.contact_number.focus();
    return;
  }
  const frame = { type: "consent", transcript, contact, ...(contact ? { contact_number: number } : {}) };
  status.textContent = link.send(frame) ? "Sending…" : "You are offline; answer again when the page says Connected.";
  state.consentForm = form;
}

function onConsent(frame) {
  const status = state.consentForm?.querySelector(".consent-status");
  if (!status) return;
  const shared = [frame.transcript ? "this conversation" : null, frame.contact ? "your number" : null].filter(Boolean);
  status.textContent = shared.length
    ? `Thank you. If we connect you with a crisis line, they will get ${shared.join(" and ")}. You can change this.`
    : "Thank you. Nothing beyond your risk level will be shared. You can change this.";
}

function renderPending() {
  const list = $("transcript");
  for (const li of list.querySelectorAll("li.pending")) li.remove();
  for (const p of state.pending) {
    list.append(
      h("li", { class: "msg from-visitor pending", "data-pending": p.id },
        h("span", { class: "who" }, "You"),
        h("span", { class: "when" }, link.open ? "sending…" : "waiting for connection…"),
        h("p", { class: "text" }, p.text)),
    );
  }
  scrollDown();
}

function scrollDown() {
  const box = $("transcript-box");
  box.scrollTop = box.scrollHeight;
}

function settle(clientMsgId) {
  const before = state.pending.length;
  state.pending = state.pending.filter((p) => p.id !== clientMsgId);
  if (state.pending.length !== before) {
    persist();
    renderPending();
  }
}

let typingTimer = null;
function showTyping() {
  $("typing").textContent = "A volunteer is typing…";
  clearTimeout(typingTimer);
  typingTimer = setTimeout(() => { $("typing").textContent = ""; }, 5000);
}

// -- status -------------------------------------------------------------------------------------

function minutes(s) {
  const m = Math.max(1, Math.ceil(s / 60));
  return m === 1 ? "about 1 minute" : `about ${m} minutes`;
}

function onStatus(f) {
  state.status = f.status;
  document.body.dataset.status = f.status;
  const el = $("status");
  el.replaceChildren();
  if (f.status === "waiting") {
    if (typeof f.queue_position === "number") {
      el.append(h("strong", { id: "queue-position" }, `You are number ${f.queue_position} in the queue.`), " ");
      el.append(h("span", { id: "wait-estimate" },
        typeof f.estimated_wait_s === "number"
          ? `Estimated wait: ${minutes(f.estimated_wait_s)}.`
          : "We'll be with you as soon as we can."));
    } else if (!state.spoke) {
      el.append("Tell us what is happening. A trained volunteer will read it; you join the queue when you send your first message.");
    } else {
      el.append("You are in the queue. We'll be with you as soon as we can.");
    }
  } else if (f.status === "offered") {
    el.append("A volunteer is about to join you.");
  } else if (f.status === "active") {
    el.append("You are talking with a trained volunteer.");
  } else if (f.status === "handed_off") {
    el.append("We have passed your chat to a crisis line partner. They will be in touch.");
  } else if (f.status === "closed") {
    const erased = f.reason === "erased";
    // Erased: the token is dead and nothing more is asked. Otherwise the survey may be answered
    // with this chat's token (kept in memory only, until it is answered or skipped).
    if (!erased && state.spoke && state.sessionId && state.token) offerSurvey(state.sessionId, state.token);
    endChat(erased ? "This chat has been erased." : "This chat has ended.");
  }
}

function endChat(text) {
  state.ended = true;
  state.token = null;
  state.pending = [];
  sessionStorage.removeItem(KEY);
  renderPending();
  $("status").textContent = text;
  $("ended-text").textContent = text;
  $("ended").hidden = false;
  $("compose").hidden = true;
  showConn("Chat ended", "wait");
  link.stop();
}

// -- the post-chat survey (numbers only, REST with the resume token) --------------------------------

let survey = null; // {sessionId, token} while the survey is on screen

function offerSurvey(sessionId, token) {
  survey = { sessionId, token };
  $("survey").reset();
  $("survey-error").textContent = "";
  $("survey-done").textContent = "";
  $("survey").hidden = false;
}

function closeSurvey(text) {
  survey = null;
  $("survey").hidden = true;
  $("survey-done").textContent = text;
}

async function sendSurvey(event) {
  event.preventDefault();
  if (!survey) return;
  const answers = {};
  for (const name of ["helped", "safer"]) {
    const picked = $("survey").querySelector(`input[name="${name}"]:checked`);
    if (picked) answers[name] = Number(picked.value);
  }
  if (!Object.keys(answers).length) {
    $("survey-error").textContent = "Pick a number for at least one question, or press Skip.";
    return;
  }
  $("survey-send").disabled = true;
  try {
    const response = await fetch(`/v1/chat/sessions/${encodeURIComponent(survey.sessionId)}/survey`, {
      method: "POST",
      headers: { "Content-Type": "application/json", Authorization: `Bearer ${survey.token}` },
      body: JSON.stringify(answers),
    });
    if (response.ok || response.status === 409) closeSurvey("Thank you. Your answers help us help others.");
    else $("survey-error").textContent = "We could not save your answers. You can try again or skip.";
  } catch {
    $("survey-error").textContent = "You seem to be offline. You can try again or skip.";
  } finally {
    $("survey-send").disabled = false;
  }
}

function onError(f) {
  const pending = f.client_msg_id && state.pending.find((p) => p.id === f.client_msg_id);
  switch (f.code) {
    case "invalid_resume_token":
      // The old chat is gone (expired or erased): start a new one rather than a dead end.
      state.token = null;
      state.highest = 0;
      persist();
      $("transcript").replaceChildren();
      state.seen.clear();
      renderPending();
      notice("Your earlier chat could not be reopened, so we started a new one.");
      break;
    case "too_many_sessions":
      link.retryDelayMs = (f.retry_after_s || 10) * 1000;
      state.calmRetry = true;
      $("status").textContent = "Connecting you… Many people are starting chats right now; you will be connected in a moment.";
      break;
    case "rate_limited":
    case "temporarily_unavailable":
      if (pending) {
        clearTimeout(state.retryTimer);
        state.retryTimer = setTimeout(() => sendPending(pending), 2000);
      }
      break;
    case "text_too_large":
      if (pending) settle(pending.id);
      notice("That message is too long. Please split it into shorter messages.");
      break;
    case "session_closed":
      if (!state.ended) endChat("This chat has ended.");
      break;
    case "invalid_contact_number":
    case "consent_not_requested": {
      const status = state.consentForm?.querySelector(".consent-status");
      if (status) {
        status.textContent = f.code === "invalid_contact_number"
          ? "That number does not look right. Check it, or untick it."
          : "There is no question to answer any more.";
      }
      break;
    }
    default:
      break;
  }
}

function notice(text) {
  $("compose-error").textContent = text;
}

// -- sending ------------------------------------------------------------------------------------

function sendPending(p) {
  link.send({ type: "message", client_msg_id: p.id, text: p.text });
}

function setComposeEnabled(on) {
  $("send").disabled = !on;
}

function submit(event) {
  event.preventDefault();
  const box = $("compose-text");
  const text = box.value;
  notice("");
  if (!text.trim()) {
    notice("Write a message first.");
    box.focus();
    return;
  }
  if (new TextEncoder().encode(text).length > MAX_BYTES) {
    notice("That message is too long. Please split it into shorter messages.");
    return;
  }
  box.value = "";
  if (text.trim() === "DELETE") {
    erase();
    return;
  }
  const p = { id: newId(), text };
  state.pending.push(p);
  state.spoke = true;
  persist();
  renderPending();
  sendPending(p);
  box.focus();
}

function erase() {
  // Never kept in the outbox: erasure is not acknowledged, and must not happen twice by accident.
  if (!link.send({ type: "message", client_msg_id: newId(), text: "DELETE" })) {
    notice("You are offline; try erasing again when the page says Connected.");
  }
}

function typing() {
  const now = Date.now();
  if (now - state.typingSentAt < TYPING_EVERY_MS || !$("compose-text").value.trim()) return;
  state.typingSentAt = now;
  link.send({ type: "typing" });
}

// -- quick exit -------------------------------------------------------------------------------

function quickExit() {
  state.exiting = true;
  try { sessionStorage.clear(); } catch { /* storage disabled */ }
  link.stop();
  document.title = "";
  document.body.replaceChildren();
  // replace(): the chat page does not stay in this tab's history.
  location.replace($("quick-exit")?.dataset.exitUrl || "https://www.google.com/");
}

let lastEscape = 0;
document.addEventListener("keydown", (event) => {
  if (event.key !== "Escape") return;
  const now = Date.now();
  if (now - lastEscape < 1500) quickExit();
  lastEscape = now;
});

// -- safety contacts ----------------------------------------------------------------------------

async function loadContacts() {
  try {
    const response = await fetch(`/v1/chat/safety?locale=${encodeURIComponent(locale)}`);
    if (!response.ok) return;
    const c = await response.json();
    const target = $("emergency");
    target.replaceChildren(c.emergency.tel
      ? h("a", { href: `tel:${c.emergency.tel}`, class: "tel" }, c.emergency.label)
      : c.emergency.label);
    $("hotlines").replaceChildren(...c.hotlines.map((line) => h("li", {},
      "Or call ", line.tel ? h("a", { href: `tel:${line.tel}`, class: "tel" }, line.phone) : line.phone,
      ` (${line.name}), any time.`)));
  } catch {
    // Offline: the panel keeps its built-in wording, which still gives the route to help.
  }
}

// -- start ----------------------------------------------------------------------------------------

function newChat() {
  state.token = null;
  state.pending = [];
  state.seen.clear();
  state.highest = 0;
  state.spoke = false;
  state.ended = false;
  $("transcript").replaceChildren();
  closeSurvey("");
  $("ended").hidden = true;
  $("compose").hidden = false;
  $("status").textContent = "Connecting you…";
  link.start();
  $("compose-text").focus();
}

$("quick-exit").addEventListener("click", quickExit);
$("compose").addEventListener("submit", submit);
$("compose-text").addEventListener("input", typing);
$("compose-text").addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    $("compose").requestSubmit();
  }
});
$("end-chat").addEventListener("click", () => {
  if (!link.send({ type: "close" })) notice("You are offline; the chat will end when you reconnect and press End chat again.");
});
$("erase").addEventListener("click", () => {
  $("erase-confirm").hidden = false;
  $("erase-confirm").focus();
});
$("erase-confirm").addEventListener("click", () => {
  $("erase-confirm").hidden = true;
  erase();
});
$("new-chat").addEventListener("click", newChat);
$("survey").addEventListener("submit", sendSurvey);
$("survey-skip").addEventListener("click", () => closeSurvey(""));

setComposeEnabled(false);
renderPending();
loadContacts();
link.start();
