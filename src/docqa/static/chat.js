/*
 * docqa web chat — plain ES2020, no framework, no build step.
 *
 * The page is served with `Content-Security-Policy: default-src 'self'`, so this file and
 * chat.css are the only code: no inline scripts, handlers or style attributes. Everything that
 * comes from the server is put into the page with textContent / createTextNode, never innerHTML.
 *
 * Stable hooks for browser tests (keep these when changing the markup):
 *   #question                 the question <textarea> (labelled "Your question")
 *   #send                     submit button; disabled while the box is empty or a request is pending
 *   #composer                 the <form> around #question and #send
 *   #composer-error           client-side refusal / input messages (e.g. over 2000 characters)
 *   #char-count               "n / 2000" counter
 *   #transcript               the conversation; data-conversation-id holds the current id ("" if none)
 *                             and aria-busy="true" while waiting for an answer
 *   .message                  every bubble in #transcript, plus one of:
 *     .user                   a question the user sent (.failed if it could not be answered)
 *     .answer                 an answer; data-answered="true|false", data-confidence="0.83",
 *                             data-conversation-id="…"
 *     .error                  an error bubble; data-status="<http status>|network|timeout"
 *     .notice                 an informational line (e.g. "conversation expired, new one started")
 *   .thinking                 the "thinking" indicator bubble, present only while waiting
 *   .short-answer             the short answer (a date, name, number...), when there is one
 *   .answer-text              the answer sentence(s)
 *   a.cite[data-rank]         citation marker "[n]" inside .answer-text, href="#<source id>"
 *   .confidence[data-level]   confidence indicator, level "high|medium|low"
 *   .sources                  <ol> of passages under an answer; for data-answered="false" it sits
 *                             inside <details class="closest"> ("Closest passages"), collapsed
 *   .source[data-rank]        one passage (also data-chunk-id; .cited if the answer quotes it)
 *   .source-text              the passage text; `mark` elements are the cited sentences
 *   .source-toggle            "Show more" / "Show less" button (aria-expanded) for long passages
 *   #status                   header status line; data-state="loading|ready|error|auth"
 *   #new-conversation         clears the transcript and forgets the conversation id
 *   #api-key-button           opens the API key settings (#settings form)
 *   #api-key                  API key input (stored in sessionStorage "docqa.apiKey")
 *   #api-key-save, #api-key-clear
 *   #announcer                visually hidden aria-live region announcing new answers / errors
 *   #empty-state              intro shown while the transcript is empty; .suggestion buttons
 *                             (made by library.js from the documents' headings)
 *   .source-page              "p. 3" in a source's line when the passage has a page number
 *   .source.weak              a weak match (score under half the best): dimmed, labelled .source-weak
 *
 * The conversation (its id and answers) is kept in sessionStorage ("docqa.conversation"), so a
 * reload shows it again and follow-ups go on. The documents asked come from library.js.
 */
