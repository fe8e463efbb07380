// chatd web client: one page, native ES modules, no build step, no
// third-party code. It uses only the HTTP API and the /chat WebSocket of
// PROTOCOL.md, and keeps the element ids of its sections 5 and 11.
//
// This module holds the login session and wires the page together:
//   api.js      HTTP calls and the 401 rule       socket.js  the one WebSocket
//   state.js    rooms, messages, unread, outbox   chat.js    what events do
//   markdown.js safe rich text for messages        views/*    the DOM, per part

import { closePicker, onComposerKeys, onDocumentPointer, onMessagesClick } from './actions.js';
import { api, setUnauthorizedHandler } from './api.js';
import {
  closeRoomView, createRoom, leaveOpenRoom, markOpenRoomRead, onComposerInput, onComposerSubmit,
  onMessagesScroll, openDirect, openRoom, refreshRooms, removeMember, saveTopic, searchMessages,
  setReplying, socket, startChat, startRoomRefresh, stopChat,
} from './chat.js';
import { $ } from './dom.js';
import { offerNotifications, wireNotifications } from './notify.js';
import { clearSession, onSessionClearedElsewhere, saveSession, session } from './session.js';
import { openRoom as theOpenRoom, state } from './state.js';
import { onComposerKeydown } from './views/composer.js';
import { confirmAction } from './views/confirm.js';
import { scrollToBottom } from './views/messages.js';
import { wirePanels } from './views/panels.js';
import { startTopicEdit } from './views/roomhead.js';
import { closeSearch, renderSearchError, renderSearchResults } from './views/search.js';
import { hideNotice, reportError, showNotice } from './views/status.js';

const USERNAME_RE = /^[A-Za-z0-9_.-]{3,32}$/;

// ---------------------------------------------------------------- login

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
  // Checked here first so the user learns the rules without a round trip.
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

// ---------------------------------------------------------------- session

// GET /api/me tells how the server spells our name ("Alice" may log in as
// "alice") and which rooms we are in. When the server cannot be reached
// the session is kept and the socket keeps trying; a 401 ends it.
async function startSession(token, typedName) {
  saveSession(token, typedName);
  let me = null;
  try {
    me = await api('GET', '/api/me');
  } catch (err) {
    if (err.code !== 'network') throw err;
    reportError(err);
  }
  const username = (me && me.username) || typedName;
  saveSession(token, username);
  $('password').value = '';
  if (me) hideNotice();
  showChatView(username);
  await startChat(username, me, sessionEnded);
}

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

// The server no longer takes our token (expired, revoked, user disabled).
function sessionEnded(reason) {
  if (!session.token) return;
  const unsent = state.outbox.length;
  endSession();
  showNotice(unsent ? `${reason} ${unsent} unsent message(s) were discarded.` : reason);
}

function endSession() {
  stopChat();
  clearSession();
  showLoginView();
}

function showLoginView() {
  $('chat-view').hidden = true;
  $('login-view').hidden = false;
  $('logout-button').hidden = true;
  $('rooms-toggle').hidden = true;
  $('current-user').textContent = '';
  document.title = 'chatd';
  $('username').focus();
}

function showChatView(username) {
  $('login-view').hidden = true;
  $('chat-view').hidden = false;
  $('logout-button').hidden = false;
  $('rooms-toggle').hidden = false;
  $('current-user').textContent = username;
  offerNotifications();
}

// ---------------------------------------------------------------- rooms

async function onCreateRoom(event) {
  event.preventDefault();
  const name = $('new-room-name').value.trim();
  if (!name || name.length > 64) {
    showNotice('A room name is 1 to 64 characters.');
    return;
  }
  await withBusy([$('create-room-button')], async () => {
    await createRoom(name, $('new-room-private').checked);
    $('new-room-name').value = '';
    $('new-room-private').checked = false;
  });
}

async function onOpenDirect(event) {
  event.preventDefault();
  const username = $('dm-username').value.trim();
  if (!USERNAME_RE.test(username)) {
    showNotice('A username is 3 to 32 letters, digits, "_", "." or "-".');
    return;
  }
  if (username.toLowerCase() === (state.username || '').toLowerCase()) {
    showNotice('A direct message is with someone else.');
    return;
  }
  await withBusy([$('dm-button')], async () => {
    await openDirect(username);
    $('dm-username').value = '';
  });
}

