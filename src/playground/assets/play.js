// The playground page. Everything that comes from a message, a reply, a log line or an API
// call is put in the page as text (textContent, createTextNode) or as attributes checked
// here (links: http and https only); nothing from data ever goes through innerHTML.
'use strict';

/** Messages drawn per conversation at once; "Earlier messages" draws more. */
const SHOWN_STEP = 200;
/** Events kept in memory per simulated user. */
const KEPT_PER_USER = 2000;
/** Entries kept in the developer panel. */
const PANEL_CAP = 400;
/** Event numbers remembered to skip an event arriving twice. */
const SEEN_CAP = 20000;
/** Events applied per animation frame: a flood of sends never blocks the page. */
const FRAME_BUDGET = 300;

const S = {
  boot: null,
  lastId: null,
  seen: new Set(),
  seenFloor: 0,
  account: '',
  hostUrl: '',
  siteUrl: null,
  users: [],
  current: null,
  menu: null,
  conv: new Map(),       // openid -> events of their conversation, oldest first
  shown: SHOWN_STEP,
  typing: new Map(),
  exchanges: new Map(),  // exchange id -> reply event (with its raw XML)
  selected: null,
  queue: [],
  scheduled: false,
  oldestLoaded: null,
};

const $ = (id) => document.getElementById(id);

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}

function safeUrl(url) {
  return typeof url === 'string' && /^https?:\/\//i.test(url.trim()) ? url.trim() : null;
}

function mediaUrl(mediaId) {
  return '/play/media/' + encodeURIComponent(mediaId);
}

// ---- text with links ------------------------------------------------------------------

