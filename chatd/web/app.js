// chatd web client: one page, no build step, no third-party code.
// It uses only the HTTP API and the /chat WebSocket of PROTOCOL.md.
//
// Rules this file keeps:
// - User text (messages, names, room names, server messages) is only ever
//   put on the page with textContent, never innerHTML.
// - The element ids of PROTOCOL.md section 5 are stable: tests drive them.
// - A message typed by the user lives in the outbox until the server's
//   new-message with the same clientMsgId comes back; the outbox survives
//   reconnects, so nothing typed is lost and retries cannot duplicate.

const STORE = {
  token: 'chatd.token',
  username: 'chatd.username',
  room: 'chatd.room',
  outbox: 'chatd.outbox',
};

const MAX_MESSAGE_CHARS = 4000;          // [limits] max_message_chars default
const TYPING_SEND_EVERY_MS = 2000;       // how often we tell others we type
const TYPING_SHOW_MS = 4000;             // how long "NAME is typing…" stays
const BACKOFF_FIRST_MS = 500;
const BACKOFF_MAX_MS = 10000;
const RATE_LIMIT_RETRY_MS = 3000;
const NOTICE_HIDE_MS = 6000;
const ROOMS_REFRESH_MS = 30000;          // no event announces new rooms, so poll the list
const LOAD_OLDER_WHEN_PX = 40;           // distance from the top that loads the previous page
const PAGE_SIZE = pageSizeFromUrl();     // history page size, ?pageSize=N (1–500) for tests

const $ = (id) => document.getElementById(id);

// ---------------------------------------------------------------- state

const session = {
  token: sessionStorage.getItem(STORE.token),
  username: sessionStorage.getItem(STORE.username),
};

let rooms = [];           // last GET /api/rooms answer
let room = null;          // the open room, see newRoomState()
let openSeq = 0;          // bumps on every openRoom, so stale answers are dropped
let outbox = loadOutbox(); // [{clientMsgId, roomId, message}] not yet acknowledged

// The WebSocket connection and its retry state.
const conn = {
  ws: null,
  open: false,            // socket open and its token accepted (`authenticated`)
  stopped: true,          // true while logged out: no reconnecting
  attempt: 0,             // failed attempts in a row, drives the backoff
  retryTimer: null,
  unauthorized: false,    // server said the token is bad: do not retry
  inflight: [],           // clientMsgIds sent on this connection, in send order
  lastTypingSent: 0,
};

function newRoomState(roomId) {
  return {
    roomId,
    roomName: roomNameOf(roomId),
    joined: false,        // the server answered `joined` on the current connection
    loaded: false,        // the latest page of history is on screen
    loading: false,
    hasMore: false,       // older history exists beyond what is shown
    loadingOlder: false,
    lastSeenId: null,     // largest message id shown: the `since` of a rejoin
    messageEls: new Map(), // message id -> element, the dedupe table
    pendingEls: new Map(), // clientMsgId -> element of a message not yet acknowledged
    typers: new Map(),    // username -> timer that clears "is typing"
  };
}

// ---------------------------------------------------------------- small helpers

function pageSizeFromUrl() {
  const n = Number(new URLSearchParams(location.search).get('pageSize'));
  return Number.isInteger(n) && n >= 1 && n <= 500 ? n : 50;
}

// Random id for clientMsgId. crypto.randomUUID exists only in secure
// contexts, and chatd may well be served over plain http on a LAN.
function newClientMsgId() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return 'c-' + Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function roomNameOf(roomId) {
  const found = rooms.find((r) => r.roomId === roomId);
  return found ? found.roomName : roomId;
}

function formatTime(timestamp) {
  const date = new Date(timestamp);
  if (Number.isNaN(date.getTime())) return '';
  const sameDay = date.toDateString() === new Date().toDateString();
  const time = date.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  return sameDay ? time : `${date.toLocaleDateString()} ${time}`;
}

// ---------------------------------------------------------------- notices

let noticeTimer = null;

