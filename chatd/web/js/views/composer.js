// The composer (#message-input, #send-button) and the typing line (#typing).

import { $, el } from '../dom.js';

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

// #reply-preview: the message being answered, above the composer.
export function renderReplyPreview(original) {
  const preview = $('reply-preview');
  preview.hidden = !original;
  if (!original) {
    delete preview.dataset.messageId;
    $('reply-preview-text').replaceChildren();
    return;
  }
  preview.dataset.messageId = String(original.id);
  const line = original.message.split('\n', 1)[0];
  $('reply-preview-text').replaceChildren(
    'Replying to ', el('strong', '', original.sender ?? '(deleted user)'), ' ',
    el('span', 'reply-preview-quote', line.length > 120 ? `${line.slice(0, 120)}…` : line),
  );
  $('message-input').focus();
}
