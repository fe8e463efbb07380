// Every HTTP call to /api/*. A call returns the parsed JSON body or throws
// an ApiError carrying the server's error code and human sentence. A 401 on
// anything but login/register means the session is dead: the handler set
// by setUnauthorizedHandler runs once, before the error is thrown.

import { session } from './session.js';

const PAGE_SIZE = pageSizeFromUrl(); // ?pageSize=N (1–500), for tests

let unauthorizedHandler = () => {};

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
    this.isLogin = false;
  }

  // A 401 that already sent the user to the login view: not worth a banner.
  get alreadyHandled() {
    return this.status === 401 && !this.isLogin;
  }
}

export function setUnauthorizedHandler(handler) {
  unauthorizedHandler = handler;
}

export async function api(method, path, body) {
  const headers = {};
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (session.token) headers.Authorization = `Bearer ${session.token}`;
  let res;
  try {
    res = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch {
    throw new ApiError(0, 'network', 'Cannot reach the chat server. Check the connection and try again.');
  }
  const data = await readJson(res);
  if (res.ok) return data;
  throw errorFrom(res, data, path);
}

async function readJson(res) {
  const text = await res.text();
  if (!text) return null;
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}

function errorFrom(res, data, path) {
  const code = (data && data.error) || `http_${res.status}`;
  let message = (data && data.message) || `The server answered ${res.status} ${res.statusText}.`;
  const retryAfter = res.headers.get('Retry-After');
  if (res.status === 429 && retryAfter) message += ` Try again in ${retryAfter} s.`;
  const err = new ApiError(res.status, code, message);
  // On login or register a 401 means bad credentials, not a dead session.
  err.isLogin = path === '/api/login' || path === '/api/register';
  if (err.alreadyHandled) unauthorizedHandler();
  return err;
}

export function historyPath(roomId, before, limit = PAGE_SIZE) {
  const params = new URLSearchParams({ limit: String(limit) });
  if (before !== undefined && before !== null) params.set('before', String(before));
  return `/api/chat-history/${encodeURIComponent(roomId)}?${params}`;
}

export function membersPath(roomId) {
  return `/api/rooms/${encodeURIComponent(roomId)}/members`;
}

function pageSizeFromUrl() {
  const n = Number(new URLSearchParams(location.search).get('pageSize'));
  return Number.isInteger(n) && n >= 1 && n <= 500 ? n : 50;
}
