// The page walker behind `Tab::snapshot`, called with Runtime.callFunctionOn in trajforge's
// own isolated world: page scripts can neither see its state nor patch what it calls.
// It walks the rendered (flat) tree once, computes each element's role, accessible name and
// states, and returns the snapshot as compact lines plus the interactive elements' refs, as
// one JSON string (one value to transfer, instead of Chromium's whole accessibility tree).
//
// Lines are [depth, kind, text]: kind 0 an element, 1 text, 2 a frame left to the caller.
// Refs: an element keeps its id for as long as it lives (a WeakMap in this world); ids are
// never reused within a tab because the caller passes the next free id (`base`) of the tab.
function (base) {
  const S = globalThis.__trajforge || (globalThis.__trajforge = { next: 1, ids: new WeakMap(), els: new Map() });
  if (S.next < base) S.next = base;
  S.els = new Map();
  // Frames whose document this world cannot reach (sandboxed): the caller walks them in
  // their own world and puts their lines in place of the marker line [depth, 2, token].
  S.frameTokens = new WeakMap();
  let frameToken = 0;
  const lines = [];
  const refs = [];

  const SKIP = new Set(['script', 'style', 'template', 'noscript', 'head', 'meta', 'link', 'title', 'base',
    'param', 'source', 'track', 'datalist', 'br', 'wbr', 'col', 'colgroup', 'map']);
  const INTERACTIVE = new Set(['link', 'button', 'textbox', 'searchbox', 'combobox', 'checkbox', 'radio',
    'switch', 'slider', 'spinbutton', 'menuitem', 'menuitemcheckbox', 'menuitemradio', 'tab', 'option',
    'listbox', 'treeitem']);
  // Roles whose name comes from their content when no label says otherwise.
  // (Not rows: a row would repeat the text of all its cells.)
  const FROM_CONTENT = new Set(['button', 'cell', 'checkbox', 'columnheader', 'gridcell', 'heading', 'link',
    'menuitem', 'menuitemcheckbox', 'menuitemradio', 'option', 'radio', 'rowheader', 'switch', 'tab',
    'tooltip', 'treeitem', 'doc-backlink', 'doc-biblioref', 'doc-glossref', 'doc-noteref']);
  // Roles that only group: shown only when named or interactive.
  const TRANSPARENT = new Set(['generic', 'none', 'presentation', 'group', 'img', 'image', 'iframe', 'strong',
    'emphasis', 'time', 'graphics-symbol', 'rowgroup']);
  const VALUED = new Set(['textbox', 'searchbox', 'combobox', 'spinbutton', 'slider']);
  const ROLES = new Set(['alert', 'alertdialog', 'application', 'article', 'banner', 'blockquote', 'button',
    'caption', 'cell', 'checkbox', 'code', 'columnheader', 'combobox', 'complementary', 'contentinfo',
    'definition', 'deletion', 'dialog', 'directory', 'document', 'emphasis', 'feed', 'figure', 'form', 'generic',
    'grid', 'gridcell', 'group', 'heading', 'img', 'image', 'insertion', 'link', 'list', 'listbox', 'listitem',
    'log', 'main', 'mark', 'marquee', 'math', 'menu', 'menubar', 'menuitem', 'menuitemcheckbox',
    'menuitemradio', 'meter', 'navigation', 'none', 'note', 'option', 'paragraph', 'presentation',
    'progressbar', 'radio', 'radiogroup', 'region', 'row', 'rowgroup', 'rowheader', 'scrollbar', 'search',
    'searchbox', 'separator', 'slider', 'spinbutton', 'status', 'strong', 'subscript', 'superscript', 'switch',
    'tab', 'table', 'tablist', 'tabpanel', 'term', 'textbox', 'time', 'timer', 'toolbar', 'tooltip', 'tree',
    'treegrid', 'treeitem',
    // Digital publishing roles (Sphinx and other documentation generators use them).
    'doc-abstract', 'doc-acknowledgments', 'doc-afterword', 'doc-appendix', 'doc-backlink',
    'doc-biblioentry', 'doc-bibliography', 'doc-biblioref', 'doc-chapter', 'doc-colophon',
    'doc-conclusion', 'doc-cover', 'doc-credit', 'doc-credits', 'doc-dedication', 'doc-endnote',
    'doc-endnotes', 'doc-epigraph', 'doc-epilogue', 'doc-errata', 'doc-example', 'doc-footnote',
    'doc-foreword', 'doc-glossary', 'doc-glossref', 'doc-index', 'doc-introduction', 'doc-noteref',
    'doc-notice', 'doc-pagebreak', 'doc-pagelist', 'doc-part', 'doc-preface', 'doc-prologue',
    'doc-pullquote', 'doc-qna', 'doc-subtitle', 'doc-tip', 'doc-toc']);
  // Elements laid out as blocks: their text is separated from their neighbours' by a space.
  const BLOCK = new Set(['address', 'article', 'aside', 'blockquote', 'dd', 'details', 'dialog', 'div', 'dl',
    'dt', 'fieldset', 'figcaption', 'figure', 'footer', 'form', 'h1', 'h2', 'h3', 'h4', 'h5', 'h6', 'header',
    'hr', 'li', 'main', 'nav', 'ol', 'p', 'pre', 'section', 'table', 'tr', 'td', 'th', 'ul', 'summary',
    'caption', 'legend', 'option']);
  const LANDMARK_SCOPE = 'article, aside, main, nav, section, [role=article], [role=complementary], [role=main], [role=navigation], [role=region]';

  const collapse = (s) => s.replace(/\s+/g, ' ').trim();
  // Names and values are cut at 200 characters, with an ellipsis.
  const cap = (s) => (s.length > 200 ? s.slice(0, 200) + '…' : s);
  const quote = (s) => '"' + s.replace(/"/g, '\\"') + '"';
  const attr = (el, a) => el.getAttribute(a);

  // CSS that changes what the text reads as. `text-transform` is read once per element that
  // holds text; generated content only for elements that some rule of their document gives
  // `::before`/`::after` text (the rules are scanned once per document and walk).
  const transforms = new Map();
  function transformed(raw, el) {
    if (!el || el.nodeType !== 1 || !/\S/.test(raw)) return raw;
    let tt = transforms.get(el);
    if (tt === undefined) { tt = getComputedStyle(el).textTransform; transforms.set(el, tt); }
    switch (tt) {
      case 'uppercase': return raw.toUpperCase();
      case 'lowercase': return raw.toLowerCase();
      case 'capitalize': return raw.replace(/(^|[^\p{L}\p{N}'’])(\p{Ll})/gu, (m, a, b) => a + b.toUpperCase());
      default: return raw;
    }
  }

  const generatedSelectors = new Map();
  function generatedSelector(doc) {
    const sels = [];
    const scan = (rules) => {
      for (const r of rules) {
        if (!r.selectorText) { if (r.cssRules) scan(r.cssRules); continue; }
        if (!/:(before|after)\b/i.test(r.selectorText)) continue;
        const c = r.style && r.style.getPropertyValue('content');
        if (!c || !/["']/.test(c)) continue;
        for (const part of r.selectorText.split(',')) {
          if (!/:(before|after)\b/i.test(part)) continue;
          const base = part.replace(/::?(before|after)\b.*$/i, '').trim() || '*';
          try { doc.createDocumentFragment().querySelector(base); sels.push(base); } catch (e) { /* not a selector on its own */ }
        }
      }
    };
    for (const sheet of doc.styleSheets) {
      let rules = null;
      try { rules = sheet.cssRules; } catch (e) { rules = null; } // another origin's sheet
      if (rules) scan(rules);
    }
    return sels.length ? Array.from(new Set(sels)).join(', ') : null;
  }

  // The text `::before` or `::after` (`which`) adds to `el` when it is made of quoted strings
  // only (content with counters, attributes or images is left out rather than shown in
  // part); icon-font glyphs say nothing as text.
  function generated(el, which) {
    const doc = el.ownerDocument;
    let sel = generatedSelectors.get(doc);
    if (sel === undefined) { sel = generatedSelector(doc); generatedSelectors.set(doc, sel); }
    if (!sel || !el.matches(sel)) return '';
    const c = getComputedStyle(el, which).content;
    if (!c || c === 'none' || c === 'normal') return '';
    const strings = /"((?:[^"\\]|\\.)*)"/g;
    const body = c.split(' / ')[0];
    if (body.replace(strings, '').trim()) return '';
    let out = '';
    for (const m of body.matchAll(strings)) out += m[1].replace(/\\(.)/g, '$1');
    return transformed(out.replace(/[\uE000-\uF8FF]/g, ''), el);
  }

  // An inline SVG's title: its own, or that of the symbol its only `<use>` shows (icon
  // sprites name their symbols).
  function svgTitle(el) {
    const own = el.querySelector(':scope > title');
    if (own) return own.textContent;
    const uses = el.querySelectorAll(':scope > use');
    if (uses.length !== 1) return '';
    const ref = uses[0].getAttribute('href') || uses[0].getAttribute('xlink:href') || '';
    if (!ref.startsWith('#')) return '';
    const target = el.getRootNode().getElementById
      ? el.getRootNode().getElementById(ref.slice(1)) : el.ownerDocument.getElementById(ref.slice(1));
    const t = target && target.querySelector(':scope > title');
    return t ? t.textContent : '';
  }

  // Children in the rendered tree: an open shadow root replaces the light children, a slot
  // shows what is assigned to it, and a same-origin frame shows its document.
  function childrenOf(el) {
    if (el.shadowRoot) return el.shadowRoot.childNodes;
    if (el.localName === 'slot') {
      const assigned = el.assignedNodes();
      return assigned.length ? assigned : el.childNodes;
    }
    return el.childNodes;
  }

  function frameBody(el) {
    let doc = null;
    try { doc = el.contentDocument; } catch (e) { doc = null; }
    return doc && doc.documentElement ? doc.documentElement : null;
  }

  // 'shown': rendered; 'none': not rendered with its subtree; 'self': the element is
  // invisible but descendants may show (visibility: hidden / display: contents).
  function visibility(el) {
    if (el.checkVisibility({ visibilityProperty: true })) return 'shown';
    const cs = getComputedStyle(el);
    if (cs.display === 'none') return 'none';
    if (cs.display === 'contents' && cs.visibility === 'visible') return 'contents';
    return 'self';
  }

  function inputRole(el) {
    const t = (attr(el, 'type') || 'text').toLowerCase();
    switch (t) {
      case 'hidden': return null;
      case 'button': case 'submit': case 'reset': case 'image': case 'file': return 'button';
      case 'checkbox': return 'checkbox';
      case 'radio': return 'radio';
      case 'range': return 'slider';
      case 'number': return 'spinbutton';
      case 'search': return el.hasAttribute('list') ? 'combobox' : 'searchbox';
      default: return el.hasAttribute('list') ? 'combobox' : 'textbox';
    }
  }

  function implicitRole(el, tag) {
    switch (tag) {
      case 'a': case 'area': return el.hasAttribute('href') ? 'link' : 'generic';
      case 'article': return 'article';
      case 'aside': return el.parentElement && el.parentElement.closest('article, aside, nav, section')
        && !el.hasAttribute('aria-label') && !el.hasAttribute('aria-labelledby') ? 'generic' : 'complementary';
      case 'blockquote': return 'blockquote';
      case 'button': return 'button';
      case 'caption': return 'caption';
      case 'code': return 'code';
      case 'dd': return 'definition';
      case 'del': case 's': return 'deletion';
      case 'details': return 'group';
      case 'dfn': case 'dt': return 'term';
      case 'dialog': return 'dialog';
      // A description list has no role of its own: its terms and definitions say enough.
      case 'menu': case 'ol': case 'ul': return 'list';
      case 'em': return 'emphasis';
      case 'fieldset': case 'optgroup': return 'group';
      case 'figure': return 'figure';
      case 'footer': return el.parentElement && el.parentElement.closest(LANDMARK_SCOPE) ? 'generic' : 'contentinfo';
      case 'header': return el.parentElement && el.parentElement.closest(LANDMARK_SCOPE) ? 'generic' : 'banner';
      case 'form': return 'form';
      case 'h1': case 'h2': case 'h3': case 'h4': case 'h5': case 'h6': return 'heading';
      case 'hr': return 'separator';
      case 'iframe': case 'frame': return 'iframe';
      case 'img': return attr(el, 'alt') === '' ? 'presentation' : 'img';
      case 'input': return inputRole(el);
      case 'ins': return 'insertion';
      case 'li': return 'listitem';
      case 'main': return 'main';
      case 'mark': return 'mark';
      case 'math': return 'math';
      case 'meter': return 'meter';
      case 'nav': return 'navigation';
      case 'option': return 'option';
      case 'output': return 'status';
      case 'p': return 'paragraph';
      case 'progress': return 'progressbar';
      case 'search': return 'search';
      case 'section': return (el.hasAttribute('aria-label') || el.hasAttribute('aria-labelledby')) ? 'region' : 'generic';
      case 'select': return (el.multiple || el.size > 1) ? 'listbox' : 'combobox';
      case 'strong': case 'b': return tag === 'strong' ? 'strong' : 'generic';
      case 'sub': return 'subscript';
      case 'sup': return 'superscript';
      case 'summary': return 'button';
      case 'table': return 'table';
      case 'tbody': case 'thead': case 'tfoot': return 'rowgroup';
      case 'td': return el.closest('table[role=grid], table[role=treegrid]') ? 'gridcell' : 'cell';
      case 'th': return attr(el, 'scope') === 'row' ? 'rowheader' : 'columnheader';
      case 'textarea': return 'textbox';
      case 'time': return 'time';
      case 'tr': return 'row';
      case 'svg': return 'img';
      default: return 'generic';
    }
  }

  function focusable(el, tag) {
    if (el.hasAttribute('tabindex')) return !el.matches(':disabled');
    if (el.isContentEditable && !(el.parentElement && el.parentElement.isContentEditable)) return true;
    switch (tag) {
      case 'a': case 'area': return el.hasAttribute('href');
      case 'button': case 'select': case 'textarea': return !el.disabled;
      case 'input': return attr(el, 'type') !== 'hidden' && !el.disabled;
      case 'summary': return !!el.parentElement && el.parentElement.localName === 'details'
        && el.parentElement.querySelector(':scope > summary') === el;
      default: return false;
    }
  }

  function roleOf(el, tag, canFocus) {
    const explicit = attr(el, 'role');
    if (explicit) {
      for (const r of explicit.trim().toLowerCase().split(/\s+/)) {
        // A focusable element stays what it is even if marked presentational.
        if ((r === 'none' || r === 'presentation') && canFocus) continue;
        if (ROLES.has(r)) return r;
      }
    }
    return implicitRole(el, tag);
  }

  // The text an element contributes to the name of an ancestor (or its own name from
  // content); `skip` is the control being labelled, which never names itself.
  function textOf(node, skip, budget) {
    let out = '';
    const add = (s) => { if (out.length < budget) out += s; };
    const visit = (n, parent) => {
      if (out.length >= budget) return;
      if (n.nodeType === 3) { add(transformed(n.data, parent)); return; }
      if (n.nodeType !== 1 || n === skip) return;
      const tag = n.localName;
      if (SKIP.has(tag) || attr(n, 'aria-hidden') === 'true') return;
      const v = visibility(n);
      if (v === 'none') return;
      const block = BLOCK.has(tag);
      if (block) add(' ');
      const label = attr(n, 'aria-label');
      if (label && label.trim()) { add(' ' + label + ' '); return; }
      if (tag === 'img' || tag === 'area') { if (v === 'shown') add(attr(n, 'alt') || ''); return; }
      if (tag === 'input') {
        const r = inputRole(n);
        if (r === 'textbox' || r === 'searchbox' || r === 'combobox' || r === 'spinbutton') add(' ' + n.value + ' ');
        else if (r === 'button') add(' ' + (n.value || '') + ' ');
        return;
      }
      if (tag === 'select') { const o = n.selectedOptions[0]; add(' ' + (o ? o.label : '') + ' '); return; }
      if (tag === 'textarea') { add(' ' + n.value + ' '); return; }
      if (tag === 'svg') { add(svgTitle(n)); return; }
      if (v === 'self') {
        // Invisible itself: only visible descendants count.
        for (const c of childrenOf(n)) if (c.nodeType === 1) visit(c, n);
      } else {
        add(generated(n, '::before'));
        for (const c of childrenOf(n)) visit(c, n);
        add(generated(n, '::after'));
      }
      if (block) add(' ');
    };
    if (node.nodeType === 1) {
      add(generated(node, '::before'));
      for (const c of childrenOf(node)) visit(c, node);
      add(generated(node, '::after'));
    }
    return out;
  }

  function byIds(el, ids) {
    const root = el.getRootNode();
    const parts = [];
    for (const id of ids.trim().split(/\s+/)) {
      const t = root.getElementById ? root.getElementById(id) : el.ownerDocument.getElementById(id);
      if (!t) continue;
      const label = attr(t, 'aria-label');
      parts.push(label && label.trim() ? label : textOf(t, el, 1000));
    }
    return parts.join(' ');
  }

  function nameOf(el, tag, role) {
    const lb = attr(el, 'aria-labelledby');
    if (lb) { const n = collapse(byIds(el, lb)); if (n) return n; }
    const al = attr(el, 'aria-label');
    if (al && al.trim()) return collapse(al);
    if (tag === 'input') {
      const t = (attr(el, 'type') || 'text').toLowerCase();
      if (t === 'submit' || t === 'reset' || t === 'button') {
        return collapse(el.value || (t === 'submit' ? 'Submit' : t === 'reset' ? 'Reset' : ''));
      }
      if (t === 'image') return collapse(attr(el, 'alt') || el.value || 'Submit');
    }
    if (el.labels && el.labels.length) {
      // A label's own copy of the control (the control inside it) does not count.
      const n = collapse(Array.from(el.labels, (l) => textOf(l, el, 1000)).join(' '));
      if (n) return n;
    }
    switch (tag) {
      case 'img': case 'area': { const a = attr(el, 'alt'); if (a && a.trim()) return collapse(a); break; }
      case 'fieldset': { const l = el.querySelector(':scope > legend'); if (l) { const n = collapse(textOf(l, null, 1000)); if (n) return n; } break; }
      case 'figure': { const c = el.querySelector(':scope > figcaption'); if (c) { const n = collapse(textOf(c, null, 1000)); if (n) return n; } break; }
      case 'table': { const c = el.querySelector(':scope > caption'); if (c) { const n = collapse(textOf(c, null, 1000)); if (n) return n; } break; }
      case 'svg': { const n = collapse(svgTitle(el)); if (n) return n; break; }
      case 'input': case 'textarea': {
        const t = attr(el, 'title') || attr(el, 'placeholder');
        if (t && t.trim()) return collapse(t);
        break;
      }
      default: break;
    }
    if (FROM_CONTENT.has(role)) {
      const n = collapse(textOf(el, null, 1000));
      if (n) return n;
    }
    const title = attr(el, 'title');
    return title ? collapse(title) : '';
  }

  function ariaTrue(el, a) {
    const v = attr(el, a);
    return v === 'true' ? true : v === 'mixed' ? 'mixed' : false;
  }

  function states(el, tag, role) {
    const out = [];
    if (role === 'heading') {
      const level = /^h[1-6]$/.test(tag) ? Number(tag[1]) : Number(attr(el, 'aria-level'));
      if (level >= 1) out.push('level=' + level);
    }
    let checked = false;
    if (tag === 'input' && (role === 'checkbox' || role === 'radio' || role === 'switch')) {
      checked = el.indeterminate ? 'mixed' : el.checked;
    } else if (el.hasAttribute('aria-checked')) {
      checked = ariaTrue(el, 'aria-checked');
    }
    if (checked === true) out.push('checked'); else if (checked === 'mixed') out.push('checked=mixed');
    const selected = tag === 'option' ? el.selected : ariaTrue(el, 'aria-selected') === true;
    if (selected) out.push('selected');
    let expanded = ariaTrue(el, 'aria-expanded') === true;
    if (tag === 'summary' && el.parentElement && el.parentElement.localName === 'details') expanded = el.parentElement.open;
    if (expanded) out.push('expanded');
    const pressed = ariaTrue(el, 'aria-pressed');
    if (pressed === true) out.push('pressed'); else if (pressed === 'mixed') out.push('pressed=mixed');
    let disabled = false;
    try { disabled = el.matches(':disabled'); } catch (e) { disabled = false; }
    if (disabled || attr(el, 'aria-disabled') === 'true') out.push('disabled');
    return out;
  }

  function valueOf(el, tag, role) {
    if (!VALUED.has(role)) return '';
    if (tag === 'select') { const o = el.selectedOptions[0]; return o ? o.label : ''; }
    if (tag === 'input' || tag === 'textarea') {
      if (tag === 'input' && (attr(el, 'type') || '').toLowerCase() === 'password') return '•'.repeat(el.value.length);
      return el.value;
    }
    if (el.isContentEditable) return el.innerText;
    const now = attr(el, 'aria-valuetext') || attr(el, 'aria-valuenow');
    return now || '';
  }

  function refFor(el) {
    let id = S.ids.get(el);
    if (id === undefined) { id = S.next++; S.ids.set(el, id); }
    S.els.set(id, el);
    return id;
  }

  // Text at `depth` joins the text line just before it at the same depth, as written:
  // inline neighbours ("bidict" "(") stay glued, whitespace and block edges separate them.
  function pushText(out, depth, raw) {
    const last = out[out.length - 1];
    const joins = last && last[1] === 1 && last[0] === depth;
    if (!/\S/.test(raw)) {
      if (joins) last[2] += ' ';
      return;
    }
    if (joins) last[2] += raw; else out.push([depth, 1, raw]);
  }

  // A block boundary: text on either side must not run together.
  function breakText(out, depth) {
    const last = out[out.length - 1];
    if (last && last[1] === 1 && last[0] === depth) last[2] += ' ';
  }

  // Text lines are collected raw and collapsed once complete (deeper ones already are);
  // returns the lines without the ones left empty.
  function collapseText(lines, depth) {
    for (const l of lines) if (l[1] === 1 && l[0] === depth) l[2] = collapse(l[2]);
    return lines.filter((l) => l[1] !== 1 || l[2] !== '');
  }

  function walkChildren(el, depth, out, shown) {
    const before = shown && el.nodeType === 1 ? generated(el, '::before') : '';
    if (before) pushText(out, depth, before);
    for (const c of childrenOf(el)) {
      if (c.nodeType === 3) {
        if (shown) pushText(out, depth, transformed(c.data, el));
      } else if (c.nodeType === 1) {
        visit(c, depth, out);
      }
    }
    const after = shown && el.nodeType === 1 ? generated(el, '::after') : '';
    if (after) pushText(out, depth, after);
    const tag = el.localName;
    if (tag === 'iframe' || tag === 'frame') {
      const doc = frameBody(el);
      if (doc) walkChildren(doc, depth, out, true);
      else if (el.contentWindow) {
        frameToken += 1;
        S.frameTokens.set(el, frameToken);
        out.push([depth, 2, String(frameToken)]);
      }
    }
  }

  function visit(el, depth, out) {
    const tag = el.localName;
    if (SKIP.has(tag) || attr(el, 'aria-hidden') === 'true' || el.inert) return;
    if (el.namespaceURI === 'http://www.w3.org/2000/svg' && tag !== 'svg') return;
    const v = visibility(el);
    if (v === 'none') return;
    if (v === 'self' || v === 'contents') {
      // Not rendered itself (display: contents still shows its children's text).
      walkChildren(el, depth, out, v === 'contents');
      return;
    }
    const canFocus = focusable(el, tag);
    const role = roleOf(el, tag, canFocus);
    if (role === null) return;
    if (tag === 'svg') {
      const name = nameOf(el, tag, role);
      if (name) out.push([depth, 0, '- img ' + quote(cap(name))]);
      return;
    }
    const interactive = INTERACTIVE.has(role) || (canFocus && role !== 'iframe');
    const name = (interactive || !TRANSPARENT.has(role) || el.hasAttribute('aria-label')
      || el.hasAttribute('aria-labelledby') || tag === 'img' || tag === 'iframe' || tag === 'fieldset')
      ? cap(nameOf(el, tag, role)) : '';
    if (!interactive && TRANSPARENT.has(role) && !name) {
      const block = BLOCK.has(tag);
      if (block) breakText(out, depth);
      walkChildren(el, depth, out, true);
      if (block) breakText(out, depth);
      return;
    }
    let head = '- ' + role;
    if (name) head += ' ' + quote(name);
    for (const s of states(el, tag, role)) head += ' [' + s + ']';
    if (interactive) {
      const id = refFor(el);
      head += ' [ref=e' + id + ']';
      refs.push([id, role, name]);
    }
    let kids = [];
    if (tag === 'select') {
      for (const o of el.options) kids.push([depth + 1, 0, optionLine(o)]);
    } else if (tag !== 'textarea') {
      walkChildren(el, depth + 1, kids, true);
      kids = collapseText(kids, depth + 1);
    }
    // Text children that only repeat the name add nothing.
    if (name) kids = kids.filter((l) => !(l[1] === 1 && l[0] === depth + 1 && name.includes(l[2])));
    const value = valueOf(el, tag, role);
    if (value && collapse(value)) {
      out.push([depth, 0, head + ': ' + cap(collapse(value))]);
      for (const k of kids) out.push(k);
      return;
    }
    if (kids.length === 1 && kids[0][1] === 1) {
      out.push([depth, 0, head + ': ' + kids[0][2]]);
      return;
    }
    if (kids.length) head += ':';
    out.push([depth, 0, head]);
    for (const k of kids) out.push(k);
  }

  function optionLine(o) {
    const name = cap(collapse(o.label || o.textContent));
    let head = '- option';
    if (name) head += ' ' + quote(name);
    if (o.selected) head += ' [selected]';
    if (o.disabled) head += ' [disabled]';
    return head;
  }

  const root = document.body || document.documentElement;
  if (root) walkChildren(root, 0, lines, true);
  return JSON.stringify({ lines: collapseText(lines, 0), refs, next: S.next });
}
