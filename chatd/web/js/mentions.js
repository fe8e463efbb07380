// Who a message mentions: the rule of chatd/mentions.py. `@` followed by
// the characters a username may hold, trailing `.` and `-` dropped, and the
// `@` not glued to such a character (an e-mail address is no mention).

export const MENTION_RE = /(?<![A-Za-z0-9_.-])@([A-Za-z0-9_.-]+)/g;

// The name after an `@`, as compared: trailing `.`/`-` dropped, lower case.
export function mentionKey(name) {
  return name.replace(/[.-]+$/, '').toLowerCase();
}

export function mentions(text, username) {
  if (!username || typeof text !== 'string') return false;
  const wanted = username.toLowerCase();
  for (const match of text.matchAll(MENTION_RE)) {
    if (mentionKey(match[1]) === wanted) return true;
  }
  return false;
}