// Show a readable message in the banner. Errors stay until dismissed or
// replaced; informational notices fade on their own.
function showNotice(text, kind = 'error') {
  const banner = $('error');
  $('error-text').textContent = text;
  banner.className = `banner banner-${kind}`;
  banner.hidden = false;
  clearTimeout(noticeTimer);
  if (kind === 'info') noticeTimer = setTimeout(hideNotice, NOTICE_HIDE_MS);
}

function hideNotice() {
  $('error').hidden = true;
}

// Report a failed API call. A 401 has already sent the user to the login
// view with its own notice, so it is not reported twice.
function reportError(err) {
  if (err instanceof ApiError && err.status === 401 && !err.isLogin) return;
  showNotice(err.message || String(err));
  if (!(err instanceof ApiError)) console.error(err);
}

// ---------------------------------------------------------------- HTTP API

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

// One HTTP call to /api/*. Returns the parsed JSON body, or throws an
// ApiError carrying the server's error code and human message.
async function api(method, path, body) {
  const headers = {};
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (session.token) headers.Authorization = `Bearer ${session.token}`;
  let res;
  try {
    res = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch {
    throw new ApiError(0, 'network', 'Cannot reach the chat server. Check the connection and try again.');
  }
  const data = await readJson(res);
  if (res.ok) return data;
  throw apiErrorFrom(res, data, path);
}

async function readJson(res) {
  const text = await res.text();
  if (!text) return null;
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}

function apiErrorFrom(res, data, path) {
  const code = (data && data.error) || `http_${res.status}`;
  let message = (data && data.message) || `The server answered ${res.status} ${res.statusText}.`;
  const retryAfter = res.headers.get('Retry-After');
  if (res.status === 429 && retryAfter) message += ` Try again in ${retryAfter} s.`;
  const err = new ApiError(res.status, code, message);
  // A 401 on login or register means bad credentials, not a dead session.
  err.isLogin = path === '/api/login' || path === '/api/register';
  if (res.status === 401 && !err.isLogin) sessionEnded('Your session has ended. Please log in again.');
  return err;
}

function historyPath(roomId, before) {
  const params = new URLSearchParams({ limit: String(PAGE_SIZE) });
  if (before !== undefined && before !== null) params.set('before', String(before));
  return `/api/chat-history/${encodeURIComponent(roomId)}?${params}`;
}

// ---------------------------------------------------------------- login and session

const USERNAME_RE = /^[A-Za-z0-9_.-]{3,32}$/;

function readCredentials() {
  const username = $('username').value.trim();
  const password = $('password').value;
  if (!username || !password) {
    showNotice('Enter a username and a password.');
    return null;
  }
  return { username, password };
}

async function onLogin(event) {
  event.preventDefault();
  const creds = readCredentials();
  if (!creds) return;
  await withBusy([$('login-button'), $('register-button')], async () => {
    const data = await api('POST', '/api/login', creds);
    await startSession(data.token, data.username || creds.username);
  });
}

async function onRegister() {
  const creds = readCredentials();
  if (!creds) return;
  // Check locally first so the user learns the rules without a round trip.
  if (!USERNAME_RE.test(creds.username)) {
    showNotice('A username is 3 to 32 letters, digits, "_", "." or "-".');
    return;
  }
  if (creds.password.length < 8) {
    showNotice('A password needs at least 8 characters.');
    return;
  }
  await withBusy([$('login-button'), $('register-button')], async () => {
    await api('POST', '/api/register', creds);
    const data = await api('POST', '/api/login', creds);
    await startSession(data.token, data.username || creds.username);
  });
}

// Disable buttons while an action runs, and report what went wrong.
async function withBusy(buttons, action) {
  buttons.forEach((b) => { b.disabled = true; });
  try {
    await action();
  } catch (err) {
    reportError(err);
  } finally {
    buttons.forEach((b) => { b.disabled = false; });
  }
}

async function startSession(token, username) {
  session.token = token;
  session.username = await canonicalUsername(username);
  sessionStorage.setItem(STORE.token, token);
  sessionStorage.setItem(STORE.username, session.username);
  $('password').value = '';
  hideNotice();
  showChatView();
  conn.stopped = false;
  conn.unauthorized = false;
  connect();
  await refreshRooms().catch(reportError);
  const lastRoom = sessionStorage.getItem(STORE.room);
  if (lastRoom && rooms.some((r) => r.roomId === lastRoom)) openRoom(lastRoom);
}

// Names are unique case-insensitively, so "Alice" may log in as "alice":
// ask the server how it spells us, since own messages are told by sender.
async function canonicalUsername(typed) {
  try {
    const me = await api('GET', '/api/me');
    return (me && me.username) || typed;
  } catch (err) {
    if (err.status === 401) throw err;
    return typed;
  }
}

// On page load: resume the tab's session if it still has a token. If the
// server is unreachable the session is kept and the socket keeps retrying.
async function resumeSession() {
  if (!session.token) {
    showLoginView();
    return;
  }
  try {
    await startSession(session.token, session.username || '');
  } catch (err) {
    reportError(err); // a 401 has already brought back the login view
  }
}

async function onLogout() {
  try {
    await api('POST', '/api/logout');
  } catch {
    // The token is dropped locally whatever the server says.
  }
  endSession();
  showNotice('You are logged out.', 'info');
}

// The server no longer accepts our token (expired, revoked, user disabled).
function sessionEnded(reason) {
  if (!session.token) return;
  const unsent = outbox.length;
  endSession();
  showNotice(unsent ? `${reason} ${unsent} unsent message(s) were discarded.` : reason);
}

function endSession() {
  conn.stopped = true;
  closeSocket();
  closeRoomView();
  session.token = null;
  session.username = null;
  outbox = [];
  rooms = [];
  for (const key of Object.values(STORE)) sessionStorage.removeItem(key);
  renderRooms();
  updateStatus();
  showLoginView();
}

function showLoginView() {
  $('chat-view').hidden = true;
  $('login-view').hidden = false;
  $('logout-button').hidden = true;
  $('current-user').textContent = '';
  $('username').focus();
}

function showChatView() {
  $('login-view').hidden = true;
  $('chat-view').hidden = false;
  $('logout-button').hidden = false;
  $('current-user').textContent = session.username;
}

// ---------------------------------------------------------------- rooms

async function refreshRooms() {
  const list = await api('GET', '/api/rooms');
  rooms = Array.isArray(list) ? list : [];
  renderRooms();
}

function renderRooms() {
  const items = rooms.map((r) => {
    const li = el('li');
    const button = el('button', 'room-button', r.roomName);
    button.type = 'button';
    button.dataset.roomId = r.roomId;
    button.title = r.roomName;
    if (room && room.roomId === r.roomId) button.setAttribute('aria-current', 'true');
    li.append(button);
    return li;
  });
  $('room-list').replaceChildren(...items);
}

function onRoomListClick(event) {
  const target = event.target.closest('[data-room-id]');
  if (target) openRoom(target.dataset.roomId);
}

async function onCreateRoom(event) {
  event.preventDefault();
  const name = $('new-room-name').value.trim();
  if (!name || name.length > 64) {
    showNotice('A room name is 1 to 64 characters.');
    return;
  }
  await withBusy([$('create-room-button')], async () => {
    const data = await api('POST', '/api/create-room', { roomName: name });
    $('new-room-name').value = '';
    await refreshRooms();
    await openRoom(data.roomId);
  });
}

async function onLeaveRoom() {
  if (!room) return;
  const { roomId, roomName } = room;
  await withBusy([$('leave-room-button')], async () => {
    await api('POST', '/api/leave-room', { roomId });
    sendFrame({ action: 'leave', roomId });
    dropOutboxFor(roomId);
    closeRoomView();
    showNotice(`You left ${roomName}.`, 'info');
  });
}

// Open a room: become a member, show its latest page and its members, then
// join it on the socket with `since` so nothing posted meanwhile is missed.
async function openRoom(roomId) {
  const seq = ++openSeq;
  if (room && room.roomId !== roomId && room.joined) sendFrame({ action: 'leave', roomId: room.roomId });
  room = newRoomState(roomId);
  room.loading = true;
  showRoomView();
  try {
    await api('POST', '/api/join-room', { roomId });
    const [page, members] = await Promise.all([
      api('GET', historyPath(roomId)),
      api('GET', `/api/rooms/${encodeURIComponent(roomId)}/members`),
    ]);
    if (seq !== openSeq) return;
    renderMembers(members);
    page.messages.forEach((m) => acceptMessage(m));
    room.hasMore = pageHasMore(page);
    room.loaded = true;
    renderHistoryEdge();
    renderOutboxFor(roomId);
    scrollToBottom();
    sessionStorage.setItem(STORE.room, roomId);
    joinOnSocket();
    fillViewport();
  } catch (err) {
    if (seq !== openSeq) return;
    reportError(err);
    if (err.status === 403 || err.status === 404) closeRoomView();
  } finally {
    if (seq === openSeq && room) room.loading = false;
  }
}

function pageHasMore(page) {
  if (typeof page.hasMore === 'boolean') return page.hasMore;
  return page.messages.length >= PAGE_SIZE;
}

function showRoomView() {
  $('room-title').textContent = room.roomName;
  $('messages').replaceChildren(historyEdgeElement());
  $('members').replaceChildren();
  $('typing').textContent = '';
  $('leave-room-button').hidden = false;
  $('message-input').disabled = false;
  $('send-button').disabled = false;
  renderRooms();
  updateStatus();
}

function closeRoomView() {
  openSeq++;
  if (room) room.typers.forEach((timer) => clearTimeout(timer));
  room = null;
  sessionStorage.removeItem(STORE.room);
  $('room-title').textContent = 'No room open';
  $('messages').replaceChildren();
  $('members').replaceChildren();
  $('typing').textContent = '';
  $('leave-room-button').hidden = true;
  $('message-input').disabled = true;
  $('send-button').disabled = true;
  renderRooms();
  updateStatus();
}

function onRoomDeleted(roomId) {
  const name = roomNameOf(roomId);
  rooms = rooms.filter((r) => r.roomId !== roomId);
  dropOutboxFor(roomId);
  if (room && room.roomId === roomId) closeRoomView();
  renderRooms();
  showNotice(`The room ${name} was deleted.`);
}

// ---------------------------------------------------------------- messages

function messageElement(msg) {
  const node = el('div', 'message');
  const meta = el('div', 'meta');
  meta.append(el('span', 'sender', msg.sender ?? '(deleted user)'), ' ', el('time', 'time'));
  node.append(meta, el('div', 'text', msg.message));
  if (msg.sender === session.username) node.classList.add('own');
  return node;
}

// Fill in what only the stored message knows: its id and its time.
function markStored(node, msg) {
  node.classList.remove('pending', 'failed');
  node.dataset.messageId = String(msg.id);
  const time = node.querySelector('time');
  time.dateTime = msg.timestamp;
  time.textContent = formatTime(msg.timestamp);
  time.title = new Date(msg.timestamp).toLocaleString();
  node.querySelector('.note')?.remove();
}

// Put a stored message on screen once. Used for history pages, live
// messages and replays alike: the id decides whether it is new, and a
// clientMsgId of ours turns the pending element into the stored one.
function acceptMessage(msg) {
  if (msg.clientMsgId) removeFromOutbox(msg.clientMsgId);
  const pending = msg.clientMsgId ? room.pendingEls.get(msg.clientMsgId) : null;
  if (pending) room.pendingEls.delete(msg.clientMsgId);
  if (room.lastSeenId === null || msg.id > room.lastSeenId) room.lastSeenId = msg.id;

  if (room.messageEls.has(msg.id)) {
    pending?.remove(); // already shown (say by a replay): the pending copy goes
    return false;
  }
  const node = pending || messageElement(msg);
  markStored(node, msg);
  room.messageEls.set(msg.id, node);
  insertById(node, msg.id);
  return true;
}

// Insert a stored message in id order. Pending messages stay below every
// stored one. Walks back from the end, where new messages almost always go.
function insertById(node, id) {
  const box = $('messages');
  let anchor = null;
  for (let n = box.lastElementChild; n; n = n.previousElementSibling) {
    if (n === node) continue;
    const later = n.classList.contains('pending') || n.classList.contains('failed')
      || (n.dataset.messageId !== undefined && Number(n.dataset.messageId) > id);
    if (!later) break;
    anchor = n;
  }
  box.insertBefore(node, anchor);
}

function onNewMessage(msg) {
  if (!room || msg.roomId !== room.roomId || !room.loaded) return;
  const box = $('messages');
  const nearBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 80;
  const added = acceptMessage(msg);
  if (added && room.messageEls.size === 1) renderHistoryEdge(); // no longer "No messages yet"
  clearTyping(msg.sender);
  if (added && (nearBottom || msg.sender === session.username)) scrollToBottom();
}

function scrollToBottom() {
  const box = $('messages');
  box.scrollTop = box.scrollHeight;
}

// ---------------------------------------------------------------- older history

function historyEdgeElement() {
  const edge = el('div', 'history-edge', '');
  edge.id = 'history-edge';
  return edge;
}

function renderHistoryEdge() {
  const edge = $('history-edge');
  if (!edge || !room) return;
  if (room.loadingOlder) edge.textContent = 'Loading older messages…';
  else if (room.hasMore) edge.textContent = 'Scroll up for older messages';
  else edge.textContent = room.messageEls.size ? 'This is the beginning of the room.' : 'No messages yet. Say hello!';
}

function oldestShownId() {
  let oldest = null;
  for (const id of room.messageEls.keys()) if (oldest === null || id < oldest) oldest = id;
  return oldest;
}

function onMessagesScroll() {
  if ($('messages').scrollTop <= LOAD_OLDER_WHEN_PX) loadOlder();
}

// Load the page before the oldest message shown, keeping what the user
// looks at in place (the new content grows above it).
async function loadOlder() {
  const current = room;
  if (!current || !current.loaded || current.loadingOlder || !current.hasMore) return;
  const oldest = oldestShownId();
  if (oldest === null) return;
  current.loadingOlder = true;
  renderHistoryEdge();
  try {
    const page = await api('GET', historyPath(current.roomId, oldest));
    if (current !== room) return;
    prependOlder(page.messages);
    current.hasMore = pageHasMore(page);
  } catch (err) {
    reportError(err);
  } finally {
    current.loadingOlder = false;
    if (current === room) renderHistoryEdge();
  }
  if (current === room) fillViewport();
}

function prependOlder(messages) {
  const box = $('messages');
  const heightBefore = box.scrollHeight;
  const fragment = document.createDocumentFragment();
  for (const msg of messages) {
    if (room.messageEls.has(msg.id)) continue;
    const node = messageElement(msg);
    markStored(node, msg);
    room.messageEls.set(msg.id, node);
    fragment.append(node);
  }
  $('history-edge').after(fragment);
  box.scrollTop += box.scrollHeight - heightBefore;
}

// If the first page does not fill the list there is no scrollbar to pull
// up, so fetch older pages until there is one or history runs out.
function fillViewport() {
  const box = $('messages');
  if (room && room.hasMore && box.scrollHeight <= box.clientHeight) loadOlder();
}

// ---------------------------------------------------------------- outbox and sending

function loadOutbox() {
  try {
    const saved = JSON.parse(sessionStorage.getItem(STORE.outbox) || '[]');
    return Array.isArray(saved) ? saved : [];
  } catch {
    return [];
  }
}

function saveOutbox() {
  sessionStorage.setItem(STORE.outbox, JSON.stringify(outbox));
}

function removeFromOutbox(clientMsgId) {
  const before = outbox.length;
  outbox = outbox.filter((m) => m.clientMsgId !== clientMsgId);
  if (outbox.length !== before) saveOutbox();
  conn.inflight = conn.inflight.filter((id) => id !== clientMsgId);
}

function dropOutboxFor(roomId) {
  outbox = outbox.filter((m) => m.roomId !== roomId);
  saveOutbox();
}

function pendingElement(entry) {
  const node = messageElement({ sender: session.username, message: entry.message });
  node.classList.add('pending');
  const time = node.querySelector('time');
  time.textContent = 'sending…';
  return node;
}

// After a (re)load of the room, show what still waits in the outbox.
function renderOutboxFor(roomId) {
  for (const entry of outbox) {
    if (entry.roomId !== roomId || room.pendingEls.has(entry.clientMsgId)) continue;
    const node = pendingElement(entry);
    room.pendingEls.set(entry.clientMsgId, node);
    $('messages').append(node);
  }
}

function onComposerSubmit(event) {
  event.preventDefault();
  const input = $('message-input');
  const text = input.value;
  if (!room || !text.trim()) return;
  if (text.length > MAX_MESSAGE_CHARS) {
    showNotice(`A message is at most ${MAX_MESSAGE_CHARS} characters; this one has ${text.length}.`);
    return;
  }
  const entry = { clientMsgId: newClientMsgId(), roomId: room.roomId, message: text };
  outbox.push(entry);
  saveOutbox();
  renderOutboxFor(room.roomId);
  input.value = '';
  scrollToBottom();
  flushOutbox();
}

// Send every outbox message of the open room not yet sent on this
// connection (messages of other rooms wait until that room is open again). Resending after a reconnect is safe: the server stores a
// clientMsgId once and answers a retry with the original new-message.
function flushOutbox() {
  if (!room || !room.joined || !conn.open) return;
  for (const entry of outbox) {
    if (entry.roomId !== room.roomId || conn.inflight.includes(entry.clientMsgId)) continue;
    if (sendFrame({ action: 'send-message', roomId: entry.roomId, message: entry.message, clientMsgId: entry.clientMsgId })) {
      conn.inflight.push(entry.clientMsgId);
    }
  }
}

// The server refused a message for good (too long, empty, not allowed):
// frames are answered in order, so it is the oldest one still in flight.
function failOldestInflight(reason) {
  const clientMsgId = conn.inflight.shift();
  if (!clientMsgId) return;
  outbox = outbox.filter((m) => m.clientMsgId !== clientMsgId);
  saveOutbox();
  const node = room?.pendingEls.get(clientMsgId);
  if (!node) return;
  room.pendingEls.delete(clientMsgId);
  node.classList.replace('pending', 'failed');
  node.querySelector('time').textContent = 'not sent';
  node.append(el('div', 'note', reason));
}

function onComposerKeydown(event) {
  // Enter sends, Shift+Enter inserts a newline; leave IME composition alone.
  if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    $('composer').requestSubmit();
  }
}

