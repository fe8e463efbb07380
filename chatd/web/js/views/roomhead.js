// The open room's head: its name (#room-title), its topic (#room-topic,
// editable in place by its owner and moderators) and the composer's
// placeholder, which names the room too.

import { $ } from '../dom.js';
import { canModerate } from '../state.js';

export function renderRoomHead(room) {
  // The title is the name alone; its '#' or '@' is drawn by CSS.
  $('room-title').textContent = room ? (room.kind === 'direct' ? room.peer || room.roomName : room.roomName) : 'No room open';
  if (room) $('room-title').dataset.kind = room.kind;
  else delete $('room-title').dataset.kind;
  $('message-input').placeholder = room ? `Message ${roomLabel(room)}` : 'Message';
  const topic = $('room-topic');
  topic.textContent = room ? room.topic : '';
  topic.hidden = !room || (!room.topic && !canModerate(room));
  topic.classList.toggle('empty', Boolean(room) && !room.topic);
  if (room && !room.topic) topic.textContent = 'Add a topic';
  const editable = Boolean(room) && canModerate(room) && room.kind !== 'direct';
  topic.classList.toggle('editable', editable);
  topic.title = editable ? 'Edit the topic' : (room?.topic || '');
  if (editable) topic.setAttribute('role', 'button');
  else topic.removeAttribute('role');
  topic.tabIndex = editable ? 0 : -1;
  if (!editable) stopTopicEdit();
  if ($('room-topic-input')) topic.hidden = true;
}

export function roomLabel(room) {
  return room.kind === 'direct' ? `@${room.peer || room.roomName}` : `#${room.roomName}`;
}

// In-place editing: an input over the topic; Enter saves, Escape cancels.
export function startTopicEdit(room, save) {
  if (!canModerate(room) || $('room-topic-input')) return;
  const input = document.createElement('input');
  input.id = 'room-topic-input';
  input.className = 'room-topic-input';
  input.maxLength = 250;
  input.value = room.topic;
  input.setAttribute('aria-label', 'Room topic');
  $('room-topic').hidden = true;
  $('room-topic').after(input);
  input.focus();
  input.addEventListener('keydown', async (event) => {
    if (event.key === 'Escape') {
      event.stopPropagation();
      stopTopicEdit();
      $('room-topic').hidden = false;
    } else if (event.key === 'Enter') {
      event.preventDefault();
      input.disabled = true;
      const ok = await save(input.value.trim());
      if (ok) stopTopicEdit();
      input.disabled = false;
      renderRoomHead(room);
    }
  });
}

function stopTopicEdit() {
  $('room-topic-input')?.remove();
}
