// The chat itself: rooms, messages and presence over the one socket.
//
// Every room the user belongs to is joined on the page's single WebSocket
// as soon as it is authenticated, so messages of rooms not on screen still
// arrive (they feed the unread counts and mention notifications). A
// message typed by the user stays in the outbox until the server's
// new-message with its clientMsgId comes back; the outbox survives
// reconnects and reloads, and a resend cannot duplicate (the server stores
// a clientMsgId once).

import { api, historyPath, membersPath } from './api.js';
import { $ } from './dom.js';
import { notifyMessage } from './notify.js';
import { session } from './session.js';
import { ChatSocket } from './socket.js';
import * as S from './state.js';
import { state } from './state.js';
import { enableComposer, fitComposer, renderReplyPreview, renderTyping } from './views/composer.js';
import { renderMembers } from './views/members.js';
import { renderRoomHead } from './views/roomhead.js';
import * as messages from './views/messages.js';
import { closePanels } from './views/panels.js';
import { renderRooms } from './views/rooms.js';
import { clearNetworkNotice, renderStatus, reportError, showNotice } from './views/status.js';

const MAX_MESSAGE_CHARS = 4000;     // [limits] max_message_chars default
const TYPING_SEND_EVERY_MS = 2000;  // the server drops more frequent ones anyway
const TYPING_SHOW_MS = 4000;
const RATE_LIMIT_RETRY_MS = 3000;
const ROOMS_REFRESH_MS = 30000;     // no event announces other people's new public rooms
const COUNTS_REFRESH_MS = 300;      // gathers the recounts of a burst of changes
const LOAD_OLDER_WHEN_PX = 40;
const JUMP_PAGE = 200;              // history page size while looking for a message
const JUMP_MAX_PAGES = 50;

let inflight = [];      // clientMsgIds sent on this socket, in send order
let pendingJoins = [];  // roomIds of joins not yet answered, in send order
let lastTypingSent = 0;
let restoreLastRoom = false;
let sessionDead = () => {};
let countsTimer = null;

export const socket = new ChatSocket(() => session.token, {
  onReady: onSocketReady,
  onFrame: onSocketFrame,
  onDown: onSocketDown,
  onChange: updateStatus,
});

// ---------------------------------------------------------------- start and stop

// `me` is GET /api/me, or null when the server could not be reached yet
// (the rooms then load once the socket gets through).
export async function startChat(username, me, onSessionDead) {
  state.username = username;
  sessionDead = onSessionDead;
  restoreLastRoom = true;
  socket.start();
  if (me) await refreshRooms(me).catch(reportError);
}

export function stopChat() {
  socket.stop();
  S.resetState();
  inflight = [];
  pendingJoins = [];
  closeRoomView();
  renderRooms();
  updateStatus();
}

// ---------------------------------------------------------------- room list

export async function refreshRooms(me) {
  const [list, mine] = await Promise.all([api('GET', '/api/rooms'), me || api('GET', '/api/me')]);
  const fresh = S.syncRooms(Array.isArray(list) ? list : [], (mine && mine.rooms) || []);
  fresh.forEach(joinOnSocket);
  renderRooms();
  if (restoreLastRoom) {
    restoreLastRoom = false;
    const last = S.lastOpenRoomId();
    if (last && S.roomById(last) && !state.openRoomId) openRoom(last);
  }
}

// The background refresh: only while connected and looked at, and quiet
// (the connection status already says when the server is away).
function refreshRoomsQuietly() {
  if (socket.ready && !document.hidden) refreshRooms().catch(() => {});
}

export function startRoomRefresh() {
  setInterval(refreshRoomsQuietly, ROOMS_REFRESH_MS);
}

// The server's unread counts once more, soon: after a change whose effect
// on them only it knows (a deletion, a marker short of the end).
function recountSoon() {
  clearTimeout(countsTimer);
  countsTimer = setTimeout(() => refreshRooms().catch(() => {}), COUNTS_REFRESH_MS);
}

export async function createRoom(name, isPrivate) {
  const body = { roomName: name };
  if (isPrivate) body.kind = 'private';
  const data = await api('POST', '/api/create-room', body);
  const room = S.addRoom(data.roomId, name, true);
  S.applyListItem(room, { kind: data.kind || body.kind || 'public', role: 'owner' });
  renderRooms();
  joinOnSocket(room);
  await openRoom(data.roomId);
}

// The direct room with `username`, made on first use (POST /api/direct).
export async function openDirect(username) {
  const data = await api('POST', '/api/direct', { username });
  const room = S.addRoom(data.roomId, username, true);
  S.applyListItem(room, { kind: 'direct', peer: username });
  renderRooms();
  joinOnSocket(room);
  await openRoom(data.roomId);
}