/** Appends plain text to `parent`, with bare http(s) URLs as links. */
function appendLinkified(parent, text) {
  const urlPattern = /https?:\/\/[^\s<>"']+/gi;
  let last = 0;
  let m;
  while ((m = urlPattern.exec(text)) !== null) {
    if (m.index > last) parent.appendChild(document.createTextNode(text.slice(last, m.index)));
    parent.appendChild(link(m[0], m[0]));
    last = m.index + m[0].length;
  }
  if (last < text.length) parent.appendChild(document.createTextNode(text.slice(last)));
}

function link(href, label) {
  const a = el('a', null, label);
  a.href = href;
  a.rel = 'noopener noreferrer';
  a.addEventListener('click', (e) => { e.preventDefault(); openBrowser(href); });
  return a;
}

/** A text reply as WeChat shows it: newlines kept, `<a href="...">label</a>` as a link
 *  (http and https only), bare URLs as links, everything else as the text it is. */
function richText(parent, text) {
  const anchor = /<a\s+[^>]*?href\s*=\s*(["'])(.*?)\1[^>]*>([\s\S]*?)<\/a>/gi;
  let last = 0;
  let m;
  while ((m = anchor.exec(text)) !== null) {
    const href = safeUrl(m[2].replace(/&amp;/g, '&'));
    if (!href) continue;
    if (m.index > last) appendLinkified(parent, text.slice(last, m.index));
    parent.appendChild(link(href, m[3]));
    last = m.index + m[0].length;
  }
  if (last < text.length) appendLinkified(parent, text.slice(last));
}

// ---- the conversation ------------------------------------------------------------------

function avatar(who) {
  const a = el('div', 'avatar', who === 'me' ? 'Me' : (S.account || '?').slice(0, 2));
  a.setAttribute('aria-hidden', 'true');
  return a;
}

function row(who, content, ev, badge) {
  const r = el('div', 'msg ' + who);
  r.dataset.seq = ev.seq;
  r.appendChild(avatar(who));
  const body = el('div', 'body');
  if (who === 'bot') body.appendChild(el('div', 'name', S.account));
  if (badge) body.appendChild(el('span', 'badge', badge));
  body.appendChild(content);
  r.appendChild(body);
  if (ev.exchange) {
    content.tabIndex = 0;
    content.title = 'Click for the XML exchanged';
    const select = () => selectExchange(ev.exchange, content);
    content.addEventListener('click', select);
    content.addEventListener('keydown', (e) => { if (e.key === 'Enter') select(); });
  }
  return r;
}

function sysLine(text, cls, seq) {
  const d = el('div', 'sys' + (cls ? ' ' + cls : ''));
  if (seq) d.dataset.seq = seq;
  d.appendChild(el('span', null, text));
  return d;
}

function mediaTile(kind, mediaId, label) {
  const t = el('div', 'tile ' + kind);
  if (kind === 'image' && mediaId) {
    const img = document.createElement('img');
    img.alt = 'image ' + mediaId;
    img.src = mediaUrl(mediaId);
    img.addEventListener('error', () => img.remove());
    t.appendChild(img);
  }
  const icon = { image: '🖼', voice: '🔊', video: '▶' }[kind] || '';
  t.appendChild(el('div', 'caption', icon + ' ' + (label || kind) + (mediaId ? '\nmedia_id ' + mediaId : '')));
  return t;
}

function cover(url, className) {
  const c = el('div', className || 'cover');
  const href = safeUrl(url);
  if (href) {
    const img = document.createElement('img');
    img.alt = '';
    img.src = href;
    img.addEventListener('error', () => img.remove());
    c.appendChild(img);
  }
  return c;
}

function newsCard(articles) {
  if (articles.length <= 1) {
    const a = articles[0] || { title: '', description: '', picurl: '', url: '' };
    const card = el('div', 'card news-single');
    const art = el('div', 'article');
    if (safeUrl(a.picurl)) art.appendChild(cover(a.picurl));
    art.appendChild(el('div', 'article-title', a.title));
    if (a.description) art.appendChild(el('div', 'article-description', a.description));
    card.appendChild(art);
    const href = safeUrl(a.url);
    if (href) card.addEventListener('click', () => openBrowser(href));
    return card;
  }
  const card = el('div', 'card news-multi');
  articles.forEach((a, i) => {
    const art = el('div', 'article' + (i === 0 ? ' first' : ''));
    if (i === 0) art.appendChild(cover(a.picurl));
    art.appendChild(el('div', 'article-title', a.title));
    if (i > 0) {
      const thumb = cover(a.picurl, 'thumb');
      art.appendChild(thumb);
    }
    const href = safeUrl(a.url);
    if (href) art.addEventListener('click', () => openBrowser(href));
    card.appendChild(art);
  });
  // Drawn as the stacked list bots were designed for; say what a follower gets today.
  card.appendChild(el('div', 'muted note-first', 'WeChat now shows only the first article of a news reply or customer-service message'));
  return card;
}

function isLocal(url) {
  try {
    const u = new URL(url);
    return ['127.0.0.1', 'localhost', '[::1]', location.hostname].includes(u.hostname);
  } catch (_) { return false; }
}

function musicCard(r) {
  const card = el('div', 'card music');
  card.appendChild(el('div', 'note', '♪'));
  const text = el('div', 'text');
  text.appendChild(el('div', 'article-title', r.title));
  if (r.description) text.appendChild(el('div', 'muted', r.description));
  card.appendChild(text);
  const url = safeUrl(r.hq_url) || safeUrl(r.url);
  if (url && isLocal(url)) {
    const audio = document.createElement('audio');
    audio.controls = true;
    audio.preload = 'none';
    audio.src = url;
    card.appendChild(audio);
  } else if (url) {
    card.appendChild(link(url, url));
  }
  return card;
}

/** What the account sent, as WeChat draws it; `null` for a system line instead. */
function replyContent(r) {
  switch (r.type) {
    case 'text': { const b = el('div', 'bubble'); richText(b, r.content); return b; }
    case 'image': return mediaTile('image', r.media_id, 'image');
    case 'voice': return mediaTile('voice', r.media_id, 'voice');
    case 'video': return mediaTile('video', r.media_id, r.title || 'video');
    case 'music': return musicCard(r);
    case 'news': return newsCard(r.articles || []);
    default: return null;
  }
}

function userContent(m) {
  switch (m.type) {
    case 'text': return el('div', 'bubble', m.content);
    case 'image': return mediaTile('image', m.media_id, 'picture');
    case 'voice': return el('div', 'bubble', '🎤 voice' + (m.recognition ? ': ' + m.recognition : ''));
    case 'video': return el('div', 'bubble', '▶ video');
    case 'location': return el('div', 'bubble', '📍 ' + (m.label || 'location') + '\n' + m.lat + ', ' + m.lng);
    case 'link': {
      const b = el('div', 'bubble');
      b.appendChild(el('div', null, '🔗 ' + m.title));
      const href = safeUrl(m.url);
      if (href) b.appendChild(link(href, href));
      return b;
    }
    default: return null;
  }
}

function noticeCard(ev) {
  const card = el('div', 'notice');
  card.appendChild(el('div', 'kind', ev.notice === 'template' ? 'Template message' : 'Subscription notice'));
  card.appendChild(el('div', 'title', ev.title));
  const dl = el('dl');
  for (const [k, v] of ev.fields || []) {
    dl.appendChild(el('dt', null, k));
    dl.appendChild(el('dd', null, v));
  }
  card.appendChild(dl);
  const href = safeUrl(ev.url);
  if (href) card.appendChild(link(href, 'Details'));
  else if (ev.url) card.appendChild(el('div', 'details muted', ev.url));
  return card;
}

/** One conversation event as its DOM node. */
function render(ev) {
  switch (ev.kind) {
    case 'user': {
      if (ev.message.type === 'event') return sysLine('You ' + ev.message.text, null, ev.seq);
      return row('me', userContent(ev.message) || el('div', 'bubble', ev.message.type), ev);
    }
    case 'reply': case 'broadcast': {
      const r = ev.reply;
      if (r.type === 'none') return sysLine('no reply', 'dim', ev.seq);
      if (r.type === 'transfer') {
        return sysLine('transferred to customer service' + (r.kf_account ? ' (' + r.kf_account + ')' : ''), null, ev.seq);
      }
      if (r.type === 'other') return sysLine(r.summary, null, ev.seq);
      const badge = ev.kind === 'broadcast' ? 'broadcast' : (ev.via === 'kf' ? 'customer service' : null);
      return row('bot', replyContent(r), ev, badge);
    }
    case 'failed': return sysLine('not delivered: ' + ev.error, 'error', ev.seq);
    case 'notice': return row('bot', noticeCard(ev), ev);
    default: return null;
  }
}

function conversationOf(openid) {
  if (!S.conv.has(openid)) S.conv.set(openid, []);
  return S.conv.get(openid);
}

function drawConversation() {
  const box = $('messages');
  box.replaceChildren();
  const events = conversationOf(S.current);
  const from = Math.max(0, events.length - S.shown);
  for (const ev of events.slice(from)) {
    const node = render(ev);
    if (node) box.appendChild(node);
  }
  $('earlier').hidden = from === 0 && !(S.oldestLoaded > 1);
  drawTyping();
  scrollDown();
}

function appendToConversation(ev) {
  const node = render(ev);
  if (!node) return;
  const box = $('messages');
  const conv = $('conversation');
  const atBottom = conv.scrollHeight - conv.scrollTop - conv.clientHeight < 80;
  box.appendChild(node);
  while (box.childElementCount > S.shown) {
    box.firstElementChild.remove();
    $('earlier').hidden = false;
  }
  if (atBottom || (ev.kind === 'user')) scrollDown();
}

function scrollDown() {
  const conv = $('conversation');
  conv.scrollTop = conv.scrollHeight;
}

function drawTyping() {
  $('typing').hidden = !S.typing.get(S.current);
}

// ---- the raw XML of a bubble -----------------------------------------------------------

function selectExchange(exchange, node) {
  document.querySelectorAll('.selected').forEach((n) => n.classList.remove('selected'));
  node.classList.add('selected');
  S.selected = exchange;
  drawRaw();
  if (!$('raw-toggle').checked) {
    $('raw-toggle').checked = true;
    $('raw').hidden = false;
  }
}

function drawRaw() {
  const reply = S.exchanges.get(S.selected);
  const pre = $('raw');
  if (!reply) { pre.textContent = 'Click a bubble to see the XML it was sent as.'; return; }
  const raw = reply.raw;
  if (!raw) { pre.textContent = 'not delivered: ' + (reply.error || ''); return; }
  let text = 'POST /wechat?' + raw.query + '\n\n' + raw.request_body + '\n';
  if (raw.request_body !== raw.message) text += '\n-- the message inside the envelope --\n' + raw.message + '\n';
  text += '\n-- answer --\n' + raw.response_body + '\n';
  if (raw.response_body !== raw.reply) text += '\n-- the reply inside the envelope --\n' + raw.reply + '\n';
  pre.textContent = text;
}

// ---- the developer panel ---------------------------------------------------------------

function panelEntry(ev) {
  let li;
  switch (ev.kind) {
    case 'api': {
      const refused = ev.answer && ev.answer.errcode && ev.answer.errcode !== 0;
      li = el('li', 'api' + (refused || ev.status >= 400 ? ' refused' : ''));
      const details = el('details');
      const summary = el('summary');
      summary.appendChild(document.createTextNode(ev.method + ' '));
      summary.appendChild(el('span', 'path', ev.path));
      let outcome = ' → ' + ev.status;
      if (ev.answer && ev.answer.errcode !== undefined) outcome += ' errcode ' + ev.answer.errcode + ' ' + (ev.answer.errmsg || '');
      summary.appendChild(document.createTextNode(outcome));
      details.appendChild(summary);
      if (ev.query && ev.query.length) details.appendChild(el('pre', null, 'query: ' + ev.query.map(([k, v]) => k + '=' + v).join('&')));
      if (ev.body) details.appendChild(el('pre', null, 'body: ' + JSON.stringify(ev.body, null, 2)));
      if (ev.parts && ev.parts.length) details.appendChild(el('pre', null, 'parts: ' + JSON.stringify(ev.parts)));
      if (ev.answer) details.appendChild(el('pre', null, 'answer: ' + JSON.stringify(ev.answer, null, 2)));
      li.appendChild(details);
      break;
    }
    case 'http': li = el('li', 'http', '[http] ' + ev.line); break;
    case 'log': {
      let text = '[' + (ev.target === 'script' ? 'script ' : '') + ev.level + '] ' + ev.message;
      if (ev.at) text += ' (' + ev.at + ')';
      if (ev.fields) text += ' ' + ev.fields;
      li = el('li', 'log ' + ev.level, text);
      break;
    }
    case 'reload_error': li = el('li', 'reload_error', ev.message); break;
    case 'generation': li = el('li', 'generation', 'scripts loaded: generation ' + ev.generation); break;
    default: return;
  }
  const list = $('panel-list');
  const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
  list.appendChild(li);
  while (list.childElementCount > PANEL_CAP) list.firstElementChild.remove();
  if (atBottom) list.scrollTop = list.scrollHeight;
}

// ---- users and menu --------------------------------------------------------------------

function drawUsers() {
  const select = $('user-select');
  select.replaceChildren();
  for (const u of S.users) {
    const o = el('option', null, u.openid);
    o.value = u.openid;
    select.appendChild(o);
  }
  if (!S.current || !S.users.some((u) => u.openid === S.current)) S.current = S.users.length ? S.users[0].openid : null;
  select.value = S.current;
  drawFollow();
}

function drawFollow() {
  const u = S.users.find((x) => x.openid === S.current);
  const following = !!(u && u.following);
  $('follow-state').textContent = (S.current || '') + (following ? ' · following' : ' · not following');
  $('follow').disabled = following;
  $('unfollow').disabled = !following;
}

function drawMenu() {
  const nav = $('menu');
  nav.replaceChildren();
  const buttons = (S.menu && Array.isArray(S.menu.button)) ? S.menu.button : [];
  for (const b of buttons.slice(0, 3)) {
    const item = el('div', 'menu-item');
    const subs = Array.isArray(b.sub_button) ? b.sub_button : (b.sub_button && b.sub_button.list) || [];
    const top = el('button', 'menu-btn', b.name || '');
    top.type = 'button';
    item.appendChild(top);
    if (subs.length) {
      top.classList.add('has-sub');
      top.setAttribute('aria-expanded', 'false');
      const list = el('ul', 'submenu');
      list.hidden = true;
      for (const s of subs.slice(0, 5)) {
        const li = el('li');
        const sb = el('button', 'menu-btn', s.name || '');
        sb.type = 'button';
        sb.addEventListener('click', () => { closeMenus(); menuAction(s); });
        li.appendChild(sb);
        list.appendChild(li);
      }
      item.appendChild(list);
      top.addEventListener('click', () => {
        const open = list.hidden;
        closeMenus();
        list.hidden = !open;
        top.setAttribute('aria-expanded', String(open));
      });
    } else {
      top.addEventListener('click', () => { closeMenus(); menuAction(b); });
    }
    nav.appendChild(item);
  }
}

function closeMenus() {
  document.querySelectorAll('.submenu').forEach((l) => { l.hidden = true; });
  document.querySelectorAll('.menu-btn.has-sub').forEach((b) => b.setAttribute('aria-expanded', 'false'));
}

function menuAction(b) {
  const key = b.key || '';
  switch (b.type) {
    case 'click': return send({ kind: 'click', key });
    case 'view': {
      const href = safeUrl(b.url);
      if (!href) return showError('this button\'s URL is not http(s): ' + b.url);
      // Opened once the host heard of it: the page's sign-in is then this user's.
      return send({ kind: 'view', url: href }).finally(() => openBrowser(href));
    }
    case 'scancode_push': case 'scancode_waitmsg': {
      const result = prompt('What does the scanned code say?', 'https://example.com/scanned');
      if (result === null) return;
      return send({ kind: 'scancode', event: b.type, key, result });
    }
    case 'pic_sysphoto': case 'pic_photo_or_album': case 'pic_weixin':
      return send({ kind: 'pics', event: b.type, key, count: 1 });
    case 'location_select':
      return send({ kind: 'location_select', key, lat: Number($('lat').value), lng: Number($('lng').value), label: $('place').value });
    case 'miniprogram': {
      const href = safeUrl(b.url);
      if (href) openBrowser(href);
      return;
    }
    default:
      return showError('WeChat handles a ' + b.type + ' button itself; the bot is not told');
  }
}

/** Where the phone browser loads `href`: the bot's own pages (on the host, or at its
 *  configured public address) go through the host's sign-in first, so they open signed in as
 *  the current user, as pages opened inside WeChat are. */
function framed(href) {
  try {
    const host = new URL(S.hostUrl);
    let u = new URL(href);
    if (S.siteUrl && href.startsWith(S.siteUrl)) u = new URL(href.slice(S.siteUrl.length) || '/', host);
    if (u.origin === host.origin) {
      if (u.pathname.startsWith('/oauth/')) return u.href;
      return host.origin + '/oauth/login?next=' + encodeURIComponent(u.pathname + u.search);
    }
  } catch (_) { /* not a URL the host serves */ }
  return href;
}

function openBrowser(url) {
  const href = safeUrl(url);
  if (!href) return;
  $('browser-url').textContent = href;
  $('browser-open').href = href;
  $('browser-frame').src = framed(href);
  $('browser').hidden = false;
  $('browser-close').focus();
}

// ---- talking to the backend ------------------------------------------------------------

function showError(text) {
  const e = $('error');
  e.textContent = text;
  e.hidden = false;
  clearTimeout(showError.timer);
  showError.timer = setTimeout(() => { e.hidden = true; }, 6000);
}

async function answerOf(response) {
  let body = null;
  try { body = await response.json(); } catch (_) { /* not JSON */ }
  if (!response.ok) throw new Error((body && body.error) || ('HTTP ' + response.status));
  return body;
}

async function send(message) {
  if (!S.current) return;
  try {
    const response = await fetch('/play/send', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(Object.assign({ user: S.current }, message)),
    });
    const answer = await answerOf(response);
    enqueue(answer.sent);
    enqueue(answer.reply);
  } catch (e) {
    showError(String(e.message || e));
  }
}

async function sendPicture(file) {
  try {
    const q = new URLSearchParams({ user: S.current, name: file.name || 'photo.jpg' });
    const response = await fetch('/play/picture?' + q, {
      method: 'POST',
      headers: { 'content-type': file.type || 'application/octet-stream' },
      body: file,
    });
    const answer = await answerOf(response);
    enqueue(answer.sent);
    enqueue(answer.reply);
  } catch (e) {
    showError(String(e.message || e));
  }
}

/** Tells the playground who the page plays now: pages it opens sign in as them. */
function selectUser() {
  if (!S.current) return;
  fetch('/play/select', {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ user: S.current }),
  }).catch(() => { /* the stream's reconnect will tell */ });
}

