// What the page knows, apart from the DOM: the rooms (with their cached
// messages, members and unread counts), which one is open, and the outbox
// of messages typed but not yet acknowledged.
//
// Unread counting lives here and only here. When GET /api/rooms items
// carry `unread` (PROTOCOL.md section 8) the server's counts are the base
// and live messages past its `lastSeq` add to them; a server without read
// markers leaves the page counting by itself from zero.

import { mentions } from './mentions.js';

const OUTBOX_KEY = 'chatd.outbox';     // per tab: survives a reload, not shared
const LAST_ROOM_KEY = 'chatd.room';

export const state = {
  username: null,
  rooms: new Map(),     // roomId -> room (see newRoom), in the server's list order
  openRoomId: null,
  outbox: loadOutbox(), // [{clientMsgId, roomId, message, replyTo?}], oldest first
  replying: null,       // {roomId, id}: the message the composer answers
};

function newRoom(roomId, roomName) {
  return {
    roomId,
    roomName: roomName || roomId,
    kind: 'public',
    member: false,        // the user belongs to the room (GET /api/me)
    joined: false,        // the server answered `joined` on the current socket
    joinedWithoutSince: false,
    loaded: false,        // the latest history page has been read
    loading: false,
    hasMore: false,       // older history exists beyond the cache
    loadingOlder: false,
    olderPromise: null,   // the older page on its way, shared by its callers
    lastSeenId: null,     // largest message id seen: the `since` of a rejoin
    messages: new Map(),  // id -> stored message; live ones are kept even before loading
    members: new Map(),   // username -> online, as GET .../members said
    online: new Set(),    // who is online, as the socket says while joined
    typers: new Map(),    // username -> timer that clears "is typing"
    unread: 0,
    mentioned: false,
    serverCounts: false,  // the server keeps this room's read marker
    lastSeq: null,        // the server's last seq when it counted `unread`
    readUpTo: 0,          // our read marker, as far as we know it
    topic: '',
    role: null,           // ours: owner | moderator | member
    peer: null,           // the other user of a direct room
    roles: new Map(),     // username -> role, for the open room's members
  };
}

// ---------------------------------------------------------------- rooms

export function openRoom() {
  return state.rooms.get(state.openRoomId) || null;
}

export function roomById(roomId) {
  return state.rooms.get(roomId) || null;
}

export function addRoom(roomId, roomName, member) {
  let room = state.rooms.get(roomId);
  if (!room) {
    room = newRoom(roomId, roomName);
    state.rooms.set(roomId, room);
  }
  if (roomName) room.roomName = roomName;
  if (member) room.member = true;
  return room;
}

// Merge GET /api/rooms and GET /api/me. Returns the rooms the user belongs
// to that were not known as such before (to be joined on the socket).
// Membership only grows here: an answer that left before the user created
// or joined a room must not undo that; leaving and deletion are events.
export function syncRooms(list, memberIds) {
  const members = new Set(memberIds);
  const listed = new Set(list.map((r) => r.roomId));
  for (const room of [...state.rooms.values()]) {
    if (!room.member && !listed.has(room.roomId) && !members.has(room.roomId)) removeRoom(room.roomId);
  }
  for (const r of list) applyListItem(addRoom(r.roomId, r.roomName, false), r);
  const fresh = [];
  for (const roomId of members) {
    const room = addRoom(roomId, null, false);
    if (!room.member) fresh.push(room);
    room.member = true;
  }
  return fresh;
}

// One GET /api/rooms item (or PATCH answer, or room-added event).
export function applyListItem(room, r) {
  if (r.kind) room.kind = r.kind;
  if (typeof r.topic === 'string') room.topic = r.topic;
  if (r.role) room.role = r.role;
  if (r.peer) room.peer = r.peer;
  if (typeof r.unread !== 'number') return;
  room.serverCounts = true;
  room.lastSeq = r.lastSeq ?? room.lastSeq;
  room.readUpTo = Math.max(room.readUpTo, r.readUpTo || 0);
  if (room.roomId === state.openRoomId) return; // it is being read right now
  room.unread = r.unread;
  room.mentioned = (r.mentions || 0) > 0;
}

export function canModerate(room) {
  return Boolean(room) && (room.role === 'owner' || room.role === 'moderator');
}

export function removeRoom(roomId) {
  const room = state.rooms.get(roomId);
  if (!room) return;
  room.typers.forEach((timer) => clearTimeout(timer));
  state.rooms.delete(roomId);
  dropOutboxFor(roomId);
  if (state.openRoomId === roomId) setOpenRoom(null);
}

