// The open room's members (#members): each an element with data-username,
// class `online` while the user has a connection joined to the room.

import { $, el } from '../dom.js';
import { isOnline } from '../state.js';

export function renderMembers(room) {
  const names = room ? [...room.members.keys()] : [];
  const online = new Set(names.filter((name) => isOnline(room, name)));
  names.sort((a, b) => (Number(online.has(b)) - Number(online.has(a)))
    || a.localeCompare(b, undefined, { sensitivity: 'base' }));
  $('members').replaceChildren(...names.map((name) => memberElement(name, online.has(name))));
  $('members-count').textContent = room ? `${online.size} online · ${names.length}` : '';
}

function memberElement(username, online) {
  const li = el('li', 'member');
  li.dataset.username = username;
  li.classList.toggle('online', online);
  li.title = online ? 'online' : 'offline';
  li.append(el('span', 'presence'), el('span', 'member-name', username));
  return li;
}
