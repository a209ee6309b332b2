/*
 * docqa source viewer — opens a source (or a citation) in its document, beside the chat on a
 * wide window, over it on a narrow one. Plain ES2020, no framework; CSP-safe (no inline code,
 * server text only through textContent, boxes placed through the CSSOM).
 *
 * chat.js calls window.docqaViewer.attach(li, source, citations) for each source it renders
 * (this adds the "Open" button) and window.docqaViewer.open(li) when a citation is clicked.
 *
 * Text, Markdown, HTML, DOCX: GET /documents/{id}/text, the text with its headings, scrolled
 * to the cited sentences (or the passage, when none is cited), which are highlighted.
 * PDF: GET /documents/{id}/pages/{n} (a PNG, fetched with the API key and shown as a data:
 * URL, which the page's CSP allows) with GET .../pages/{n}/boxes drawn over it.
 *
 * Stable hooks for browser tests:
 *   .source-open              "Open" button of a source (one per .source)
 *   #viewer                   the panel (hidden when closed); data-document-id, data-kind
 *                             "text|pdf", aria-busy="true" while loading
 *   #viewer-title             the document's name
 *   .viewer-mark              a highlighted span of the text (the cited sentence)
 *   .viewer-image             the page image; data-page and data-src name the page shown
 *   .viewer-box               a highlight box over the page; data-text is its span's text
 *   #viewer-page-label        "Page 2 of 5"; data-page holds the number
 *   #viewer-prev-page, #viewer-next-page, #viewer-prev-source, #viewer-next-source
 *   #viewer-close             closes (so does Escape)
 *   .viewer-error             a message when something could not be shown
 */