// ---------------------------------------------------------------- room head and members

function onTopicActivate(event) {
  if (event.type === 'keydown' && event.key !== 'Enter' && event.key !== ' ') return;
  const room = theOpenRoom();
  if (!room) return;
  event.preventDefault();
  startTopicEdit(room, async (topic) => {
    try {
      await saveTopic(room, topic);
      return true;
    } catch (err) {
      reportError(err);
      return false;
    }
  });
}

async function onMembersClick(event) {
  const button = event.target.closest('.remove-button, .ban-button');
  const room = theOpenRoom();
  if (!button || !room) return;
  const username = button.closest('[data-username]').dataset.username;
  const ban = button.classList.contains('ban-button');
  const question = ban
    ? `Ban ${username} from ${room.roomName}? They are removed and cannot come back until the ban is lifted.`
    : `Remove ${username} from ${room.roomName}?`;
  if (!(await confirmAction(question, ban ? 'Ban' : 'Remove'))) return;
  await removeMember(room, username, ban).catch(reportError);
}

// ---------------------------------------------------------------- search

async function onSearch(event) {
  event.preventDefault();
  const q = $('search-input').value.trim();
  if (!q) {
    closeSearch();
    return;
  }
  try {
    renderSearchResults(q, await searchMessages(q));
  } catch (err) {
    if (err.status === 404 || err.status === 405) renderSearchError('Search is not available on this server.');
    else renderSearchError(err.message);
  }
}

function onSearchResultsClick(event) {
  if (event.target.closest('.search-close')) {
    closeSearch();
    return;
  }
  const result = event.target.closest('.result');
  if (result) openRoom(result.dataset.roomId, Number(result.dataset.messageId));
}

function onRoomListClick(event) {
  const target = event.target.closest('[data-room-id]');
  if (target) openRoom(target.dataset.roomId);
}

// ---------------------------------------------------------------- wiring

function wire() {
  setUnauthorizedHandler(() => sessionEnded('Your session has ended. Please log in again.'));
  onSessionClearedElsewhere(() => {
    endSession();
    showNotice('You are logged out.', 'info');
  });
  $('login-form').addEventListener('submit', onLogin);
  $('register-button').addEventListener('click', onRegister);
  $('logout-button').addEventListener('click', onLogout);
  $('error-dismiss').addEventListener('click', hideNotice);
  $('room-list').addEventListener('click', onRoomListClick);
  $('refresh-rooms-button').addEventListener('click', () => refreshRooms().catch(reportError));
  $('create-room-form').addEventListener('submit', onCreateRoom);
  $('dm-form').addEventListener('submit', onOpenDirect);
  $('search-form').addEventListener('submit', onSearch);
  $('search-results').addEventListener('click', onSearchResultsClick);
  $('room-topic').addEventListener('click', onTopicActivate);
  $('room-topic').addEventListener('keydown', onTopicActivate);
  $('members').addEventListener('click', onMembersClick);
  $('messages').addEventListener('click', onMessagesClick);
  $('reply-cancel').addEventListener('click', () => setReplying(null));
  document.addEventListener('pointerdown', onDocumentPointer);
  document.addEventListener('keydown', (event) => { if (event.key === 'Escape') closePicker(); });
  document.addEventListener('visibilitychange', markOpenRoomRead);
  $('leave-room-button').addEventListener('click', () => leaveOpenRoom().catch(reportError));
  $('messages').addEventListener('scroll', onMessagesScroll, { passive: true });
  $('new-messages').addEventListener('click', scrollToBottom);
  $('composer').addEventListener('submit', onComposerSubmit);
  $('message-input').addEventListener('keydown', onComposerKeys);
  $('message-input').addEventListener('keydown', onComposerKeydown);
  $('message-input').addEventListener('input', onComposerInput);
  window.addEventListener('online', () => socket.retryNow());
  wirePanels();
  wireNotifications();
  startRoomRefresh();
  closeRoomView();
}

wire();
resumeSession();
