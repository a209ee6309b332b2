/*
 * docqa document library panel — plain ES2020, no framework, CSP-safe (no inline code, no
 * innerHTML: server text goes in with textContent).
 *
 * Lists GET /documents in a compact panel that holds hundreds: filter by name and type, counts
 * (shown of total, by status), tick several (to ask only those, or to delete them after one
 * confirmation), collapse (remembered in localStorage). Rows are kept per document id and
 * only updated when a poll brings changes, so filtering just hides rows. Fires
 * `docqa:documents` when the list or the ticks change (scope.js follows it); chat.js,
 * upload.js and scope.js read `window.docqaLibrary`.
 *
 * Stable hooks for browser tests:
 *   #documents li.document[data-id][data-status]   one document; status indexed|queued|indexing|failed|skipped
 *   .document-name, .document-check (ticked: asked, or deleted by #delete-selected)
 *   .document-delete       asks for confirmation; .confirm-yes / .confirm-no answer it
 *   #library-filter, #library-type   filter by name, by type; #library-count "N" or "n of N"
 *   #library-stats         counts by status; #select-shown ticks every shown document
 *   #delete-selected, #delete-confirm (.confirm-yes / .confirm-no)
 *   #library-toggle        collapses #library-body; #library-message (data-kind="error" on errors)
 */