export async function saveTopic(room, topic) {
  const item = await api('PATCH', `/api/rooms/${encodeURIComponent(room.roomId)}`, { topic });
  if (item && typeof item.topic === 'string') room.topic = item.topic;
  if (room.roomId === state.openRoomId) renderRoomHead(room);
}

export async function removeMember(room, username, ban) {
  const id = encodeURIComponent(room.roomId);
  if (ban) await api('POST', `/api/rooms/${id}/bans`, { username });
  else await api('DELETE', `/api/rooms/${id}/members/${encodeURIComponent(username)}`);
  S.applyMemberEvent(room, { action: 'member-removed', username });
  if (room.roomId === state.openRoomId) renderMembers(room);
}

export async function searchMessages(q) {
  const data = await api('GET', `/api/search?${new URLSearchParams({ q, limit: '30' })}`);
  return (data && data.results) || [];
}

// ---------------------------------------------------------------- opening a room

// Opens a room at its latest messages, or at message `atId` when given
// (a search result, a reply's original), loading history back to it.
export async function openRoom(roomId, atId) {
  const room = S.roomById(roomId);
  if (!room) return;
  closePanels(false);
  if (state.openRoomId !== roomId) showRoomView(room);
  try {
    if (!room.member) {
      await api('POST', '/api/join-room', { roomId });
      room.member = true;
      renderRooms();
      joinOnSocket(room);
    }
    const [members] = await Promise.all([api('GET', membersPath(roomId)), loadFirstPage(room)]);
    S.setMembers(room, members);
    if (state.openRoomId !== roomId) return;
    renderMembers(room);
    renderRoomHead(room);
    messages.showRoom(room);
    markOpenRoomRead();
    if (atId !== undefined) await jumpTo(room, atId);
    else fillViewport(room);
  } catch (err) {
    reportError(err);
    if ((err.status === 403 || err.status === 404) && state.openRoomId === roomId) closeRoomView();
  }
}

// Read older pages until message `id` is among them, then show it.
export async function jumpTo(room, id) {
  for (let i = 0; i < JUMP_MAX_PAGES && !room.messages.has(id) && room.hasMore; i += 1) {
    const oldest = S.oldestId(room);
    if (oldest !== null && oldest < id) break; // inside what is loaded: it is gone
    await loadOlder(room, JUMP_PAGE);
    if (S.oldestId(room) === oldest) break;    // the page did not come
  }
  if (room.roomId !== state.openRoomId) return;
  if (!messages.highlight(id)) showNotice('That message is no longer in the room.', 'info');
}

function showRoomView(room) {
  S.setOpenRoom(room.roomId);
  renderRoomHead(room);
  $('leave-room-button').hidden = false;
  $('members-toggle').hidden = false;
  enableComposer(true);
  renderRooms();
  renderMembers(room);
  renderTyping(room);
  messages.showRoom(room);
  updateStatus();
}

export function closeRoomView() {
  S.setOpenRoom(null);
  renderRoomHead(null);
  $('leave-room-button').hidden = true;
  $('members-toggle').hidden = true;
  enableComposer(false);
  messages.clearMessages();
  renderMembers(null);
  renderTyping(null);
  renderRooms();
  updateStatus();
}

async function loadFirstPage(room) {
  if (room.loaded || room.loading) return;
  room.loading = true;
  try {
    S.storeFirstPage(room, await api('GET', historyPath(room.roomId)));
  } finally {
    room.loading = false;
  }
}

export async function leaveOpenRoom() {
  const room = S.openRoom();
  if (!room) return;
  await api('POST', '/api/leave-room', { roomId: room.roomId });
  socket.send({ action: 'leave', roomId: room.roomId });
  S.forgetMembership(room);
  closeRoomView();
  showNotice(`You left ${room.roomName}.`, 'info');
}

// ---------------------------------------------------------------- older history

export function onMessagesScroll() {
  const room = S.openRoom();
  if (!room) return;
  if ($('messages').scrollTop <= LOAD_OLDER_WHEN_PX) loadOlder(room);
  if (messages.isNearBottom()) messages.hideNewMessagesIndicator();
}

// The page before the oldest message shown, grown above what the user
// reads. A call while one is on its way waits for that one.
function loadOlder(room, limit) {
  if (!room.olderPromise) {
    room.olderPromise = readOlder(room, limit).finally(() => {
      room.olderPromise = null;
      if (room.roomId === state.openRoomId) fillViewport(room);
    });
  }
  return room.olderPromise;
}