// The user left: the cache goes stale from now on, so it goes.
export function forgetMembership(room) {
  room.member = false;
  room.joined = false;
  room.loaded = false;
  room.lastSeenId = null;
  room.messages.clear();
  room.unread = 0;
  room.mentioned = false;
  room.role = null;
  dropOutboxFor(room.roomId);
}

export function setOpenRoom(roomId) {
  state.openRoomId = roomId;
  if (state.replying && state.replying.roomId !== roomId) state.replying = null;
  if (roomId) localStorage.setItem(LAST_ROOM_KEY, roomId);
  else localStorage.removeItem(LAST_ROOM_KEY);
  const room = openRoom();
  if (room) markRead(room);
}

export function lastOpenRoomId() {
  return localStorage.getItem(LAST_ROOM_KEY);
}

export function memberRooms() {
  return [...state.rooms.values()].filter((r) => r.member);
}

// ---------------------------------------------------------------- unread

// A stored message arrived live (or by replay) in `room`. Counts it when
// the room is not the open one, the message is someone else's and the
// server's count did not include it yet. Returns true when it mentions
// the user.
export function countArrival(room, msg) {
  if (msg.sender === state.username) return false;
  const mentioned = mentionsMe(msg);
  const counted = room.lastSeq !== null && msg.id <= room.lastSeq;
  if (room.lastSeq !== null) room.lastSeq = Math.max(room.lastSeq, msg.id);
  if (room.roomId !== state.openRoomId && !counted && msg.id > room.readUpTo) {
    room.unread += 1;
    if (mentioned) room.mentioned = true;
  }
  return mentioned;
}

// The server's `mentions` when it sends them, else the same rule here.
function mentionsMe(msg) {
  if (!Array.isArray(msg.mentions)) return mentions(msg.message, state.username);
  const me = (state.username || '').toLowerCase();
  return msg.mentions.some((name) => String(name).toLowerCase() === me);
}

export function markRead(room) {
  room.unread = 0;
  room.mentioned = false;
}

// The read marker moved (here or on another device). Returns false when
// what is left unread is not known here: the counts must be asked again.
export function applyReadMarker(room, upTo) {
  room.readUpTo = Math.max(room.readUpTo, upTo);
  const last = Math.max(room.lastSeq ?? 0, room.lastSeenId ?? 0);
  if (room.readUpTo < last) return false;
  markRead(room);
  return true;
}

// What a `read` action should say for the open room, or null if nothing new.
export function readUpToToSend(room) {
  if (!room.serverCounts || room.lastSeenId === null || room.lastSeenId <= room.readUpTo) return null;
  room.readUpTo = room.lastSeenId;
  return room.lastSeenId;
}

export function totalUnread() {
  let total = 0;
  for (const room of state.rooms.values()) total += room.unread;
  return total;
}

// ---------------------------------------------------------------- messages

// Every sequenced event moves the `since` of the next rejoin.
export function noteSeq(room, seq) {
  if (typeof seq === 'number' && (room.lastSeenId === null || seq > room.lastSeenId)) room.lastSeenId = seq;
}

// Keep a stored message once. Returns false when it was already known.
export function storeMessage(room, msg) {
  noteSeq(room, msg.id);
  if (room.messages.has(msg.id)) return false;
  room.messages.set(msg.id, {
    id: msg.id,
    sender: msg.sender,
    message: msg.message,
    timestamp: msg.timestamp,
    editedAt: msg.editedAt || null,
    replyTo: msg.replyTo ?? null,
    mentions: msg.mentions || [],
    // emoji -> usernames, in the order each emoji was first added
    reactions: new Map((msg.reactions || []).map((r) => [r.emoji, [...r.users]])),
  });
  return true;
}

export function applyEdit(room, event) {
  const msg = room.messages.get(event.id);
  if (!msg) return null;
  msg.message = event.message;
  msg.mentions = event.mentions || [];
  msg.editedAt = event.timestamp || new Date().toISOString();
  return msg;
}

export function applyDelete(room, id) {
  const msg = room.messages.get(id);
  room.messages.delete(id);
  return msg || null;
}

// Adding twice or removing what is not there changes nothing.
export function applyReaction(room, event, added) {
  const msg = room.messages.get(event.id);
  if (!msg) return null;
  const users = msg.reactions.get(event.emoji) || [];
  const has = users.includes(event.username);
  if (added && !has) msg.reactions.set(event.emoji, [...users, event.username]);
  if (!added && has) {
    const left = users.filter((u) => u !== event.username);
    if (left.length) msg.reactions.set(event.emoji, left);
    else msg.reactions.delete(event.emoji);
  }
  return msg;
}

