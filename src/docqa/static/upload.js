/*
 * docqa uploads — plain ES2020, CSP-safe. Files chosen with the Upload button or dropped on the
 * page are sent one POST /documents each, one after another, each with its own progress bar
 * (XMLHttpRequest upload progress events). A file the server would refuse for its type or
 * size (the rules come from the server's OpenAPI schema) is refused here, before it is sent;
 * a refusal by the server (413, 415, 422, ...) or a lost connection becomes a message in its
 * row and in #library-message. Nothing is thrown or logged to the console (the browser itself
 * logs a refused request's status, which a page cannot prevent).
 *
 * Stable hooks for browser tests:
 *   #upload-button, #upload-input, #drop-zone (shown while files are dragged over the page)
 *   #uploads li.upload[data-state]   one file; state waiting|uploading|done|error
 *   .upload-name, .upload-bar (a <progress>, 0-100), .upload-label, .upload-dismiss
 */
(() => {
  'use strict';

  const DONE_LINGER_MS = 4000;
  // The types docqa reads, until the server's schema says which it accepts (DOCQA_UPLOAD_TYPES).
  const rules = {
    suffixes: ['.pdf', '.docx', '.html', '.htm', '.xhtml', '.md', '.markdown', '.txt', '.text'],
    maxBytes: 0,
    asked: null, // the promise of the answer, once asked
  };

  const $ = (sel) => document.querySelector(sel);
  const els = {
    button: $('#upload-button'),
    input: $('#upload-input'),
    list: $('#uploads'),
    dropZone: $('#drop-zone'),
  };
  const queue = [];
  let busy = false;
  let dragDepth = 0;
  const library = () => window.docqaLibrary;

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function megabytes(bytes) {
    return `${(bytes / 1e6).toLocaleString('en', { maximumFractionDigits: bytes < 1e7 ? 1 : 0 })} MB`;
  }

  /* The accepted suffixes and size, from the upload's OpenAPI schema; asked once. */
  function loadRules() {
    if (!rules.asked) rules.asked = askRules();
    return rules.asked;
  }

  async function askRules() {
    let res;
    try {
      res = await fetch('/openapi.json', { headers: { Accept: 'application/json', ...library().authHeaders() } });
    } catch (_) {
      rules.asked = null; // the server is down: ask again once the list comes back
      return;
    }
    const schema = res.ok ? await res.json().catch(() => null) : null;
    const body = schema?.paths?.['/documents']?.post?.requestBody?.content?.['multipart/form-data'];
    const files = body?.schema?.properties?.files;
    if (!files) return; // no schema: the server checks each file anyway
    if (Array.isArray(files['x-suffixes'])) rules.suffixes = files['x-suffixes'].map(String);
    if (Number.isFinite(files['x-max-bytes'])) rules.maxBytes = files['x-max-bytes'];
    els.input.accept = rules.suffixes.join(',');
  }

  /* Why the server would refuse this file, or '' when it may be sent. */
  function refusal(file) {
    const dot = file.name.lastIndexOf('.');
    const suffix = dot > 0 ? file.name.slice(dot).toLowerCase() : '';
    if (!rules.suffixes.includes(suffix)) {
      return `files of type ${suffix || '(no suffix)'} are not supported; docqa reads ${rules.suffixes.join(', ')}`;
    }
    if (file.size === 0) return 'it is empty: there is nothing in it to index';
    if (rules.maxBytes && file.size > rules.maxBytes) {
      return `it is ${megabytes(file.size)}, over the ${megabytes(rules.maxBytes)} an upload may have`;
    }
    return '';
  }

  function makeRow(file) {
    const li = el('li', 'upload');
    li.dataset.state = 'waiting';
    const bar = el('progress', 'upload-bar');
    bar.max = 100;
    bar.value = 0;
    bar.setAttribute('aria-label', `Upload of ${file.name}`);
    const dismiss = el('button', 'btn btn-ghost upload-dismiss', '×');
    dismiss.type = 'button';
    dismiss.setAttribute('aria-label', `Dismiss ${file.name}`);
    dismiss.addEventListener('click', () => li.remove());
    li.append(el('span', 'upload-name', file.name), bar, el('span', 'upload-label', 'Waiting…'), dismiss);
    els.list.append(li);
    return li;
  }

  function setRow(li, stateName, label) {
    li.dataset.state = stateName;
    li.querySelector('.upload-label').textContent = label;
  }

  function fail(item, reason) {
    setRow(item.row, 'error', reason);
    library().say(`Could not add ${item.file.name}: ${reason}`, 'error');
  }

  async function enqueue(files) {
    const list = [...files];
    if (!list.length) return;
    await loadRules();
    library().say('');
    for (const file of list) {
      const item = { file, row: makeRow(file) };
      const why = refusal(file);
      if (why) fail(item, why);
      else queue.push(item);
    }
    els.input.value = '';
    pump();
  }

  function pump() {
    if (busy || !queue.length) return;
    busy = true;
    send(queue.shift()).finally(() => {
      busy = false;
      pump();
    });
  }

  function send(item) {
    return new Promise((resolve) => {
      const { file, row } = item;
      const bar = row.querySelector('.upload-bar');
      const form = new FormData();
      form.append('files', file, file.name);
      const xhr = new XMLHttpRequest();
      xhr.open('POST', '/documents');
      for (const [k, v] of Object.entries(library().authHeaders())) xhr.setRequestHeader(k, v);
      xhr.setRequestHeader('Accept', 'application/json');
      setRow(row, 'uploading', `0% of ${megabytes(file.size)}`);
      xhr.upload.addEventListener('progress', (ev) => {
        if (!ev.lengthComputable || !ev.total) return;
        bar.value = Math.round((ev.loaded / ev.total) * 100);
        row.querySelector('.upload-label').textContent = `${bar.value}% of ${megabytes(file.size)}`;
      });
      xhr.addEventListener('load', () => {
        answered(item, xhr);
        resolve();
      });
      xhr.addEventListener('error', () => {
        fail(item, 'the server could not be reached');
        resolve();
      });
      xhr.addEventListener('timeout', () => {
        fail(item, 'the upload took too long');
        resolve();
      });
      xhr.send(form);
    });
  }

  function answered(item, xhr) {
    let body = null;
    try {
      body = JSON.parse(xhr.responseText);
    } catch (_) {
      body = null;
    }
    const ok = (xhr.status === 202 || xhr.status === 200) && body && Array.isArray(body.documents);
    if (!ok) {
      if (xhr.status === 401) fail(item, 'this server needs an API key: enter it with the API key button, then upload again');
      else fail(item, body && typeof body.detail === 'string' && body.detail ? body.detail : `the server answered ${xhr.status}`);
      return;
    }
    // 200: the library already held the same bytes; the record says as which document.
    const record = body.documents[0] || {};
    const label = record.stored === false ? `Not stored again: ${record.detail}` : 'Added: indexing, it can be asked in a moment';
    setRow(item.row, 'done', label);
    library().say(`${item.file.name}: ${label}.`);
    window.setTimeout(() => item.row.remove(), DONE_LINGER_MS);
    library().refresh();
  }

  els.button.addEventListener('click', () => els.input.click());
  els.input.addEventListener('change', () => enqueue(els.input.files));
  document.addEventListener('docqa:documents', loadRules);

  /* Drag and drop anywhere on the page. */
  const carriesFiles = (ev) => ev.dataTransfer && [...ev.dataTransfer.types].includes('Files');
  window.addEventListener('dragenter', (ev) => {
    if (!carriesFiles(ev)) return;
    ev.preventDefault();
    dragDepth += 1;
    els.dropZone.hidden = false;
  });
  window.addEventListener('dragover', (ev) => {
    if (carriesFiles(ev)) ev.preventDefault();
  });
  window.addEventListener('dragleave', () => {
    dragDepth = Math.max(0, dragDepth - 1);
    if (!dragDepth) els.dropZone.hidden = true;
  });
  window.addEventListener('drop', (ev) => {
    if (!carriesFiles(ev)) return;
    ev.preventDefault();
    dragDepth = 0;
    els.dropZone.hidden = true;
    enqueue(ev.dataTransfer.files);
  });
})();