(() => {
  'use strict';

  const MAX_CHARS = 2000;
  const TOP_K = 5;
  const REQUEST_TIMEOUT_MS = 90000;
  const HEALTH_RETRY_MS = 2000;
  const HEALTH_ERROR_RETRY_MS = 5000;
  const HEALTH_POLL_MS = 10000; // while ready: notices an outage, or a new index, by itself
  const CONVERSATION_STORAGE = 'docqa.conversation';
  const MAX_KEPT_TURNS = 20;
  const KEY_STORAGE = 'docqa.apiKey';
  const COLLAPSE_LEAD_CHARS = 140; // hide text before the first highlight if it is longer than this

  const $ = (sel) => document.querySelector(sel);

  const els = {
    status: $('#status'),
    statusText: $('#status .status-text'),
    newConversation: $('#new-conversation'),
    apiKeyButton: $('#api-key-button'),
    settings: $('#settings'),
    apiKey: $('#api-key'),
    apiKeyClear: $('#api-key-clear'),
    apiKeyState: $('#api-key-state'),
    main: $('#main'),
    emptyState: $('#empty-state'),
    transcript: $('#transcript'),
    announcer: $('#announcer'),
    composer: $('#composer'),
    question: $('#question'),
    send: $('#send'),
    charCount: $('#char-count'),
    composerError: $('#composer-error'),
  };

  const state = {
    conversationId: null,
    pending: null, // {controller} while a /chat request is in flight
    answerSeq: 0,
    healthTimer: 0,
    indexVersion: undefined,
    libraryReady: true,
    turns: [], // [{question, data}] of this conversation, kept across reloads
  };

  const library = () => window.docqaLibrary || null;

  /* ------------------------------------------------------------------ utilities */

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function storageGet(key) {
    try {
      return window.sessionStorage.getItem(key) || '';
    } catch (_) {
      return '';
    }
  }

  function storageSet(key, value) {
    try {
      if (value) window.sessionStorage.setItem(key, value);
      else window.sessionStorage.removeItem(key);
    } catch (_) {
      /* storage disabled: the key lives only in the input */
    }
  }

  function apiKey() {
    return storageGet(KEY_STORAGE) || (els.apiKey.value || '').trim();
  }

  function authHeaders() {
    const key = apiKey();
    return key ? { Authorization: `Bearer ${key}` } : {};
  }

  function escapeRegExp(s) {
    return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  }

  /* Find `needle` in `haystack` from `from`, treating any run of whitespace as equal. */
  function findLoose(haystack, needle, from = 0) {
    const words = String(needle || '').trim().split(/\s+/).filter(Boolean);
    if (!words.length) return null;
    const re = new RegExp(words.map(escapeRegExp).join('\\s+'), 'g');
    re.lastIndex = from;
    const m = re.exec(haystack);
    return m ? { start: m.index, end: m.index + m[0].length } : null;
  }

  function plural(n, one, many) {
    return `${n.toLocaleString('en')} ${n === 1 ? one : many}`;
  }

  function announce(text) {
    els.announcer.textContent = '';
    // A new text node after a tick makes screen readers announce repeated messages too.
    window.setTimeout(() => {
      els.announcer.textContent = text;
    }, 50);
  }

  function scrollToBottom() {
    const doc = document.scrollingElement || document.documentElement;
    window.scrollTo({ top: doc.scrollHeight, behavior: prefersReducedMotion() ? 'auto' : 'smooth' });
  }

  function prefersReducedMotion() {
    return window.matchMedia && window.matchMedia('(prefers-reduced-motion: reduce)').matches;
  }

  /* ------------------------------------------------------------------ status line */

  function setStatus(kind, text, title) {
    els.status.dataset.state = kind;
    els.statusText.textContent = text;
    if (title) els.status.title = title;
    else els.status.removeAttribute('title');
  }

  function scheduleHealth(ms) {
    window.clearTimeout(state.healthTimer);
    state.healthTimer = window.setTimeout(checkHealth, ms);
  }

  async function checkHealth() {
    let res;
    try {
      res = await fetch('/health', {
        headers: { Accept: 'application/json', ...authHeaders() },
        cache: 'no-store',
      });
    } catch (_) {
      setStatus('error', 'Server unreachable · retrying every few seconds…',
        'The page will reconnect by itself when the server is back.');
      state.indexVersion = undefined;
      scheduleHealth(HEALTH_ERROR_RETRY_MS);
      return;
    }
    if (res.status === 503) {
      setStatus('loading', 'Loading the document index…');
      scheduleHealth(HEALTH_RETRY_MS);
      return;
    }
    if (res.status === 401) {
      setStatus('auth', 'API key required');
      return;
    }
    if (!res.ok) {
      setStatus('error', `Server problem (${res.status}) · retrying…`);
      scheduleHealth(HEALTH_ERROR_RETRY_MS);
      return;
    }
    let body = {};
    try {
      body = await res.json();
    } catch (_) {
      /* keep defaults */
    }
    if (body && body.status && body.status !== 'ok') {
      setStatus('loading', 'Loading the document index…');
      scheduleHealth(HEALTH_RETRY_MS);
      return;
    }
    const docs = Number.isFinite(body.documents) ? body.documents : null;
    const chunks = Number.isFinite(body.chunks) ? body.chunks : null;
    const parts = [];
    if (docs !== null) parts.push(plural(docs, 'document', 'documents'));
    if (chunks !== null) parts.push(plural(chunks, 'passage', 'passages'));
    const details = [];
    if (body.model) details.push(`Model: ${body.model}`);
    if (body.index_built_at) details.push(`Index built: ${body.index_built_at}`);
    const text = docs === 0 ? 'Ready · no document yet' : (parts.length ? `${parts.join(' · ')} indexed` : 'Ready');
    setStatus('ready', text, details.join('\n'));
    const version = body.index_version === undefined ? null : body.index_version;
    if (state.indexVersion !== undefined && version !== state.indexVersion && library()) library().refresh();
    state.indexVersion = version;
    scheduleHealth(HEALTH_POLL_MS);
  }

  /* ------------------------------------------------------------------ composer */

  function updateComposer() {
    const text = els.question.value;
    const len = text.length;
    const waiting = Boolean(state.pending);
    els.send.disabled = waiting || text.trim() === '' || !state.libraryReady;
    els.send.setAttribute('aria-busy', waiting ? 'true' : 'false');
    els.charCount.textContent = `${len.toLocaleString('en')} / ${MAX_CHARS.toLocaleString('en')}`;
    els.charCount.classList.toggle('over', len > MAX_CHARS);
    els.charCount.classList.toggle('near', len > MAX_CHARS * 0.9 && len <= MAX_CHARS);
    if (len <= MAX_CHARS && els.composerError.dataset.kind === 'length') setComposerError('');
  }

  function setComposerError(text, kind = '') {
    els.composerError.textContent = text;
    els.composerError.dataset.kind = text ? kind : '';
    els.question.setAttribute('aria-invalid', text && kind === 'length' ? 'true' : 'false');
  }

  function restoreQuestion(text) {
    // Never overwrite something the user has typed since sending.
    if (!els.question.value.trim()) {
      els.question.value = text;
      updateComposer();
    }
  }

  /* ------------------------------------------------------------------ transcript */

  function syncEmptyState() {
    const empty = els.transcript.childElementCount === 0;
    els.emptyState.hidden = !empty;
    els.transcript.classList.toggle('is-empty', empty);
  }

  function setConversationId(id) {
    state.conversationId = id || null;
    els.transcript.dataset.conversationId = state.conversationId || '';
  }

  function appendMessage(node) {
    els.transcript.appendChild(node);
    syncEmptyState();
    return node;
  }

  function addUserMessage(text) {
    const node = el('article', 'message user');
    node.setAttribute('aria-label', 'You asked');
    node.appendChild(el('p', 'bubble-label visually-hidden', 'You'));
    node.appendChild(el('p', 'user-text', text));
    appendMessage(node);
    scrollToBottom();
    return node;
  }

  function addNotice(text) {
    const node = el('p', 'message notice', text);
    appendMessage(node);
    return node;
  }

  function addError(text, status, hint) {
    const node = el('div', 'message error');
    node.setAttribute('role', 'alert');
    node.dataset.status = String(status);
    node.appendChild(el('p', 'error-text', text));
    if (hint) node.appendChild(el('p', 'error-hint', hint));
    appendMessage(node);
    scrollToBottom();
    return node;
  }

  function showThinking() {
    const node = el('div', 'message thinking');
    const dots = el('span', 'dots');
    dots.setAttribute('aria-hidden', 'true');
    for (let i = 0; i < 3; i += 1) dots.appendChild(el('span', 'dot'));
    node.appendChild(dots);
    node.appendChild(el('span', 'thinking-text', 'Searching your documents…'));
    appendMessage(node);
    els.transcript.setAttribute('aria-busy', 'true');
    scrollToBottom();
    return node;
  }

  function hideThinking(node) {
    if (node && node.parentNode) node.parentNode.removeChild(node);
    if (!state.pending) els.transcript.setAttribute('aria-busy', 'false');
    syncEmptyState();
  }

  /* ------------------------------------------------------------------ answer rendering */

  function confidenceLevel(c) {
    if (c >= 0.7) return 'high';
    if (c >= 0.4) return 'medium';
    return 'low';
  }

  function renderConfidence(conf) {
    const c = Math.min(1, Math.max(0, Number(conf) || 0));
    const level = confidenceLevel(c);
    const pct = Math.round(c * 100);
    const wrap = el('div', 'confidence');
    wrap.dataset.level = level;
    const bars = el('span', 'confidence-bars');
    bars.setAttribute('aria-hidden', 'true');
    const filled = Math.max(1, Math.round(c * 5));
    for (let i = 0; i < 5; i += 1) bars.appendChild(el('span', i < filled ? 'bar on' : 'bar'));
    wrap.appendChild(bars);
    const label = `${level[0].toUpperCase()}${level.slice(1)} confidence`;
    wrap.appendChild(el('span', 'confidence-label', `${label} · ${pct}%`));
    return wrap;
  }

  /* Ranges [start, end) inside `text` to highlight, from the citations pointing at this source. */
  function highlightRanges(text, citations) {
    const ranges = [];
    for (const c of citations) {
      let start = Number(c.start);
      let end = Number(c.end);
      const valid = Number.isInteger(start) && Number.isInteger(end) && start >= 0 && end > start &&
        end <= text.length;
      const sentence = String(c.text || '').trim();
      const matches = valid && (!sentence ||
        text.slice(start, end).replace(/\s+/g, ' ').trim() === sentence.replace(/\s+/g, ' '));
      if (!matches && sentence) {
        const found = findLoose(text, sentence);
        if (found) {
          ({ start, end } = found);
        } else if (!valid) {
          continue;
        }
      } else if (!valid) {
        continue;
      }
      ranges.push([start, end]);
    }
    ranges.sort((a, b) => a[0] - b[0]);
    const merged = [];
    for (const r of ranges) {
      const last = merged[merged.length - 1];
      if (last && r[0] <= last[1]) last[1] = Math.max(last[1], r[1]);
      else merged.push([r[0], r[1]]);
    }
    return merged;
  }

  function toggleSource(li, expand) {
    const body = li.querySelector('.source-text');
    const btn = li.querySelector('.source-toggle');
    if (!body || !btn || btn.hidden) return;
    const open = expand === undefined ? body.classList.contains('collapsed') : expand;
    body.classList.toggle('collapsed', !open);
    btn.setAttribute('aria-expanded', open ? 'true' : 'false');
    btn.textContent = open ? 'Show less' : 'Show more';
  }

  function renderSource(src, citations, idPrefix) {
    const rank = Number(src.rank);
    const li = el('li', 'source');
    li.id = `${idPrefix}-src-${rank}`;
    li.dataset.rank = String(rank);
    if (src.chunk_id !== undefined) li.dataset.chunkId = String(src.chunk_id);
    li.tabIndex = -1;
    if (citations.length) li.classList.add('cited');
    if (src.weak === true) li.classList.add('weak');

    const head = el('div', 'source-head');
    head.appendChild(el('span', 'source-rank', String(rank)));
    const meta = el('div', 'source-meta');
    meta.appendChild(el('span', 'source-section', src.section || 'Untitled section'));
    const sub = el('span', 'source-sub');
    sub.appendChild(el('span', 'source-document', src.document || 'Document'));
    if (src.page !== undefined && src.page !== null) {
      sub.appendChild(document.createTextNode(' · '));
      sub.appendChild(el('span', 'source-page', `p. ${src.page}`));
    }
    sub.appendChild(document.createTextNode(' · '));
    const score = Number(src.score);
    const scoreEl = el('span', 'source-score', `score ${Number.isFinite(score) ? score.toFixed(2) : '–'}`);
    sub.appendChild(scoreEl);
    if (citations.length) {
      sub.appendChild(document.createTextNode(' · '));
      sub.appendChild(el('span', 'source-cited', 'cited'));
    }
    if (src.weak === true) {
      sub.appendChild(document.createTextNode(' · '));
      sub.appendChild(el('span', 'source-weak', 'weak match'));
    }
    meta.appendChild(sub);
    head.appendChild(meta);
    li.appendChild(head);

    const text = String(src.text || '');
    const body = el('p', 'source-text');
    const ranges = highlightRanges(text, citations);
    let cursor = 0;
    // Text before the first highlight is hidden while collapsed so the cited sentence shows.
    if (ranges.length && ranges[0][0] > COLLAPSE_LEAD_CHARS) {
      const cut = ranges[0][0];
      body.appendChild(el('span', 'lead', text.slice(0, cut)));
      const ell = el('span', 'lead-ellipsis', '… ');
      ell.setAttribute('aria-hidden', 'true');
      body.appendChild(ell);
      cursor = cut;
      body.classList.add('has-lead');
    }
    for (const [start, end] of ranges) {
      if (start > cursor) body.appendChild(document.createTextNode(text.slice(cursor, start)));
      body.appendChild(el('mark', '', text.slice(start, end)));
      cursor = end;
    }
    if (cursor < text.length) body.appendChild(document.createTextNode(text.slice(cursor)));
    body.id = `${li.id}-text`;
    body.classList.add('collapsed');
    li.appendChild(body);

    const btn = el('button', 'source-toggle link-button', 'Show more');
    btn.type = 'button';
    btn.setAttribute('aria-expanded', 'false');
    btn.setAttribute('aria-controls', body.id);
    btn.addEventListener('click', () => toggleSource(li));
    li.appendChild(btn);
    if (window.docqaViewer) window.docqaViewer.attach(li, src, citations); // viewer.js: "Open"
    return li;
  }

  /* Hide "show more" where the collapsed passage already shows everything. Needs layout. */
  function fitToggles(root) {
    for (const li of root.querySelectorAll('.source')) {
      const body = li.querySelector('.source-text');
      const btn = li.querySelector('.source-toggle');
      if (!body || !btn || !body.classList.contains('collapsed')) continue;
      if (body.getClientRects().length === 0) continue; // inside a closed <details>; check on open
      const overflowing = body.classList.contains('has-lead') || body.scrollHeight > body.clientHeight + 2;
      btn.hidden = !overflowing;
      if (!overflowing) body.classList.remove('collapsed');
    }
  }

  function renderAnswerText(answer, citations, idPrefix, sourceRanks) {
    const p = el('p', 'answer-text');
    let cursor = 0;
    const unplaced = [];
    const marker = (rank) => {
      const sup = el('sup', 'cite-wrap');
      const a = el('a', 'cite', `[${rank}]`);
      a.href = `#${idPrefix}-src-${rank}`;
      a.dataset.rank = String(rank);
      a.setAttribute('aria-label', `Source ${rank}`);
      sup.appendChild(a);
      return sup;
    };
    for (const c of citations) {
      const rank = Number(c.rank);
      if (!sourceRanks.has(rank)) continue;
      const found = findLoose(answer, c.text, cursor);
      if (!found) {
        if (!unplaced.includes(rank)) unplaced.push(rank);
        continue;
      }
      p.appendChild(document.createTextNode(answer.slice(cursor, found.end)));
      p.appendChild(marker(rank));
      cursor = found.end;
    }
    if (cursor < answer.length) p.appendChild(document.createTextNode(answer.slice(cursor)));
    for (const rank of unplaced) p.appendChild(marker(rank));
    return p;
  }

  function renderAnswer(data, question) {
    state.answerSeq += 1;
    const idPrefix = `a${state.answerSeq}`;
    const answered = data.answered === true;
    const answer = String(data.answer || '');
    const sources = Array.isArray(data.sources) ? data.sources.slice() : [];
    const citations = answered && Array.isArray(data.citations) ? data.citations : [];
    sources.sort((a, b) => Number(a.rank) - Number(b.rank));
    const sourceRanks = new Set(sources.map((s) => Number(s.rank)));
    const byChunk = new Map(sources.map((s) => [String(s.chunk_id), Number(s.rank)]));
    // A citation normally names its source by rank; fall back to chunk_id.
    const cites = citations.map((c) => {
      let rank = Number(c.rank);
      if (!sourceRanks.has(rank) && byChunk.has(String(c.chunk_id))) rank = byChunk.get(String(c.chunk_id));
      return { ...c, rank };
    });

    const node = el('article', 'message answer');
    node.id = idPrefix;
    node.dataset.answered = answered ? 'true' : 'false';
    node.dataset.confidence = String(Number(data.confidence) || 0);
    node.dataset.conversationId = String(data.conversation_id || '');
    node.setAttribute('aria-label', answered ? 'Answer' : 'No answer in the document');

    const bubble = el('div', 'answer-body');
    if (!answered) {
      const head = el('p', 'not-covered-label', 'Not covered by your documents');
      bubble.appendChild(head);
    }
    if (answered && data.short_answer) {
      // The short answer first, the evidence sentence(s) under it.
      bubble.appendChild(el('p', 'short-answer', String(data.short_answer)));
    }
    bubble.appendChild(renderAnswerText(answer, cites, idPrefix, sourceRanks));
    if (answered) bubble.appendChild(renderConfidence(data.confidence));
    node.appendChild(bubble);

    if (sources.length) {
      const list = el('ol', 'sources');
      list.setAttribute('aria-label', answered ? 'Sources' : 'Closest passages');
      for (const src of sources) {
        const own = cites.filter((c) => c.rank === Number(src.rank));
        list.appendChild(renderSource(src, own, idPrefix));
      }
      if (answered) {
        const block = el('section', 'sources-block');
        const h = el('h3', 'sources-title', `Sources (${sources.length})`);
        block.appendChild(h);
        block.appendChild(list);
        node.appendChild(block);
      } else {
        const details = el('details', 'closest sources-block');
        const summary = el('summary', 'sources-title', `Closest passages (${sources.length})`);
        details.appendChild(summary);
        details.appendChild(list);
        details.addEventListener('toggle', () => {
          if (details.open) fitToggles(details);
        });
        node.appendChild(details);
      }
    }

    const total = data.timings_ms && Number(data.timings_ms.total);
    if (Number.isFinite(total)) {
      const secs = total >= 1000 ? `${(total / 1000).toFixed(1)} s` : `${Math.round(total)} ms`;
      node.appendChild(el('p', 'answer-foot', `Answered in ${secs}`));
    }

    appendMessage(node);
    fitToggles(node);
    // Bring the question and the start of its answer into view (answers with sources are long).
    (question && question.isConnected ? question : node)
      .scrollIntoView({ block: 'start', behavior: prefersReducedMotion() ? 'auto' : 'smooth' });

    const n = sources.length;
    announce(answered
      ? `Answer: ${answer} ${n ? `(${plural(n, 'source', 'sources')} listed below)` : ''}`
      : `${answer} ${n ? `(${plural(n, 'closest passage', 'closest passages')} available)` : ''}`);
    return node;
  }

  /* Citation markers: expand the passage, scroll to it and flash it. */
  els.transcript.addEventListener('click', (ev) => {
    const link = ev.target.closest && ev.target.closest('a.cite');
    if (!link) return;
    const target = document.getElementById(link.getAttribute('href').slice(1));
    if (!target) return;
    ev.preventDefault();
    const details = target.closest('details');
    if (details && !details.open) details.open = true;
    toggleSource(target, true);
    target.scrollIntoView({ block: 'center', behavior: prefersReducedMotion() ? 'auto' : 'smooth' });
    target.focus({ preventScroll: true });
    target.classList.remove('flash');
    void target.offsetWidth; // restart the animation
    target.classList.add('flash');
    if (window.docqaViewer) window.docqaViewer.open(target); // the source in its document
  });

  /* ------------------------------------------------------------------ API */

  function errorDetail(body) {
    if (!body) return '';
    const d = body.detail;
    if (typeof d === 'string') return d;
    if (Array.isArray(d)) {
      return d.map((e) => {
        if (!e || typeof e !== 'object') return String(e);
        const loc = Array.isArray(e.loc) ? e.loc.filter((x) => x !== 'body').join('.') : '';
        return loc ? `${loc}: ${e.msg}` : String(e.msg || '');
      }).filter(Boolean).join('; ');
    }
    if (d && typeof d === 'object' && d.msg) return String(d.msg);
    return '';
  }

  function retryAfterSeconds(res) {
    const h = res.headers.get('Retry-After');
    if (!h) return null;
    const n = Number(h);
    if (Number.isFinite(n)) return Math.max(0, Math.ceil(n));
    const date = Date.parse(h);
    if (!Number.isNaN(date)) return Math.max(0, Math.ceil((date - Date.now()) / 1000));
    return null;
  }

  async function postChat(message, conversationId, controller) {
    const timer = window.setTimeout(() => controller.abort('timeout'), REQUEST_TIMEOUT_MS);
    try {
      const res = await fetch('/chat', {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', Accept: 'application/json', ...authHeaders() },
        body: JSON.stringify({
          message,
          conversation_id: conversationId || null,
          k: TOP_K,
          documents: library() ? library().selectedIds() : null, // [] asks every document
        }),
        signal: controller.signal,
      });
      let body = null;
      try {
        body = await res.json();
      } catch (_) {
        body = null;
      }
      return { res, body };
    } finally {
      window.clearTimeout(timer);
    }
  }

  async function ask(text) {
    const message = text.trim();
    if (!message || state.pending) return;
    if (text.length > MAX_CHARS) {
      setComposerError(
        `Your question is ${text.length.toLocaleString('en')} characters long; the limit is ` +
        `${MAX_CHARS.toLocaleString('en')}. Please shorten it.`, 'length');
      els.question.focus();
      return;
    }
    setComposerError('');

    const controller = new AbortController();
    state.pending = { controller };
    els.question.value = '';
    updateComposer();

    const userNode = addUserMessage(message);
    const thinking = showThinking();
    let sentId = state.conversationId;
    let outcome = null;
    try {
      let { res, body } = await postChat(message, sentId, controller);
      if (res.status === 404 && sentId) {
        setConversationId(null);
        addNotice('That conversation expired, so a new one was started. Asking your question again…');
        sentId = null;
        ({ res, body } = await postChat(message, null, controller));
      }
      outcome = { res, body };
    } catch (err) {
      outcome = { error: err };
    }
    if (state.pending && state.pending.controller === controller) state.pending = null;
    hideThinking(thinking);
    updateComposer();

    // Aborted by "New conversation": the transcript is already gone, nothing to report.
    if (controller.signal.aborted && controller.signal.reason !== 'timeout') return;

    if (outcome.error) {
      userNode.classList.add('failed');
      const timedOut = controller.signal.aborted;
      addError(
        timedOut ? 'The server took too long to answer.' : 'Could not reach the server.',
        timedOut ? 'timeout' : 'network',
        'Check your connection and try again — your question is back in the box below.');
      restoreQuestion(text);
      announce(timedOut ? 'The server took too long to answer.' : 'Could not reach the server.');
      els.question.focus();
      return;
    }

    const { res, body } = outcome;
    if (res.ok && body && typeof body.answer === 'string') {
      if (body.conversation_id !== state.conversationId) state.turns = [];
      setConversationId(body.conversation_id || state.conversationId);
      renderAnswer(body, userNode);
      keepTurn(message, body);
      return;
    }

    userNode.classList.add('failed');
    const detail = errorDetail(body);
    let errText;
    let hint = 'Your question is back in the box below.';
    switch (res.status) {
      case 401:
      case 403:
        errText = apiKey()
          ? 'The server rejected the API key.'
          : 'This server needs an API key.';
        hint = 'Enter the key in the API key panel above, then send your question again.';
        openSettings(true);
        setStatus('auth', 'API key required');
        break;
      case 404:
        setConversationId(null);
        errText = detail || 'The conversation could not be found.';
        break;
      case 413:
        errText = 'Your question is too long for the server.';
        break;
      case 429: {
        const secs = retryAfterSeconds(res);
        errText = secs !== null
          ? `Too many requests, retry in ${secs} s.`
          : 'Too many requests, please retry in a moment.';
        break;
      }
      case 409:
        errText = detail || 'There is no document to ask yet: upload one first.';
        break;
      case 503:
        errText = 'The service is still loading the document. Please try again in a few seconds.';
        setStatus('loading', 'Loading the document index…');
        scheduleHealth(HEALTH_RETRY_MS);
        break;
      case 400:
      case 422:
        errText = detail ? `The server could not accept the question: ${detail}` : 'The server could not accept the question.';
        break;
      default:
        errText = res.ok
          ? 'The server sent an answer this page could not read.'
          : `Something went wrong on the server (${res.status}).${detail ? ` ${detail}` : ''}`;
    }
    addError(errText, res.status, hint);
    restoreQuestion(text);
    announce(errText);
    if (res.status !== 401 && res.status !== 403) els.question.focus();
  }

  /* ------------------------------------------------------------------ settings (API key) */

  function refreshKeyUi() {
    const has = Boolean(storageGet(KEY_STORAGE));
    els.apiKeyButton.classList.toggle('has-key', has);
    els.apiKeyButton.textContent = has ? 'API key ✓' : 'API key';
    els.apiKeyButton.setAttribute('aria-label', has ? 'API key (set)' : 'API key');
  }

  function openSettings(open) {
    els.settings.hidden = !open;
    els.apiKeyButton.setAttribute('aria-expanded', open ? 'true' : 'false');
    if (open) {
      els.apiKey.value = storageGet(KEY_STORAGE);
      els.apiKey.focus();
    }
  }

  els.apiKeyButton.addEventListener('click', () => openSettings(els.settings.hidden));

  els.settings.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const key = els.apiKey.value.trim();
    storageSet(KEY_STORAGE, key);
    els.apiKeyState.textContent = key ? 'Key saved for this tab.' : 'No key set.';
    refreshKeyUi();
    openSettings(false);
    els.question.focus();
    checkHealth();
    if (library()) library().refresh(); // the document list needs the key too
  });

  els.apiKeyClear.addEventListener('click', () => {
    storageSet(KEY_STORAGE, '');
    els.apiKey.value = '';
    els.apiKeyState.textContent = 'Key removed.';
    refreshKeyUi();
    els.apiKey.focus();
  });

  els.settings.addEventListener('keydown', (ev) => {
    if (ev.key === 'Escape') {
      openSettings(false);
      els.apiKeyButton.focus();
    }
  });

  /* ------------------------------------------------------------------ wiring */

  els.composer.addEventListener('submit', (ev) => {
    ev.preventDefault();
    ask(els.question.value);
  });

  els.question.addEventListener('keydown', (ev) => {
    if (ev.key !== 'Enter' || ev.shiftKey || ev.isComposing || ev.keyCode === 229) return;
    ev.preventDefault();
    if (!els.send.disabled) ask(els.question.value);
  });

  els.question.addEventListener('input', updateComposer);

  els.newConversation.addEventListener('click', () => {
    if (state.pending) {
      state.pending.controller.abort('new-conversation');
      state.pending = null;
    }
    setConversationId(null);
    state.turns = [];
    saveConversation();
    els.transcript.replaceChildren();
    els.transcript.setAttribute('aria-busy', 'false');
    syncEmptyState();
    setComposerError('');
    updateComposer();
    announce('Started a new conversation.');
    window.scrollTo({ top: 0 });
    els.question.focus();
  });

  // Example questions are made by library.js; one listener serves the current ones.
  document.querySelector('#suggestions').addEventListener('click', (ev) => {
    const btn = ev.target.closest && ev.target.closest('.suggestion');
    if (!btn || state.pending) return;
    els.question.value = btn.textContent.trim();
    updateComposer();
    ask(els.question.value);
  });

  document.addEventListener('docqa:library', (ev) => {
    state.libraryReady = ev.detail.ready > 0;
    updateComposer();
    if (els.status.dataset.state === 'ready') scheduleHealth(0); // counts in the status line
  });

  /* ------------------------------------------------------------------ kept across reloads */

  function saveConversation() {
    try {
      if (!state.conversationId || !state.turns.length) {
        window.sessionStorage.removeItem(CONVERSATION_STORAGE);
        return;
      }
      const kept = { id: state.conversationId, turns: state.turns.slice(-MAX_KEPT_TURNS) };
      window.sessionStorage.setItem(CONVERSATION_STORAGE, JSON.stringify(kept));
    } catch (_) {
      /* storage full or disabled: the conversation lives until the page is left */
    }
  }

  function keepTurn(question, data) {
    state.turns.push({ question, data });
    saveConversation();
  }

  function restoreConversation() {
    let kept = null;
    try {
      kept = JSON.parse(window.sessionStorage.getItem(CONVERSATION_STORAGE) || 'null');
    } catch (_) {
      kept = null;
    }
    if (!kept || typeof kept.id !== 'string' || !Array.isArray(kept.turns)) return;
    setConversationId(kept.id);
    for (const turn of kept.turns) {
      if (!turn || typeof turn.question !== 'string' || !turn.data) continue;
      renderAnswer(turn.data, addUserMessage(turn.question));
      state.turns.push(turn);
    }
  }

  let resizeTimer = 0;
  window.addEventListener('resize', () => {
    window.clearTimeout(resizeTimer);
    resizeTimer = window.setTimeout(() => fitTogglesAll(), 150);
  });

  function fitTogglesAll() {
    // Re-evaluate toggles that were hidden because the passage fitted at the old width.
    for (const li of els.transcript.querySelectorAll('.source')) {
      const body = li.querySelector('.source-text');
      const btn = li.querySelector('.source-toggle');
      if (body && btn && btn.hidden) {
        body.classList.add('collapsed');
      }
    }
    fitToggles(els.transcript);
  }

  setConversationId(null);
  restoreConversation();
  els.transcript.setAttribute('aria-busy', 'false');
  refreshKeyUi();
  syncEmptyState();
  updateComposer();
  checkHealth();
})();
