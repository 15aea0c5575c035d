// semsearch's search page: plain JavaScript, no dependencies, no build step.
// Everything the index returns (passages, file names, headings, messages) is written with
// textContent or as text nodes, never as HTML.
(() => {
  "use strict";

  const KEY = "semsearch.key"; // sessionStorage: this tab only, gone when it closes
  const MAX_CONTEXT = 10; // the most context /passage takes
  const SCORES = { dense: "cosine", lexical: "BM25", hybrid: "RRF" };
  const $ = (id) => document.getElementById(id);

  let roots = []; // the server's ingest roots: paths under the first are shown relative to it
  let latest = 0; // the number of the latest search: older answers arriving late are dropped
  const waiting = new Set(); // what to do again once a key is given

  class ApiError extends Error {
    constructor(status, message, sentKey) {
      super(message);
      this.status = status;
      this.sentKey = sentKey; // whether the request carried a key (a 401 then means a wrong one)
    }
  }

  // Chunk ids of a Milvus index are 63-bit: past 2^53 a JavaScript number rounds them, and
  // widening a hit would ask for another chunk. Where the browser hands a reviver the number's
  // source text (and has JSON.rawJSON to write it back), such integers stay exact as BigInt.
  const EXACT = typeof JSON.rawJSON === "function";
  const DIGITS = /^-?[0-9]+$/;

  function parseJSON(text) {
    return JSON.parse(text, (key, value, context) =>
      EXACT && typeof value === "number" && !Number.isSafeInteger(value) && context && DIGITS.test(context.source)
        ? BigInt(context.source)
        : value,
    );
  }

  function toJSON(body) {
    return JSON.stringify(body, (key, value) => (typeof value === "bigint" ? JSON.rawJSON(value.toString()) : value));
  }

  // Control characters, the bidirectional controls that reorder a line (a file "rtl_\u202egnp.md"
  // would read "rtl_dm.png") and lone surrogates (the undecodable bytes of a file name) are shown
  // as visible escapes, as the terminal shows them (cli/render.py's printable): \x1b, \u202e,
  // \xff for a byte. Tabs and line breaks stay in a passage (lines), not in a name.
  const UNSAFE = /[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\ud800-\udfff]/gu;
  const UNSAFE_IN_LINE = /[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\ud800-\udfff]/gu;

  function visible(text, lines = false) {
    return String(text).replace(lines ? UNSAFE : UNSAFE_IN_LINE, (char) => {
      const code = char.codePointAt(0);
      if (code >= 0xdc80 && code <= 0xdcff) return "\\x" + hex(code - 0xdc00, 2); // a byte, not UTF-8
      return code < 0x100 ? "\\x" + hex(code, 2) : "\\u" + hex(code, 4);
    });
  }

  function hex(code, digits) {
    return code.toString(16).padStart(digits, "0");
  }

  // A call to the API: JSON in, JSON out; the key, if one is kept, as a bearer token.
  async function api(method, path, body) {
    const headers = { Accept: "application/json" };
    const key = sessionStorage.getItem(KEY);
    if (key) headers.Authorization = "Bearer " + key;
    const init = { method, headers, cache: "no-store" };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = toJSON(body);
    }
    let response;
    try {
      response = await fetch(path, init);
    } catch (error) {
      throw new ApiError(0, "Cannot reach the server: " + error.message, Boolean(key));
    }
    let data = null;
    try {
      data = parseJSON(await response.text());
    } catch (error) {
      data = null; // not JSON (a proxy's error page, say)
    }
    if (!response.ok) {
      const message = data && data.error && data.error.message;
      throw new ApiError(response.status, message || `${response.status} ${response.statusText}`, Boolean(key));
    }
    return data;
  }

  // Run `action`; on 401 ask for the key and run it again once given; other errors on one line.
  async function guarded(action) {
    try {
      await action();
    } catch (error) {
      if (error instanceof ApiError && error.status === 401) {
        askForKey(action, error.sentKey);
      } else {
        showError(error.message || String(error));
      }
    }
  }

  function askForKey(action, refused) {
    sessionStorage.removeItem(KEY);
    waiting.add(action);
    $("key-message").textContent = refused
      ? "The server refused that key; enter it again."
      : "This server wants its API key.";
    $("key-form").hidden = false;
    $("key-input").value = "";
    $("key-input").focus();
  }

  function useKey(event) {
    event.preventDefault();
    const key = $("key-input").value.trim();
    if (!key) return;
    sessionStorage.setItem(KEY, key);
    $("key-input").value = "";
    $("key-form").hidden = true;
    clearError();
    const actions = new Set([loadInfo, ...waiting]);
    waiting.clear();
    for (const action of actions) guarded(action);
  }

  function showError(message) {
    const line = String(message).split("\n")[0];
    $("error").textContent = visible(line);
    $("error").title = visible(message, true);
    $("error").hidden = false;
  }

  function clearError() {
    $("error").hidden = true;
    $("error").textContent = "";
  }

  // -- what the server is --------------------------------------------------------------------

  async function loadVersion() {
    try {
      const health = await api("GET", "/health");
      $("version").textContent = health.version;
    } catch (error) {
      $("version").textContent = "";
    }
  }

  async function loadInfo() {
    const info = await api("GET", "/info");
    roots = info.ingest_roots || [];
    const documents = `${info.documents.toLocaleString()} document${info.documents === 1 ? "" : "s"}`;
    const chunks = `${info.chunks.toLocaleString()} chunks`;
    $("index-counts").textContent = `${documents} · ${chunks}`;
    $("index-counts").title = visible(info.path);
    $("index-model").textContent = visible(modelName(info.model));
    $("index-model").title = visible(info.model);
    const select = $("rerank");
    select.replaceChildren(new Option("off", ""));
    for (const name of info.rerankers || []) select.append(new Option(visible(shortName(name)), name));
    $("rerank-field").hidden = select.options.length < 2;
  }

  // A local model folder by its own name (the full path on hover); a hub id as it is.
  function modelName(model) {
    return /^(\/|\.{1,2}\/|~|[A-Za-z]:[\\/])/.test(model) ? shortName(model.replace(/\\/g, "/")) : model;
  }

  function shortName(model) {
    const parts = model.split("/").filter(Boolean);
    return parts.length ? parts[parts.length - 1] : model;
  }

  // -- searching -----------------------------------------------------------------------------

  function request() {
    const mode = document.querySelector('input[name="mode"]:checked').value;
    const body = {
      query: $("query").value.trim(),
      k: Number.parseInt($("k").value, 10) || 10,
      mode,
      context: Number.parseInt($("context").value, 10) || 0,
    };
    const where = {};
    const types = $("types").value.split(/[\s,;]+/).map((t) => t.replace(/^\./, "")).filter(Boolean);
    if (types.length) where.types = types;
    const path = $("path").value.trim();
    if (path) where.paths = [path];
    if (Object.keys(where).length) body.where = where;
    if ($("rerank").value) body.rerank = $("rerank").value;
    return body;
  }

  async function search() {
    const body = request();
    if (!body.query) return;
    const number = ++latest;
    clearError();
    setBusy(true);
    const started = performance.now();
    try {
      const answer = await api("POST", "/search", body);
      if (number === latest) render(answer, body, (performance.now() - started) / 1000);
    } finally {
      if (number === latest) setBusy(false);
    }
  }

  function setBusy(busy) {
    $("search-button").disabled = busy;
    $("search-button").textContent = busy ? "Searching…" : "Search";
    $("results").setAttribute("aria-busy", String(busy));
  }

  function render(answer, body, seconds) {
    const hits = answer.results.length ? answer.results[0].hits : [];
    const list = $("results");
    list.replaceChildren(...hits.map((hit) => hitItem(hit, body)));
    const count = hits.length ? `${hits.length} passage${hits.length === 1 ? "" : "s"}` : "No passages found";
    const parts = [`${count} · ${body.mode} · ${seconds.toFixed(2)} s`, ...(answer.notes || []).map((n) => visible(n))];
    $("status").textContent = parts.join(" — ");
  }

  function hitItem(hit, body) {
    const item = element("li", "hit");
    item.dataset.chunk = String(hit.chunk_id);
    item.dataset.rank = String(hit.rank);
    item.dataset.shows = chunkList(hit.chunk_ids && hit.chunk_ids.length ? hit.chunk_ids : [hit.chunk_id]);
    const head = element("div", "hit-head");
    head.append(element("span", "rank", String(hit.rank)), sourceLabel(hit.source), scoreLabel(hit, body.mode));
    const meta = element("div", "meta");
    label(hit, hit.matched, meta); // the hit's own line and heading, kept when its passage widens
    const passage = element("p", "passage");
    passage.title = "Click for more context";
    fill(hit, passage);
    const more = element("button", "widen", "More context");
    more.type = "button";
    const note = element("span", "widened");
    const folded = element("span", "folded");
    const actions = element("div", "actions");
    actions.append(more, note, folded);
    item.append(head, meta, passage, actions);

    const state = {
      chunk: hit.chunk_id,
      context: body.context,
      query: hit.matched.includes("lexical") ? body.query : null,
      chunks: null, // chunks in the last passage /passage gave
      busy: false,
      done: false,
      whole: false,
    };
    const widen = () => guarded(() => widenHit(state, { item, passage, more, note, folded }));
    more.addEventListener("click", widen);
    passage.addEventListener("click", () => {
      if (!String(window.getSelection()).trim()) widen(); // selecting text is not a click to widen
    });
    return item;
  }

  async function widenHit(state, parts) {
    if (state.busy || state.done) return;
    state.busy = true;
    parts.more.disabled = true;
    parts.more.textContent = "Loading…";
    try {
      const context = state.context + 1;
      const body = { chunk_id: state.chunk, context };
      if (state.query) body.query = state.query;
      const found = (await api("POST", "/passage", body)).passage;
      // a wider window that brings no chunk more has reached both ends of the document
      state.whole = state.chunks !== null && found.chunk_ids.length === state.chunks;
      state.done = state.whole || context >= MAX_CONTEXT;
      state.context = context;
      state.chunks = found.chunk_ids.length;
      fill(found, parts.passage);
      parts.passage.classList.add("wide");
      parts.note.textContent = `${context} chunk${context === 1 ? "" : "s"} either side`;
      parts.item.dataset.shows = chunkList(found.chunk_ids);
      foldInto(parts.item, parts.folded);
    } finally {
      state.busy = false;
      parts.more.disabled = state.done;
      parts.more.textContent = state.whole ? "Whole document shown" : state.done ? "Widest shown" : "More context";
      if (state.done) parts.passage.title = "";
    }
  }

  // Chunk ids as strings (a Milvus id may be a BigInt), joined for a data attribute.
  function chunkList(ids) {
    return ids.map(String).join(",");
  }

  // The other hits whose chunks the widened `item` now shows, every one of them, are folded
  // away (their text is in its passage); `note` says which.
  function foldInto(item, note) {
    const shows = new Set(item.dataset.shows.split(","));
    for (const other of $("results").children) {
      if (other === item || other.hidden) continue;
      if (other.dataset.shows.split(",").every((id) => shows.has(id))) {
        other.hidden = true;
        item.dataset.folded = [item.dataset.folded, other.dataset.rank].filter(Boolean).join(",");
      }
    }
    const ranks = (item.dataset.folded || "").split(",").filter(Boolean);
    note.textContent = ranks.length ? `Takes in hit${ranks.length === 1 ? "" : "s"} ${ranks.join(", ")}` : "";
  }

  // The passage's text with its highlights.
  function fill(passage, paragraph) {
    paragraph.replaceChildren(...highlighted(passage.text, passage.highlights || []));
  }

  // Where the hit is: line, page, heading, and which searches found it.
  function label(hit, matched, meta) {
    const where = [`line ${hit.line}`];
    if (hit.page !== null && hit.page !== undefined) where.push(`page ${hit.page}`);
    const spans = [element("span", "", where.join(" · "))];
    if (hit.heading) spans.push(element("span", "heading", visible(hit.heading)));
    if (matched) spans.push(element("span", "tag", matched));
    meta.replaceChildren(...spans);
  }

  // Text nodes and <mark>s. The spans count characters (code points) as Python does, not the
  // UTF-16 units of a JavaScript string, so the text is cut as an array of code points.
  function highlighted(text, spans) {
    const chars = Array.from(text);
    const nodes = [];
    let at = 0;
    for (const [start, end] of spans) {
      if (start < at || end > chars.length) continue;
      if (start > at) nodes.push(document.createTextNode(visible(chars.slice(at, start).join(""), true)));
      nodes.push(element("mark", "", visible(chars.slice(start, end).join(""), true)));
      at = end;
    }
    if (at < chars.length) nodes.push(document.createTextNode(visible(chars.slice(at).join(""), true)));
    return nodes;
  }

  function sourceLabel(path) {
    const root = roots.length ? roots[0].replace(/\/+$/, "") + "/" : null;
    const shown = root && path.startsWith(root) ? path.slice(root.length) : path;
    const cut = shown.lastIndexOf("/") + 1;
    const label = element("span", "source");
    label.title = visible(path);
    if (cut) label.append(element("span", "folder", visible(shown.slice(0, cut))));
    label.append(element("span", "file", visible(shown.slice(cut))));
    return label;
  }

  function scoreLabel(hit, mode) {
    const label = element("span", "score");
    if (hit.reranked) {
      label.append(element("span", "kind", "rerank "), score(hit.score));
      label.title = `Reranked; first-stage ${SCORES[mode]} score ${hit.first_score}`;
      label.append(element("span", "first", ` · ${SCORES[mode]} ${format(hit.first_score)}`));
    } else {
      label.append(element("span", "kind", SCORES[mode] + " "), score(hit.score));
      label.title = `${SCORES[mode]} score ${hit.score}`;
    }
    return label;
  }

  function score(value) {
    return element("strong", "", format(value));
  }

  function format(value) {
    if (value === null || value === undefined) return "–";
    const size = Math.abs(value);
    return size >= 100 ? value.toFixed(0) : size >= 1 ? value.toFixed(2) : value.toFixed(4);
  }

  function element(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("search-form").addEventListener("submit", (event) => {
      event.preventDefault();
      guarded(search);
    });
    $("key-form").addEventListener("submit", useKey);
    loadVersion();
    guarded(loadInfo);
  });
})();