function onComposerInput() {
  const now = Date.now();
  if (!room || !room.joined || !$('message-input').value) return;
  if (now - conn.lastTypingSent < TYPING_SEND_EVERY_MS) return;
  conn.lastTypingSent = now;
  sendFrame({ action: 'typing', roomId: room.roomId });
}

// ---------------------------------------------------------------- members and typing

function memberElement(username, online) {
  const li = el('li', 'member', username);
  li.dataset.username = username;
  setMemberOnline(li, online);
  return li;
}

function setMemberOnline(li, online) {
  li.classList.toggle('online', online);
  li.title = online ? 'online' : 'offline';
}

function renderMembers(members) {
  const sorted = [...members].sort((a, b) => a.username.localeCompare(b.username));
  $('members').replaceChildren(...sorted.map((m) => memberElement(m.username, Boolean(m.online))));
}

function findMember(username) {
  // Compare in JS rather than build a CSS selector out of user text.
  return [...$('members').children].find((li) => li.dataset.username === username) || null;
}

function setOnline(username, online) {
  if (!room) return;
  const li = findMember(username);
  if (li) {
    setMemberOnline(li, online);
  } else if (online) {
    // Someone who just became a member: add them in order.
    const node = memberElement(username, true);
    const next = [...$('members').children].find((m) => m.dataset.username.localeCompare(username) > 0);
    $('members').insertBefore(node, next || null);
  }
}