async function readOlder(room, limit) {
  const oldest = S.oldestId(room);
  if (!room.loaded || !room.hasMore || oldest === null) return;
  room.loadingOlder = true;
  messages.renderHistoryEdge(room);
  try {
    const page = await api('GET', historyPath(room.roomId, oldest, limit));
    page.messages.forEach((m) => S.storeMessage(room, m));
    room.hasMore = S.pageHasMore(page);
    if (room.roomId === state.openRoomId) messages.prependOlder(page.messages);
  } catch (err) {
    reportError(err);
  } finally {
    room.loadingOlder = false;
    if (room.roomId === state.openRoomId) messages.renderHistoryEdge(room);
  }
}

// Without a scrollbar there is nothing to pull up: fetch older pages until
// there is one or history runs out.
function fillViewport(room) {
  const box = $('messages');
  if (room.hasMore && box.scrollHeight <= box.clientHeight) loadOlder(room);
}

// ---------------------------------------------------------------- sending

export function onComposerSubmit(event) {
  event.preventDefault();
  const room = S.openRoom();
  const input = $('message-input');
  const text = input.value;
  if (!room || !text.trim()) return;
  if (text.length > MAX_MESSAGE_CHARS) {
    showNotice(`A message is at most ${MAX_MESSAGE_CHARS} characters; this one has ${text.length}.`);
    return;
  }
  const replyTo = state.replying && state.replying.roomId === room.roomId ? state.replying.id : null;
  messages.showPending(S.queueMessage(room.roomId, text, replyTo));
  setReplying(null);
  input.value = '';
  fitComposer();
  flushOutbox(room);
}

// Send what the room's outbox holds and this socket has not sent yet.
function flushOutbox(room) {
  if (!room.joined || !socket.ready) return;
  for (const entry of S.outboxFor(room.roomId)) {
    if (inflight.includes(entry.clientMsgId)) continue;
    const frame = { action: 'send-message', roomId: entry.roomId, message: entry.message, clientMsgId: entry.clientMsgId };
    if (entry.replyTo) frame.replyTo = entry.replyTo;
    if (socket.send(frame)) inflight.push(entry.clientMsgId);
  }
}

function flushAllOutboxes() {
  S.memberRooms().forEach(flushOutbox);
}

// The server refused a message for good (too long, not allowed): frames
// are answered in order, so it is the oldest one still in flight.
function failOldestInflight(reason) {
  const clientMsgId = inflight.shift();
  if (!clientMsgId) return;
  S.removeFromOutbox(clientMsgId);
  messages.failPending(clientMsgId, reason);
}

export function onComposerInput() {
  fitComposer();
  const room = S.openRoom();
  const now = Date.now();
  if (!room || !room.joined || !$('message-input').value) return;
  if (now - lastTypingSent < TYPING_SEND_EVERY_MS) return;
  lastTypingSent = now;
  socket.send({ action: 'typing', roomId: room.roomId });
}

// ---------------------------------------------------------------- the socket

function joinOnSocket(room) {
  if (!room || !room.member || !socket.ready) return;
  room.joined = false;
  room.joinedWithoutSince = room.lastSeenId === null;
  const frame = { action: 'join', roomId: room.roomId };
  if (room.lastSeenId !== null) frame.since = room.lastSeenId;
  if (socket.send(frame)) pendingJoins.push(room.roomId);
}

function onSocketReady() {
  inflight = [];
  pendingJoins = [];
  clearNetworkNotice();
  S.memberRooms().forEach(joinOnSocket);
  refreshRooms().catch(() => {}); // also what changed while away
  const open = S.openRoom();
  if (open && !open.loaded && !open.loading) openRoom(open.roomId); // its first load failed
}

function onSocketDown(event) {
  inflight = [];
  pendingJoins = [];
  for (const room of state.rooms.values()) {
    room.joined = false;
    room.typers.forEach((timer) => clearTimeout(timer));
    room.typers.clear();
  }
  renderTyping(S.openRoom());
  if (event.code === 1009) showNotice('The server closed the connection: a message was too large.');
}

// online: socket authenticated and the open room joined; reconnecting:
// trying to get there; offline: not trying (logged out).
function updateStatus() {
  const open = S.openRoom();
  let status = 'reconnecting';
  if (socket.stopped || socket.refused) status = 'offline';
  else if (socket.ready && (!open || open.joined)) status = 'online';
  renderStatus(status, status === 'reconnecting' ? socket.retryDetail : '');
}

