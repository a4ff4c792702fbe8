// A small Markdown renderer that builds DOM nodes (never HTML strings), for model output.
// Supports: fenced code, headings, lists, blockquotes, rules, paragraphs, inline code,
// bold, italic, strikethrough and links (http/https/mailto only). Anything else, HTML
// included, is shown as the text it is.

const SAFE_URL = /^(https?:|mailto:)/i;

function text(s) {
  return document.createTextNode(s);
}

function el(tag, ...children) {
  const node = document.createElement(tag);
  for (const child of children) node.appendChild(typeof child === "string" ? text(child) : child);
  return node;
}

/** Inline spans of one line into `parent`. */
export function renderInline(source, parent) {
  const pattern = /(`+)([\s\S]*?[^`])\1(?!`)|\*\*([^*]+?)\*\*|__([^_]+?)__|~~([^~]+?)~~|\*([^*\s][^*]*?)\*|(?<![\w])_([^_\s][^_]*?)_(?![\w])|\[([^\]]+)\]\(([^)\s]+)\)|(https?:\/\/[^\s<>()]+[^\s<>().,;:!?'"])/g;
  let last = 0;
  for (const m of source.matchAll(pattern)) {
    if (m.index > last) parent.appendChild(text(source.slice(last, m.index)));
    if (m[1]) parent.appendChild(el("code", m[2].trim() ? m[2].replace(/^ (.*) $/, "$1") : m[2]));
    else if (m[3] || m[4]) renderInline(m[3] || m[4], parent.appendChild(el("strong")));
    else if (m[5]) renderInline(m[5], parent.appendChild(el("del")));
    else if (m[6] || m[7]) renderInline(m[6] || m[7], parent.appendChild(el("em")));
    else if (m[8]) {
      if (SAFE_URL.test(m[9])) {
        const a = el("a");
        a.href = m[9];
        a.target = "_blank";
        a.rel = "noopener noreferrer";
        renderInline(m[8], a);
        parent.appendChild(a);
      } else {
        parent.appendChild(text(m[0]));
      }
    } else if (m[10]) {
      const a = el("a", m[10]);
      a.href = m[10];
      a.target = "_blank";
      a.rel = "noopener noreferrer";
      parent.appendChild(a);
    }
    last = m.index + m[0].length;
  }
  if (last < source.length) parent.appendChild(text(source.slice(last)));
  return parent;
}

function inlineLines(lines, parent) {
  lines.forEach((line, i) => {
    if (i) parent.appendChild(el("br"));
    renderInline(line, parent);
  });
  return parent;
}

const LIST_ITEM = /^(\s*)([-*+]|\d{1,9}[.)])\s+(.*)$/;

/** Render `source` as Markdown into a new DocumentFragment. */
export function renderMarkdown(source) {
  const out = document.createDocumentFragment();
  const lines = String(source ?? "").replace(/\r\n?/g, "\n").split("\n");
  let i = 0;
  while (i < lines.length) {
    const line = lines[i];
    const fence = line.match(/^\s*(```+|~~~+)\s*([\w+#.-]*)\s*$/);
    if (fence) {
      const body = [];
      i += 1;
      while (i < lines.length && !lines[i].trim().startsWith(fence[1])) body.push(lines[i++]);
      i += 1;
      const code = el("code", body.join("\n"));
      if (fence[2]) code.dataset.lang = fence[2];
      const pre = el("pre", code);
      out.appendChild(pre);
      continue;
    }
    if (!line.trim()) {
      i += 1;
      continue;
    }
    const heading = line.match(/^(#{1,6})\s+(.*?)\s*#*\s*$/);
    if (heading) {
      out.appendChild(renderInline(heading[2], el(`h${Math.min(6, heading[1].length + 2)}`)));
      i += 1;
      continue;
    }
    if (/^\s*([-*_])(\s*\1){2,}\s*$/.test(line)) {
      out.appendChild(el("hr"));
      i += 1;
      continue;
    }
    if (/^\s*>/.test(line)) {
      const quoted = [];
      while (i < lines.length && /^\s*>/.test(lines[i])) quoted.push(lines[i++].replace(/^\s*> ?/, ""));
      const block = el("blockquote");
      block.appendChild(renderMarkdown(quoted.join("\n")));
      out.appendChild(block);
      continue;
    }
    const item = line.match(LIST_ITEM);
    if (item) {
      const ordered = /\d/.test(item[2]);
      const list = el(ordered ? "ol" : "ul");
      if (ordered && parseInt(item[2], 10) !== 1) list.start = parseInt(item[2], 10);
      while (i < lines.length) {
        const m = lines[i].match(LIST_ITEM);
        if (!m || /\d/.test(m[2]) !== ordered) break;
        const body = [m[3]];
        i += 1;
        while (i < lines.length && lines[i].trim() && !LIST_ITEM.test(lines[i]) && /^\s{2,}/.test(lines[i])) {
          body.push(lines[i++].trim());
        }
        list.appendChild(inlineLines(body, el("li")));
      }
      out.appendChild(list);
      continue;
    }
    const para = [];
    while (i < lines.length && lines[i].trim() && !LIST_ITEM.test(lines[i]) && !/^\s*(```|~~~|#{1,6}\s|>)/.test(lines[i])) {
      para.push(lines[i++]);
    }
    if (!para.length) para.push(lines[i++]);
    out.appendChild(inlineLines(para, el("p")));
  }
  return out;
}