// `joined.members` is who is online in the room right now.
function applyOnlineList(usernames) {
  const online = new Set(usernames);
  for (const li of $('members').children) setMemberOnline(li, online.has(li.dataset.username));
  for (const name of online) if (!findMember(name)) setOnline(name, true);
}

function showTyping(username) {
  if (!room || username === session.username) return;
  clearTimeout(room.typers.get(username));
  room.typers.set(username, setTimeout(() => clearTyping(username), TYPING_SHOW_MS));
  renderTyping();
}

function clearTyping(username) {
  if (!room || !room.typers.has(username)) return;
  clearTimeout(room.typers.get(username));
  room.typers.delete(username);
  renderTyping();
}

function renderTyping() {
  const names = room ? [...room.typers.keys()] : [];
  let text = '';
  if (names.length === 1) text = `${names[0]} is typing…`;
  else if (names.length > 1) text = `${names.join(', ')} are typing…`;
  $('typing').textContent = text;
}

// ---------------------------------------------------------------- WebSocket

// No token in the URL: proxies and servers log URLs. The token goes in the
// first frame instead (browsers cannot set an Authorization header).
function socketUrl() {
  const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
  return `${scheme}//${location.host}/chat`;
}

function connect() {
  clearTimeout(conn.retryTimer);
  conn.retryTimer = null;
  if (conn.stopped || !session.token || conn.ws) return;
  const ws = new WebSocket(socketUrl());
  conn.ws = ws;
  conn.open = false;
  conn.inflight = [];
  ws.addEventListener('open', () => {
    if (ws === conn.ws) ws.send(JSON.stringify({ action: 'auth', token: session.token }));
  });
  ws.addEventListener('message', (event) => { if (ws === conn.ws) onSocketFrame(event.data); });
  ws.addEventListener('close', (event) => { if (ws === conn.ws) onSocketClose(event); });
  updateStatus();
}