// ---------------------------------------------------------------- reading

// The open room is read up to what it shows, on the server too (which
// tells the user's other devices with read-marker).
export function markOpenRoomRead() {
  const room = S.openRoom();
  if (!room || !room.loaded || document.hidden) return;
  if (room.unread || room.mentioned) {
    S.markRead(room);
    renderRooms();
  }
  const upTo = S.readUpToToSend(room);
  if (upTo !== null) socket.send({ action: 'read', roomId: room.roomId, upTo });
}

// ---------------------------------------------------------------- replying

// The message the composer answers, shown above it as #reply-preview.
export function setReplying(target) {
  state.replying = target;
  renderReplyPreview(target && S.roomById(target.roomId)?.messages.get(target.id));
}

// One handler per server event.
const HANDLERS = {
  'joined': onJoined,
  'new-message': onNewMessage,
  'message-edited': onMessageEdited,
  'message-deleted': onMessageDeleted,
  'reaction-added': (e) => onReaction(e, true),
  'reaction-removed': (e) => onReaction(e, false),
  'member-added': onMemberEvent,
  'member-updated': onMemberEvent,
  'member-removed': onMemberEvent,
  'room-updated': onRoomUpdated,
  'room-added': onRoomAdded,
  'room-removed': onRoomRemoved,
  'read-marker': onReadMarker,
  'user-joined': (e) => presence(e, true),
  'user-left': (e) => presence(e, false),
  'user-typing': onUserTyping,
  'left': () => {},
  'room-deleted': (e) => onRoomDeleted(e.roomId),
  'error': onSocketError,
};

function onSocketFrame(event) {
  const handler = HANDLERS[event.action];
  if (!handler) return;
  const room = event.roomId && event.action !== 'new-message' ? S.roomById(event.roomId) : null;
  if (room) S.noteSeq(room, event.seq);
  handler(event);
}

function onJoined(event) {
  const at = pendingJoins.indexOf(event.roomId);
  if (at >= 0) pendingJoins.splice(at, 1);
  const room = S.roomById(event.roomId);
  if (!room) return;
  room.joined = true;
  if (Array.isArray(event.members)) S.applyOnlineList(room, event.members);
  if (room.roomId === state.openRoomId) renderMembers(room);
  updateStatus();
  flushOutbox(room);
  // A join without `since` cannot replay what was posted just before it:
  // read the latest page once more if one was (being) read.
  if (room.joinedWithoutSince && (room.loaded || room.loading)) catchUp(room);
}

async function catchUp(room) {
  try {
    const page = await api('GET', historyPath(room.roomId));
    page.messages.forEach((m) => onNewMessage({ ...m, roomId: room.roomId }));
  } catch (err) {
    reportError(err);
  }
}

function onNewMessage(msg) {
  const room = S.roomById(msg.roomId);
  if (!room) return;
  if (msg.clientMsgId) {
    S.removeFromOutbox(msg.clientMsgId);
    inflight = inflight.filter((id) => id !== msg.clientMsgId);
  }
  if (msg.deleted) { // a replay of a message deleted since
    S.noteSeq(room, msg.id);
    onMessageDeleted({ roomId: msg.roomId, id: msg.id });
    return;
  }
  const isNew = S.storeMessage(room, msg);
  const isOpen = room.roomId === state.openRoomId;
  if (isOpen && room.loaded) messages.showStored(room, msg);
  if (!isNew) return;
  clearTyping(room, msg.sender);
  const mentioned = S.countArrival(room, msg);
  if (!isOpen) renderRooms();
  else if (msg.sender !== state.username) markOpenRoomRead();
  if (mentioned || (room.kind === 'direct' && msg.sender !== state.username)) {
    notifyMessage(room, msg, () => openRoom(room.roomId));
  }
}

function onMessageEdited(event) {
  const room = S.roomById(event.roomId);
  if (!room) return;
  if (event.deleted) {
    onMessageDeleted(event);
    return;
  }
  const msg = S.applyEdit(room, event);
  if (msg && room.roomId === state.openRoomId) messages.showEdited(msg);
  if (msg && state.replying?.id === msg.id) setReplying(state.replying);
}

function onMessageDeleted(event) {
  const room = S.roomById(event.roomId);
  if (!room) return;
  S.applyDelete(room, event.id);
  if (room.roomId === state.openRoomId) messages.removeStored(room, event.id);
  if (state.replying?.roomId === room.roomId && state.replying.id === event.id) setReplying(null);
  if (room.serverCounts && room.unread) recountSoon();
}