async function addUser() {
  try {
    const response = await fetch('/play/users', {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}',
    });
    const user = await answerOf(response);
    if (!S.users.some((u) => u.openid === user.openid)) S.users.push(user);
    S.current = user.openid;
    selectUser();
    drawUsers();
    drawConversation();
  } catch (e) {
    showError(String(e.message || e));
  }
}

async function loadEarlier() {
  const events = conversationOf(S.current);
  if (events.length > S.shown) {
    S.shown += SHOWN_STEP;
    return drawConversation();
  }
  const before = S.oldestLoaded || (events[0] && events[0].seq) || 1;
  try {
    const page = await answerOf(await fetch('/play/feed?limit=500&before=' + before));
    if (!page.length) { S.oldestLoaded = 1; return drawConversation(); }
    S.oldestLoaded = page[0].seq;
    const byUser = new Map();
    for (const ev of page) {
      if (!ev.user || !isConversation(ev)) continue;
      if (!byUser.has(ev.user)) byUser.set(ev.user, []);
      byUser.get(ev.user).push(ev);
      if (ev.kind === 'reply' && ev.exchange) S.exchanges.set(ev.exchange, ev);
    }
    for (const [user, older] of byUser) {
      const conv = conversationOf(user);
      const first = conv.length ? conv[0].seq : Infinity;
      conv.unshift(...older.filter((e) => e.seq < first));
    }
    S.shown += SHOWN_STEP;
    drawConversation();
  } catch (e) {
    showError(String(e.message || e));
  }
}

