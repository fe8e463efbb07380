// A small, safe Markdown subset for message text: ```code blocks```,
// `inline code`, **bold**, *italic*, http(s) links and @mentions.
//
// It builds DOM nodes and text nodes only; user text is never parsed as
// HTML. A link is made only from text that starts with http:// or
// https:// and parses as such a URL, so `javascript:` and friends stay text.
// Apart from the fences and markers it removes, the text content of the
// result is the message itself.

import { MENTION_RE, mentionKey } from './mentions.js';

const FENCE_RE = /```(?:[^\n`]*\n)?([\s\S]*?)```/g;

// One alternative per inline construct; the first that matches wins.
const INLINE_RE = new RegExp([
  /`([^`\n]+)`/.source,                                          // 1: code
  /\*\*(?=\S)([^*\n]*?\S)\*\*/.source,                           // 2: bold
  /(?<![\w*])\*(?=[^\s*])([^*\n]*?[^\s*])\*(?![\w*])/.source,    // 3: italic
  /\b(https?:\/\/[^\s<>"'`]+)/.source,                           // 4: link
  MENTION_RE.source,                                             // 5: mention
].join('|'), 'gi');

export function renderMessageText(text, username) {
  const fragment = document.createDocumentFragment();
  let last = 0;
  for (const match of text.matchAll(FENCE_RE)) {
    appendInline(fragment, trimNewline(text.slice(last, match.index), 'end'), username);
    const pre = document.createElement('pre');
    const code = document.createElement('code');
    code.textContent = trimNewline(match[1], 'end');
    pre.append(code);
    fragment.append(pre);
    last = match.index + match[0].length;
  }
  appendInline(fragment, last ? trimNewline(text.slice(last), 'start') : text, username);
  return fragment;
}

// A block already stands on its own line: the newline beside it would add
// an empty one under white-space: pre-wrap.
function trimNewline(text, side) {
  if (side === 'end') return text.endsWith('\n') ? text.slice(0, -1) : text;
  return text.startsWith('\n') ? text.slice(1) : text;
}

function appendInline(parent, text, username) {
  let last = 0;
  for (const match of text.matchAll(INLINE_RE)) {
    if (match.index > last) parent.append(text.slice(last, match.index));
    last = match.index + match[0].length;
    const [, code, bold, italic, url, mention] = match;
    if (code !== undefined) {
      parent.append(element('code', code));
    } else if (bold !== undefined) {
      const strong = document.createElement('strong');
      appendInline(strong, bold, username);
      parent.append(strong);
    } else if (italic !== undefined) {
      const em = document.createElement('em');
      appendInline(em, italic, username);
      parent.append(em);
    } else if (url !== undefined) {
      const { candidate, href, rest } = splitUrl(url);
      parent.append(href ? link(href, candidate) : candidate, rest);
    } else if (mention !== undefined) {
      const span = element('span', match[0]);
      span.className = mentionKey(mention) === (username || '').toLowerCase() ? 'mention me' : 'mention';
      parent.append(span);
    }
  }
  if (last < text.length) parent.append(text.slice(last));
}

function element(tag, text) {
  const node = document.createElement(tag);
  node.textContent = text;
  return node;
}

// Trailing punctuation usually ends the sentence, not the URL; a closing
// parenthesis belongs to the URL only when it opened one.
function splitUrl(raw) {
  let end = raw.length;
  while (end > 0) {
    const ch = raw[end - 1];
    const unbalanced = ch === ')' && count(raw.slice(0, end), '(') < count(raw.slice(0, end), ')');
    if (!('.,;:!?\'"'.includes(ch) || unbalanced)) break;
    end -= 1;
  }
  const candidate = raw.slice(0, end);
  return { candidate, href: safeHref(candidate), rest: raw.slice(end) };
}

function count(text, ch) {
  return text.split(ch).length - 1;
}

function safeHref(candidate) {
  try {
    const url = new URL(candidate);
    return url.protocol === 'http:' || url.protocol === 'https:' ? url.href : null;
  } catch {
    return null;
  }
}

function link(href, text) {
  const a = document.createElement('a');
  a.href = href;
  a.textContent = text;
  a.rel = 'noopener noreferrer';
  a.target = '_blank';
  return a;
}
