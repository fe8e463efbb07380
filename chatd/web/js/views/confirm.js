// A confirmation asked in the page (#confirm-dialog, a modal <dialog>)
// rather than by window.confirm, which blocks every tab's scripts.
// Resolves true when the user confirms.

import { $ } from '../dom.js';

export function confirmAction(text, actionLabel) {
  const dialog = $('confirm-dialog');
  $('confirm-text').textContent = text;
  $('confirm-ok').textContent = actionLabel;
  return new Promise((resolve) => {
    const done = (answer) => {
      dialog.removeEventListener('close', onClose);
      $('confirm-ok').removeEventListener('click', onOk);
      if (dialog.open) dialog.close();
      resolve(answer);
    };
    const onOk = () => done(true);
    const onClose = () => done(false);
    $('confirm-ok').addEventListener('click', onOk);
    dialog.addEventListener('close', onClose); // Cancel, Escape
    dialog.showModal();
    $('confirm-cancel').focus();
  });
}
