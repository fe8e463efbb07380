// The open room's messages (#messages).
//
// Every message is its own `.message` element (data-message-id once
// stored, data-sender, its text in `.text`), in id order, pending ones
// below the stored ones. A stored one also carries what PROTOCOL.md
// section 11 names: `.reply-quote`, `.edited` (outside `.text`),
// `.reaction`s and the action buttons; what they do is in ../actions.js. Two things are derived from neighbours and kept
// right by decorate() whenever an element is inserted or removed: the
// `.day-separator` before the first message of each day, and the class
// `continued` on a message that follows one of the same sender within a
// few minutes (its avatar, name and time are then not repeated).

import { $, el } from '../dom.js';
import { icon } from '../icons.js';
import { renderMessageText } from '../markdown.js';
import { canModerate, openRoom, outboxFor, sortedMessages, state } from '../state.js';

const GROUP_WITHIN_MS = 5 * 60 * 1000;
const COLLAPSE_CHARS = 800;
const COLLAPSE_LINES = 12;
const NEAR_BOTTOM_PX = 80;

let stored = new Map();  // message id -> element, for the open room
let pending = new Map(); // clientMsgId -> element of a message not yet acknowledged

// ---------------------------------------------------------------- whole room

// Until its first page is read a room shows only "Loading…" and the outbox.
export function showRoom(room) {
  stored = new Map();
  pending = new Map();
  const box = $('messages');
  box.replaceChildren(historyEdge());
  if (room.loaded) sortedMessages(room).forEach(insertStored);
  for (const entry of outboxFor(room.roomId)) showPending(entry);
  renderHistoryEdge(room);
  hideNewMessagesIndicator();
  scrollToBottom();
}

export function clearMessages() {
  stored = new Map();
  pending = new Map();
  $('messages').replaceChildren();
  hideNewMessagesIndicator();
}

function historyEdge() {
  const edge = el('div', 'history-edge', '');
  edge.id = 'history-edge';
  return edge;
}

export function renderHistoryEdge(room) {
  const edge = $('history-edge');
  if (!edge || !room) return;
  if (!room.loaded) edge.textContent = 'Loading messages…';
  else if (room.loadingOlder) edge.textContent = 'Loading older messages…';
  else if (room.hasMore) edge.textContent = 'Scroll up for older messages';
  else edge.textContent = stored.size ? 'This is the beginning of the room.' : 'No messages yet. Say hello!';
}

// ---------------------------------------------------------------- one message

// A stored message of the open room, live or from history. A pending
// element with the same clientMsgId becomes this message (same element).
export function showStored(room, msg) {
  if (stored.has(msg.id)) {
    dropPending(msg.clientMsgId); // already shown, say by a replay: the pending copy goes
    return;
  }
  const box = $('messages');
  const wasNearBottom = isNearBottom();
  const hadNone = stored.size === 0;
  insertStored(msg);
  if (hadNone) renderHistoryEdge(room); // no longer "No messages yet"
  if (wasNearBottom || msg.sender === state.username) scrollToBottom();
  else if (box.scrollHeight > box.clientHeight) showNewMessagesIndicator();
}

function insertStored(msg) {
  const node = takePending(msg.clientMsgId) || messageElement(msg);
  if (node.isConnected) removeMessageElement(node); // a pending one: it moves among the stored
  markStored(node, msg);
  stored.set(msg.id, node);
  insertInOrder(node, msg.id);
}

export function showPending(entry) {
  if (pending.has(entry.clientMsgId)) return;
  const node = messageElement({ sender: state.username, message: entry.message, replyTo: entry.replyTo });
  node.classList.add('pending');
  node.dataset.ts = String(Date.now());
  node.querySelector('time').textContent = 'sending…';
  pending.set(entry.clientMsgId, node);
  $('messages').append(node);
  decorate(node);
  scrollToBottom();
}