export function lastOwnMessage(room) {
  let last = null;
  for (const msg of room.messages.values()) {
    if (msg.sender === state.username && (!last || msg.id > last.id)) last = msg;
  }
  return last;
}

// The first history page of a room. Live messages cached before it form a
// contiguous run up to now, as does the page, so their union has no hole.
export function storeFirstPage(room, page) {
  const ids = page.messages.map((m) => m.id);
  const liveOlder = ids.length > 0 && [...room.messages.keys()].some((id) => id < ids[0]);
  page.messages.forEach((m) => storeMessage(room, m));
  room.hasMore = pageHasMore(page) || liveOlder;
  room.loaded = true;
}

export function oldestId(room) {
  let oldest = null;
  for (const id of room.messages.keys()) if (oldest === null || id < oldest) oldest = id;
  return oldest;
}

export function sortedMessages(room) {
  return [...room.messages.values()].sort((a, b) => a.id - b.id);
}

export function pageHasMore(page) {
  return Boolean(page.hasMore);
}

// ---------------------------------------------------------------- members

// Membership comes from HTTP, presence from the socket: while the room is
// joined its events are the truth, whatever order the answers came in.
export function setMembers(room, list) {
  room.members = new Map(list.map((m) => [m.username, Boolean(m.online)]));
  room.roles = new Map(list.filter((m) => m.role).map((m) => [m.username, m.role]));
  const mine = room.roles.get(state.username);
  if (mine) room.role = mine;
}

// member-added / member-updated / member-removed of the room's log.
export function applyMemberEvent(room, event) {
  if (event.action === 'member-removed') {
    room.members.delete(event.username);
    room.roles.delete(event.username);
    room.online.delete(event.username);
    return;
  }
  if (!room.members.has(event.username)) room.members.set(event.username, room.online.has(event.username));
  if (event.role) room.roles.set(event.username, event.role);
  if (event.username === state.username && event.role) room.role = event.role;
}

export function isOnline(room, username) {
  return room.joined ? room.online.has(username) : Boolean(room.members.get(username));
}

export function setOnline(room, username, online) {
  if (online) room.online.add(username);
  else room.online.delete(username);
  // Someone coming online may be a new member; someone leaving (perhaps
  // just removed or banned) is no reason to list them again.
  if (online && !room.members.has(username)) room.members.set(username, true);
}

// `joined.members` is who is online in the room right now.
export function applyOnlineList(room, usernames) {
  room.online = new Set(usernames);
  for (const name of usernames) if (!room.members.has(name)) room.members.set(name, true);
}

// ---------------------------------------------------------------- outbox

// Random id for clientMsgId. crypto.randomUUID exists only in secure
// contexts, and chatd may well be served over plain http on a LAN.
function newClientMsgId() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return 'c-' + Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

function loadOutbox() {
  try {
    const saved = JSON.parse(sessionStorage.getItem(OUTBOX_KEY) || '[]');
    return Array.isArray(saved) ? saved : [];
  } catch {
    return [];
  }
}

function saveOutbox() {
  sessionStorage.setItem(OUTBOX_KEY, JSON.stringify(state.outbox));
}

export function queueMessage(roomId, message, replyTo) {
  const entry = { clientMsgId: newClientMsgId(), roomId, message };
  if (replyTo) entry.replyTo = replyTo;
  state.outbox.push(entry);
  saveOutbox();
  return entry;
}

export function removeFromOutbox(clientMsgId) {
  const before = state.outbox.length;
  state.outbox = state.outbox.filter((m) => m.clientMsgId !== clientMsgId);
  if (state.outbox.length !== before) saveOutbox();
}

export function outboxFor(roomId) {
  return state.outbox.filter((m) => m.roomId === roomId);
}

function dropOutboxFor(roomId) {
  state.outbox = state.outbox.filter((m) => m.roomId !== roomId);
  saveOutbox();
}

// Logout or a dead session: forget everything the user had.
export function resetState() {
  for (const room of state.rooms.values()) room.typers.forEach((timer) => clearTimeout(timer));
  state.username = null;
  state.rooms.clear();
  state.openRoomId = null;
  state.outbox = [];
  sessionStorage.removeItem(OUTBOX_KEY);
  localStorage.removeItem(LAST_ROOM_KEY);
}
