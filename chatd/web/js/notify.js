// Desktop notifications for mentions and direct messages while the tab is
// hidden.
//
// Permission is asked once, from a click (browsers only honour the request
// on a user gesture): after login the sidebar offers #notify-button while
// the browser has not been asked yet; either answer hides it for good.

import { $ } from './dom.js';

const ASKED_KEY = 'chatd.notificationsAsked';

function supported() {
  return 'Notification' in window;
}

export function offerNotifications() {
  const offer = $('notify-offer');
  offer.hidden = !supported() || Notification.permission !== 'default'
    || localStorage.getItem(ASKED_KEY) === '1';
}

export function wireNotifications() {
  $('notify-button').addEventListener('click', async () => {
    localStorage.setItem(ASKED_KEY, '1');
    $('notify-offer').hidden = true;
    try {
      await Notification.requestPermission();
    } catch {
      // An old browser without the promise form: nothing more to do.
    }
  });
  $('notify-dismiss').addEventListener('click', () => {
    localStorage.setItem(ASKED_KEY, '1');
    $('notify-offer').hidden = true;
  });
}

export function notifyMessage(room, msg, onClick) {
  if (!document.hidden || !supported() || Notification.permission !== 'granted') return;
  const title = room.kind === 'direct' ? `${msg.sender} wrote to you` : `${msg.sender} mentioned you in ${room.roomName}`;
  const note = new Notification(title, {
    body: msg.message.length > 200 ? `${msg.message.slice(0, 200)}…` : msg.message,
    tag: `chatd-${msg.roomId}`,
  });
  note.addEventListener('click', () => {
    window.focus();
    onClick();
    note.close();
  });
}