function closeSocket() {
  clearTimeout(conn.retryTimer);
  conn.retryTimer = null;
  const ws = conn.ws;
  conn.ws = null;
  conn.open = false;
  conn.inflight = [];
  if (room) room.joined = false;
  if (ws) ws.close(1000, 'bye');
}

// The socket counts as open once the server has accepted the token: joins
// and messages sent before that would only be refused.
function onAuthenticated() {
  if (conn.open) return;
  conn.open = true;
  if (!room) conn.attempt = 0; // with a room open, `joined` resets the backoff
  updateStatus();
  if (room && room.loaded) joinOnSocket();
  else if (room && !room.loading) openRoom(room.roomId); // its first load failed: try again now
  // The room list may have changed while we were away.
  refreshRooms().catch(() => {});
}

function joinOnSocket() {
  if (!room || !conn.open) return;
  room.joined = false;
  room.joinedWithoutSince = room.lastSeenId === null;
  const frame = { action: 'join', roomId: room.roomId };
  if (room.lastSeenId !== null) frame.since = room.lastSeenId;
  sendFrame(frame);
  updateStatus();
}

function onSocketClose(event) {
  conn.ws = null;
  conn.open = false;
  conn.inflight = [];
  if (room) {
    room.joined = false;
    room.typers.forEach((timer) => clearTimeout(timer));
    room.typers.clear();
    renderTyping();
  }
  if (conn.stopped || conn.unauthorized) {
    updateStatus();
    return;
  }
  if (event.code === 1009) showNotice('The server closed the connection: a message was too large.');
  scheduleReconnect();
}