export function failPending(clientMsgId, reason) {
  const node = pending.get(clientMsgId);
  if (!node) return;
  pending.delete(clientMsgId);
  node.classList.replace('pending', 'failed');
  node.querySelector('time').textContent = 'not sent';
  node.querySelector('.body').append(el('div', 'note', reason));
}

function takePending(clientMsgId) {
  const node = clientMsgId ? pending.get(clientMsgId) : null;
  if (node) pending.delete(clientMsgId);
  return node;
}

function dropPending(clientMsgId) {
  const node = takePending(clientMsgId);
  if (node) removeMessageElement(node);
}

function removeMessageElement(node) {
  const next = nextMessage(node);
  const before = node.previousElementSibling;
  node.remove();
  if (before && before.classList.contains('day-separator')
      && (!before.nextElementSibling || before.nextElementSibling.classList.contains('day-separator'))) {
    before.remove();
  }
  if (next) decorate(next);
}

// Older history, put above what is shown without moving what the user reads.
export function prependOlder(messages) {
  const box = $('messages');
  const heightBefore = box.scrollHeight;
  const edge = $('history-edge');
  let after = edge;
  for (const msg of messages) {
    if (stored.has(msg.id)) continue;
    const node = messageElement(msg);
    markStored(node, msg);
    stored.set(msg.id, node);
    after.after(node);
    decorate(node);
    after = node;
  }
  const first = nextMessage(after);
  if (first) decorate(first);
  box.scrollTop += box.scrollHeight - heightBefore;
}

// ---------------------------------------------------------------- elements

function messageElement({ sender, message: text, replyTo }) {
  const name = sender ?? '(deleted user)';
  const node = el('div', 'message');
  node.dataset.sender = name;
  if (sender === state.username) node.classList.add('own');

  const avatar = el('span', 'avatar', name.slice(0, 1).toUpperCase());
  avatar.setAttribute('aria-hidden', 'true');
  avatar.style.setProperty('--hue', String(hueOf(name)));

  const meta = el('div', 'meta');
  meta.append(el('span', 'sender', name), ' ', el('time', 'time'));
  const body = el('div', 'body');
  const textNode = el('div', 'text');
  textNode.append(renderMessageText(text, state.username));
  body.append(meta);
  if (replyTo) body.append(replyQuote(replyTo));
  body.append(textNode);
  if (isLong(text)) addShowMore(node, body);
  node.append(avatar, body);
  return node;
}

// The quoted original: its sender and first line, as text, or a plain
// placeholder when it is not among the messages read so far.
function replyQuote(id) {
  const quote = el('button', 'reply-quote');
  quote.type = 'button';
  quote.dataset.messageId = String(id);
  fillQuote(quote, openRoom()?.messages.get(id));
  return quote;
}

function fillQuote(quote, original) {
  const who = el('span', 'quote-sender', original ? original.sender ?? '(deleted user)' : '');
  const what = el('span', 'quote-text', original ? firstLine(original.message) : 'an earlier message');
  quote.replaceChildren(icon('reply'), who, what);
  quote.title = original ? 'Jump to the original message' : 'Show the original message';
}

function firstLine(text) {
  const line = text.split('\n', 1)[0];
  return line.length > 140 ? `${line.slice(0, 140)}…` : line;
}

// Everything of a stored message that can change after it arrived.
function renderStoredParts(node, msg) {
  renderEdited(node, msg);
  renderReactions(node, msg);
  renderActions(node, msg);
}

function renderEdited(node, msg) {
  let mark = node.querySelector('.edited');
  if (!msg.editedAt) {
    mark?.remove();
    return;
  }
  if (!mark) {
    mark = el('span', 'edited', '(edited)');
    node.querySelector('.text').after(mark);
  }
  const ts = Date.parse(msg.editedAt);
  mark.title = Number.isNaN(ts) ? 'edited' : `edited ${new Date(ts).toLocaleString()}`;
}

