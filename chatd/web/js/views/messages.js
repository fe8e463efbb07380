// The open room's messages (#messages).
//
// Every message is its own `.message` element (data-message-id once
// stored, data-sender, its text in `.text`), in id order, pending ones
// below the stored ones. Two things are derived from neighbours and kept
// right by decorate() whenever an element is inserted or removed: the
// `.day-separator` before the first message of each day, and the class
// `continued` on a message that follows one of the same sender within a
// few minutes (its avatar, name and time are then not repeated).

import { $, el } from '../dom.js';
import { renderMessageText } from '../markdown.js';
import { state, sortedMessages, outboxFor } from '../state.js';

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
  const node = takePending(msg.clientMsgId) || messageElement(msg.sender, msg.message);
  if (node.isConnected) removeMessageElement(node); // a pending one: it moves among the stored
  markStored(node, msg);
  stored.set(msg.id, node);
  insertInOrder(node, msg.id);
}

export function showPending(entry) {
  if (pending.has(entry.clientMsgId)) return;
  const node = messageElement(state.username, entry.message);
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
    const node = messageElement(msg.sender, msg.message);
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

function messageElement(sender, text) {
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
  body.append(meta, textNode);
  if (isLong(text)) addShowMore(node, body);
  // Section 11 actions (edit, delete, react, reply) will sit beside .body.
  node.append(avatar, body);
  return node;
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
