// The lineage graph: fetches the laid-out graph (graph.json) and draws it as SVG. The server computes
// the layout and the collapse groups; this file only draws, pans, zooms and asks for re-layouts.
// The SVG is built once per layout; pan and zoom only change one transform attribute.
(function () {
  "use strict";

  var SVG_NS = "http://www.w3.org/2000/svg";
  var NODE_W = 184;
  var NODE_H = 34;
  var LABEL_CHARS = 25;
  var MIN_SCALE = 0.03;
  var MAX_SCALE = 4;

  var canvas = document.getElementById("lineage-canvas");
  if (!canvas) {
    return;
  }
  var status = document.getElementById("lineage-status");
  var panel = document.getElementById("lineage-panel");
  var baseUrl = canvas.getAttribute("data-graph-url");
  var direction = canvas.getAttribute("data-direction") || "upstream";

  var state = {
    data: null,
    nodesById: {},
    elementsById: {},
    edgesByNode: {},
    expanded: new Set(),
    expandAll: false,
    scale: 1,
    tx: 0,
    ty: 0,
    selected: null,
  };
  var timings = { fetch: 0, draw: 0, lastPan: 0 };

  function el(name, attributes) {
    var element = document.createElementNS(SVG_NS, name);
    Object.keys(attributes || {}).forEach(function (key) {
      element.setAttribute(key, attributes[key]);
    });
    return element;
  }

  function shortLabel(text) {
    return text.length > LABEL_CHARS ? text.slice(0, LABEL_CHARS - 1) + "\u2026" : text;
  }

  // -- the canvas: defs, a viewport group transformed by pan and zoom ------------------------------
  var defs = el("defs");
  var marker = el("marker", {
    id: "lineage-arrow", viewBox: "0 0 8 8", refX: "8", refY: "4",
    markerWidth: "8", markerHeight: "8", markerUnits: "userSpaceOnUse", orient: "auto",
  });
  marker.appendChild(el("path", { d: "M0,0 L8,4 L0,8 z", class: "arrow" }));
  defs.appendChild(marker);
  canvas.appendChild(defs);
  var viewport = el("g", { id: "lineage-viewport" });
  canvas.appendChild(viewport);

  function applyTransform() {
    viewport.setAttribute(
      "transform",
      "translate(" + state.tx.toFixed(2) + "," + state.ty.toFixed(2) + ") scale(" + state.scale.toFixed(4) + ")"
    );
  }

  function panBy(dx, dy) {
    state.tx += dx;
    state.ty += dy;
    applyTransform();
  }

  function zoomAt(factor, cx, cy) {
    var scale = Math.min(MAX_SCALE, Math.max(MIN_SCALE, state.scale * factor));
    var applied = scale / state.scale;
    state.tx = cx - (cx - state.tx) * applied;
    state.ty = cy - (cy - state.ty) * applied;
    state.scale = scale;
    applyTransform();
  }

  function canvasSize() {
    var box = canvas.getBoundingClientRect();
    return { width: box.width || 800, height: box.height || 500 };
  }

  function screenOf(node) {
    return { x: state.tx + node.x * state.scale, y: state.ty + node.y * state.scale };
  }

  function fit() {
    var nodes = state.data ? state.data.nodes : [];
    if (!nodes.length) {
      return;
    }
    var minX = Infinity, maxX = -Infinity, minY = Infinity, maxY = -Infinity;
    nodes.forEach(function (node) {
      minX = Math.min(minX, node.x); maxX = Math.max(maxX, node.x);
      minY = Math.min(minY, node.y); maxY = Math.max(maxY, node.y);
    });
    var size = canvasSize();
    var width = maxX - minX + NODE_W + 40;
    var height = maxY - minY + NODE_H + 40;
    state.scale = Math.max(MIN_SCALE, Math.min(size.width / width, size.height / height, 1.2));
    state.tx = size.width / 2 - ((minX + maxX) / 2) * state.scale;
    state.ty = size.height / 2 - ((minY + maxY) / 2) * state.scale;
    applyTransform();
  }

  function centerOn(nodeId, scale) {
    var node = state.nodesById[nodeId];
    if (!node) {
      return false;
    }
    var size = canvasSize();
    if (scale) {
      state.scale = scale;
    }
    state.tx = size.width / 2 - node.x * state.scale;
    state.ty = size.height / 2 - node.y * state.scale;
    applyTransform();
    return true;
  }

  // -- drawing ---------------------------------------------------------------------------------------
  function drawNode(node) {
    var kind = node.kind;
    var group = el("g", {
      id: "node-" + node.id,
      class: "node node-" + kind + (node.root ? " root" : ""),
      "data-node-id": node.id,
      "data-kind": kind,
      "data-label": node.label,
      transform: "translate(" + node.x + "," + node.y + ")",
      tabindex: "0",
      role: "button",
    });
    var title = el("title");
    title.textContent = node.group ? node.label + " (click to expand)" : node.label;
    group.appendChild(title);
    var x = -NODE_W / 2, y = -NODE_H / 2;
    if (kind === "entity") {
      group.appendChild(el("ellipse", {
        class: "shape entity" + (node.root ? " root" : ""), rx: NODE_W / 2, ry: NODE_H / 2,
      }));
    } else if (kind === "run") {
      var runStatus = (node.status || "").toLowerCase();
      group.appendChild(el("rect", {
        class: "shape run " + runStatus, x: x, y: y, width: NODE_W, height: NODE_H, rx: 3,
      }));
    } else {
      group.setAttribute("data-group-id", node.group.id);
      group.setAttribute("data-count", String(node.group.count));
      group.appendChild(el("rect", {
        class: "shape group-back", x: x + 6, y: y - 5, width: NODE_W, height: NODE_H, rx: 10,
      }));
      group.appendChild(el("rect", { class: "shape group", x: x, y: y, width: NODE_W, height: NODE_H, rx: 10 }));
      group.appendChild(el("circle", { class: "badge", cx: NODE_W / 2 - 2, cy: y - 2, r: 13 }));
      var count = el("text", { class: "count", x: NODE_W / 2 - 2, y: y - 2 });
      count.textContent = String(node.group.count);
      group.appendChild(count);
    }
    var label = el("text", { x: 0, y: 0 });
    label.textContent = shortLabel(node.label);
    group.appendChild(label);
    return group;
  }

  function edgePath(source, target) {
    var x1 = source.x + NODE_W / 2, y1 = source.y;
    var x2 = target.x - NODE_W / 2, y2 = target.y;
    var bend = Math.max(30, Math.abs(x2 - x1) / 2);
    return "M" + x1 + "," + y1 + " C" + (x1 + bend) + "," + y1 + " " + (x2 - bend) + "," + y2 + " " + x2 + "," + y2;
  }

  function draw(data) {
    var started = performance.now();
    state.data = data;
    state.nodesById = {};
    state.elementsById = {};
    state.edgesByNode = {};
    data.nodes.forEach(function (node) {
      state.nodesById[node.id] = node;
    });
    var edgeLayer = el("g", { class: "edges" });
    data.edges.forEach(function (edge) {
      var source = state.nodesById[edge.source], target = state.nodesById[edge.target];
      if (!source || !target) {
        return;
      }
      var path = el("path", {
        class: "edge " + edge.relation, d: edgePath(source, target), "marker-end": "url(#lineage-arrow)",
        "data-source": edge.source, "data-target": edge.target,
      });
      if (edge.role) {
        var title = el("title");
        title.textContent = edge.relation + " as " + edge.role + (edge.folded > 1 ? " (" + edge.folded + " edges)" : "");
        path.appendChild(title);
      }
      edgeLayer.appendChild(path);
      (state.edgesByNode[edge.source] = state.edgesByNode[edge.source] || []).push(path);
      (state.edgesByNode[edge.target] = state.edgesByNode[edge.target] || []).push(path);
    });
    var nodeLayer = el("g", { class: "nodes" });
    data.nodes.forEach(function (node) {
      var element = drawNode(node);
      state.elementsById[node.id] = element;
      nodeLayer.appendChild(element);
    });
    var fragment = document.createDocumentFragment();
    fragment.appendChild(edgeLayer);
    fragment.appendChild(nodeLayer);
    viewport.replaceChildren(fragment);
    viewport.getBBox(); // forces layout, so the timing covers it
    timings.draw = performance.now() - started;
    var counts = data.counts;
    status.textContent =
      counts.shown_nodes + " nodes shown of " + (counts.runs + counts.entities) + " (" + counts.runs + " runs, " +
      counts.entities + " files) \u00b7 " + counts.collapsed_groups + " collapsed groups \u00b7 drawn in " +
      Math.round(timings.draw) + " ms";
    canvas.setAttribute("data-node-count", String(data.nodes.length));
    canvas.setAttribute("data-ready", "true");
  }

  function graphUrl() {
    var expand = state.expandAll ? ["all"] : Array.from(state.expanded).sort();
    var url = baseUrl + "?direction=" + encodeURIComponent(direction);
    if (expand.length) {
      url += "&expand=" + encodeURIComponent(expand.join(","));
    }
    return url;
  }

  function load() {
    var started = performance.now();
    canvas.setAttribute("data-ready", "false");
    status.textContent = "Loading\u2026";
    return fetch(graphUrl(), { headers: { Accept: "application/json" } })
      .then(function (response) {
        if (!response.ok) {
          throw new Error("the server answered " + response.status);
        }
        return response.json();
      })
      .then(function (data) {
        timings.fetch = performance.now() - started;
        state.expandAll = false;
        state.expanded = new Set(data.expanded);
        draw(data);
        return data;
      })
      .catch(function (error) {
        status.textContent = "Could not load the graph: " + error.message;
        throw error;
      });
  }

  // Keeps what the user was looking at in place across a re-layout.
  function anchorOn(ids, screen) {
    var xs = 0, ys = 0, found = 0;
    ids.forEach(function (id) {
      var node = state.nodesById[id];
      if (node) {
        xs += node.x; ys += node.y; found += 1;
      }
    });
    if (found && screen) {
      state.tx = screen.x - (xs / found) * state.scale;
      state.ty = screen.y - (ys / found) * state.scale;
      applyTransform();
    }
  }

  function expand(groupId) {
    var node = state.nodesById[groupId];
    var screen = node ? screenOf(node) : null;
    var members = node && node.group ? node.group.members : [];
    state.expanded.add(groupId);
    hidePanel();
    return load().then(function () {
      anchorOn(members, screen);
    });
  }

  function collapse(groupId) {
    var members = state.data.nodes.filter(function (node) { return node.member_of === groupId; });
    var screen = members.length ? screenOf(members[0]) : null;
    state.expanded.delete(groupId);
    hidePanel();
    return load().then(function () {
      anchorOn([groupId], screen);
    });
  }

  function expandAll() {
    state.expandAll = true;
    hidePanel();
    return load().then(fit);
  }

  function collapseAll() {
    state.expanded.clear();
    hidePanel();
    return load().then(fit);
  }

  // -- the side panel ----------------------------------------------------------------------------------
  function hidePanel() {
    panel.hidden = true;
    select(null);
  }

  function select(nodeId) {
    if (state.selected && state.elementsById[state.selected]) {
      state.elementsById[state.selected].classList.remove("selected");
      (state.edgesByNode[state.selected] || []).forEach(function (path) { path.classList.remove("highlight"); });
    }
    state.selected = nodeId;
    if (nodeId && state.elementsById[nodeId]) {
      state.elementsById[nodeId].classList.add("selected");
      (state.edgesByNode[nodeId] || []).forEach(function (path) { path.classList.add("highlight"); });
    }
  }

  function safeUrl(url) {
    return typeof url === "string" && url.charAt(0) === "/" && url.charAt(1) !== "/" ? url : null;
  }

  function actionLink(text, url, id) {
    var link = document.createElement("a");
    link.textContent = text;
    link.href = url;
    link.id = id;
    return link;
  }

  function actionButton(text, id, onClick) {
    var button = document.createElement("button");
    button.type = "button";
    button.textContent = text;
    button.id = id;
    button.addEventListener("click", onClick);
    return button;
  }

  function showPanel(node) {
    select(node.id);
    document.getElementById("lineage-panel-title").textContent = node.label;
    var kindText = { run: "Run", entity: "File", group: "Collapsed group" }[node.kind];
    if (node.root) {
      kindText += " (the file this lineage is about)";
    }
    document.getElementById("lineage-panel-kind").textContent = kindText;
    var table = document.getElementById("lineage-panel-details");
    table.replaceChildren();
    var rows = node.details.slice();
    if (node.compact) {
      rows.unshift(["IRI", node.compact]);
    }
    rows.forEach(function (pair) {
      var row = table.insertRow();
      var key = document.createElement("th");
      key.textContent = pair[0];
      row.appendChild(key);
      row.insertCell().textContent = pair[1];
    });
    var members = document.getElementById("lineage-panel-members");
    members.replaceChildren();
    if (node.group) {
      node.group.member_labels.forEach(function (text) {
        var item = document.createElement("li");
        item.textContent = text;
        members.appendChild(item);
      });
      if (node.group.count > node.group.member_labels.length) {
        var more = document.createElement("li");
        more.textContent = "\u2026 and " + (node.group.count - node.group.member_labels.length) + " more";
        members.appendChild(more);
      }
    }
    var actions = document.getElementById("lineage-panel-actions");
    actions.replaceChildren();
    var url = safeUrl(node.url);
    if (node.kind === "group") {
      actions.appendChild(actionButton("Expand " + node.group.count + " nodes", "lineage-panel-expand", function () {
        expand(node.id);
      }));
    }
    if (url) {
      actions.appendChild(actionLink(node.kind === "run" ? "Open the run page" : "Open the file's page", url,
        "lineage-panel-open"));
    }
    var lineageUrl = safeUrl(node.lineage_url);
    if (lineageUrl && !node.root) {
      actions.appendChild(actionLink("Lineage of this file", lineageUrl + "?direction=" + direction,
        "lineage-panel-lineage"));
    }
    if (node.member_of) {
      actions.appendChild(actionButton("Collapse its group again", "lineage-panel-collapse", function () {
        collapse(node.member_of);
      }));
    }
    panel.hidden = false;
  }

  function activate(nodeId) {
    var node = state.nodesById[nodeId];
    if (!node) {
      return null;
    }
    if (node.kind === "group") {
      return expand(nodeId);
    }
    showPanel(node);
    return Promise.resolve();
  }

  // -- events ---------------------------------------------------------------------------------------
  var drag = null;
  canvas.addEventListener("pointerdown", function (event) {
    if (event.button !== 0 || event.target.closest("[data-node-id]")) {
      return;
    }
    drag = { x: event.clientX, y: event.clientY, id: event.pointerId };
    canvas.setPointerCapture(event.pointerId);
    canvas.classList.add("panning");
  });
  canvas.addEventListener("pointermove", function (event) {
    if (!drag || event.pointerId !== drag.id) {
      return;
    }
    var started = performance.now();
    panBy(event.clientX - drag.x, event.clientY - drag.y);
    drag.x = event.clientX;
    drag.y = event.clientY;
    timings.lastPan = performance.now() - started;
  });
  function endDrag(event) {
    if (drag && event.pointerId === drag.id) {
      drag = null;
      canvas.classList.remove("panning");
    }
  }
  canvas.addEventListener("pointerup", endDrag);
  canvas.addEventListener("pointercancel", endDrag);
  canvas.addEventListener("wheel", function (event) {
    event.preventDefault();
    var box = canvas.getBoundingClientRect();
    zoomAt(Math.exp(-event.deltaY * 0.0015), event.clientX - box.left, event.clientY - box.top);
  }, { passive: false });
  viewport.addEventListener("click", function (event) {
    var target = event.target.closest("[data-node-id]");
    if (target) {
      activate(target.getAttribute("data-node-id"));
    }
  });
  viewport.addEventListener("keydown", function (event) {
    var target = event.target.closest("[data-node-id]");
    if (target && (event.key === "Enter" || event.key === " ")) {
      event.preventDefault();
      activate(target.getAttribute("data-node-id"));
    }
  });
  document.getElementById("lineage-panel-close").addEventListener("click", hidePanel);
  document.getElementById("lineage-fit").addEventListener("click", fit);
  document.getElementById("lineage-expand-all").addEventListener("click", function () { expandAll(); });
  document.getElementById("lineage-collapse-all").addEventListener("click", function () { collapseAll(); });

  // What the browser tests (and curious users in the console) can drive and measure.
  window.lineageGraph = {
    timings: timings,
    state: state,
    load: load,
    fit: fit,
    initialView: initialView,
    centerOn: centerOn,
    panBy: panBy,
    zoomAt: zoomAt,
    expand: expand,
    collapse: collapse,
    expandAll: expandAll,
    collapseAll: collapseAll,
    activate: activate,
    redraw: function () { draw(state.data); },
  };

  // Fit the whole graph when it stays legible; otherwise start at the root, on the side its lineage
  // does not extend to.
  function initialView() {
    fit();
    if (state.scale < 0.45 && centerOn(state.data.root, 0.7)) {
      var size = canvasSize();
      var shift = size.width * 0.5 - NODE_W * state.scale - 20;
      panBy(direction === "downstream" ? -shift : shift, 0);
    }
  }

  load().then(initialView).catch(function () {});
})();
