// Plain words for what the server sends as codes: triage signals, urgency levels, reasons.
// Unknown codes still read sensibly ("foo_bar:baz" -> "foo bar: baz"): the server may add more.

export const LEVELS = ["none", "low", "moderate", "high", "imminent"];
export const LEVEL_LABELS = { none: "None", low: "Low", moderate: "Moderate", high: "High", imminent: "Imminent" };

const PREFIX = {
  method: "method", time: "time", plan: "plan", means: "means", behavior: "behaviour",
  ideation: "ideation", intent: "intent", abuse: "abuse", danger: "danger", self_harm: "self-harm",
  medical: "medical", negated: "negated", idiom: "figure of speech", emoji: "emoji",
  lang: "language", model: "model", mention: "mentions",
};
const WHOLE = {
  third_party: "third party",
  farewell: "farewell message",
  harm_others: "harm to others",
  harm_others_now: "harm to others now",
  retraction: "took it back",
  "lang:en": "language: English",
  "lang:es": "language: Spanish",
  "lang:unsupported": "language not read: needs a person",
  "behavior:attempt_now": "attempt in progress",
  "behavior:attempt": "attempt",
  "idiom:killing_me": "figure of speech: \"killing me\"",
  "negated:suicidal": "says not suicidal",
  "model:imminent": "model: imminent",
  "model:urgent": "model: urgent",
  "model:ideation": "model: ideation",
};

export function signalWords(code) {
  if (WHOLE[code]) return WHOLE[code];
  const [prefix, value] = code.split(":", 2);
  const words = (s) => s.replaceAll("_", " ");
  if (value === undefined) return words(prefix);
  return `${PREFIX[prefix] || words(prefix)}: ${words(value)}`;
}

/** Signals worth a volunteer's eye, in plain words; the language tag goes last. */
export function signalList(signals) {
  const list = (signals || []).slice().sort((a, b) => (a.startsWith("lang:") ? 1 : 0) - (b.startsWith("lang:") ? 1 : 0));
  return list.map(signalWords);
}

export function levelName(value) {
  return typeof value === "number" ? LEVELS[value] || "none" : value || "none";
}

export function duration(seconds) {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${String(s % 60).padStart(2, "0")} s`;
  return `${Math.floor(m / 60)} h ${String(m % 60).padStart(2, "0")} min`;
}

const REASONS = {
  urgency_raised: "urgency rose",
  escalation_started: "imminent and waiting: handoff clock started",
  imminent_in_chat: "turned imminent during a chat",
  escalation_raised: "escalation raised",
  handoff_started: "handoff started",
  handoff_delivered: "handoff delivered to the partner",
  handoff_failed: "handoff failed: give the hotline number",
  handed_off: "handed off",
  handoff_connected: "partner connected",
  active_rescue_requested: "active rescue requested: needs a second supervisor",
  active_rescue_confirmed: "active rescue confirmed",
  active_rescue_cancelled: "active rescue cancelled",
  visitor_lost: "visitor gone past the grace period",
  visitor_returned: "visitor came back",
  mute_requested: "mute requested: needs a second supervisor",
  mute_confirmed: "mute confirmed",
};

export function reasonWords(code) {
  return REASONS[code] || String(code || "alert").replaceAll("_", " ");
}

export const DISPOSITIONS = [
  ["supported", "Supported"],
  ["safety_plan", "Safety plan made"],
  ["referred", "Referred to a service"],
  ["emergency_services", "Emergency services called"],
  ["handed_off", "Handed off to a hotline"],
  ["visitor_left", "Visitor left"],
  ["inappropriate", "Inappropriate use"],
  ["other", "Other"],
];

const STATUS = {
  offer_declined: "declined", offer_expired: "offer expired", offer_withdrawn: "offer withdrawn",
  transferred: "transferred to someone else", transfer_declined: "transfer declined",
  transfer_expired: "transfer not answered", released: "released to the queue",
  requeued: "returned to the queue", transferred_to_queue: "sent back to the queue",
  closed: "closed", abandoned: "abandoned by the visitor", handed_off: "handed off to a hotline",
};

export function statusWords(code) {
  return STATUS[code] || String(code).replaceAll("_", " ");
}
