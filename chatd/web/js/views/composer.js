// The composer (#message-input, #send-button) and the typing line (#typing).

import { $ } from '../dom.js';

export function enableComposer(enabled) {
  $('message-input').disabled = !enabled;
  $('send-button').disabled = !enabled;
}

export function renderTyping(room) {
  const names = room ? [...room.typers.keys()] : [];
  let text = '';
  if (names.length === 1) text = `${names[0]} is typing…`;
  else if (names.length > 1) text = `${names.join(', ')} are typing…`;
  $('typing').textContent = text;
}

// Enter sends, Shift+Enter inserts a newline; IME composition is left alone.
export function onComposerKeydown(event) {
  if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    $('composer').requestSubmit();
  }
}

// The textarea grows with its text, up to the limit set in CSS.
export function fitComposer() {
  const input = $('message-input');
  input.style.height = 'auto';
  input.style.height = `${input.scrollHeight + 2}px`;
}