// Exponential backoff with jitter, so a restarted server is not hit by
// every client in the same instant.
function scheduleReconnect() {
  const base = Math.min(BACKOFF_MAX_MS, BACKOFF_FIRST_MS * 2 ** conn.attempt);
  const delay = Math.round(base * (0.8 + Math.random() * 0.4));
  conn.attempt += 1;
  conn.retryTimer = setTimeout(connect, delay);
  updateStatus(`retrying in ${Math.ceil(delay / 1000)} s`);
}

// The browser says the network is back: try now rather than wait.
function onBrowserOnline() {
  if (conn.stopped || conn.ws) return;
  conn.attempt = 0;
  connect();
}

function sendFrame(frame) {
  if (!conn.ws || !conn.open) return false;
  conn.ws.send(JSON.stringify(frame));
  return true;
}

function onSocketFrame(data) {
  let event;
  try {
    event = JSON.parse(data);
  } catch {
    console.warn('chatd: ignoring a frame that is not JSON');
    return;
  }
  const handler = SOCKET_HANDLERS[event.action];
  if (handler) handler(event);
}

const SOCKET_HANDLERS = {
  'authenticated': onAuthenticated,
  'joined': onJoined,
  'new-message': onNewMessage,
  'user-joined': (e) => { if (room && e.roomId === room.roomId) setOnline(e.username, true); },
  'user-left': (e) => {
    if (!room || e.roomId !== room.roomId) return;
    setOnline(e.username, false);
    clearTyping(e.username);
  },
  'user-typing': (e) => { if (room && e.roomId === room.roomId) showTyping(e.username); },
  'left': () => {},
  'room-deleted': (e) => onRoomDeleted(e.roomId),
  'error': onSocketError,
};

