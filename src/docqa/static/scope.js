/*
 * docqa: the page follows the library — plain ES2020, CSP-safe. On each `docqa:documents`
 * (library.js: the list or the ticks changed) the title, the question box's placeholder, the
 * intro, the "Asking ..." line and the example questions are made from the documents asked,
 * then `docqa:library` tells chat.js how many are ready.
 */
(() => {
  'use strict';

  const MAX_SUGGESTIONS = 3;
  const $ = (sel) => document.querySelector(sel);
  const els = {
    title: $('#title'),
    question: $('#question'),
    scope: $('#composer-scope'),
    emptyTitle: $('#empty-title'),
    emptyText: $('#empty-text'),
    suggestions: $('#suggestions'),
  };
  const library = () => window.docqaLibrary;

  function indexed() {
    return library().documents().filter((d) => d.status === 'indexed');
  }

  /* The documents a question is asked of: the ticked ready ones, else every ready one. */
  function chosen() {
    const ready = indexed();
    const picked = ready.filter((d) => library().isPicked(d.id));
    return picked.length ? picked : ready;
  }

  function renderPage() {
    const all = library().documents();
    const ready = indexed();
    const one = ready.length === 1 ? ready[0].name : '';
    const subject = one || 'your documents';
    if (!ready.length) {
      els.title.textContent = 'docqa · upload a document to start';
      els.emptyTitle.textContent = all.length ? 'Your documents are being indexed…' : 'Upload a document to start';
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
    const picked = ready.filter((d) => library().isPicked(d.id));
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
      if (titles.length >= MAX_SUGGESTIONS) break;
    }
    els.suggestions.replaceChildren(...titles.slice(0, MAX_SUGGESTIONS).map((t) => {
      const b = document.createElement('button');
      b.type = 'button';
      b.className = 'suggestion';
      b.textContent = `Tell me about ${t}`;
      return b;
    }));
  }

  document.addEventListener('docqa:documents', renderPage);
})();