function isConversation(ev) {
  return ['user', 'reply', 'failed', 'notice', 'broadcast'].includes(ev.kind);
}

// ---- the event stream ------------------------------------------------------------------

function enqueue(ev) {
  S.queue.push(ev);
  if (!S.scheduled) {
    S.scheduled = true;
    requestAnimationFrame(drain);
  }
}

function drain() {
  S.scheduled = false;
  const batch = S.queue.splice(0, FRAME_BUDGET);
  for (const ev of batch) apply(ev);
  if (S.queue.length) {
    S.scheduled = true;
    requestAnimationFrame(drain);
  }
}

/** Whether the event was applied already. Events come from two roads (the stream, and the
 *  answer to a send carrying its message and reply), so one arriving with a lower number
 *  than the newest seen may still be new: a set of numbers, not a high-water mark. */
function seenBefore(seq) {
  if (S.seen.has(seq) || seq <= S.seenFloor) return true;
  S.seen.add(seq);
  if (S.seen.size > SEEN_CAP) {
    const sorted = [...S.seen].sort((a, b) => a - b);
    S.seenFloor = sorted[sorted.length - SEEN_CAP / 2];
    S.seen = new Set(sorted.filter((n) => n > S.seenFloor));
  }
  return false;
}

function apply(ev) {
  if (seenBefore(ev.seq)) return;
  if (S.oldestLoaded === null) {
    S.oldestLoaded = ev.seq;
    // The playground keeps events older than those a new page was given.
    if (ev.seq > 1) $('earlier').hidden = false;
  }
  if (isConversation(ev)) {
    const conv = conversationOf(ev.user);
    conv.push(ev);
    if (conv.length > KEPT_PER_USER) conv.splice(0, conv.length - KEPT_PER_USER);
    if (ev.kind === 'reply' && ev.exchange) S.exchanges.set(ev.exchange, ev);
    if (ev.kind === 'failed') S.exchanges.set(ev.exchange, ev);
    if (ev.kind === 'reply' && ev.via === 'kf') S.typing.set(ev.user, false);
    if (ev.user === S.current) { appendToConversation(ev); drawTyping(); }
    return;
  }
  switch (ev.kind) {
    case 'typing':
      S.typing.set(ev.user, ev.on);
      if (ev.user === S.current) drawTyping();
      return;
    case 'menu':
      S.menu = ev.menu;
      drawMenu();
      return;
    case 'user_state': {
      const u = S.users.find((x) => x.openid === ev.user);
      if (u) u.following = ev.following; else S.users.push({ openid: ev.user, following: ev.following });
      drawUsers();
      return;
    }
    case 'generation':
      $('generation').textContent = 'generation ' + ev.generation;
      $('reload-error').hidden = true;
      panelEntry(ev);
      return;
    case 'reload_error':
      $('reload-error').textContent = ev.message;
      $('reload-error').hidden = false;
      panelEntry(ev);
      return;
    default:
      panelEntry(ev);
  }
}