function renderReactions(node, msg) {
  let row = node.querySelector('.reactions');
  if (!msg.reactions || !msg.reactions.size) {
    row?.remove();
    return;
  }
  if (!row) {
    row = el('div', 'reactions');
    node.querySelector('.body').append(row);
  }
  const chips = [...msg.reactions].map(([emoji, users]) => {
    const chip = el('button', 'reaction');
    chip.type = 'button';
    chip.dataset.emoji = emoji;
    chip.classList.toggle('mine', users.includes(state.username));
    chip.setAttribute('aria-pressed', String(users.includes(state.username)));
    chip.title = `${users.join(', ')} reacted with ${emoji}`;
    chip.append(el('span', 'emoji-glyph', emoji), el('span', 'count', String(users.length)));
    return chip;
  });
  row.replaceChildren(...chips);
}

// Reply and react for every message; edit for one's own; delete for one's
// own, and for every message when the user moderates the room.
function renderActions(node, msg) {
  node.querySelector('.actions')?.remove();
  const own = msg.sender === state.username;
  const bar = el('div', 'actions');
  bar.setAttribute('role', 'toolbar');
  bar.setAttribute('aria-label', 'Message actions');
  bar.append(actionButton('react-button', 'React', 'smile'), actionButton('reply-button', 'Reply', 'reply'));
  if (own) bar.append(actionButton('edit-button', 'Edit', 'edit'));
  if (own || canModerate(openRoom())) bar.append(actionButton('delete-button', 'Delete', 'trash'));
  node.append(bar);
}

function actionButton(className, label, iconName) {
  const button = el('button', `icon action ${className}`);
  button.type = 'button';
  button.title = label;
  button.setAttribute('aria-label', label);
  button.append(icon(iconName));
  return button;
}

// ---------------------------------------------------------------- changes

export function elementOf(id) {
  return stored.get(id) || null;
}

export function showEdited(msg) {
  const node = stored.get(msg.id);
  if (!node) return;
  const text = node.querySelector('.text');
  text.replaceChildren(renderMessageText(msg.message, state.username));
  renderEdited(node, msg);
  for (const quote of document.querySelectorAll(`#messages .reply-quote[data-message-id="${msg.id}"]`)) {
    fillQuote(quote, msg);
  }
}

export function showReactions(msg) {
  const node = stored.get(msg.id);
  if (node) renderReactions(node, msg);
}

export function removeStored(room, id) {
  const node = stored.get(id);
  if (!node) return;
  stored.delete(id);
  removeMessageElement(node);
  renderHistoryEdge(room);
}

// The user's role changed: who may delete what changed with it.
export function refreshActions(room) {
  for (const [id, node] of stored) {
    const msg = room.messages.get(id);
    if (msg) renderActions(node, msg);
  }
}

// Bring a message into view and make it stand out for a moment.
export function highlight(id) {
  const node = stored.get(id);
  if (!node) return false;
  node.scrollIntoView({ block: 'center' });
  node.classList.remove('highlight');
  void node.offsetWidth; // restart the animation
  node.classList.add('highlight');
  return true;
}

// Fill in what only the stored message knows: its id and its time.
function markStored(node, msg) {
  node.classList.remove('pending', 'failed');
  node.dataset.messageId = String(msg.id);
  const ts = Date.parse(msg.timestamp);
  node.dataset.ts = String(Number.isNaN(ts) ? Date.now() : ts);
  const time = node.querySelector('time');
  time.dateTime = msg.timestamp;
  time.textContent = Number.isNaN(ts) ? '' : new Date(ts).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  time.title = Number.isNaN(ts) ? '' : new Date(ts).toLocaleString();
  node.querySelector('.note')?.remove();
  const known = openRoom()?.messages.get(msg.id);
  renderStoredParts(node, known || { ...msg, reactions: new Map() });
}

function hueOf(name) {
  let h = 0;
  for (const ch of name) h = (h * 31 + ch.codePointAt(0)) % 360;
  return h;
}