(() => {
  'use strict';

  const KEY_STORAGE = 'docqa.apiKey';
  const KEPT_TEXTS = 8; // documents' texts kept in the page (the server caches them too)
  const sources = new WeakMap(); // <li class="source"> -> {source, citations}
  const texts = new Map(); // document id -> Promise of the /text body
  const state = { li: null, opener: null, page: 0, pages: 0, spans: [], seq: 0 };

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function button(id, label, text) {
    const b = el('button', 'btn btn-ghost viewer-btn', text);
    b.type = 'button';
    b.id = id;
    b.setAttribute('aria-label', label);
    return b;
  }

  function authHeaders() {
    let key = '';
    try {
      key = window.sessionStorage.getItem(KEY_STORAGE) || '';
    } catch (_) {
      /* storage disabled */
    }
    return key ? { Authorization: `Bearer ${key}` } : {};
  }

  async function get(url) {
    const res = await fetch(url, { headers: authHeaders() });
    if (!res.ok) {
      let detail = '';
      try {
        detail = (await res.json()).detail || '';
      } catch (_) {
        /* not JSON */
      }
      if (res.status === 401) detail = 'the server asks for an API key: set it with "API key"';
      throw new Error(detail || `the server answered ${res.status}`);
    }
    return res;
  }

  function documentText(id) {
    if (!texts.has(id)) {
      const promise = get(`/documents/${encodeURIComponent(id)}/text`).then((r) => r.json());
      promise.catch(() => texts.delete(id));
      texts.set(id, promise);
      if (texts.size > KEPT_TEXTS) texts.delete(texts.keys().next().value);
    }
    return texts.get(id);
  }

  /* ------------------------------------------------------------------ the panel */

  const panel = el('aside', 'viewer');
  panel.id = 'viewer';
  panel.hidden = true;
  panel.setAttribute('role', 'dialog');
  panel.setAttribute('aria-labelledby', 'viewer-title');
  const head = el('div', 'viewer-head');
  const titles = el('div', 'viewer-titles');
  const title = el('h2', 'viewer-title');
  title.id = 'viewer-title';
  const subtitle = el('p', 'viewer-subtitle');
  titles.append(title, subtitle);
  const closeButton = button('viewer-close', 'Close the document', '×');
  head.append(titles, closeButton);
  const nav = el('div', 'viewer-nav');
  const prevSource = button('viewer-prev-source', 'Previous source', '‹ Source');
  const nextSource = button('viewer-next-source', 'Next source', 'Source ›');
  const pageNav = el('div', 'viewer-page-nav');
  const prevPage = button('viewer-prev-page', 'Previous page', '‹');
  const pageLabel = el('span', 'viewer-page-label');
  pageLabel.id = 'viewer-page-label';
  pageLabel.setAttribute('aria-live', 'polite');
  const nextPage = button('viewer-next-page', 'Next page', '›');
  pageNav.append(prevPage, pageLabel, nextPage);
  nav.append(prevSource, pageNav, nextSource);
  const body = el('div', 'viewer-body');
  body.tabIndex = -1;
  panel.append(head, nav, body);

  function mount() {
    document.body.appendChild(panel);
  }
  if (document.body) mount();
  else document.addEventListener('DOMContentLoaded', mount);

  function showError(text) {
    body.replaceChildren(el('p', 'viewer-error', `This source cannot be shown: ${text}`));
    panel.removeAttribute('aria-busy');
  }

  function siblings() {
    const list = state.li && state.li.parentElement;
    return list ? [...list.children].filter((li) => sources.has(li)) : [];
  }

  /* The spans to highlight: the cited sentences, or the whole passage when none is cited. */
  function spansOf(entry) {
    const cited = entry.citations
      .filter((c) => Number.isInteger(c.document_start) && Number.isInteger(c.document_end))
      .map((c) => ({ start: c.document_start, end: c.document_end, cited: true }));
    if (cited.length) return cited.sort((a, b) => a.start - b.start);
    return [{ start: Number(entry.source.start), end: Number(entry.source.end), cited: false }];
  }

  async function open(li) {
    const entry = sources.get(li);
    if (!entry) return;
    if (panel.hidden) state.opener = document.activeElement;
    state.li = li;
    state.seq += 1;
    const seq = state.seq;
    const src = entry.source;
    const list = siblings();
    const at = list.indexOf(li);
    prevSource.disabled = at <= 0;
    nextSource.disabled = at < 0 || at >= list.length - 1;
    title.textContent = src.document || 'Document';
    subtitle.textContent = `Source ${src.rank}${src.section ? ` · ${src.section}` : ''}`;
    panel.dataset.documentId = String(src.document_id || '');
    panel.setAttribute('aria-busy', 'true');
    body.replaceChildren(el('p', 'viewer-loading', 'Opening the document…'));
    panel.hidden = false;
    document.body.classList.add('viewer-open'); // viewer.css: the chat moves aside on a wide window
    closeButton.focus({ preventScroll: true });
    state.spans = spansOf(entry);
    try {
      const doc = await documentText(String(src.document_id));
      if (seq !== state.seq) return;
      if (doc.pages.length) await showPdf(doc, src, seq);
      else showText(doc);
    } catch (error) {
      if (seq === state.seq) showError(error.message);
    }
  }

  function close() {
    if (panel.hidden) return;
    panel.hidden = true;
    document.body.classList.remove('viewer-open');
    state.seq += 1;
    body.replaceChildren();
    const back = state.opener;
    state.li = null;
    if (back && back.isConnected) back.focus({ preventScroll: true });
  }

  /* ------------------------------------------------------------------ text */

  function showText(doc) {
    panel.dataset.kind = 'text';
    pageNav.hidden = true;
    const text = doc.text;
    const marks = state.spans.filter((s) => s.start >= 0 && s.end <= text.length && s.end > s.start);
    const points = new Set([0, text.length]);
    for (const s of [...doc.headings, ...marks]) {
      points.add(s.start);
      points.add(s.end);
    }
    const cuts = [...points].filter((p) => p >= 0 && p <= text.length).sort((a, b) => a - b);
    const root = el('div', 'viewer-text');
    for (let i = 0; i + 1 < cuts.length; i += 1) {
      const [from, to] = [cuts[i], cuts[i + 1]];
      const mark = marks.find((s) => s.start <= from && to <= s.end);
      const heading = doc.headings.find((h) => h.start <= from && to <= h.end);
      const node = el(mark ? 'mark' : 'span', '', text.slice(from, to));
      if (mark) node.className = mark.cited ? 'viewer-mark' : 'viewer-mark passage';
      if (heading) node.classList.add('viewer-heading');
      root.appendChild(node);
    }
    body.replaceChildren(root);
    panel.removeAttribute('aria-busy');
    const first = root.querySelector('.viewer-mark');
    if (first) first.scrollIntoView({ block: 'center' });
  }

  /* ------------------------------------------------------------------ PDF */

  function pageOf(doc, offset) {
    let number = 1;
    for (const p of doc.pages) if (p.start <= offset) number = p.number;
    return number;
  }

  async function showPdf(doc, src, seq) {
    panel.dataset.kind = 'pdf';
    pageNav.hidden = false;
    state.pages = doc.pages.length;
    const first = state.spans[0];
    state.page = first ? pageOf(doc, first.start) : Number(src.page) || 1;
    await showPage(seq);
  }

  function dataUrl(blob) {
    return new Promise((resolve, reject) => {
      const reader = new FileReader();
      reader.onload = () => resolve(reader.result);
      reader.onerror = () => reject(new Error('the page image could not be read'));
      reader.readAsDataURL(blob);
    });
  }

  async function showPage(seq) {
    const id = encodeURIComponent(panel.dataset.documentId);
    const number = state.page;
    pageLabel.textContent = `Page ${number} of ${state.pages}`;
    pageLabel.dataset.page = String(number);
    prevPage.disabled = number <= 1;
    nextPage.disabled = number >= state.pages;
    panel.setAttribute('aria-busy', 'true');
    const url = `/documents/${id}/pages/${number}`;
    try {
      const [image, boxes] = await Promise.all([
        get(url).then((r) => r.blob()).then(dataUrl),
        Promise.all(state.spans.map((s) =>
          get(`${url}/boxes?start=${s.start}&end=${s.end}`).then((r) => r.json()))),
      ]);
      if (seq !== state.seq) return;
      const frame = el('div', 'viewer-page');
      const img = el('img', 'viewer-image');
      img.alt = `Page ${number} of ${title.textContent}`;
      img.dataset.page = String(number);
      img.dataset.src = url;
      img.src = image;
      frame.appendChild(img);
      let firstBox = null;
      for (const found of boxes) {
        for (const b of found.boxes) {
          const box = el('div', 'viewer-box');
          box.dataset.text = found.text;
          box.title = found.text;
          box.style.left = `${b.x * 100}%`;
          box.style.top = `${b.y * 100}%`;
          box.style.width = `${b.width * 100}%`;
          box.style.height = `${b.height * 100}%`;
          frame.appendChild(box);
          firstBox = firstBox || box;
        }
      }
      const quotes = boxes.filter((b) => b.boxes.length).map((b) => b.text);
      const caption = el('p', 'viewer-quote', quotes.length ? `“${quotes.join(' … ')}”` : '');
      caption.hidden = !quotes.length;
      body.replaceChildren(frame, caption);
      panel.removeAttribute('aria-busy');
      await img.decode().catch(() => undefined);
      if (seq === state.seq && firstBox) firstBox.scrollIntoView({ block: 'center' });
    } catch (error) {
      if (seq === state.seq) showError(error.message);
    }
  }

  function turnPage(step) {
    const next = state.page + step;
    if (next < 1 || next > state.pages) return;
    state.page = next;
    state.seq += 1;
    showPage(state.seq);
  }

  /* ------------------------------------------------------------------ wiring */

  closeButton.addEventListener('click', close);
  prevPage.addEventListener('click', () => turnPage(-1));
  nextPage.addEventListener('click', () => turnPage(1));
  prevSource.addEventListener('click', () => {
    const list = siblings();
    const at = list.indexOf(state.li);
    if (at > 0) open(list[at - 1]);
  });
  nextSource.addEventListener('click', () => {
    const list = siblings();
    const at = list.indexOf(state.li);
    if (at >= 0 && at < list.length - 1) open(list[at + 1]);
  });
  document.addEventListener('keydown', (ev) => {
    if (ev.key === 'Escape' && !panel.hidden) {
      ev.preventDefault();
      close();
    }
  });

  function attach(li, source, citations) {
    if (!source || !source.document_id) return;
    sources.set(li, { source, citations: citations || [] });
    const openButton = el('button', 'source-open link-button', 'Open');
    openButton.type = 'button';
    openButton.setAttribute('aria-label', `Open source ${source.rank} in ${source.document}`);
    openButton.addEventListener('click', () => open(li));
    const target = li.querySelector('.source-head') || li;
    target.appendChild(openButton);
  }

  window.docqaViewer = { attach, open, close };
})();
