// The notice banner (#error) and the connection status (#connection-status).

import { $ } from '../dom.js';

const NOTICE_HIDE_MS = 6000;
let noticeTimer = null;

// Errors stay until dismissed or replaced; info notices fade by themselves.
// A notice with cause 'network' is about the server being unreachable and
// goes away by itself when the connection is back (clearNetworkNotice).
export function showNotice(text, kind = 'error', cause = '') {
  const banner = $('error');
  $('error-text').textContent = text;
  banner.className = `banner banner-${kind}`;
  banner.dataset.cause = cause;
  banner.hidden = false;
  clearTimeout(noticeTimer);
  if (kind === 'info') noticeTimer = setTimeout(hideNotice, NOTICE_HIDE_MS);
}

export function hideNotice() {
  $('error').hidden = true;
}

export function clearNetworkNotice() {
  if ($('error').dataset.cause === 'network') hideNotice();
}

// One place that turns a failed call into words for the user.
export function reportError(err) {
  if (err && err.alreadyHandled) return;
  showNotice((err && err.message) || String(err), 'error', err && err.code === 'network' ? 'network' : '');
  if (!(err && err.code)) console.error(err);
}

// online | reconnecting | offline, see PROTOCOL.md section 5.
export function renderStatus(status, detail = '') {
  const node = $('connection-status');
  node.textContent = status;
  node.className = `status status-${status}`;
  node.title = detail;
}
