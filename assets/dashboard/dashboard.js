// emotrack dashboard: the live valence-arousal trajectory from `emotrack live --http`.
// Plain script, no build step. It reads /config.json for the WebSocket port, connects to the
// host the page came from (so it works from a phone on the same network), and reconnects by
// itself when the server goes away or restarts. Open it as /?token=SECRET when the server
// has a token, and /?trail=SECONDS to change the trail.
// With a library (`emotrack live --db`): a click on the plane asks for the songs nearest that
// point, a drag draws a curve and asks for the songs that follow it; each result can be
// previewed; "more like now" lists what the server matched to the last seconds.
"use strict";
(() => {
  const C = {
    bg: "#101418", fg: "#d8dee9", grid: "#2e3440", axis: "#4c566a", label: "#8fa1b3",
    point: "#ffd54f", trail: "#4dd0e1", v: "#81c784", a: "#ff8a65", bad: "#bf616a", warn: "#ebcb8b",
    query: "#ffffff", result: "#b48ead",
  };
  const MAX_CURVE_POINTS = 64;  // a drawn curve is thinned to this many points (messages stay under 4 KiB)
  const QUADRANTS = [["happy · excited", 0.55, 0.92], ["tense · angry", -0.55, 0.92],
    ["sad · depressed", -0.55, -0.92], ["calm · relaxed", 0.55, -0.92]];
  const params = new URLSearchParams(location.search);
  const TRAIL_S = Math.max(1, Number(params.get("trail")) || 10);
  const HISTORY_S = Math.max(60, TRAIL_S);
  const MAX_POINTS = 20000;

  // what tests and curious users can read from the console
  const state = window.emotrackState = {
    connected: false, frames: 0, lastSeq: null, missed: 0, reconnects: 0, connects: 0,
    hello: null, lastStatus: null, closeReason: null, draws: 0,
    library: null, query: null, found: null, likeNow: null, preview: null, findErrors: 0, plane: null,
  };
  let hist = [];  // {t, v, a, vs, as}
  let dirty = true;
  let backoff = 500;
  let ws = null;
  let token = "";
  let geom = null;  // the plane's last geometry: x0, y0, span (CSS pixels)
  let queryId = 0;
  let drawn = null;  // the curve being drawn: [{v, a, ms}]
  let selected = null;  // id of the result highlighted on the plane

  const $ = (id) => document.getElementById(id);
  const planeCv = $("va"), seriesCv = $("series");

  function setConn(kind, text) {
    $("dot").className = "dot" + (kind === "on" ? " on" : kind === "wait" ? " wait" : "");
    $("conn").textContent = text;
  }

  // ------------------------------------------------------------------ connection
  async function connect() {
    setConn("wait", "connecting…");
    let cfg;
    try {
      const r = await fetch("config.json", { cache: "no-store" });
      if (!r.ok) throw new Error(`HTTP ${r.status}`);
      cfg = await r.json();
    } catch (e) {
      return retry("emotrack is not reachable");
    }
    token = params.get("token") || "";
    setupLibrary(cfg.library);
    if (cfg.token_required && !token) {
      return retry("this server needs its access token: open this page as …/?token=SECRET", 5000);
    }
    const host = location.hostname.includes(":") ? `[${location.hostname}]` : location.hostname;
    const proto = location.protocol === "https:" ? "wss" : "ws";
    const url = `${proto}://${host}:${cfg.ws_port}/` + (token ? `?token=${encodeURIComponent(token)}` : "");
    let sock;
    try {
      sock = new WebSocket(url);
    } catch (e) {
      return retry(`cannot open ${url}`);
    }
    ws = sock;
    sock.onopen = () => {
      backoff = 500;
      state.connected = true;
      state.connects += 1;
      state.closeReason = null;
      setConn("on", `live · ${url.split("?")[0]}`);
    };
    sock.onmessage = (ev) => {
      try { handle(JSON.parse(ev.data)); } catch (e) { console.warn("emotrack: bad message", e); }
    };
    sock.onclose = (ev) => {
      if (ws !== sock) return;
      ws = null;
      state.connected = false;
      state.closeReason = ev.reason || null;
      if (ev.code === 1008) retry(`refused: ${ev.reason}`, 5000);  // token or origin: say why
      else retry(state.frames ? "connection lost" : "could not connect");
    };
  }

  function retry(why, delay) {
    const d = delay || backoff;
    backoff = Math.min(backoff * 2, 4000);
    state.reconnects += 1;
    setConn("off", `${why} · retrying in ${(d / 1000).toFixed(1)} s`);
    setTimeout(connect, d);
  }

  // the descriptors that stand out: most above how likely each is on typical music
  function topDescriptors(values, typical, k = 3) {
    if (!values) return "";
    return Object.keys(values)
      .map((n) => [n, values[n] / Math.max(typical[n] || 0.5, 1e-3)])
      .sort((a, b) => b[1] - a[1]).slice(0, k).map((x) => x[0]).join(" · ");
  }

  function handle(m) {
    if (m.type === "hello") {
      if (!state.hello || m.run !== state.hello.run) {  // a new server run: start afresh
        hist = [];
        state.lastSeq = null;
      }
      state.hello = m;
      const src = m.source || {};
      $("source").textContent = `${src.kind || ""} ${src.name || ""} · ${m.model ? m.model.name : ""} · every ${m.hop} s`;
    } else if (m.type === "frame") {
      if (state.lastSeq !== null) {
        if (m.seq > state.lastSeq + 1) state.missed += m.seq - state.lastSeq - 1;
        else if (m.seq <= state.lastSeq) hist = [];  // restarted under us
      }
      state.lastSeq = m.seq;
      state.frames += 1;
      hist.push({ t: m.t, v: m.valence, a: m.arousal, vs: m.valence_std || 0, as: m.arousal_std || 0 });
      const keepFrom = m.t - HISTORY_S;
      let drop = 0;
      while (drop < hist.length && hist[drop].t < keepFrom) drop++;
      if (drop || hist.length > MAX_POINTS) hist.splice(0, Math.max(drop, hist.length - MAX_POINTS));
      $("vval").textContent = fmt(m.valence);
      $("aval").textContent = fmt(m.arousal);
      $("tval").textContent = `${m.t.toFixed(1)} s`;
      $("desc").textContent = topDescriptors(m.descriptors, (state.hello && state.hello.descriptors) || {});
      const c = m.counters || {};
      $("stats").textContent = `seq ${m.seq} · latency ${m.latency_ms} ms · clients ${c.clients ?? "?"}` +
        ` · missed ${state.missed}` + (c.overflows ? ` · audio overflows ${c.overflows}` : "") +
        (state.lastStatus ? ` · ${state.lastStatus}` : "");
      dirty = true;
    } else if (m.type === "status") {
      state.lastStatus = `${m.event}: ${m.message}`;
      $("stats").textContent = state.lastStatus;
    } else if (m.type === "found") {
      if (m.id !== queryId) return;  // an answer to an older query
      state.found = m;
      $("found").textContent = `${m.results.length} of ${m.songs} songs · ${m.ms} ms`;
      showResults($("results"), m.results);
      dirty = true;
    } else if (m.type === "like_now") {
      state.likeNow = m;
      $("likeinfo").textContent = m.message ? `· ${m.message}` :
        `· the last ${m.seconds} s, at ${m.t.toFixed(0)} s`;
      showResults($("likes"), m.results);
    } else if (m.type === "error" && state.query) {
      state.findErrors += 1;
      $("found").textContent = m.message;
    }
  }

  // ------------------------------------------------------------------ the library
  function setupLibrary(lib) {
    state.library = lib || null;
    $("library").hidden = !lib;
    document.querySelector("main").classList.toggle("with-library", !!lib);
    if (!lib) return;
    $("libinfo").textContent = `· ${lib.songs} songs`;
    if (!lib.like_now_seconds) $("likeinfo").textContent = "· off (--like-now 0)";
    const segment = () => { $("secondsLabel").hidden = $("match").value !== "segment"; };
    $("match").onchange = segment;
    segment();
    dirty = true;
  }

  function find(query) {
    if (!state.library) return;
    state.query = query;
    selected = null;
    dirty = true;
    if (!ws || ws.readyState !== WebSocket.OPEN) {
      $("found").textContent = "not connected: the query is sent when you try again";
      return;
    }
    queryId += 1;
    const msg = { type: "find", id: queryId, k: 8 };
    if (query.point) msg.point = query.point.map((x) => Number(x.toFixed(4)));
    else {
      msg.profile = query.profile;
      msg.match = query.match;
    }
    $("found").textContent = "searching…";
    ws.send(JSON.stringify(msg));
  }

  function curveQuery(pts) {
    // the drawing's own pace, stretched to the chosen length; at most MAX_CURVE_POINTS points
    const keep = [];
    const step = Math.max(1, (pts.length - 1) / (MAX_CURVE_POINTS - 1));
    for (let i = 0; i < pts.length - 1e-9; i += step) keep.push(pts[Math.round(i)]);
    if (keep[keep.length - 1] !== pts[pts.length - 1]) keep.push(pts[pts.length - 1]);
    const match = $("match").value;
    const seconds = Math.min(600, Math.max(4, Number($("curveSeconds").value) || 30));
    const ms0 = keep[0].ms, span = Math.max(1, keep[keep.length - 1].ms - ms0);
    const profile = [];
    for (const p of keep) {
      const t = Number(((p.ms - ms0) / span * seconds).toFixed(3));
      if (profile.length && t <= profile[profile.length - 1][0]) continue;
      profile.push([t, Number(p.v.toFixed(4)), Number(p.a.toFixed(4))]);
    }
    if (profile.length < 2) return null;
    return { profile, match, curve: keep };
  }

  function toVA(ev) {
    if (!geom) return null;
    const r = planeCv.getBoundingClientRect();
    const v = ((ev.clientX - r.left) - geom.x0) / geom.span * 2 - 1;
    const a = 1 - ((ev.clientY - r.top) - geom.y0) / geom.span * 2;
    if (Math.abs(v) > 1.04 || Math.abs(a) > 1.04) return null;
    return { v: Math.max(-1, Math.min(1, v)), a: Math.max(-1, Math.min(1, a)), ms: performance.now(),
      x: ev.clientX, y: ev.clientY };
  }

  planeCv.addEventListener("pointerdown", (ev) => {
    if (!state.library) return;
    const p = toVA(ev);
    if (!p) return;
    planeCv.setPointerCapture(ev.pointerId);
    drawn = [p];
    ev.preventDefault();
  });
  planeCv.addEventListener("pointermove", (ev) => {
    if (!drawn) return;
    const p = toVA(ev);
    if (p && p.ms > drawn[drawn.length - 1].ms) {
      drawn.push(p);
      state.query = { drawing: true, curve: drawn };
      dirty = true;
    }
  });
  const release = (ev) => {
    if (!drawn) return;
    const pts = drawn;
    drawn = null;
    const moved = Math.hypot(pts[pts.length - 1].x - pts[0].x, pts[pts.length - 1].y - pts[0].y) > 8 ||
      pts.some((p) => Math.hypot(p.x - pts[0].x, p.y - pts[0].y) > 8);
    if (!moved || ev.type === "pointercancel") {
      if (ev.type !== "pointercancel") find({ point: [pts[0].v, pts[0].a] });
      return;
    }
    const q = curveQuery(pts);
    if (q) find(q);
  };
  planeCv.addEventListener("pointerup", release);
  planeCv.addEventListener("pointercancel", release);

  const baseName = (path) => path.split(/[\\/]/).pop();
  // "Artist — Title" from the file's tags when it has them, else the file name
  const songName = (r) => r.title ? (r.artist ? `${r.artist} — ${r.title}` : r.title) : baseName(r.path);
  const clock = (s) => `${Math.floor(s / 60)}:${String(Math.floor(s % 60)).padStart(2, "0")}`;

  function showResults(list, results) {
    list.replaceChildren();
    for (const r of results) {
      const li = document.createElement("li");
      li.dataset.id = r.id;
      if (r.id === selected) li.classList.add("sel");
      const play = document.createElement("button");
      play.className = "play";
      play.type = "button";
      play.title = "play 15 s";
      play.textContent = "▶";
      const start = r.segment ? r.segment[0] : null;
      play.onclick = () => preview(r, start, play);
      const name = document.createElement("span");
      name.className = "name";
      name.textContent = songName(r);
      name.title = r.path;
      name.title = r.path;
      const meta = document.createElement("span");
      meta.className = "meta";
      meta.textContent = `d ${r.distance.toFixed(3)} · ${fmt(r.valence)} ${fmt(r.arousal)}` +
        (r.segment ? ` · ${clock(r.segment[0])}–${clock(r.segment[1])}` : ` · ${clock(r.duration)}`);
      li.append(play, name, meta);
      li.onmouseenter = () => { selected = r.id; dirty = true; };
      list.append(li);
    }
  }

  function preview(r, start, button) {
    const player = $("player");
    const again = state.preview && state.preview.id === r.id && !player.paused;
    player.pause();
    document.querySelectorAll(".play.on").forEach((b) => { b.classList.remove("on"); b.textContent = "▶"; });
    if (again) { state.preview = null; return; }
    const q = new URLSearchParams({ song: r.id });
    if (start !== null) q.set("start", start);
    if (token) q.set("token", token);
    player.src = `preview?${q}`;
    state.preview = { id: r.id, start, status: "loading" };
    button.classList.add("on");
    button.textContent = "■";
    player.onended = () => { button.classList.remove("on"); button.textContent = "▶"; state.preview.status = "ended"; };
    player.onerror = () => {
      button.classList.remove("on");
      button.textContent = "▶";
      if (state.preview) state.preview.status = "error";
      $("found").textContent = `cannot play ${songName(r)}`;
    };
    player.onloadedmetadata = () => { if (state.preview) state.preview.duration = player.duration; };
    player.onplaying = () => { if (state.preview) state.preview.status = "playing"; };
    player.play().catch(() => {});  // errors arrive through onerror
  }

  const fmt = (x) => (x >= 0 ? "+" : "−") + Math.abs(x).toFixed(2);

  // ------------------------------------------------------------------ drawing
  function fit(cv) {
    const dpr = window.devicePixelRatio || 1;
    const w = Math.max(1, Math.round(cv.clientWidth * dpr)), h = Math.max(1, Math.round(cv.clientHeight * dpr));
    if (cv.width !== w || cv.height !== h) { cv.width = w; cv.height = h; }
    const ctx = cv.getContext("2d");
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    return [ctx, cv.clientWidth, cv.clientHeight];
  }

  function drawPlane() {
    const [ctx, w, h] = fit(planeCv);
    const s = Math.min(w, h), pad = Math.max(18, s * 0.06);
    const x0 = (w - s) / 2 + pad, y0 = (h - s) / 2 + pad, span = s - 2 * pad;
    const X = (v) => x0 + (v + 1) / 2 * span, Y = (a) => y0 + (1 - a) / 2 * span;
    geom = state.plane = { x0, y0, span };
    ctx.fillStyle = C.bg;
    ctx.fillRect(0, 0, w, h);
    ctx.lineWidth = 1;
    ctx.strokeStyle = C.grid;
    for (const g of [-0.5, 0.5]) {
      line(ctx, X(g), Y(-1), X(g), Y(1));
      line(ctx, X(-1), Y(g), X(1), Y(g));
    }
    ctx.strokeStyle = C.axis;
    ctx.strokeRect(X(-1), Y(1), span, span);
    line(ctx, X(0), Y(-1), X(0), Y(1));
    line(ctx, X(-1), Y(0), X(1), Y(0));
    ctx.fillStyle = C.label;
    ctx.font = `${Math.max(10, s * 0.028)}px system-ui, sans-serif`;
    ctx.textAlign = "center";
    ctx.textBaseline = "middle";
    for (const [text, v, a] of QUADRANTS) ctx.fillText(text, X(v), Y(a));
    ctx.fillText("valence →", X(0.8), Y(-1) + pad * 0.5);
    ctx.save();
    ctx.translate(X(-1) - pad * 0.5, Y(0.8));
    ctx.rotate(-Math.PI / 2);
    ctx.fillText("arousal →", 0, 0);
    ctx.restore();
    drawQuery(ctx, X, Y, s);
    if (!hist.length) return;
    const last = hist[hist.length - 1];
    ctx.save();
    ctx.beginPath();
    ctx.rect(X(-1), Y(1), span, span);
    ctx.clip();
    // the trail: older segments fade out
    ctx.lineWidth = 2.5;
    ctx.lineCap = "round";
    ctx.strokeStyle = C.trail;
    for (let i = 1; i < hist.length; i++) {
      const p = hist[i - 1], q = hist[i];
      const age = last.t - q.t;
      if (age > TRAIL_S) continue;
      ctx.globalAlpha = 0.12 + 0.88 * (1 - age / TRAIL_S);
      line(ctx, X(p.v), Y(p.a), X(q.v), Y(q.a));
    }
    // the current point with its ±1 std ellipse
    ctx.globalAlpha = 0.18;
    ctx.fillStyle = C.point;
    ctx.beginPath();
    ctx.ellipse(X(last.v), Y(last.a), Math.max(1, last.vs * span / 2), Math.max(1, last.as * span / 2), 0, 0, 2 * Math.PI);
    ctx.fill();
    ctx.globalAlpha = 0.6;
    ctx.strokeStyle = C.point;
    ctx.lineWidth = 1;
    ctx.stroke();
    ctx.globalAlpha = 1;
    ctx.beginPath();
    ctx.arc(X(last.v), Y(last.a), Math.max(5, s * 0.014), 0, 2 * Math.PI);
    ctx.fill();
    ctx.restore();
  }

  function drawQuery(ctx, X, Y, s) {
    // the query (a point or a drawn curve) and where the found songs sit as a whole
    const q = state.query;
    if (!q) return;
    ctx.save();
    if (state.found && !q.drawing) {
      ctx.font = `${Math.max(9, s * 0.022)}px system-ui, sans-serif`;
      state.found.results.forEach((r, i) => {
        ctx.globalAlpha = r.id === selected ? 1 : 0.75;
        ctx.fillStyle = C.result;
        ctx.beginPath();
        ctx.arc(X(r.valence), Y(r.arousal), r.id === selected ? 8 : 5.5, 0, 2 * Math.PI);
        ctx.fill();
        ctx.fillStyle = C.fg;
        ctx.fillText(String(i + 1), X(r.valence) + 11, Y(r.arousal) - 9);
      });
      ctx.globalAlpha = 1;
    }
    ctx.strokeStyle = C.query;
    ctx.fillStyle = C.query;
    ctx.lineWidth = 2;
    if (q.point) {
      const x = X(q.point[0]), y = Y(q.point[1]);
      ctx.beginPath();
      ctx.arc(x, y, 9, 0, 2 * Math.PI);
      ctx.stroke();
      line(ctx, x - 14, y, x - 4, y);
      line(ctx, x + 4, y, x + 14, y);
      line(ctx, x, y - 14, x, y - 4);
      line(ctx, x, y + 4, x, y + 14);
    } else if (q.curve && q.curve.length > 1) {
      const c = q.curve;
      ctx.setLineDash(q.drawing ? [6, 4] : []);
      ctx.beginPath();
      c.forEach((p, i) => (i ? ctx.lineTo : ctx.moveTo).call(ctx, X(p.v), Y(p.a)));
      ctx.stroke();
      ctx.setLineDash([]);
      ctx.beginPath();
      ctx.arc(X(c[0].v), Y(c[0].a), 4, 0, 2 * Math.PI);
      ctx.fill();
      // an arrowhead at the end: the direction of time
      const p = c[c.length - 1], o = c[Math.max(0, c.length - 4)];
      const ang = Math.atan2(Y(p.a) - Y(o.a), X(p.v) - X(o.v));
      ctx.beginPath();
      ctx.moveTo(X(p.v), Y(p.a));
      ctx.lineTo(X(p.v) - 13 * Math.cos(ang - 0.45), Y(p.a) - 13 * Math.sin(ang - 0.45));
      ctx.lineTo(X(p.v) - 13 * Math.cos(ang + 0.45), Y(p.a) - 13 * Math.sin(ang + 0.45));
      ctx.closePath();
      ctx.fill();
    }
    ctx.restore();
  }

  function drawSeries() {
    const [ctx, w, h] = fit(seriesCv);
    const left = 34, right = 18, top = 22, bottom = 20;
    const pw = w - left - right, ph = h - top - bottom;
    ctx.fillStyle = C.bg;
    ctx.fillRect(0, 0, w, h);
    const tEnd = hist.length ? hist[hist.length - 1].t : HISTORY_S;
    const tStart = tEnd - HISTORY_S;
    const X = (t) => left + (t - tStart) / HISTORY_S * pw, Y = (y) => top + (1 - y) / 2 * ph;
    ctx.lineWidth = 1;
    ctx.font = "11px system-ui, sans-serif";
    ctx.fillStyle = C.label;
    ctx.textAlign = "right";
    ctx.textBaseline = "middle";
    for (const g of [-1, -0.5, 0, 0.5, 1]) {
      ctx.strokeStyle = g === 0 ? C.axis : C.grid;
      line(ctx, left, Y(g), left + pw, Y(g));
      ctx.fillText(g.toString(), left - 4, Y(g));
    }
    ctx.textAlign = "center";
    ctx.textBaseline = "top";
    for (let k = 0; k <= 4; k++) {
      const t = tStart + k * HISTORY_S / 4;
      ctx.textAlign = k === 0 ? "left" : k === 4 ? "right" : "center";
      ctx.fillText(k === 4 ? "now" : `−${Math.round(tEnd - t)} s`, X(t), top + ph + 4);
    }
    ctx.textAlign = "left";
    ctx.fillStyle = C.v;
    ctx.fillText("valence", left + 4, 3);
    ctx.fillStyle = C.a;
    ctx.fillText("arousal", left + 64, 3);
    const pts = hist.filter((p) => p.t >= tStart);
    if (!pts.length) return;
    for (const [key, sd, colour] of [["v", "vs", C.v], ["a", "as", C.a]]) {
      ctx.globalAlpha = 0.2;
      ctx.fillStyle = colour;
      ctx.beginPath();
      pts.forEach((p, i) => (i ? ctx.lineTo : ctx.moveTo).call(ctx, X(p.t), Y(Math.min(1, p[key] + p[sd]))));
      for (let i = pts.length - 1; i >= 0; i--) ctx.lineTo(X(pts[i].t), Y(Math.max(-1, pts[i][key] - pts[i][sd])));
      ctx.closePath();
      ctx.fill();
      ctx.globalAlpha = 1;
      ctx.strokeStyle = colour;
      ctx.lineWidth = 2;
      ctx.beginPath();
      pts.forEach((p, i) => (i ? ctx.lineTo : ctx.moveTo).call(ctx, X(p.t), Y(p[key])));
      ctx.stroke();
    }
  }

  function line(ctx, x1, y1, x2, y2) {
    ctx.beginPath();
    ctx.moveTo(x1, y1);
    ctx.lineTo(x2, y2);
    ctx.stroke();
  }

  function frame() {
    if (dirty) {
      dirty = false;
      drawPlane();
      drawSeries();
      state.draws += 1;
    }
    requestAnimationFrame(frame);
  }

  window.addEventListener("resize", () => { dirty = true; });
  requestAnimationFrame(frame);
  connect();
})();