function reset(snapshot) {
  S.boot = snapshot.boot;
  S.account = snapshot.account;
  S.hostUrl = snapshot.host_url;
  S.siteUrl = snapshot.site_url ? snapshot.site_url.replace(/\/+$/, '') : null;
  S.users = snapshot.users || [];
  S.menu = snapshot.menu;
  S.seen = new Set();
  S.seenFloor = 0;
  S.oldestLoaded = null;
  S.conv = new Map();
  S.exchanges = new Map();
  S.typing = new Map();
  S.queue = [];
  S.shown = SHOWN_STEP;
  $('account-name').textContent = S.account;
  document.title = S.account + ' · wechat-lua playground';
  $('generation').textContent = 'generation ' + snapshot.generation;
  $('panel-list').replaceChildren();
  $('reload-error').hidden = true;
  drawUsers();
  selectUser();
  drawMenu();
  drawConversation();
}

let source = null;

function connect() {
  if (source) source.close();
  const url = '/play/events' + (S.lastId ? '?after=' + encodeURIComponent(S.lastId) : '');
  source = new EventSource(url);
  source.addEventListener('open', () => { $('conn').className = 'conn up'; $('conn').title = 'connected'; });
  source.addEventListener('reset', (e) => reset(JSON.parse(e.data)));
  source.addEventListener('message', (e) => {
    if (e.lastEventId) S.lastId = e.lastEventId;
    enqueue(JSON.parse(e.data));
  });
  source.addEventListener('error', () => {
    $('conn').className = 'conn down';
    $('conn').title = 'reconnecting…';
    // EventSource retries by itself unless it gave up; then start a new one.
    if (source.readyState === EventSource.CLOSED) setTimeout(connect, 1000);
  });
}