function onJoined(event) {
  if (!room || event.roomId !== room.roomId) return;
  room.joined = true;
  conn.attempt = 0;
  if (Array.isArray(event.members)) applyOnlineList(event.members);
  updateStatus();
  flushOutbox();
  // A join without `since` (the room looked empty) cannot replay what was
  // posted just before it, so read the latest page once more.
  if (room.joinedWithoutSince) catchUp(room);
}

async function catchUp(current) {
  try {
    const page = await api('GET', historyPath(current.roomId));
    if (current !== room) return;
    page.messages.forEach((m) => onNewMessage({ ...m, roomId: current.roomId }));
  } catch (err) {
    reportError(err);
  }
}

function onSocketError(event) {
  const code = event.code;
  const text = event.message || `The server reported an error (${code}).`;
  if (code === 'unauthorized') {
    conn.unauthorized = true;
    sessionEnded('Your session has ended. Please log in again.');
  } else if (event.ref === 'send-message' && code === 'rate_limited') {
    // Not stored: keep it in the outbox and send it again a little later.
    conn.inflight.shift();
    showNotice('You are sending messages too fast; they will be sent in a moment.', 'info');
    setTimeout(flushOutbox, RATE_LIMIT_RETRY_MS);
  } else if (event.ref === 'typing') {
    // A lost typing hint is harmless; do not bother the user with it.
  } else if (code === 'not_joined') {
    conn.inflight = [];
    joinOnSocket(); // `joined` flushes the outbox again
  } else if (event.ref === 'send-message') {
    failOldestInflight(text);
    showNotice(`Message not sent: ${text}`);
  } else if (event.ref === 'join' && (code === 'not_found' || code === 'forbidden')) {
    closeRoomView();
    showNotice(text);
  } else {
    showNotice(text);
  }
}

