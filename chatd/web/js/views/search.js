// Search results (#search-results): each a `.result` with data-room-id and
// data-message-id; its room, sender, time and text all set as text.

import { $, el } from '../dom.js';
import { roomById } from '../state.js';

export function renderSearchResults(query, results) {
  const box = $('search-results');
  box.hidden = false;
  const head = el('div', 'search-head');
  head.append(el('span', '', results.length ? `Results for “${query}”` : `Nothing found for “${query}”`));
  const close = el('button', 'icon search-close', '×');
  close.type = 'button';
  close.setAttribute('aria-label', 'Close the search results');
  head.append(close);
  box.replaceChildren(head, ...results.map(resultElement));
}

export function renderSearchError(text) {
  const box = $('search-results');
  box.hidden = false;
  box.replaceChildren(el('div', 'search-head', text));
}

export function closeSearch() {
  $('search-results').hidden = true;
  $('search-results').replaceChildren();
}

function resultElement(r) {
  const item = el('button', 'result');
  item.type = 'button';
  item.dataset.roomId = r.roomId;
  item.dataset.messageId = String(r.id);
  const room = roomById(r.roomId);
  const where = room && room.kind === 'direct' ? `@${room.peer || room.roomName}` : `#${r.roomName || r.roomId}`;
  const meta = el('span', 'result-meta');
  const ts = Date.parse(r.timestamp);
  meta.append(el('span', 'result-room', where), ' · ', el('span', 'result-sender', r.sender ?? '(deleted user)'),
    ' · ', el('time', 'result-time', Number.isNaN(ts) ? '' : new Date(ts).toLocaleString([], {
      day: 'numeric', month: 'short', hour: '2-digit', minute: '2-digit',
    })));
  const text = r.message.length > 200 ? `${r.message.slice(0, 200)}…` : r.message;
  item.append(meta, el('span', 'result-text', text));
  return item;
}
