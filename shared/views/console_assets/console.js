"use strict";
// The operator console. Every value from the API is put into the page as text (textContent,
// createTextNode), never as HTML. HTTP_AUTH=key: the function key comes in as ?code= (as
// Azure opens keyed URLs), is taken out of the address bar at once, and goes only into the
// x-functions-key header of the API calls, never into a URL. HTTP_AUTH=entra: the platform's
// session cookie proves who calls; /.auth/me says who is signed in, nobody is sent to sign in,
// and what the roles do not allow is hidden (the server refuses it anyway).
(function () {
  const KEY_STORE = "d365-console-key";
  // The states come from the status model, in a JSON data block of the page (never executed).
  const VOCABULARY = JSON.parse(document.getElementById("vocabulary").textContent);
  const STATES = VOCABULARY.states;
  const FAILED = new Set([...VOCABULARY.failed, ...VOCABULARY.export_failed]);
  const PENDING = new Set([...VOCABULARY.pending, ...VOCABULARY.export_pending]);

  // The mode, the sign-in paths and the role each route needs, from a JSON data block.
  const SIGNIN = JSON.parse(document.getElementById("signin").textContent);
  const ENTRA = SIGNIN.mode === "entra";
  const functionKey = ENTRA ? "" : takeKey();
  let caller = null;
  let continuation = null;
  let pagedOn = false;  // the list shows more than its first page
  let exportContinuation = null;
  let auditContinuation = null;

  function takeKey() {
    const url = new URL(window.location.href);
    const given = url.searchParams.get("code");
    if (given !== null) {
      sessionStorage.setItem(KEY_STORE, given);
      url.searchParams.delete("code");
      history.replaceState(null, "", url.pathname + url.search + url.hash);
    }
    return given || sessionStorage.getItem(KEY_STORE) || "";
  }

  function $(id) { return document.getElementById(id); }

  // el("td", {className: "x"}, "text", otherNode): strings become text nodes.
  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    Object.assign(node, props || {});
    for (const child of children) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function clear(node) { node.replaceChildren(); return node; }

  // A list of values shown as code (blob paths).
  function codeList(id, items) {
    return el("ul", { id }, ...items.map((item) => el("li", {}, el("code", {}, item))));
  }

  // A row that opens its detail on a click or Enter.
  function clickable(tr, open) {
    tr.addEventListener("click", open);
    tr.addEventListener("keydown", (event) => { if (event.key === "Enter") open(); });
    return tr;
  }

  // A definition list; add() skips empty values.
  function factList(id) {
    const node = el("dl", { id });
    const add = (label, value) => {
      if (value === null || value === undefined || value === "") return;
      node.append(el("dt", {}, label), el("dd", {}, value instanceof Node ? value : String(value)));
    };
    return { node, add };
  }

  // One page of a listing into its table; answers the continuation of the next page.
  function fillPage(table, problem, more, response, makeRow, append) {
    const tbody = table.tBodies[0];
    if (!append) clear(tbody);
    problem.hidden = response.ok;
    more.hidden = true;
    if (!response.ok) { problem.textContent = response.body.error || "the list failed"; return null; }
    for (const record of response.body.items) tbody.append(makeRow(record));
    more.hidden = !response.body.continuation;
    return response.body.continuation;
  }

  function sizeText(size) { return size === null || size === undefined ? "" : `${size} bytes`; }

  async function api(path, params, options) {
    const url = new URL(path, window.location.href);
    for (const [name, value] of Object.entries(params || {})) {
      if (value !== "" && value !== null && value !== undefined) url.searchParams.set(name, value);
    }
    const init = Object.assign({ headers: {} }, options || {});
    if (!ENTRA) init.headers = Object.assign({ "x-functions-key": functionKey }, init.headers);
    const response = await fetch(url, init);
    if (ENTRA && response.status === 401) signIn();  // the session ended
    let body = null;
    try { body = await response.json(); } catch (_) { body = { error: response.statusText }; }
    return { status: response.status, ok: response.ok, body: body || {} };
  }

  function time(value) {
    return value ? value.replace("T", " ").replace(/\.\d+/, "").replace("+00:00", "Z") : "";
  }

  function age(value) {
    if (!value) return "none";
    const seconds = Math.max(0, (Date.now() - Date.parse(value)) / 1000);
    if (seconds < 120) return `${Math.round(seconds)} s ago`;
    if (seconds < 7200) return `${Math.round(seconds / 60)} min ago`;
    return `${(seconds / 3600).toFixed(1)} h ago`;
  }

  function stateClass(state) {
    if (FAILED.has(state)) return "failed";
    if (PENDING.has(state)) return "pending";
    return "ok";
  }

  function badge(state) {
    return el("span", { className: `badge ${stateClass(state)}`, title: state }, state);
  }

  // -- health ----------------------------------------------------------------------------

  async function loadHealth() {
    const { body } = await api("health");
    const checks = body.checks || {};
    const box = clear($("health"));
    box.append(el("span", { className: body.healthy ? "health-ok" : "health-bad", id: "health-state" },
      body.healthy ? "Healthy" : "Unhealthy"));
    const parts = [];
    const settings = checks.settings;
    if (settings) {
      if (settings.ok) {
        const summary = settings.summary || {};
        parts.push(`settings ok (F&O ${summary.d365 ? summary.d365.base_url : "?"}, ` +
          `${(summary.routes || []).length} routes, inbound ${summary.inbound_container})`);
        fillOptions($("f-route"), (summary.routes || []).map((route) => route.name));
        fillOptions($("e-route"), summary.export_routes || []);
      } else {
        parts.push(`settings: ${(settings.problems || []).join("; ")}`);
      }
    }
    if (checks.startup) parts.push(`start-up: ${checks.startup.error}`);
    const storage = checks.storage;
    if (storage) {
      parts.push(storage.ok
        ? `storage ok, ${storage.pending} pending, oldest pending ${age(storage.oldest_pending_since)}, ` +
          `last tick ${age(storage.last_tick)}`
        : `storage: ${storage.error}`);
    }
    const retention = checks.retention;
    if (retention) parts.push(retentionText(retention));
    const token = checks.d365_token;
    if (token) parts.push(token.ok ? "F&O token ok" : `F&O token: ${token.error}`);
    box.append(" · ", el("span", { id: "health-detail" }, parts.join(" · ")));
  }

  function retentionText(retention) {
    if (!retention.ok) return `retention: ${retention.error}`;
    const days = (value) => (value === null || value === undefined ? "for ever" : `${value} days`);
    const when = retention.oldest_record;
    const oldest = when ? `${when.slice(0, 10)} (${age(when)})`
      : retention.last_run ? "none" : "not measured before the first run";
    return `retention: records ${days(retention.records_days)}, exports ` +
      `${days(retention.exports_days)}, audit ${days(retention.audit_days)}; oldest record ${oldest}`;
  }

  function fillOptions(select, names) {
    if (select.options.length > 1) return;
    for (const name of names) select.append(el("option", { value: name }, name));
  }

  // -- counts ----------------------------------------------------------------------------

  function period() {
    const seconds = Number($("period").value);
    return {
      since: localTime("f-since") || new Date(Date.now() - seconds * 1000).toISOString(),
      until: localTime("f-until"),
    };
  }

  async function loadCounts() {
    const range = period();
    let { ok, body } = await api("counts", { ...range, interval: "hour" });
    // A period too long for the hours (the server names its limit): the counts without chart.
    const chartProblem = ok ? "" : body.error;
    if (!ok) ({ ok, body } = await api("counts", range));
    const box = clear($("counts"));
    const routes = clear($("route-counts"));
    if (!ok) {
      box.append(el("p", { className: "error" }, body.error || "counts failed"));
      clear($("chart"));
      return;
    }
    drawChart(body.buckets || [], chartProblem);
    const cards = el("div", { className: "cards" });
    cards.append(card("All", body.total, "", ""));
    cards.append(card("Failed", body.failed, body.failed ? "failed" : "", ""));
    cards.append(card(`Stuck (pending > ${Math.round(body.stuck_after_seconds / 60)} min)`, body.stuck,
      body.stuck ? "stuck" : "", ""));
    for (const state of STATES) {
      const count = body.by_state[state];
      if (count) cards.append(card(state, count, stateClass(state), state));
    }
    box.append(cards);
    routes.append(el("thead", {}, el("tr", {}, el("th", {}, "Route"), el("th", {}, "Files"),
      el("th", {}, "Failed"), el("th", {}, "Stuck"))));
    const tbody = el("tbody");
    for (const [route, c] of Object.entries(body.by_route)) {
      tbody.append(el("tr", {}, el("td", {}, route), el("td", {}, c.total),
        el("td", { className: c.failed ? "error" : "" }, c.failed),
        el("td", { className: c.stuck ? "error" : "" }, c.stuck)));
    }
    routes.append(tbody);
  }

  // -- chart: files per hour by outcome (inline SVG drawn here: no library, no CDN) --------

  const SVG = "http://www.w3.org/2000/svg";
  const OUTCOMES = ["processed", "failed", "pending"];  // bottom to top, as the server names them
  const CHART = { width: 720, height: 170, left: 36, right: 34, top: 10, bottom: 22 };  // room for the labels

  function svg(tag, attributes, ...children) {
    const node = document.createElementNS(SVG, tag);
    for (const [name, value] of Object.entries(attributes || {})) node.setAttribute(name, String(value));
    for (const child of children) node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    return node;
  }

  function hourLabel(start, withDay) {
    const text = time(start);  // "2026-11-28 09:00:00Z"
    return withDay ? `${text.slice(5, 10)} ${text.slice(11, 16)}` : text.slice(11, 16);
  }

  // Stacked bars, one per hour (UTC): processed at the foot, then failed, then pending. The
  // colours come from the page's style sheet by class (no style attribute: the policy allows
  // no inline style but the page's own).
  function drawChart(buckets, problem) {
    const box = clear($("chart"));
    const files = buckets.reduce((sum, b) => sum + b.processed + b.failed + b.pending, 0);
    if (problem) { box.append(el("p", { className: "muted", id: "chart-note" }, problem)); return; }
    if (!files) { box.append(el("p", { className: "muted", id: "chart-note" }, "No files in this period.")); return; }
    const { width, height, left, right, top, bottom } = CHART;
    const plot = { w: width - left - right, h: height - top - bottom };
    const highest = Math.max(...buckets.map((b) => b.processed + b.failed + b.pending));
    const step = plot.w / buckets.length;
    const sums = Object.fromEntries(OUTCOMES.map((key) => [key, buckets.reduce((n, b) => n + b[key], 0)]));
    const first = time(buckets[0].start);
    const last = time(buckets[buckets.length - 1].start);
    const chart = svg("svg", { id: "chart-svg", viewBox: `0 0 ${width} ${height}`, role: "img",
      "aria-labelledby": "chart-title chart-desc" },
    svg("title", { id: "chart-title" }, "Files per hour by outcome (UTC)"),
    svg("desc", { id: "chart-desc" }, `${files} files in ${buckets.length} hours from ${first} ` +
      `to the hour of ${last}: ${OUTCOMES.map((key) => `${sums[key]} ${key}`).join(", ")}; ` +
      `at most ${highest} in one hour.`),
    svg("line", { class: "axis", x1: left, y1: top + plot.h, x2: width - right, y2: top + plot.h }),
    svg("line", { class: "grid", x1: left, y1: top, x2: width - right, y2: top }),
    svg("text", { class: "tick", x: left - 4, y: top + 4, "text-anchor": "end" }, highest),
    svg("text", { class: "tick", x: left - 4, y: top + plot.h, "text-anchor": "end" }, 0));
    const withDay = buckets.length > 24;
    const every = Math.ceil(buckets.length / 8);  // at most 8 hour labels
    buckets.forEach((bucket, index) => {
      const x = left + index * step;
      let y = top + plot.h;
      const group = svg("g", { class: "hour" });
      group.dataset.start = bucket.start;
      for (const key of OUTCOMES) {
        if (!bucket[key]) continue;
        const h = (bucket[key] / highest) * plot.h;
        y -= h;
        const rect = svg("rect", { class: `seg ${key}`, x: x + step * 0.1, y, width: Math.max(step * 0.8, 1), height: h },
          svg("title", {}, `${hourLabel(bucket.start, true)} UTC: ${bucket[key]} ${key}`));
        rect.dataset.outcome = key;
        rect.dataset.count = bucket[key];
        group.append(rect);
      }
      chart.append(group);
      if (index % every === 0) {
        chart.append(svg("text", { class: "tick", x: x + step / 2, y: height - 6, "text-anchor": "middle" },
          hourLabel(bucket.start, withDay)));
      }
    });
    const legend = el("ul", { className: "legend", id: "chart-legend" },
      ...OUTCOMES.map((key) => el("li", {}, el("span", { className: `swatch ${key}` }), `${key} (${sums[key]})`)));
    box.append(chart, legend);
  }

  function card(label, count, cls, state) {
    const node = el("div", { className: `card ${cls}`, tabIndex: 0 }, el("b", {}, count), label);
    node.dataset.state = state;
    node.addEventListener("click", () => { $("f-state").value = state; loadList(false); });
    return node;
  }

  // -- list ------------------------------------------------------------------------------

  function filters() {
    const range = period();
    return {
      state: $("f-state").value,
      route: $("f-route").value,
      company: $("f-company").value.trim(),
      prefix: $("f-prefix").value.trim(),
      since: range.since,
      until: range.until,
      limit: "50",
    };
  }

  async function loadList(more) {
    const params = filters();
    if (more && continuation) params.continuation = continuation;
    const response = await api("messages", params);
    continuation = fillPage($("list"), $("list-error"), $("more"), response, row, more);
    pagedOn = Boolean(more);
  }

  function row(record) {
    const tr = el("tr", { tabIndex: 0 },
      el("td", { className: "time" }, time(record.received_at)),
      el("td", { className: "blob" }, record.blob),
      el("td", {}, record.route || ""),
      el("td", {}, record.company || ""),
      el("td", {}, badge(record.state), lineNote(record)),
      el("td", {}, record.d365_status || ""),
      el("td", {}, record.error_count || ""));
    tr.dataset.key = record.record_key;
    return clickable(tr, () => showDetail(record.record_key));
  }

  // -- detail ----------------------------------------------------------------------------

  async function showDetail(key, note) {
    const { ok, body } = await api(`messages/${encodeURIComponent(key)}`);
    const box = clear($("detail"));
    box.hidden = false;
    if (!ok) { box.append(el("p", { className: "error" }, body.error || "not found")); return; }
    const record = body;
    box.dataset.key = record.record_key;
    box.append(el("div", { className: "bar" }, el("h2", { id: "detail-blob" }, record.blob),
      badge(record.state), refreshButton(key), resubmitButton(record), releaseButton(record)));
    if (note) box.append(note);
    const facts = factList("detail-facts");
    const fact = facts.add;
    fact("State", record.state);
    fact("F&O status", record.d365_status);
    fact("Message id", record.message_id);
    fact("Execution id", record.execution_id);
    fact("Execution id sent", record.sent_execution_id);
    fact("Route", record.route);
    fact("Company", record.company);
    fact("API", record.api);
    fact("Definition group", record.definition_group);
    fact("Why the package API", record.api_note);
    fact("Size", sizeText(record.size));
    fact("Where the file is now", record.location);
    fact("Received", time(record.received_at));
    fact("Enqueued", time(record.enqueued_at));
    fact("Completed", time(record.completed_at));
    fact("Next poll", time(record.next_poll_at));
    fact("Reject reason", record.reject_reason);
    fact("Last error", record.last_error);
    fact("Archive error", record.archive_error);
    fact("Resubmitted from", record.resubmit_of ? recordLink(record.resubmit_of) : "");
    fact("Resubmit asked by", actorText(record.resubmit_by));
    fact("Resubmit asked at", time(record.resubmit_at));
    fact("Resubmitted as", record.resubmitted_as ? recordLink(record.resubmitted_as) : "");
    fact("Resubmitted by", actorText(record.resubmitted_by));
    fact("Resubmitted at", time(record.resubmitted_at));
    fact("Resubmit request id", record.resubmitted_request);
    lineFacts(record.line, fact);
    box.append(facts.node);
    box.append(el("h3", {}, "History"), historyTable(record.history, "history"),
      droppedNote(record.history_dropped));
    box.append(errorsSection(record));
  }

  function refreshButton(key) {
    const button = el("button", { type: "button", id: "detail-refresh" }, "Refresh");
    button.addEventListener("click", () => showDetail(key));
    return button;
  }

  // A link to a record's detail; ``switchView``: from another view, go to Imports first.
  function recordLink(key, switchView) {
    const link = el("a", { href: "#", className: "record-link" }, key);
    link.dataset.key = key;
    link.addEventListener("click", (event) => {
      event.preventDefault();
      if (switchView) showView("imports");
      showDetail(key);
    });
    return link;
  }

  // Export records' history has a reason per entry; tracked files' has none.
  function historyTable(history, id) {
    const reasons = history.some((entry) => "reason" in entry);
    const table = el("table", { id, className: "small" },
      el("thead", {}, el("tr", {}, el("th", {}, "State"), el("th", {}, "At (UTC)"),
        reasons ? el("th", {}, "Reason") : null)));
    const tbody = el("tbody");
    for (const entry of history) {
      tbody.append(el("tr", {}, el("td", {}, entry.state), el("td", {}, time(entry.at)),
        reasons ? el("td", {}, entry.reason || "") : null));
    }
    table.append(tbody);
    return table;
  }

  // The record keeps the newest history entries; older ones are only counted.
  function droppedNote(count) {
    return count ? el("p", { className: "muted history-dropped" },
      `${count} older ${count === 1 ? "entry is" : "entries are"} not kept`) : "";
  }

  // A list the record could not hold whole: the first entries, and where the rest is.
  function moreNote(shown, count, blob) {
    return count > shown ? el("p", { className: "muted list-more" },
      `showing ${shown} of ${count}; the whole list is in `, el("code", {}, blob || "")) : "";
  }

  function errorsSection(record) {
    const section = el("div", { id: "errors" });
    section.append(el("h3", {}, `Row errors (${record.error_count})`));
    if (record.error_files.length) {
      section.append(el("p", {}, `F&O's error files (${record.error_file_count}), in the errors container:`),
        codeList("error-files", record.error_files),
        moreNote(record.error_files.length, record.error_file_count, record.error_files_blob));
    }
    if (record.errors_blob) {
      const download = el("a", { download: "errors.json", href: "#" }, "download the errors shown");
      download.addEventListener("click", () => {
        const data = new Blob([JSON.stringify(record.errors, null, 2)], { type: "application/json" });
        download.href = URL.createObjectURL(data);
      });
      section.append(el("p", { id: "errors-blob" },
        "They did not fit the record: the full list is in the errors blob ",
        el("code", {}, record.errors_blob), " (", download, ")."));
    }
    if (!record.errors.length) return section;
    const table = el("table", { id: "errors-table" },
      el("thead", {}, el("tr", {}, el("th", {}, "Record"), el("th", {}, "Field"), el("th", {}, "Message"))));
    const tbody = el("tbody");
    for (const error of record.errors) {
      tbody.append(el("tr", {}, el("td", {}, error.record_id), el("td", {}, error.field), el("td", {}, error.message)));
    }
    table.append(tbody);
    section.append(table);
    if (record.errors_truncated) section.append(el("p", { className: "muted" }, `showing ${record.errors.length} of ${record.error_count}`));
    return section;
  }

  // -- resubmit --------------------------------------------------------------------------

  function resubmitButton(record) {
    if (!record.terminal || record.resubmitted_as || !may("resubmit")) return null;
    const button = el("button", { type: "button", id: "resubmit" }, "Resubmit");
    button.addEventListener("click", () => confirmResubmit(record));
    return button;
  }

  function confirmResubmit(record) {
    const dialog = $("confirm");
    const requestId = crypto.randomUUID();
    $("confirm-title").textContent = "Resubmit this file?";
    $("confirm-text").textContent =
      `A copy of ${record.blob} goes back into the inbound path (from ${record.location}) as a new version, ` +
      "and is sent to F&O as a new message.";
    const risk = $("confirm-risk");
    risk.hidden = !record.resubmit_risk;
    risk.textContent = record.resubmit_risk ? `Risk: ${record.resubmit_risk}.` : "";
    const ok = $("confirm-ok");
    ok.textContent = record.resubmit_risk ? "Resubmit anyway" : "Resubmit";
    ok.disabled = false;
    // One request id per confirmation: a double click sends the same id, and the server
    // makes one new version of it.
    ok.onclick = async () => {
      ok.disabled = true;
      const { ok: done, body } = await api(`messages/${encodeURIComponent(record.record_key)}/resubmit`, {}, {
        method: "POST",
        headers: { "Idempotency-Key": requestId, "Content-Type": "application/json" },
        body: JSON.stringify({ confirm: Boolean(record.resubmit_risk) }),
      });
      dialog.close();
      const note = done
        ? el("p", { id: "resubmit-result" }, "Resubmitted as record ", recordLink(body.resubmitted_as), ".")
        : el("p", { id: "resubmit-result", className: "error" }, body.error || "resubmit failed");
      showDetail(record.record_key, note);
    };
    dialog.showModal();
  }

  // -- ordered lines ---------------------------------------------------------------------

  // In the list: a waiting file says what it waits behind; a file that blocks its line says so.
  function lineNote(record) {
    const line = record.line;
    if (!line) return null;
    if (line.blocks_line) return el("span", { className: "line-note error" }, " blocks its line");
    if (!record.terminal && !line.turn_at) {  // still waiting for its turn
      const blocked = line.behind && record.last_error;
      return el("span", { className: `line-note ${blocked ? "error" : "muted"}` },
        blocked ? " behind a file that blocks its line" : " in line");
    }
    return line.late_after ? el("span", { className: "line-note error" }, " sent late") : null;
  }

  function lineFacts(line, fact) {
    if (!line) return;
    fact("Line", `${line.name} (order: ${line.order}${line.stops_on_failure ? "" : ", goes on past failures"})`);
    fact("Waiting behind", line.behind ? recordLink(line.behind) : "");
    fact("Turn at", time(line.turn_at));
    fact("Blocks its line", line.blocks_line ? "yes: resubmit it, or release the line past it" : "");
    fact("Sent late, after", line.late_after ? recordLink(line.late_after) : "");
    fact("Line released", line.released_at
      ? `${time(line.released_at)} by ${line.released_by ? line.released_by.name : "?"}` : "");
  }

  function releaseButton(record) {
    if (!record.line || !record.line.blocks_line || record.resubmitted_as || !may("release")) return null;
    const button = el("button", { type: "button", id: "release" }, "Release line");
    button.addEventListener("click", () => confirmRelease(record));
    return button;
  }

  function confirmRelease(record) {
    const dialog = $("confirm");
    const requestId = crypto.randomUUID();
    $("confirm-title").textContent = "Release the line past this file?";
    $("confirm-text").textContent =
      `The files of line ${record.line.name} waiting behind ${record.blob} are sent without it, ` +
      "in their order. The file itself is not sent again.";
    $("confirm-risk").hidden = true;
    const ok = $("confirm-ok");
    ok.textContent = "Release line";
    ok.disabled = false;
    // One request id per confirmation: a double click releases once.
    ok.onclick = async () => {
      ok.disabled = true;
      const { ok: done, body } = await api(`messages/${encodeURIComponent(record.record_key)}/release`, {}, {
        method: "POST",
        headers: { "Idempotency-Key": requestId, "Content-Type": "application/json" },
        body: "{}",
      });
      dialog.close();
      const note = done
        ? el("p", { id: "release-result" }, `Line ${record.line.name} released: its next file goes now.`)
        : el("p", { id: "release-result", className: "error" }, body.error || "release failed");
      showDetail(record.record_key, note);
    };
    dialog.showModal();
  }

  // -- exports ---------------------------------------------------------------------------

  async function loadExports(more) {
    const params = { direction: "export", route: $("e-route").value, limit: "50" };
    if (more && exportContinuation) params.continuation = exportContinuation;
    const response = await api("messages", params);
    exportContinuation = fillPage($("exports"), $("exports-error"), $("exports-more"), response,
      exportRow, more);
  }

  function exportRow(record) {
    const tr = el("tr", { tabIndex: 0 },
      el("td", { className: "time" }, time(record.updated_at)),
      el("td", { className: "blob" }, record.message_id),
      el("td", {}, record.kind),
      el("td", {}, record.route),
      el("td", {}, badge(record.state), record.gave_up_at ? " given up" : null),
      el("td", { className: "blob" }, record.blobs.join(", ") +
        (record.blob_count > record.blobs.length ? ` and ${record.blob_count - record.blobs.length} more` : "")),
      el("td", {}, sizeText(record.size)));
    tr.dataset.key = record.message_id;
    return clickable(tr, () => showExport(record.message_id));
  }

  async function showExport(messageId) {
    const { ok, body } = await api(`messages/${encodeURIComponent(messageId)}`, { direction: "export" });
    const box = clear($("export-detail"));
    box.hidden = false;
    if (!ok) { box.append(el("p", { className: "error" }, body.error || "not found")); return; }
    const record = body;
    box.dataset.key = record.message_id;
    const refresh = el("button", { type: "button", id: "export-refresh" }, "Refresh");
    refresh.addEventListener("click", () => showExport(messageId));
    box.append(el("div", { className: "bar" }, el("h2", { id: "export-message" }, record.message_id),
      badge(record.state), refresh));
    const facts = factList("export-facts");
    facts.add("State", record.state);
    facts.add("Kind", record.kind);
    facts.add("Route", record.route);
    facts.add("Activity id", record.activity_id);
    // A package export's own facts (absent from a recurring export's record).
    facts.add("Data project", record.definition_group);
    facts.add("Legal entity", record.legal_entity);
    facts.add("Scheduled for", time(record.scheduled_for));
    facts.add("ExportToPackage sent", time(record.requested_at));
    facts.add("F&O execution id", record.fno_execution_id);
    facts.add("F&O status", record.d365_status);
    facts.add("F&O's errors", record.fno_errors);
    facts.add("Target", `${record.container}/${record.target}`);
    facts.add("Size", sizeText(record.size));
    facts.add("Times taken from F&O", record.dequeue_count);
    facts.add("Dequeued", time(record.dequeued_at));
    facts.add("Downloaded", time(record.downloaded_at));
    facts.add("Acknowledged", time(record.acked_at));
    facts.add("Given up", time(record.gave_up_at));
    facts.add("Updated", time(record.updated_at));
    facts.add("Error", record.last_error);
    box.append(facts.node);
    box.append(el("h3", {}, `Blobs (${record.blob_count}) in ${record.container}`),
      codeList("export-blobs", record.blobs.map((blob) => `${record.container}/${blob}`)),
      moreNote(record.blobs.length, record.blob_count, record.blobs_blob));
    box.append(el("h3", {}, "History"), historyTable(record.history, "export-history"),
      droppedNote(record.history_dropped));
  }

  // -- audit -----------------------------------------------------------------------------

  // Who asked: a person's or application's name with its object id, or "function key".
  function actorText(actor) {
    if (!actor) return "";
    return actor.object_id ? `${actor.name} (${actor.object_id})` : actor.name;
  }

  function localTime(id) {
    const value = $(id).value;
    return value ? new Date(value).toISOString() : "";
  }

  async function loadAudit(more) {
    const params = {
      person: $("a-person").value.trim(),
      since: localTime("a-since"),
      until: localTime("a-until"),
      limit: "50",
    };
    if (more && auditContinuation) params.continuation = auditContinuation;
    const response = await api("audit", params);
    auditContinuation = fillPage($("audit"), $("audit-error"), $("audit-more"), response,
      auditRow, more);
  }

  // Targets shaped like record keys open the record; others (a line's name) are shown as text.
  function targetLinks(targets) {
    const cell = el("td", { className: "blob" });
    targets.forEach((target, index) => {
      if (index) cell.append(" → ");
      cell.append(/^\d{13}-[0-9a-f]{32}$/.test(target) ? recordLink(target, true) : target);
    });
    return cell;
  }

  function auditRow(entry) {
    const tr = el("tr", {},
      el("td", { className: "time" }, time(entry.at)),
      el("td", { className: "actor" }, actorText(entry.actor)),
      el("td", {}, entry.action),
      el("td", { className: "blob subject" }, entry.subject || ""),
      el("td", { title: entry.detail || "" }, entry.outcome, entry.detail ? `: ${entry.detail}` : null),
      el("td", { className: "blob" }, entry.request_id),
      targetLinks(entry.targets));
    tr.dataset.key = entry.audit_key;
    return tr;
  }

  const VIEWS = ["imports", "exports", "audit"];

  function showView(name) {
    for (const view of VIEWS) {
      $(`${view}-view`).hidden = view !== name;
      $(`view-${view}`).setAttribute("aria-pressed", String(view === name));
    }
    if (name === "exports") loadExports(false);
    if (name === "audit") loadAudit(false);
  }

  // -- sign-in (HTTP_AUTH=entra) ---------------------------------------------------------

  function signIn() {
    const back = window.location.pathname + window.location.search;
    window.location.assign(`${SIGNIN.login}?post_login_redirect_uri=${encodeURIComponent(back)}`);
  }

  // Whether the caller holds a role that allows the route (an operator may all a reader may).
  function may(route) {
    if (!ENTRA) return true;
    const needed = SIGNIN.routes[route];
    return !needed || caller.roles.some((role) => role === needed || role === SIGNIN.operator);
  }

  // Who is signed in, from the platform: "signing-in", "no-role" or "ok".
  async function whoAmI() {
    let entries = [];
    const response = await fetch(SIGNIN.me, { credentials: "same-origin" });
    if (response.ok) { try { entries = await response.json(); } catch (_) { entries = []; } }
    if (!Array.isArray(entries) || !entries.length) { signIn(); return "signing-in"; }
    const claims = entries[0].user_claims || [];
    const claim = (typ) => (claims.find((c) => c.typ === typ) || {}).val;
    const roles = claims.filter((c) => SIGNIN.role_claims.includes(c.typ) && SIGNIN.roles.includes(c.val))
      .map((c) => c.val);
    caller = { name: claim("name") || entries[0].user_id || "", roles: [...new Set(roles)] };
    showCaller();
    return caller.roles.length ? "ok" : "no-role";
  }

  function showCaller() {
    const box = clear($("who"));
    box.hidden = false;
    const logout = el("a", { id: "sign-out",
      href: `${SIGNIN.logout}?post_logout_redirect_uri=${encodeURIComponent(window.location.pathname)}` },
    "Sign out");
    box.append("Signed in as ", el("b", { id: "who-name" }, caller.name), " · ",
      el("span", { id: "who-roles" }, caller.roles.join(", ") || "no role"), " · ", logout);
    if (!caller.roles.length) {
      for (const id of ["imports-view", "health", "views"]) $(id).hidden = true;
      box.append(el("p", { id: "no-role", className: "error" },
        `${caller.name} holds no role of this app: ask an administrator for the app role ` +
        `${SIGNIN.routes.http_status} (to look) or ${SIGNIN.operator} (also to resubmit a file or release a line).`));
    }
  }

  // -- wiring ----------------------------------------------------------------------------

  function refreshAll() {
    return Promise.all([loadHealth(), loadCounts(), loadList(false)]);
  }

  // -- automatic refresh -----------------------------------------------------------------

  const REFRESH_SECONDS = 30;
  let paused = false;
  let delay = REFRESH_SECONDS * 1000;  // until the next automatic refresh
  let timer = null;
  let running = null;  // the refresh under way: a second one waits for it, never runs beside it
  let again = false;  // a refresh asked for while one ran
  let live = false;  // signed in with a role (or key mode), the first load done

  // What an automatic refresh may redo without taking anything from the person: nothing while
  // the confirmation is open; the list only at its first page, with no detail open and no
  // focus in it (a click on a row or a page loaded further stays as it was).
  function autoRefresh() {
    if ($("confirm").open) return Promise.resolve();
    const loads = [loadHealth()];
    if (!$("imports-view").hidden) {
      loads.push(loadCounts());
      if (!pagedOn && $("detail").hidden && !$("list").contains(document.activeElement)) loads.push(loadList(false));
    }
    return Promise.all(loads);
  }

  function refreshNow(auto) {
    if (running) {
      again = again || !auto;  // a click during a refresh: one more after it, not beside it
      return running;
    }
    const started = Date.now();
    running = (auto ? autoRefresh() : refreshAll()).finally(() => {
      running = null;
      // A slow refresh (counts over a long period read every record of it) comes less often.
      delay = Math.max(REFRESH_SECONDS * 1000, 10 * (Date.now() - started));
      $("refresh-state").textContent = refreshText(`updated ${new Date().toISOString().slice(11, 19)} UTC`);
      if (again) {
        again = false;
        refreshNow(false);
      } else {
        schedule();
      }
    });
    return running;
  }

  function refreshText(updated) {
    return paused ? `${updated}; automatic refresh paused` : `${updated}; refreshes every ${Math.round(delay / 1000)} s`;
  }

  // The next automatic refresh: none while paused or while the tab is hidden.
  function schedule() {
    clearTimeout(timer);
    timer = null;
    if (paused || document.visibilityState === "hidden") return;
    timer = setTimeout(() => refreshNow(true), delay);
  }

  function togglePause() {
    paused = !paused;
    const button = $("auto-refresh");
    button.textContent = paused ? "Resume auto-refresh" : "Pause auto-refresh";
    button.setAttribute("aria-pressed", String(paused));
    $("refresh-state").textContent = refreshText($("refresh-state").textContent.split(";")[0]);
    if (paused) schedule(); else refreshNow(true);
  }

  for (const state of STATES) $("f-state").append(el("option", { value: state }, state));
  $("filters").addEventListener("submit", (event) => { event.preventDefault(); loadCounts(); loadList(false); });
  $("clear").addEventListener("click", () => { $("filters").reset(); refreshNow(false); });
  $("period").addEventListener("change", () => { loadCounts(); loadList(false); });
  $("refresh").addEventListener("click", () => refreshNow(false));
  $("auto-refresh").addEventListener("click", togglePause);
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "hidden") schedule();  // stops it
    else if (!paused && live) refreshNow(true);
  });
  $("more").addEventListener("click", () => loadList(true));
  $("view-imports").addEventListener("click", () => showView("imports"));
  $("view-exports").addEventListener("click", () => showView("exports"));
  $("export-filters").addEventListener("submit", (event) => { event.preventDefault(); loadExports(false); });
  $("exports-more").addEventListener("click", () => loadExports(true));
  $("view-audit").addEventListener("click", () => showView("audit"));
  $("audit-filters").addEventListener("submit", (event) => { event.preventDefault(); loadAudit(false); });
  $("audit-more").addEventListener("click", () => loadAudit(true));
  async function start() {
    const state = ENTRA ? await whoAmI() : "ok";
    if (state === "signing-in") return;
    if (state === "ok") {
      await refreshNow(false);  // and schedules the automatic refresh
      live = true;
    }
    document.body.dataset.ready = "true";
  }
  start();
})();