// ---------------------------------------------------------------- connection status

// online: socket open and the open room joined; reconnecting: trying to get
// there; offline: not trying (logged out).
function updateStatus(detail) {
  let status;
  if (conn.stopped) status = 'offline';
  else if (conn.open && (!room || room.joined)) status = 'online';
  else status = 'reconnecting';
  const node = $('connection-status');
  node.textContent = status;
  node.className = `status status-${status}`;
  node.title = status === 'reconnecting' && detail ? detail : '';
}

// ---------------------------------------------------------------- wiring

function wire() {
  $('login-form').addEventListener('submit', onLogin);
  $('register-button').addEventListener('click', onRegister);
  $('logout-button').addEventListener('click', onLogout);
  $('error-dismiss').addEventListener('click', hideNotice);
  $('room-list').addEventListener('click', onRoomListClick);
  $('refresh-rooms-button').addEventListener('click', () => refreshRooms().catch(reportError));
  $('create-room-form').addEventListener('submit', onCreateRoom);
  $('leave-room-button').addEventListener('click', onLeaveRoom);
  $('messages').addEventListener('scroll', onMessagesScroll, { passive: true });
  $('composer').addEventListener('submit', onComposerSubmit);
  $('message-input').addEventListener('keydown', onComposerKeydown);
  $('message-input').addEventListener('input', onComposerInput);
  window.addEventListener('online', onBrowserOnline);
  setInterval(refreshRoomsQuietly, ROOMS_REFRESH_MS);
}

// Background refresh: only while connected, and failures stay silent (the
// connection status already tells the user when the server is away).
function refreshRoomsQuietly() {
  if (conn.open && !conn.stopped) refreshRooms().catch(() => {});
}

wire();
resumeSession();
