// The inspector page: polls the JSON API under /_warren/api/ once a second with the admin
// token as a Bearer header. The token comes from the URL fragment (never sent to a server),
// is kept in this tab's sessionStorage, and is removed from the address bar at once.
"use strict";
(function () {
  const POLL_MS = 1000;
  const fragment = new URLSearchParams(location.hash.slice(1));
  if (fragment.has("token")) {
    sessionStorage.setItem("warren-token", fragment.get("token"));
    history.replaceState(null, "", location.pathname + location.search);
  }
  const token = sessionStorage.getItem("warren-token");
  const $ = (id) => document.getElementById(id);
  if (!token) {
    $("login").hidden = false;
    $("status").textContent = "no token";
    return;
  }
  $("app").hidden = false;
  let selected = null;

  async function api(path, method) {
    const response = await fetch("/_warren/api/" + path, {
      method: method || "GET",
      headers: { Authorization: "Bearer " + token },
      cache: "no-store",
    });
    if (response.status === 401) throw new Error("the token was refused");
    if (!response.ok) return null;
    return response.json();
  }

  function cell(text, className) {
    const td = document.createElement("td");
    td.textContent = text;
    if (className) td.className = className;
    return td;
  }

  function tag(hibernated) {
    const span = document.createElement("span");
    span.className = "tag" + (hibernated ? " hibernated" : "");
    span.textContent = hibernated ? "hibernated" : "awake";
    return span;
  }

  function query(actor) {
    return "kind=" + encodeURIComponent(actor.kind) + "&key=" + encodeURIComponent(actor.key);
  }

  function renderOverview(overview) {
    const c = overview.counts;
    $("counts").replaceChildren(
      ...[
        ["sessions", c.sessions],
        ["awake", c.actorsAwake],
        ["hibernated", c.actorsHibernated],
        ["rooms", c.rooms],
      ].map(([name, value]) => {
        const span = document.createElement("span");
        span.textContent = name + " " + value;
        span.dataset.count = name;
        return span;
      }),
    );
    const rows = overview.actors.map((actor) => {
      const tr = document.createElement("tr");
      tr.className = "actor";
      tr.dataset.kind = actor.kind;
      tr.dataset.key = actor.key;
      if (selected && selected.kind === actor.kind && selected.key === actor.key) tr.classList.add("selected");
      const state = document.createElement("td");
      state.append(tag(actor.hibernated));
      tr.append(cell(actor.kind), cell(actor.key), state, cell(String(actor.sessions.length)));
      tr.addEventListener("click", () => {
        selected = { kind: actor.kind, key: actor.key };
        refresh();
      });
      return tr;
    });
    $("actors").replaceChildren(...(rows.length ? rows : [emptyRow(4, "no actor in memory")]));
    const rooms = overview.rooms.map((room) => {
      const tr = document.createElement("tr");
      tr.append(cell(room.name), cell(room.members.join(", ") || "—"));
      return tr;
    });
    $("rooms").replaceChildren(...(rooms.length ? rooms : [emptyRow(2, "no room in memory")]));
  }

  function emptyRow(span, text) {
    const tr = document.createElement("tr");
    const td = cell(text, "empty");
    td.colSpan = span;
    tr.append(td);
    return tr;
  }

  function renderActor(actor) {
    $("detail-title").textContent = actor.kind + " “" + actor.key + "”";
    $("detail-body").hidden = false;
    const where = actor.inMemory
      ? (actor.hibernated ? "hibernated" : "awake") + ", sessions " + (actor.sessions.join(", ") || "none") + ", rooms " + (actor.rooms.join(", ") || "none")
      : "not in memory";
    $("detail-meta").textContent = where;
    $("state").textContent = actor.state === null ? "(not shown yet)" : JSON.stringify(actor.state, null, 2);
    const rows = actor.events
      .slice(-50)
      .reverse()
      .map((event) => {
        const tr = document.createElement("tr");
        tr.append(
          cell(new Date(event.at).toLocaleTimeString()),
          cell(event.kind),
          cell(event.name),
          cell(event.data + (event.truncated ? "…" : "")),
        );
        return tr;
      });
    $("events").tBodies[0].replaceChildren(...(rows.length ? rows : [emptyRow(4, "no event yet")]));
  }

  async function refresh() {
    try {
      const overview = await api("actors");
      if (overview) renderOverview(overview);
      if (selected) {
        const actor = await api("actor?" + query(selected));
        if (actor) renderActor(actor);
      }
      $("status").textContent = "updated " + new Date().toLocaleTimeString();
    } catch (error) {
      $("status").textContent = String(error.message || error);
    }
  }

  async function act(action) {
    if (!selected) return;
    if (action === "destroy" && !confirm("Destroy " + selected.kind + " “" + selected.key + "”? Its state is wiped.")) return;
    await api("actor/" + action + "?" + query(selected), "POST").catch(() => null);
    refresh();
  }

  $("hibernate").addEventListener("click", () => act("hibernate"));
  $("destroy").addEventListener("click", () => act("destroy"));
  refresh();
  setInterval(refresh, POLL_MS);
})();
