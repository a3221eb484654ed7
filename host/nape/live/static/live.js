// Nape live view: frames from the local server's WebSocket, played out smoothly.
// Each frame holds the samples of one packet (newest last); they are shown spread over the
// packet's span, so the screen moves at the sample rate (≈ 50 Hz) rather than the packet rate.
"use strict";
(function () {
  const token = new URLSearchParams(location.search).get("t") || "";
  const $ = (id) => document.getElementById(id);
  const state = {
    queue: [],          // [dueMs, sample] to show in order
    keys: [],
    limits: null,
    lastFrameMs: 0,
    ws: null,
    backoff: 250,
  };
  // measurements for bench/live.py and the tests: what was shown, and when (wall clock ms)
  const live = (window.napeLive = { painted: [], shown: null, frames: 0, connects: 0, last: null,
    dropSocket: () => state.ws && state.ws.close() });  // tests: a lost link
  const now = () => performance.timeOrigin + performance.now();

  function deg(v, pos, neg) {
    if (v === undefined || v === null) return "–";
    const r = Math.round(v);
    if (r === 0) return "0°";
    return pos ? `${Math.abs(r)}° ${r > 0 ? pos : neg}` : `${r > 0 ? "+" : "−"}${Math.abs(r)}°`;
  }
  function setDeg(id, v, pos, neg) {
    const el = $(id);
    el.textContent = deg(v, pos, neg);
    el.dataset.deg = v === undefined ? "" : v.toFixed(1);
  }

  function connect() {
    const ws = new WebSocket(`ws://${location.host}/ws?t=${encodeURIComponent(token)}`);
    state.ws = ws;
    ws.onopen = () => { state.backoff = 250; live.connects += 1; conn("live", "ok"); };
    ws.onmessage = (ev) => onMessage(JSON.parse(ev.data));
    ws.onclose = () => {
      conn("connection lost — reconnecting…", "bad");
      setTimeout(connect, state.backoff);
      state.backoff = Math.min(2000, state.backoff * 2);
    };
    ws.onerror = () => ws.close();
  }
  function conn(text, cls) {
    const el = $("conn");
    el.textContent = text;
    el.className = "conn " + cls;
  }

  function onMessage(m) {
    if (m.type === "hello") { state.limits = m.limits; showRule(); return; }
    if (m.type !== "frame") return;
    const t = now();
    state.lastFrameMs = t;
    state.keys = m.keys;
    live.frames += 1;
    live.last = m;
    const n = m.samples.length;
    // oldest sample of the packet now, newest one packet-span later: even spacing
    const span = n > 1 ? (m.samples[n - 1][0] - m.samples[0][0]) * m.period_ms : 0;
    m.samples.forEach((s, i) => {
      const due = t + (n > 1 ? (span * i) / (n - 1) : 0);
      state.queue.push([due, s]);
    });
    if (state.queue.length > 200) state.queue.splice(0, state.queue.length - 200);
    showStatus(m);
  }

  function tick() {
    const t = now();
    let s = null;
    while (state.queue.length && state.queue[0][0] <= t) s = state.queue.shift()[1];
    if (s) showSample(s, t);
    if (state.lastFrameMs && t - state.lastFrameMs > 2000 && state.ws && state.ws.readyState === 1) {
      conn("connected, waiting for the sensor…", "wait");
    } else if (state.ws && state.ws.readyState === 1 && state.lastFrameMs) {
      conn("live", "ok");
    }
    requestAnimationFrame(tick);
  }

  function showSample(s, t) {
    const v = {};
    state.keys.forEach((k, i) => { v[k] = s[i]; });
    setDeg("neck", v.neck);
    setDeg("trunk", v.trunk);
    setDeg("head", v.head);
    setDeg("side-deg", v.side, "right", "left");
    setDeg("turn", v.turn, "left", "right");
    // side view: the trunk leans about the hips, the head about the base of the neck
    $("trunk-g").setAttribute("transform", `rotate(${(v.trunk || 0).toFixed(1)} 0 200)`);
    $("head-g").setAttribute("transform", `rotate(${(v.neck || 0).toFixed(1)} 0 80)`);
    $("turn-g").setAttribute("transform", `rotate(${(-(v.turn || 0)).toFixed(1)} 0 0)`);
    live.shown = v;
    live.painted.push([v.seq, t, v.neck, v.trunk]);
    if (live.painted.length > 20000) live.painted.splice(0, 10000);
  }

  function showRule() {
    const L = state.limits;
    if (!L) return;
    $("limit-back").setAttribute("transform", `rotate(${L.back_deg} 0 200)`);
    $("limit-neck").setAttribute("transform", `rotate(${L.neck_deg} 0 80)`);
    $("alert-rule").textContent =
      `The board buzzes when your neck is bent forward more than ${L.neck_deg}° or your upper back ` +
      `leans forward more than ${L.back_deg}° for ${L.hold_s} s in a row (not while lying down). ` +
      `Sitting up straight again (${L.hysteresis_deg}° below the limit) resets it.`;
  }

  function showStatus(m) {
    const a = m.alert, L = state.limits || { hold_s: 60 };
    const what = a.watched === "neck" ? "neck bent forward" : "upper back leaning forward";
    const el = $("alert");
    let text, cls, frac = 0;
    if (m.alert.board_buzzing) { text = "The board is buzzing now: sit up, look ahead."; cls = "bad"; frac = 1; }
    else if (a.state === "lying") { text = "Lying down: no alerts."; cls = "ok"; }
    else if (a.state === "over") {
      text = `Over the limit (${what}, ${Math.round(a.margin_deg)}° too far): buzz in ${Math.ceil(a.countdown_s)} s`;
      cls = "warn"; frac = a.held_s / L.hold_s;
    } else if (a.state === "alerted") {
      text = `Held too long (${what}): the board has buzzed; sit up to reset it.`; cls = "bad"; frac = 1;
    } else { text = "Within the limits."; cls = "ok"; }
    el.textContent = text;
    el.className = "alert " + cls;
    el.dataset.state = a.state;
    $("alert-bar").style.width = `${Math.min(100, Math.max(0, frac * 100)).toFixed(0)}%`;
    const n = $("neutral");
    n.textContent = m.neutral.detail;
    n.dataset.state = m.neutral.state;
    n.className = m.neutral.state === "provisional" ? "warn" : "";
    const mount = $("mounting");
    mount.replaceChildren(...(m.neutral.mounting || []).map((t) => {
      const li = document.createElement("li");
      li.textContent = t;
      return li;
    }));
    showJolts(m.jolts);
    showLink(m.link);
    showFurthest(m.furthest_deg || {});
    if (m.rom) showRom(m.rom);
  }

  function showJolts(js) {
    const ul = $("jolts");
    if (!js.length) return;
    ul.replaceChildren(...js.map((j) => {
      const li = document.createElement("li");
      li.textContent = `at ${fmtTime(j.t_s)}: about ${j.strength_g.toFixed(1)} g`;
      return li;
    }));
  }

  function showLink(l) {
    const rows = [
      ["samples per second", l.rate_hz],
      ["samples received", l.samples],
      ["samples lost", l.lost],
      ["re-sent from the board's memory", l.backfilled],
      ["link drops / reconnects", l.drops === undefined ? undefined : `${l.drops} / ${l.reconnects}`],
      ["board memory used", l.buffer_pct === undefined ? undefined : `${l.buffer_pct} %`],
      ["battery", l.battery_pct === undefined ? undefined : `${l.battery_pct} %`],
    ];
    fillTable($("link"), rows.filter((r) => r[1] !== undefined));
  }

  const DIRECTION_WORDS = {
    flexion: "bent forward (chin to chest)", extension: "bent back (looking up)",
    lateral_left: "tilted to the left (ear to shoulder)", lateral_right: "tilted to the right",
    rotation_left: "turned to the left", rotation_right: "turned to the right",
  };
  function showFurthest(f) {
    fillTable($("furthest"), Object.keys(DIRECTION_WORDS).filter((k) => k in f)
      .map((k) => [DIRECTION_WORDS[k], `${Math.round(f[k])}°`]));
  }

  function showRom(r) {
    $("rom-card").hidden = false;
    $("rom-now").textContent = r.now || "get ready";
    $("rom-next").textContent = r.next ? `next in ${Math.ceil(r.next_in_s)} s: ${r.next}` : "end of the test";
    $("rom-max").hidden = true;
  }

  function fillTable(t, rows) {
    t.replaceChildren(...rows.map(([k, v]) => {
      const tr = document.createElement("tr");
      const th = document.createElement("th");
      const td = document.createElement("td");
      th.textContent = k;
      td.textContent = String(v);
      tr.append(th, td);
      return tr;
    }));
  }

  function fmtTime(s) {
    const m = Math.floor(s / 60), r = Math.floor(s % 60);
    return `${m}:${String(r).padStart(2, "0")}`;
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("set-neutral").addEventListener("click", () => {
      if (state.ws && state.ws.readyState === 1) state.ws.send(JSON.stringify({ cmd: "neutral" }));
    });
    connect();
    requestAnimationFrame(tick);
  });
})();
