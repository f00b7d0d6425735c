// emotrack dashboard: the live valence-arousal trajectory from `emotrack live --http`.
// Plain script, no build step. It reads /config.json for the WebSocket port, connects to the
// host the page came from (so it works from a phone on the same network), and reconnects by
// itself when the server goes away or restarts. Open it as /?token=SECRET when the server
// has a token, and /?trail=SECONDS to change the trail.
"use strict";
(() => {
  const C = {
    bg: "#101418", fg: "#d8dee9", grid: "#2e3440", axis: "#4c566a", label: "#8fa1b3",
    point: "#ffd54f", trail: "#4dd0e1", v: "#81c784", a: "#ff8a65", bad: "#bf616a", warn: "#ebcb8b",
  };
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
  };
  let hist = [];  // {t, v, a, vs, as}
  let dirty = true;
  let backoff = 500;
  let ws = null;

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
    const token = params.get("token") || "";
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
      const c = m.counters || {};
      $("stats").textContent = `seq ${m.seq} · latency ${m.latency_ms} ms · clients ${c.clients ?? "?"}` +
        ` · missed ${state.missed}` + (c.overflows ? ` · audio overflows ${c.overflows}` : "") +
        (state.lastStatus ? ` · ${state.lastStatus}` : "");
      dirty = true;
    } else if (m.type === "status") {
      state.lastStatus = `${m.event}: ${m.message}`;
      $("stats").textContent = state.lastStatus;
    }
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