function onReaction(event, added) {
  const room = S.roomById(event.roomId);
  if (!room) return;
  const msg = S.applyReaction(room, event, added);
  if (msg && room.roomId === state.openRoomId) messages.showReactions(msg);
}

function onMemberEvent(event) {
  const room = S.roomById(event.roomId);
  if (!room) return;
  const roleBefore = room.role;
  S.applyMemberEvent(room, event);
  if (room.roomId !== state.openRoomId) return;
  renderMembers(room);
  if (room.role !== roleBefore) {
    renderRoomHead(room);
    messages.refreshActions(room);
  }
}

function onRoomUpdated(event) {
  const room = S.roomById(event.roomId);
  if (!room) return;
  if (typeof event.roomName === 'string' && room.kind !== 'direct') room.roomName = event.roomName;
  if (typeof event.topic === 'string') room.topic = event.topic;
  renderRooms();
  if (room.roomId === state.openRoomId) renderRoomHead(room);
}

// Someone put the user in a room (an add, a new direct room).
function onRoomAdded(event) {
  const room = S.addRoom(event.roomId, event.peer || event.roomName, true);
  S.applyListItem(room, { kind: event.kind, peer: event.peer, role: 'member' });
  joinOnSocket(room);
  renderRooms();
  recountSoon();
}

// Someone took the user out (removed or banned): the server has already
// unsubscribed this connection.
function onRoomRemoved(event) {
  const room = S.roomById(event.roomId);
  if (!room) return;
  const wasOpen = room.roomId === state.openRoomId;
  S.forgetMembership(room);
  if (room.kind !== 'public') S.removeRoom(room.roomId);
  if (wasOpen) closeRoomView();
  renderRooms();
  showNotice(event.banned ? `You were banned from ${room.roomName}.` : `You were removed from ${room.roomName}.`);
}

function onReadMarker(event) {
  const room = S.roomById(event.roomId);
  if (!room || typeof event.upTo !== 'number') return;
  if (!S.applyReadMarker(room, event.upTo)) recountSoon();
  renderRooms();
}

function presence(event, online) {
  const room = S.roomById(event.roomId);
  if (!room) return;
  S.setOnline(room, event.username, online);
  if (!online) clearTyping(room, event.username);
  if (room.roomId === state.openRoomId) renderMembers(room);
}

function onUserTyping(event) {
  const room = S.roomById(event.roomId);
  if (!room || event.username === state.username) return;
  clearTimeout(room.typers.get(event.username));
  room.typers.set(event.username, setTimeout(() => clearTyping(room, event.username), TYPING_SHOW_MS));
  if (room.roomId === state.openRoomId) renderTyping(room);
}

function clearTyping(room, username) {
  if (!room.typers.has(username)) return;
  clearTimeout(room.typers.get(username));
  room.typers.delete(username);
  if (room.roomId === state.openRoomId) renderTyping(room);
}

function onRoomDeleted(roomId) {
  const room = S.roomById(roomId);
  if (!room) return;
  const wasOpen = roomId === state.openRoomId;
  S.removeRoom(roomId);
  if (wasOpen) closeRoomView();
  renderRooms();
  showNotice(`The room ${room.roomName} was deleted.`);
}

function onSocketError(event) {
  const code = event.code;
  const text = event.message || `The server reported an error (${code}).`;
  if (code === 'unauthorized') {
    sessionDead('Your session has ended. Please log in again.');
  } else if (event.ref === 'send-message' && code === 'rate_limited') {
    // Not stored: it stays in the outbox and goes again a little later.
    inflight.shift();
    showNotice('You are sending messages too fast; they will be sent in a moment.', 'info');
    setTimeout(flushAllOutboxes, RATE_LIMIT_RETRY_MS);
  } else if (event.ref === 'typing' || event.ref === 'read') {
    // A lost typing hint is harmless; not worth the user's attention.
  } else if (code === 'not_joined') {
    inflight = [];
    S.memberRooms().filter((r) => !r.joined).forEach(joinOnSocket); // `joined` flushes again
  } else if (event.ref === 'send-message') {
    failOldestInflight(text);
    showNotice(`Message not sent: ${text}`);
  } else if (event.ref === 'join') {
    joinRefused(pendingJoins.shift(), text);
  } else {
    showNotice(text);
  }
}

// Joins are answered in order, so the refused one is the oldest unanswered.
function joinRefused(roomId, text) {
  const room = S.roomById(roomId);
  if (room) {
    S.forgetMembership(room);
    if (roomId === state.openRoomId) closeRoomView();
    renderRooms();
  }
  showNotice(text);
}
