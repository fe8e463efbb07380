// The login session, kept in localStorage so that it survives a reload and
// is shared by every tab of the browser. It is dropped on logout and on any
// 401, in this tab and (through the storage event) in the others.

const KEYS = { token: 'chatd.token', username: 'chatd.username' };

export const session = {
  token: localStorage.getItem(KEYS.token),
  username: localStorage.getItem(KEYS.username),
};

export function saveSession(token, username) {
  session.token = token;
  session.username = username;
  localStorage.setItem(KEYS.token, token);
  localStorage.setItem(KEYS.username, username);
}

export function clearSession() {
  session.token = null;
  session.username = null;
  localStorage.removeItem(KEYS.token);
  localStorage.removeItem(KEYS.username);
}

// Another tab logged out (or met a 401): follow it.
export function onSessionClearedElsewhere(callback) {
  window.addEventListener('storage', (event) => {
    if (event.key === KEYS.token && event.newValue === null && session.token) callback();
  });
}