function isLong(text) {
  return text.length > COLLAPSE_CHARS || text.split('\n').length > COLLAPSE_LINES;
}

function addShowMore(node, body) {
  node.classList.add('collapsed');
  const button = el('button', 'show-more', 'Show more');
  button.type = 'button';
  button.setAttribute('aria-expanded', 'false');
  button.addEventListener('click', () => {
    const collapsed = node.classList.toggle('collapsed');
    button.textContent = collapsed ? 'Show more' : 'Show less';
    button.setAttribute('aria-expanded', String(!collapsed));
  });
  body.append(button);
}

// ---------------------------------------------------------------- order, days, groups

// Stored messages go in id order above every pending or failed one.
// Walks back from the end, where new messages almost always go.
function insertInOrder(node, id) {
  const box = $('messages');
  let anchor = null;
  for (let n = box.lastElementChild; n; n = n.previousElementSibling) {
    if (n === node || n.classList.contains('day-separator')) continue;
    if (!n.classList.contains('message')) break;
    const later = n.dataset.messageId === undefined || Number(n.dataset.messageId) > id;
    if (!later) break;
    anchor = n;
  }
  // Before the anchor's day separator, if it has one: decorate() sorts it out.
  const sep = anchor?.previousElementSibling;
  const at = sep && sep.classList.contains('day-separator') ? sep : anchor;
  box.insertBefore(node, at);
  decorate(node);
  if (anchor) decorate(anchor);
}

function previousMessage(node) {
  let n = node.previousElementSibling;
  while (n && !n.classList.contains('message')) n = n.previousElementSibling;
  return n;
}

function nextMessage(node) {
  let n = node.nextElementSibling;
  while (n && !n.classList.contains('message')) n = n.nextElementSibling;
  return n;
}

function decorate(node) {
  const prev = previousMessage(node);
  const ts = Number(node.dataset.ts);
  const day = dayKey(ts);
  const newDay = !prev || dayKey(Number(prev.dataset.ts)) !== day;
  const before = node.previousElementSibling;
  const hasSep = before && before.classList.contains('day-separator');
  if (newDay && !hasSep) node.before(daySeparator(ts));
  else if (newDay && hasSep) before.replaceWith(daySeparator(ts));
  else if (!newDay && hasSep) before.remove();
  const grouped = !newDay && prev.dataset.sender === node.dataset.sender
    && !prev.classList.contains('failed')
    && ts - Number(prev.dataset.ts) < GROUP_WITHIN_MS;
  node.classList.toggle('continued', grouped);
}

function dayKey(ts) {
  const d = new Date(ts);
  return `${d.getFullYear()}-${d.getMonth()}-${d.getDate()}`;
}

function daySeparator(ts) {
  const sep = el('div', 'day-separator');
  sep.setAttribute('role', 'separator');
  sep.append(el('span', '', dayLabel(ts)));
  return sep;
}

function dayLabel(ts) {
  const today = new Date();
  const yesterday = new Date(today.getFullYear(), today.getMonth(), today.getDate() - 1);
  if (dayKey(ts) === dayKey(today.getTime())) return 'Today';
  if (dayKey(ts) === dayKey(yesterday.getTime())) return 'Yesterday';
  const d = new Date(ts);
  const sameYear = d.getFullYear() === today.getFullYear();
  return d.toLocaleDateString([], {
    weekday: 'long', day: 'numeric', month: 'long', ...(sameYear ? {} : { year: 'numeric' }),
  });
}

// ---------------------------------------------------------------- scrolling

export function isNearBottom() {
  const box = $('messages');
  return box.scrollHeight - box.scrollTop - box.clientHeight < NEAR_BOTTOM_PX;
}

export function scrollToBottom() {
  const box = $('messages');
  box.scrollTop = box.scrollHeight;
  hideNewMessagesIndicator();
}

function showNewMessagesIndicator() {
  $('new-messages').hidden = false;
}

export function hideNewMessagesIndicator() {
  $('new-messages').hidden = true;
}