(() => {
  'use strict';

  const POLL_MS = 1000;
  const RETRY_MS = 5000;
  const KEY_STORAGE = 'docqa.apiKey';
  const PICK_STORAGE = 'docqa.documents';
  const COLLAPSE_STORAGE = 'docqa.libraryCollapsed';
  const STATUS_WORDS = [['indexed', 'ready'], ['queued', 'waiting'], ['indexing', 'indexing'],
    ['failed', 'failed'], ['skipped', 'skipped']];

  const $ = (sel) => document.querySelector(sel);
  const els = {
    title: $('#title'),
    count: $('#library-count'),
    stats: $('#library-stats'),
    toggle: $('#library-toggle'),
    body: $('#library-body'),
    filter: $('#library-filter'),
    type: $('#library-type'),
    selectShown: $('#select-shown'),
    deleteSelected: $('#delete-selected'),
    deleteConfirm: $('#delete-confirm'),
    noMatch: $('#library-no-match'),
    list: $('#documents'),
    message: $('#library-message'),
  };

  const state = {
    documents: [],
    rows: new Map(), // document id -> { li, key } (key: the record last drawn, as JSON)
    loaded: false,
    picked: new Set(readPicked()),
    timer: 0,
  };

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function button(className, text) {
    const b = el('button', className, text);
    b.type = 'button';
    return b;
  }

  function stored(storage, key, value) {
    try {
      if (value === undefined) return window[storage].getItem(key) || '';
      if (value) window[storage].setItem(key, value);
      else window[storage].removeItem(key);
    } catch (_) {
      /* storage disabled: nothing survives a reload */
    }
    return '';
  }

  function readPicked() {
    try {
      const ids = JSON.parse(stored('sessionStorage', PICK_STORAGE) || '[]');
      return Array.isArray(ids) ? ids.map(String) : [];
    } catch (_) {
      return [];
    }
  }

  function savePicked() {
    stored('sessionStorage', PICK_STORAGE, JSON.stringify([...state.picked]));
  }

  function authHeaders() {
    const key = stored('sessionStorage', KEY_STORAGE);
    return key ? { Authorization: `Bearer ${key}` } : {};
  }

  function detailOf(body, fallback) {
    return body && typeof body.detail === 'string' && body.detail ? body.detail : fallback;
  }

  function say(text, kind = '') {
    els.message.textContent = text;
    els.message.dataset.kind = kind;
  }

  function plural(n, one, many) {
    return `${n.toLocaleString('en')} ${n === 1 ? one : many}`;
  }

  /* ------------------------------------------------------------------ listing */

  async function refresh() {
    window.clearTimeout(state.timer);
    let res;
    try {
      res = await fetch('/documents', { headers: { Accept: 'application/json', ...authHeaders() }, cache: 'no-store' });
    } catch (_) {
      state.timer = window.setTimeout(refresh, RETRY_MS); // chat.js shows the outage
      return;
    }
    const body = await res.json().catch(() => null);
    if (res.status === 401) {
      say('Enter the API key (button above) to see and change the documents.', 'error');
      return;
    }
    if (!res.ok || !Array.isArray(body)) {
      state.timer = window.setTimeout(refresh, RETRY_MS);
      return;
    }
    state.documents = body;
    state.loaded = true;
    if (els.message.dataset.kind === 'error' && /API key/.test(els.message.textContent)) say('');
    const known = new Set(body.map((d) => d.id));
    for (const id of [...state.picked]) if (!known.has(id)) state.picked.delete(id);
    render();
    if (body.some((d) => d.status === 'queued' || d.status === 'indexing')) {
      state.timer = window.setTimeout(refresh, POLL_MS);
    }
  }

  function statusText(doc) {
    switch (doc.status) {
      case 'indexed': return 'Ready';
      case 'queued': return 'Waiting…';
      case 'indexing': return 'Indexing…';
      case 'skipped': return `Skipped: ${doc.reason || 'no text'}`;
      case 'failed': return `Failed: ${doc.reason || 'unknown error'}`;
      default: return String(doc.status || '');
    }
  }

  function metaText(doc) {
    const parts = [String(doc.type || '').toUpperCase()];
    if (Number.isFinite(doc.pages)) parts.push(plural(doc.pages, 'page', 'pages'));
    if (doc.status === 'indexed') parts.push(plural(doc.chunks || 0, 'passage', 'passages'));
    return parts.filter(Boolean).join(' · ');
  }

  /* One row; its text is filled in by updateRow. */
  function makeRow(doc) {
    const li = el('li', 'document');
    li.dataset.id = doc.id;
    const pick = el('label', 'document-pick');
    const box = el('input', 'document-check');
    box.type = 'checkbox';
    box.value = doc.id;
    box.addEventListener('change', () => {
      if (box.checked) state.picked.add(doc.id);
      else state.picked.delete(doc.id);
      savePicked();
      renderSelection();
      renderPage();
    });
    pick.append(box, el('span', 'document-name'));
    const info = el('p', 'document-info');
    info.append(el('span', 'document-meta'), el('span', 'document-status'));
    const remove = button('btn btn-ghost document-delete', 'Delete');
    const confirm = el('span', 'document-confirm');
    confirm.hidden = true;
    const yes = button('btn btn-danger confirm-yes', 'Delete');
    const no = button('btn btn-ghost confirm-no', 'Cancel');
    confirm.append(el('span', 'confirm-text'), yes, no);
    remove.addEventListener('click', () => {
      remove.hidden = true;
      confirm.hidden = false;
      no.focus();
    });
    no.addEventListener('click', () => {
      confirm.hidden = true;
      remove.hidden = false;
      remove.focus();
    });
    yes.addEventListener('click', () => deleteDocuments([li.docqaRecord]));
    confirm.addEventListener('keydown', (ev) => {
      if (ev.key === 'Escape') no.click();
    });
    li.append(pick, info, remove, confirm);
    return li;
  }

  function updateRow(li, doc) {
    li.docqaRecord = doc;
    li.dataset.status = doc.status;
    li.dataset.type = String(doc.type || '');
    li.dataset.name = String(doc.name || '').toLowerCase();
    li.querySelector('.document-name').textContent = doc.name;
    li.querySelector('.document-name').title = doc.name;
    li.querySelector('.document-meta').textContent = metaText(doc);
    li.querySelector('.document-status').textContent = statusText(doc);
    li.querySelector('.document-delete').setAttribute('aria-label', `Delete ${doc.name}`);
    li.querySelector('.confirm-text').textContent = `Delete ${doc.name}?`;
  }

  /* Rows kept per id: a poll that changes one document redraws that row only. */
  function render() {
    const seen = new Set();
    const rows = state.documents.map((doc) => {
      seen.add(doc.id);
      let row = state.rows.get(doc.id);
      if (!row) {
        row = { li: makeRow(doc), key: '' };
        state.rows.set(doc.id, row);
      }
      const key = JSON.stringify(doc);
      if (row.key !== key) {
        updateRow(row.li, doc);
        row.key = key;
      }
      row.li.querySelector('.document-check').checked = state.picked.has(doc.id);
      return row.li;
    });
    for (const id of [...state.rows.keys()]) if (!seen.has(id)) state.rows.delete(id);
    const inOrder = rows.every((li, i) => els.list.children[i] === li);
    if (!inOrder || els.list.children.length !== rows.length) {
      const focused = document.activeElement;
      els.list.replaceChildren(...rows);
      if (focused && els.list.contains(focused)) focused.focus();
    }
    renderTypes();
    applyFilter();
    renderPage();
  }

  function renderTypes() {
    const types = [...new Set(state.documents.map((d) => String(d.type || '')).filter(Boolean))].sort();
    const have = [...els.type.options].slice(1).map((o) => o.value);
    if (have.join() === types.join()) return;
    const current = els.type.value;
    const options = types.map((t) => {
      const option = el('option', '', t.toUpperCase());
      option.value = t;
      return option;
    });
    els.type.replaceChildren(els.type.options[0], ...options);
    els.type.value = types.includes(current) ? current : '';
  }

  /* ------------------------------------------------------------------ filter, counts, selection */

  function shownRows() {
    return [...els.list.children].filter((li) => !li.hidden);
  }

  function applyFilter() {
    const words = els.filter.value.trim().toLowerCase();
    const type = els.type.value;
    let shown = 0;
    for (const li of els.list.children) {
      const hide = Boolean((words && !li.dataset.name.includes(words)) || (type && li.dataset.type !== type));
      if (li.hidden !== hide) li.hidden = hide;
      if (!hide) shown += 1;
    }
    const total = state.documents.length;
    els.count.textContent = !total ? '' : shown === total ? `(${total})` : `(${shown} of ${total})`;
    els.noMatch.hidden = shown > 0 || total === 0;
    const counts = STATUS_WORDS.map(([status, word]) => [state.documents.filter((d) => d.status === status).length, word]);
    els.stats.textContent = counts.filter(([n]) => n).map(([n, word]) => `${n.toLocaleString('en')} ${word}`).join(' · ');
    renderSelection();
  }

  function pickedDocuments() {
    return state.documents.filter((d) => state.picked.has(d.id));
  }

  function renderSelection() {
    const shown = shownRows();
    const ticked = shown.filter((li) => state.picked.has(li.dataset.id)).length;
    els.selectShown.checked = shown.length > 0 && ticked === shown.length;
    els.selectShown.indeterminate = ticked > 0 && ticked < shown.length;
    els.selectShown.disabled = shown.length === 0;
    const picked = pickedDocuments().length;
    els.deleteSelected.disabled = picked === 0;
    els.deleteSelected.textContent = picked ? `Delete ${picked} ticked` : 'Delete ticked';
    if (!picked) closeBulkConfirm();
  }

  function tickShown(on) {
    for (const li of shownRows()) {
      if (on) state.picked.add(li.dataset.id);
      else state.picked.delete(li.dataset.id);
      li.querySelector('.document-check').checked = on;
    }
    savePicked();
    renderSelection();
    renderPage();
  }

  function closeBulkConfirm() {
    els.deleteConfirm.hidden = true;
    els.deleteSelected.hidden = false;
  }

  function indexed() {
    return state.documents.filter((d) => d.status === 'indexed');
  }

  /* scope.js makes the page follow the library and the ticks. */
  function renderPage() {
    document.dispatchEvent(new CustomEvent('docqa:documents'));
  }

  /* ------------------------------------------------------------------ delete */

  /* Deletes one by one; says what was deleted and what could not be. */
  async function deleteDocuments(docs) {
    const deleted = [];
    const problems = [];
    for (const doc of docs) {
      let res;
      try {
        res = await fetch(`/documents/${encodeURIComponent(doc.id)}`, { method: 'DELETE', headers: authHeaders() });
      } catch (_) {
        problems.push(`${doc.name}: the server could not be reached`);
        continue;
      }
      const body = await res.json().catch(() => null);
      if (res.ok) {
        deleted.push(doc.name);
        state.picked.delete(doc.id);
      } else {
        problems.push(`${doc.name}: ${detailOf(body, `the server answered ${res.status}`)}`);
      }
    }
    savePicked();
    closeBulkConfirm();
    const done = deleted.length === 1 ? `Deleted ${deleted[0]}: it is no longer used in answers.`
      : deleted.length ? `Deleted ${deleted.length} documents: they are no longer used in answers.` : '';
    if (problems.length) say(`${done} Could not delete ${problems.join('; ')}`.trim(), 'error');
    else say(done);
    $('#upload-button').focus();
    refresh();
  }

  /* ------------------------------------------------------------------ controls */

  function setCollapsed(collapsed) {
    els.body.hidden = collapsed;
    els.toggle.setAttribute('aria-expanded', collapsed ? 'false' : 'true');
    els.toggle.textContent = collapsed ? 'Show' : 'Hide';
    stored('localStorage', COLLAPSE_STORAGE, collapsed ? '1' : '');
  }

  els.toggle.addEventListener('click', () => setCollapsed(!els.body.hidden));
  els.filter.addEventListener('input', applyFilter);
  els.type.addEventListener('change', applyFilter);
  els.selectShown.addEventListener('change', () => tickShown(els.selectShown.checked));
  els.deleteSelected.addEventListener('click', () => {
    const n = pickedDocuments().length;
    els.deleteConfirm.querySelector('.confirm-text').textContent = `Delete ${plural(n, 'document', 'documents')}?`;
    els.deleteSelected.hidden = true;
    els.deleteConfirm.hidden = false;
    els.deleteConfirm.querySelector('.confirm-no').focus();
  });
  els.deleteConfirm.querySelector('.confirm-no').addEventListener('click', () => {
    closeBulkConfirm();
    els.deleteSelected.focus();
  });
  els.deleteConfirm.querySelector('.confirm-yes').addEventListener('click', () => deleteDocuments(pickedDocuments()));
  els.deleteConfirm.addEventListener('keydown', (ev) => {
    if (ev.key === 'Escape') els.deleteConfirm.querySelector('.confirm-no').click();
  });
  setCollapsed(stored('localStorage', COLLAPSE_STORAGE) === '1');

  window.docqaLibrary = {
    refresh,
    authHeaders,
    say,
    documents: () => state.documents,
    isPicked: (id) => state.picked.has(id),
    /* Ids to send with a question: [] asks every document. */
    selectedIds: () => indexed().filter((d) => state.picked.has(d.id)).map((d) => d.id),
    ready: () => indexed().length,
    loaded: () => state.loaded,
  };

  refresh();
})();
