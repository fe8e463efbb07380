// The room list (#room-list) and the unread total in the tab title.
//
// Rendering is keyed by room id: items are reused and only what changed is
// touched, so the periodic refresh and every live unread change stay cheap.

import { $, el } from '../dom.js';
import { state, totalUnread } from '../state.js';

const BASE_TITLE = 'chatd';
const itemsById = new Map(); // roomId -> {li, button, name}

export function renderRooms() {
  const rooms = [...state.rooms.values()];
  const byName = (a, b) => a.roomName.localeCompare(b.roomName, undefined, { sensitivity: 'base' });
  const mine = rooms.filter((r) => r.member && r.kind !== 'direct').sort(byName);
  const direct = rooms.filter((r) => r.member && r.kind === 'direct').sort(byName);
  const others = rooms.filter((r) => !r.member).sort(byName);

  const children = [];
  if (mine.length) children.push(groupLabel('Your rooms'), ...mine.map(roomItem));
  if (direct.length) children.push(groupLabel('Direct messages'), ...direct.map(roomItem));
  if (others.length) children.push(groupLabel('More rooms'), ...others.map(roomItem));
  if (!rooms.length) children.push(el('li', 'room-empty', 'No rooms yet. Create one below.'));
  for (const roomId of [...itemsById.keys()]) if (!state.rooms.has(roomId)) itemsById.delete(roomId);

  const list = $('room-list');
  const same = children.length === list.children.length
    && children.every((child, i) => child === list.children[i]);
  if (!same) list.replaceChildren(...children);
  renderTitle();
}

const labels = new Map();
function groupLabel(text) {
  if (!labels.has(text)) labels.set(text, el('li', 'room-group', text));
  return labels.get(text);
}

function roomItem(room) {
  let item = itemsById.get(room.roomId);
  if (!item) {
    const li = el('li');
    const button = el('button', 'room-button');
    button.type = 'button';
    button.dataset.roomId = room.roomId;
    const name = el('span', 'room-name');
    button.append(name); // its '#', '@' or lock is drawn by CSS, outside the text
    li.append(button);
    item = { li, button, name };
    itemsById.set(room.roomId, item);
  }
  updateItem(item, room);
  return item.li;
}

function updateItem({ button, name }, room) {
  const label = room.kind === 'direct' ? room.peer || room.roomName : room.roomName;
  if (name.textContent !== label) name.textContent = label;
  button.title = room.topic ? `${label}: ${room.topic}` : label;
  button.dataset.kind = room.kind;
  const open = room.roomId === state.openRoomId;
  if (open) button.setAttribute('aria-current', 'true');
  else button.removeAttribute('aria-current');
  button.classList.toggle('has-unread', room.unread > 0);
  button.classList.toggle('mentioned', room.mentioned);
  let badge = button.querySelector('.unread');
  if (room.unread > 0) {
    if (!badge) {
      badge = el('span', 'unread');
      button.append(badge);
    }
    badge.textContent = String(room.unread);
    badge.setAttribute('aria-label', `${room.unread} unread${room.mentioned ? ', mentioned' : ''}`);
  } else {
    badge?.remove();
  }
}

function renderTitle() {
  const total = totalUnread();
  const title = total ? `(${total}) ${BASE_TITLE}` : BASE_TITLE;
  if (document.title !== title) document.title = title;
  // On a phone the list hides behind its button: the button carries the count.
  const toggle = $('rooms-toggle');
  toggle.dataset.unread = total ? String(total) : '';
  toggle.classList.toggle('mentioned', [...state.rooms.values()].some((r) => r.mentioned));
}
