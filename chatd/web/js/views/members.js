// The open room's members (#members): each an element with data-username
// and data-role, class `online` while the user has a connection joined to
// the room. Owners and moderators get remove and ban buttons on members
// of a lower rank (the server checks the same rule).

import { $, el } from '../dom.js';
import { canModerate, isOnline, state } from '../state.js';

const RANK = { owner: 3, moderator: 2, member: 1 };

export function renderMembers(room) {
  const names = room ? [...room.members.keys()] : [];
  const online = new Set(names.filter((name) => isOnline(room, name)));
  names.sort((a, b) => (Number(online.has(b)) - Number(online.has(a)))
    || a.localeCompare(b, undefined, { sensitivity: 'base' }));
  $('members').replaceChildren(...names.map((name) => memberElement(room, name, online.has(name))));
  $('members-count').textContent = room ? `${online.size} online · ${names.length}` : '';
}

function memberElement(room, username, online) {
  const li = el('li', 'member');
  const role = room.roles.get(username) || 'member';
  li.dataset.username = username;
  li.dataset.role = role;
  li.classList.toggle('online', online);
  li.title = online ? 'online' : 'offline';
  li.append(el('span', 'presence'), el('span', 'member-name', username));
  if (role !== 'member') li.append(el('span', `role-badge role-${role}`, role));
  if (mayModerate(room, role, username)) li.append(moderationButtons());
  return li;
}

function mayModerate(room, role, username) {
  return username !== state.username && room.kind !== 'direct' && canModerate(room)
    && RANK[room.role] > RANK[role];
}

function moderationButtons() {
  const box = el('span', 'member-actions');
  const remove = el('button', 'secondary small remove-button', 'Remove');
  const ban = el('button', 'danger small ban-button', 'Ban');
  remove.type = 'button';
  ban.type = 'button';
  box.append(remove, ban);
  return box;
}
