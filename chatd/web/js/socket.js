// The page's one WebSocket to /chat, shared by every room.
//
// The token travels in the first frame ({"action":"auth"}), never in the
// URL, so it cannot end up in a proxy's access log. The socket counts as
// ready once the server answers `authenticated`. When it drops it comes
// back by itself, with jittered exponential backoff, until stop() is
// called or the server refuses the token.

const BACKOFF_FIRST_MS = 500;
const BACKOFF_MAX_MS = 10000;

export class ChatSocket {
  // handlers: onReady(), onFrame(event), onDown(closeEvent), onChange()
  constructor(tokenOf, handlers) {
    this.tokenOf = tokenOf;
    this.handlers = handlers;
    this.ws = null;
    this.ready = false;
    this.stopped = true;
    this.refused = false;    // the server said the token is bad: do not retry
    this.attempt = 0;        // failed attempts in a row, drives the backoff
    this.retryTimer = null;
    this.retryDetail = '';
  }

  start() {
    this.stopped = false;
    this.refused = false;
    this.connect();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    const ws = this.ws;
    this.ws = null;
    this.ready = false;
    if (ws) ws.close(1000, 'bye');
    this.handlers.onChange();
  }

  // The browser says the network is back: try now rather than wait.
  retryNow() {
    if (this.stopped || this.ws) return;
    this.attempt = 0;
    this.connect();
  }

  // Frames go out only on an authenticated socket; false means "not sent".
  send(frame) {
    if (!this.ready) return false;
    this.ws.send(JSON.stringify(frame));
    return true;
  }

  connect() {
    clearTimeout(this.retryTimer);
    this.retryTimer = null;
    const token = this.tokenOf();
    if (this.stopped || this.ws || !token) return;
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const ws = new WebSocket(`${scheme}//${location.host}/chat`);
    this.ws = ws;
    this.ready = false;
    ws.addEventListener('open', () => {
      if (ws === this.ws) ws.send(JSON.stringify({ action: 'auth', token }));
    });
    ws.addEventListener('message', (event) => { if (ws === this.ws) this.onMessage(event.data); });
    ws.addEventListener('close', (event) => { if (ws === this.ws) this.onClose(event); });
    this.handlers.onChange();
  }

  onMessage(data) {
    let event;
    try {
      event = JSON.parse(data);
    } catch {
      console.warn('chatd: ignoring a frame that is not JSON');
      return;
    }
    if (event.action === 'authenticated' && !this.ready) {
      this.ready = true;
      this.attempt = 0;
      this.handlers.onReady();
      this.handlers.onChange();
      return;
    }
    if (event.action === 'error' && event.code === 'unauthorized') this.refused = true;
    this.handlers.onFrame(event);
  }

  onClose(event) {
    this.ws = null;
    this.ready = false;
    this.handlers.onDown(event);
    if (!this.stopped && !this.refused) this.scheduleRetry();
    this.handlers.onChange();
  }

  // Full jitter: anywhere from 0 to the doubling base. After a restart every
  // page retries at once; with delays of the base +-20% they came back in
  // waves that a server still starting refused together, and 19,000 clients
  // took 28 s instead of 20 to be live again (bench/storm.py).
  scheduleRetry() {
    const base = Math.min(BACKOFF_MAX_MS, BACKOFF_FIRST_MS * 2 ** this.attempt);
    const delay = Math.round(Math.random() * base);
    this.attempt += 1;
    this.retryDetail = `retrying in ${Math.max(1, Math.ceil(delay / 1000))} s`;
    this.retryTimer = setTimeout(() => this.connect(), delay);
  }
}
