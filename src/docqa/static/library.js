/*
 * docqa document library panel — plain ES2020, no framework, CSP-safe (no inline code, no
 * innerHTML: server text goes in with textContent).
 *
 * Lists GET /documents, uploads by button or drag-and-drop (POST /documents, with progress),
 * deletes after an inline confirmation (DELETE /documents/{id}), lets the user tick the
 * documents a question is asked of, and makes the page's title, placeholder, intro and
 * example questions follow the library. chat.js reads `window.docqaLibrary`.
 *
 * Stable hooks for browser tests:
 *   #documents li.document[data-id][data-status]   one document; status indexed|queued|indexing|failed|skipped
 *   .document-check        its checkbox (ticked: questions are asked of it)
 *   .document-delete       asks for confirmation; .confirm-yes / .confirm-no answer it
 *   #upload-button, #upload-input, #upload-progress, #library-message (data-kind="error" on errors)
 *   #drop-zone             overlay shown while files are dragged over the page
 */
(() => {
  'use strict';

  const POLL_MS = 1000;
  const RETRY_MS = 5000;
  const KEY_STORAGE = 'docqa.apiKey';
  const PICK_STORAGE = 'docqa.documents';
  const MAX_SUGGESTIONS = 3;

  const $ = (sel) => document.querySelector(sel);
  const els = {
    title: $('#title'),
    count: $('#library-count'),
    toggle: $('#library-toggle'),
    body: $('#library-body'),
    list: $('#documents'),
    uploadButton: $('#upload-button'),
    uploadInput: $('#upload-input'),
    progress: $('#upload-progress'),
    bar: $('#upload-bar'),
    barLabel: $('#upload-label'),
    message: $('#library-message'),
    dropZone: $('#drop-zone'),
    question: $('#question'),
    scope: $('#composer-scope'),
    emptyTitle: $('#empty-title'),
    emptyText: $('#empty-text'),
    suggestions: $('#suggestions'),
  };

  const state = {
    documents: [],
    loaded: false,
    picked: new Set(readPicked()),
    timer: 0,
    dragDepth: 0,
  };

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function session(key, value) {
    try {
      if (value === undefined) return window.sessionStorage.getItem(key) || '';
      if (value) window.sessionStorage.setItem(key, value);
      else window.sessionStorage.removeItem(key);
    } catch (_) {
      /* storage disabled: nothing survives a reload */
    }
    return '';
  }

  function readPicked() {
    try {
      const ids = JSON.parse(session(PICK_STORAGE) || '[]');
      return Array.isArray(ids) ? ids.map(String) : [];
    } catch (_) {
      return [];
    }
  }

  function authHeaders() {
    const key = session(KEY_STORAGE);
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
      case 'queued': return 'Waiting to be indexed…';
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

  function renderDocument(doc) {
    const li = el('li', 'document');
    li.dataset.id = doc.id;
    li.dataset.status = doc.status;

    const pick = el('label', 'document-pick');
    const box = el('input', 'document-check');
    box.type = 'checkbox';
    box.value = doc.id;
    box.checked = state.picked.has(doc.id);
    box.disabled = doc.status !== 'indexed';
    box.addEventListener('change', () => {
      if (box.checked) state.picked.add(doc.id);
      else state.picked.delete(doc.id);
      session(PICK_STORAGE, JSON.stringify([...state.picked]));
      renderPage();
    });
    pick.appendChild(box);
    pick.appendChild(el('span', 'document-name', doc.name));
    li.appendChild(pick);

    const info = el('p', 'document-info');
    info.appendChild(el('span', 'document-meta', metaText(doc)));
    info.appendChild(el('span', 'document-status', statusText(doc)));
    li.appendChild(info);

    const remove = el('button', 'btn btn-ghost document-delete', 'Delete');
    remove.type = 'button';
    remove.setAttribute('aria-label', `Delete ${doc.name}`);
    const confirm = el('span', 'document-confirm');
    confirm.hidden = true;
    confirm.appendChild(el('span', 'confirm-text', `Delete ${doc.name}?`));
    const yes = el('button', 'btn btn-danger confirm-yes', 'Delete');
    yes.type = 'button';
    const no = el('button', 'btn btn-ghost confirm-no', 'Cancel');
    no.type = 'button';
    confirm.appendChild(yes);
    confirm.appendChild(no);
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
    yes.addEventListener('click', () => deleteDocument(doc));
    confirm.addEventListener('keydown', (ev) => {
      if (ev.key === 'Escape') no.click();
    });
    li.appendChild(remove);
    li.appendChild(confirm);
    return li;
  }

  function render() {
    const focusedId = document.activeElement && document.activeElement.closest
      && document.activeElement.closest('li.document') ? document.activeElement.closest('li.document').dataset.id : null;
    els.list.replaceChildren(...state.documents.map(renderDocument));
    if (focusedId) {
      const again = els.list.querySelector(`li.document[data-id="${CSS.escape(focusedId)}"] .document-check`);
      if (again) again.focus();
    }
    els.count.textContent = state.documents.length ? `(${state.documents.length})` : '';
    renderPage();
  }

  /* ------------------------------------------------------------------ the page follows the library */

  function indexed() {
    return state.documents.filter((d) => d.status === 'indexed');
  }

  function chosen() {
    const ready = indexed();
    const picked = ready.filter((d) => state.picked.has(d.id));
    return picked.length ? picked : ready;
  }

  function renderPage() {
    const ready = indexed();
    const one = ready.length === 1 ? ready[0].name : '';
    let subject = 'your documents';
    if (one) subject = one;
    if (!ready.length) {
      els.title.textContent = 'docqa · upload a document to start';
      els.emptyTitle.textContent = state.documents.length
        ? 'Your documents are being indexed…'
        : 'Upload a document to start';
      els.emptyText.textContent = 'Add a document with the Upload button above or by dropping '
        + 'it on the page. Once it is indexed, ask questions about it: answers are quoted from it, '
        + 'with the passages they come from.';
      els.question.placeholder = 'Upload a document first…';
    } else {
      els.title.textContent = `Ask ${subject}`;
      els.emptyTitle.textContent = `Ask a question about ${subject}`;
      els.emptyText.textContent = 'Answers are quoted from the documents, with the passages they '
        + 'come from highlighted underneath. If the documents do not cover your question, you '
        + 'will be told so.';
      els.question.placeholder = `Ask about ${subject}…`;
    }
    document.title = `${els.title.textContent} · docqa`;
    const picked = ready.filter((d) => state.picked.has(d.id));
    if (!ready.length) els.scope.textContent = 'No document to ask yet';
    else if (!picked.length) els.scope.textContent = ready.length === 1 ? `Asking ${one}` : `Asking all ${ready.length} documents`;
    else if (picked.length === 1) els.scope.textContent = `Asking ${picked[0].name} only`;
    else els.scope.textContent = `Asking ${picked.length} of ${ready.length} documents`;
    renderSuggestions();
    document.dispatchEvent(new CustomEvent('docqa:library', { detail: { ready: ready.length } }));
  }

  /* Example questions from the section headings of the documents asked (never hard-coded). */
  function renderSuggestions() {
    const titles = [];
    for (const doc of chosen()) {
      for (const section of doc.sections || []) {
        const title = String(section.title || '').trim();
        // "Introduction" is what the chunker calls the text before the first heading.
        if (title.length < 3 || title.length > 60 || title === 'Introduction') continue;
        const phrase = title === title.toUpperCase() ? title.toLowerCase() : title;
        if (!titles.includes(phrase)) titles.push(phrase);
      }
    }
    const picks = titles.slice(0, MAX_SUGGESTIONS);
    els.suggestions.replaceChildren(...picks.map((t) => {
      const b = el('button', 'suggestion', `Tell me about ${t}`);
      b.type = 'button';
      return b;
    }));
  }

  /* ------------------------------------------------------------------ upload */

  function upload(files) {
    const list = [...files];
    if (!list.length) return;
    const form = new FormData();
    for (const file of list) form.append('files', file, file.name);
    const names = list.map((f) => f.name).join(', ');
    const xhr = new XMLHttpRequest();
    xhr.open('POST', '/documents');
    for (const [k, v] of Object.entries(authHeaders())) xhr.setRequestHeader(k, v);
    xhr.setRequestHeader('Accept', 'application/json');
    els.progress.hidden = false;
    els.bar.value = 0;
    els.barLabel.textContent = `Uploading ${names}…`;
    els.uploadButton.disabled = true;
    say('');
    xhr.upload.addEventListener('progress', (ev) => {
      if (ev.lengthComputable) els.bar.value = Math.round((ev.loaded / ev.total) * 100);
    });
    const done = () => {
      els.progress.hidden = true;
      els.uploadButton.disabled = false;
      els.uploadInput.value = '';
    };
    xhr.addEventListener('load', () => {
      done();
      let body = null;
      try {
        body = JSON.parse(xhr.responseText);
      } catch (_) {
        body = null;
      }
      if ((xhr.status === 202 || xhr.status === 200) && body && Array.isArray(body.documents)) {
        // 200: the library already held every file (same bytes); each record says as which.
        const stored = body.documents.filter((d) => d.stored !== false).map((d) => d.name);
        const copies = body.documents.filter((d) => d.stored === false).map((d) => d.detail);
        const parts = [];
        if (stored.length) parts.push(`Added ${stored.join(', ')}: indexing, it can be asked in a moment.`);
        if (copies.length) parts.push(`Not stored again: ${copies.join('; ')}.`);
        say(parts.join(' '));
        refresh();
      } else if (xhr.status === 401) {
        say('This server needs an API key: enter it with the API key button, then upload again.', 'error');
      } else {
        say(`Could not add ${names}: ${detailOf(body, `the server answered ${xhr.status}`)}`, 'error');
      }
    });
    xhr.addEventListener('error', () => {
      done();
      say(`Could not add ${names}: the server could not be reached.`, 'error');
    });
    xhr.send(form);
  }

  async function deleteDocument(doc) {
    let res;
    try {
      res = await fetch(`/documents/${encodeURIComponent(doc.id)}`, { method: 'DELETE', headers: authHeaders() });
    } catch (_) {
      say(`Could not delete ${doc.name}: the server could not be reached.`, 'error');
      return;
    }
    const body = await res.json().catch(() => null);
    if (res.ok) {
      state.picked.delete(doc.id);
      session(PICK_STORAGE, JSON.stringify([...state.picked]));
      say(`Deleted ${doc.name}: it is no longer used in answers.`);
      els.uploadButton.focus();
    } else {
      say(`Could not delete ${doc.name}: ${detailOf(body, `the server answered ${res.status}`)}`, 'error');
    }
    refresh();
  }

  els.uploadButton.addEventListener('click', () => els.uploadInput.click());
  els.uploadInput.addEventListener('change', () => upload(els.uploadInput.files));

  els.toggle.addEventListener('click', () => {
    const open = els.body.hidden;
    els.body.hidden = !open;
    els.toggle.setAttribute('aria-expanded', open ? 'true' : 'false');
    els.toggle.textContent = open ? 'Hide' : 'Show';
  });

  /* Drag and drop anywhere on the page. */
  const carriesFiles = (ev) => ev.dataTransfer && [...ev.dataTransfer.types].includes('Files');
  window.addEventListener('dragenter', (ev) => {
    if (!carriesFiles(ev)) return;
    ev.preventDefault();
    state.dragDepth += 1;
    els.dropZone.hidden = false;
  });
  window.addEventListener('dragover', (ev) => {
    if (carriesFiles(ev)) ev.preventDefault();
  });
  window.addEventListener('dragleave', () => {
    state.dragDepth = Math.max(0, state.dragDepth - 1);
    if (!state.dragDepth) els.dropZone.hidden = true;
  });
  window.addEventListener('drop', (ev) => {
    if (!carriesFiles(ev)) return;
    ev.preventDefault();
    state.dragDepth = 0;
    els.dropZone.hidden = true;
    upload(ev.dataTransfer.files);
  });

  window.docqaLibrary = {
    refresh,
    /* Ids to send with a question: [] asks every document. */
    selectedIds: () => indexed().filter((d) => state.picked.has(d.id)).map((d) => d.id),
    ready: () => indexed().length,
    loaded: () => state.loaded,
  };

  refresh();
})();
