// skipgraph view: hover facts, click-to-prune, spec editing. The data and the SVG come from
// the server (or are inline in a static file); this script only shows them.
"use strict";
(function () {
  const $ = (id) => document.getElementById(id);
  let page = JSON.parse($("sg-data").textContent);
  let pruned = null;      // head title whose pruning is shown
  let showDiff = false;
  let sequence = 0;       // requests answered out of order are dropped
  let timer = null;

  const fmt = (n) => (n === null || n === undefined) ? "-" : Number(n).toLocaleString("en-US");
  const shape = (s) => s ? s.join("x") : "-";
  const approx = () => page.facts && page.facts.exact ? "" : "\u2248 ";

  function esc(text) {
    return String(text).replace(/[&<>"]/g, (c) => ({"&": "&amp;", "<": "&lt;", ">": "&gt;",
                                                     '"': "&quot;"}[c]));
  }

  function rows(pairs) {
    return "<table>" + pairs.map(([k, v]) =>
      `<tr><td>${esc(k)}</td><td data-key="${esc(k)}">${esc(v)}</td></tr>`).join("") + "</table>";
  }

  function settingsText(s) {
    return Object.entries(s || {}).map(([k, v]) => `${k}: ${JSON.stringify(v)}`).join(", ") || "-";
  }

  function info(key) {
    const f = page.facts;
    if (!f) return;
    let html = null;
    const flops = (v) => v === null || v === undefined ? (f.exact ? "-" : "needs `skipgraph view`") : fmt(v);
    if (f.nodes[key]) {
      const n = f.nodes[key];
      html = `<h2>${esc(n.id)}</h2>` + rows([
        ["level", `${n.level} (${n.resolution})`],
        ["channels", `${n.in_channels} \u2192 ${n.out_channels}`],
        ["block", n.note ? `${n.block} ${n.note}` : n.block],
        ["settings", settingsText(n.settings)],
        ["merge", n.merge], ["family", n.family + (n.loop ? ` (loop ${n.loop})` : "")],
        ["parameters", approx() + fmt(n.params)],
        ["output shape", shape(n.shape)], ["FLOPs", flops(n.flops)]]);
    } else if (f.edges[key]) {
      const e = f.edges[key];
      html = `<h2>${esc(e.src)} \u2192 ${esc(e.dst)}</h2>` + rows([
        ["family", `${e.family} (${e.kind})`], ["term", e.term], ["levels", e.level],
        ["channels", `${e.in_channels} \u2192 ${e.out_channels}`],
        ["gated by", e.gate_by || "-"], ["parameters", approx() + fmt(e.params)],
        ["output shape", shape(e.shape)], ["FLOPs", flops(e.flops)]]);
    } else if (f.heads[key]) {
      const h = f.heads[key];
      html = `<h2>head ${esc(h.id)}</h2>` + rows([
        ["on", h.node], ["type", h.type], ["level", h.level],
        ["channels", `${h.in_channels} \u2192 ${h.out_channels}`],
        ["settings", settingsText(h.settings)], ["parameters", approx() + fmt(h.params)],
        ["output shape", shape(h.shape)], ["FLOPs", flops(h.flops)],
        ["pruned to it", h.pixelwise ? approx() + fmt(h.pruned_params) + " parameters" : "not a segmentation head"]]) +
        (h.pixelwise ? '<p class="hint">click the head to grey what pruning to it removes</p>' : "");
    }
    if (html) $("info").innerHTML = html;
  }

  function elements() {
    return Array.from($("diagram").querySelectorAll("g.node, g.edge"));
  }

  function titleOf(g) {   // an edge drawn from a port (`X2_0:e->X0_2:s`) is keyed without it
    const t = g.querySelector("title");
    return t ? t.textContent.replace(/:[nsew]{1,2}(?=->|$)/g, "") : "";
  }

  function applyPrune() {
    const f = page.facts;
    const head = pruned && f && f.heads[pruned];
    const gone = new Set(head ? head.removed.concat(head.removed_edges) : []);
    elements().forEach((g) => g.classList.toggle("sg-pruned", gone.has(g.dataset.key)));
    if (head) {
      const total = f.totals.params;
      const pct = total ? (100 * head.pruned_params / total).toFixed(1) : "-";
      $("prune-note").textContent = `pruned to ${head.id}: ${approx()}${fmt(head.pruned_params)} of ` +
        `${approx()}${fmt(total)} parameters (${pct}%); ${head.removed.length} element(s) greyed` +
        " (click the head again to undo)";
    } else {
      $("prune-note").textContent = "";
    }
  }

  function bind() {
    const f = page.facts;
    elements().forEach((g) => {
      const key = titleOf(g);
      g.dataset.key = key;
      if (g.classList.contains("edge")) g.classList.add("sg-edge");
      g.addEventListener("mouseenter", () => { g.classList.add("sg-hover"); info(key); });
      g.addEventListener("mouseleave", () => g.classList.remove("sg-hover"));
      if (f && f.heads[key]) {
        g.classList.add("sg-head");
        g.addEventListener("click", () => {
          if (!f.heads[key].pixelwise) return;
          pruned = pruned === key ? null : key;
          applyPrune();
        });
      }
    });
  }

  function fit() {   // the editor grows with its text, so the gutter's numbers stay beside it
    const spec = $("spec");
    spec.style.height = "auto";
    spec.style.height = spec.scrollHeight + "px";
  }

  function gutter(lines, bad) {
    fit();
    const out = [];
    for (let i = 1; i <= lines; i++) {
      out.push(bad.has(i) ? `<span class="err" data-line="${i}">${i}</span>` : String(i));
    }
    $("gutter").innerHTML = out.join("\n");
  }

  function goTo(line, col) {
    const text = $("spec").value.split("\n");
    let offset = 0;
    for (let i = 0; i < line - 1 && i < text.length; i++) offset += text[i].length + 1;
    offset += Math.max(col - 1, 0);
    $("spec").focus();
    $("spec").setSelectionRange(offset, offset + 1);
  }

  function lines(d) {   // the message and hint wrap; the source line and its caret never do
    const src = d.line > 0 && / \^$/.test(d.text.split("\n")[2] || "") ? [1, 2] : [];
    return d.text.split("\n").map((line, k) =>
      `<span class="${src.includes(k) ? "src" : "msg"}">${esc(line)}</span>`).join("");
  }

  function showErrors() {
    const list = page.diagnostics || [];
    $("errors").innerHTML = list.map((d) =>
      `<li class="diag" data-line="${d.line}" data-col="${d.column}" data-code="${esc(d.code)}">` +
      `<pre>${lines(d)}</pre></li>`).join("");
    Array.from($("errors").children).forEach((li) => li.addEventListener("click", () =>
      goTo(Number(li.dataset.line), Number(li.dataset.col))));
    gutter($("spec").value.split("\n").length, new Set(list.map((d) => d.line).filter((l) => l > 0)));
    const st = $("status");
    st.className = list.length ? "bad" : "";
    st.textContent = list.length ? `${list.length} problem(s), as \`skipgraph check\` reports them`
                                 : (page.status || "ok");
  }

  function show() {
    const center = $("center");
    center.classList.toggle("stale", !page.drawn);
    if (page.svg) {   // a new drawing; none: the last one stays, dimmed, as it was bound
      $("diagram").innerHTML = page.svg;
      bind();
    }
    const totals = page.facts ? page.facts.totals : null;
    $("totals").textContent = totals ? `${approx()}${fmt(totals.params)} parameters` +
      (totals.flops !== null && totals.flops !== undefined ? `, ${fmt(totals.flops)} FLOPs` : "") +
      (totals.input ? ` at ${totals.input.join("x")}` : "") : "";
    $("notes").textContent = page.note || "";
    const hasDiff = !!page.diff;
    $("diff-toggle").hidden = !hasDiff;
    $("diffview").hidden = !(hasDiff && showDiff);
    $("diagram").hidden = hasDiff && showDiff;
    if (hasDiff) {
      $("diffview").innerHTML = page.diff.svg + `<pre id="diff-text">${esc(page.diff.text)}</pre>`;
      $("diff-toggle").textContent = showDiff ? "show the spec" : `diff against ${page.diff.against}`;
    }
    if (page.drawn && page.facts && pruned && !page.facts.heads[pruned]) pruned = null;
    applyPrune();
    showErrors();
  }

  async function update() {
    const mine = ++sequence;
    $("status").textContent = "checking\u2026";
    let reply;
    try {
      const res = await fetch("/api/spec", {method: "POST", headers: {"Content-Type": "application/json"},
        body: JSON.stringify({text: $("spec").value, input: $("input").value})});
      reply = await res.json();
    } catch (err) {
      $("status").className = "bad";
      $("status").textContent = `the view server did not answer (${err})`;
      return;
    }
    if (mine !== sequence) return;
    // a spec that does not load keeps the last diagram (dimmed) and its facts; a drawing of a
    // spec that does not validate comes without facts (its problems are marked instead)
    page = Object.assign({}, reply, {facts: reply.svg ? reply.facts : page.facts,
                                     drawn: !!reply.svg});
    show();
  }

  function schedule() {
    clearTimeout(timer);
    timer = setTimeout(update, 300);
  }

  $("spec").value = page.spec || "";
  $("input").value = page.facts && page.facts.totals.input ? page.facts.totals.input.join("x") : "";
  if (page.editable) {
    $("spec").addEventListener("input", () => { gutter($("spec").value.split("\n").length, new Set()); schedule(); });
    $("input").addEventListener("change", update);
  } else {
    $("spec").readOnly = true;
    $("input").readOnly = true;
  }
  $("diff-toggle").addEventListener("click", () => { showDiff = !showDiff; show(); });
  show();
  window.sgPage = () => page;   // for tests and the console
})();