// ---- wiring ----------------------------------------------------------------------------

function init() {
  $('composer').addEventListener('submit', (e) => {
    e.preventDefault();
    const text = $('input').value;
    if (!text.trim()) return;
    $('input').value = '';
    send({ kind: 'text', content: text });
  });
  $('input').addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      $('composer').requestSubmit();
    }
  });
  $('more').addEventListener('click', () => {
    const open = $('attach').hidden;
    $('attach').hidden = !open;
    $('more').setAttribute('aria-expanded', String(open));
  });
  $('send-location').addEventListener('click', () => send({
    kind: 'location', lat: Number($('lat').value), lng: Number($('lng').value), label: $('place').value,
  }));
  $('picture').addEventListener('change', () => {
    const file = $('picture').files[0];
    if (file) sendPicture(file);
    $('picture').value = '';
  });
  $('send-voice').addEventListener('click', () => send({ kind: 'voice', recognition: $('recognition').value }));
  $('send-video').addEventListener('click', () => send({ kind: 'video' }));
  $('send-link').addEventListener('click', () => send({ kind: 'link', title: $('link-title').value, url: $('link-url').value }));
  $('follow').addEventListener('click', () => send({ kind: 'subscribe' }));
  $('unfollow').addEventListener('click', () => send({ kind: 'unsubscribe' }));
  $('scan').addEventListener('click', () => {
    const scene = prompt('QR code scene (scene_str or scene_id)', 'promo');
    if (scene === null || !scene.trim()) return;
    const u = S.users.find((x) => x.openid === S.current);
    // A follower scanning gets SCAN; someone new follows through the code.
    if (u && u.following) send({ kind: 'scan', key: scene.trim() });
    else send({ kind: 'subscribe', scene: scene.trim() });
  });
  $('user-select').addEventListener('change', () => {
    S.current = $('user-select').value;
    selectUser();
    S.shown = SHOWN_STEP;
    drawFollow();
    drawConversation();
  });
  $('add-user').addEventListener('click', addUser);
  $('earlier').addEventListener('click', loadEarlier);
  $('browser-close').addEventListener('click', () => {
    $('browser').hidden = true;
    $('browser-frame').src = 'about:blank';
  });
  $('raw-toggle').addEventListener('change', () => { $('raw').hidden = !$('raw-toggle').checked; drawRaw(); });
  $('clear-panel').addEventListener('click', () => $('panel-list').replaceChildren());
  document.querySelectorAll('.filter').forEach((box) => box.addEventListener('change', () => {
    $('panel').classList.toggle('hide-' + box.value, !box.checked);
  }));
  document.addEventListener('keydown', (e) => {
    if (e.key === 'Escape') { closeMenus(); if (!$('browser').hidden) $('browser-close').click(); }
  });
  connect();
}

document.addEventListener('DOMContentLoaded', init);
