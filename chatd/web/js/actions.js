// What the user does to messages: edit, delete, react, reply, and jump to
// a reply's original. Each action is a frame on the page's socket
// (PROTOCOL.md section 7); the screen changes when the server's event comes
// back, so every tab and device shows the same thing.

import { jumpTo, setReplying, socket } from './chat.js';
import { $, el } from './dom.js';
import { lastOwnMessage, openRoom, state } from './state.js';
import { confirmAction } from './views/confirm.js';
import { elementOf } from './views/messages.js';
import { showNotice } from './views/status.js';

export const EMOJI = ['👍', '❤️', '😂', '🎉', '😮', '😢', '👀', '🙏'];

function send(frame) {
  if (!socket.send(frame)) showNotice('Not connected: try again once the status says online.', 'info');
}

// One listener on #messages for every message's buttons.
export function onMessagesClick(event) {
  const node = event.target.closest('.message[data-message-id]');
  const room = openRoom();
  if (!node || !room) return;
  const id = Number(node.dataset.messageId);
  const hit = (selector) => event.target.closest(selector);
  if (hit('.emoji-picker .emoji')) pickEmoji(room, id, hit('.emoji').dataset.emoji);
  else if (hit('.react-button')) togglePicker(node);
  else if (hit('.reaction')) toggleReaction(room, id, hit('.reaction').dataset.emoji);
  else if (hit('.reply-button')) setReplying({ roomId: room.roomId, id });
  else if (hit('.edit-button')) startEdit(id);
  else if (hit('.delete-button')) confirmDelete(room, id);
  else if (hit('.reply-quote')) jumpTo(room, Number(hit('.reply-quote').dataset.messageId));
}

// ---------------------------------------------------------------- reactions

function toggleReaction(room, id, emoji) {
  const users = room.messages.get(id)?.reactions.get(emoji) || [];
  const action = users.includes(state.username) ? 'unreact' : 'react';
  send({ action, roomId: room.roomId, id, emoji });
}

function pickEmoji(room, id, emoji) {
  closePicker();
  toggleReaction(room, id, emoji);
}

function togglePicker(node) {
  const open = node.querySelector('.emoji-picker');
  closePicker();
  if (open) return;
  const picker = el('div', 'emoji-picker');
  picker.setAttribute('role', 'menu');
  picker.setAttribute('aria-label', 'Add a reaction');
  for (const emoji of EMOJI) {
    const button = el('button', 'emoji', emoji);
    button.type = 'button';
    button.dataset.emoji = emoji;
    button.setAttribute('role', 'menuitem');
    button.setAttribute('aria-label', `React with ${emoji}`);
    picker.append(button);
  }
  node.append(picker);
  node.classList.add('picking');
  picker.querySelector('button').focus();
}

export function closePicker() {
  for (const picker of document.querySelectorAll('#messages .emoji-picker')) {
    picker.closest('.message')?.classList.remove('picking');
    picker.remove();
  }
}

// A click outside the picker, or Escape, closes it.
export function onDocumentPointer(event) {
  if (!event.target.closest('.emoji-picker, .react-button')) closePicker();
}

// ---------------------------------------------------------------- delete

async function confirmDelete(room, id) {
  const msg = room.messages.get(id);
  const whose = msg && msg.sender !== state.username ? `${msg.sender}'s message` : 'your message';
  if (await confirmAction(`Delete ${whose}? This cannot be undone.`, 'Delete')) {
    send({ action: 'delete-message', roomId: room.roomId, id });
  }
}

// ---------------------------------------------------------------- edit

// The message's text gives way to a textarea.edit-input: Enter saves,
// Shift+Enter is a newline, Escape (or an unchanged text) cancels.
export function startEdit(id) {
  const room = openRoom();
  const msg = room?.messages.get(id);
  const node = elementOf(id);
  if (!msg || !node || msg.sender !== state.username || node.querySelector('.edit-input')) return;
  const input = el('textarea', 'edit-input');
  input.value = msg.message;
  input.rows = Math.min(8, msg.message.split('\n').length);
  input.maxLength = 4000;
  input.setAttribute('aria-label', 'Edit message');
  const hint = el('div', 'edit-hint', 'Enter to save · Escape to cancel');
  node.classList.add('editing');
  node.querySelector('.text').after(input, hint);
  input.focus();
  input.setSelectionRange(input.value.length, input.value.length);
  input.addEventListener('keydown', (event) => onEditKeydown(event, room, msg, node));
}

function onEditKeydown(event, room, msg, node) {
  const input = event.target;
  if (event.key === 'Escape') {
    event.preventDefault();
    event.stopPropagation();
    endEdit(node);
  } else if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    const text = input.value;
    if (text.trim() && text !== msg.message) {
      send({ action: 'edit-message', roomId: room.roomId, id: msg.id, message: text });
    }
    endEdit(node);
  }
}

function endEdit(node) {
  node.classList.remove('editing');
  node.querySelector('.edit-input')?.remove();
  node.querySelector('.edit-hint')?.remove();
  $('message-input').focus();
}

// Up in an empty composer edits the user's last message; Escape drops
// the reply being written.
export function onComposerKeys(event) {
  const input = $('message-input');
  if (event.key === 'ArrowUp' && !input.value) {
    const last = openRoom() && lastOwnMessage(openRoom());
    if (last) {
      event.preventDefault();
      startEdit(last.id);
    }
  } else if (event.key === 'Escape' && state.replying) {
    event.preventDefault();
    setReplying(null);
  }
}
