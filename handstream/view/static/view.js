// handstream view: the live hands in 3D on a Canvas 2D, with the project's own perspective projection (no
// library, no network beyond this page's own server). Messages from ws://<this host>/ws (handstream/view/server.py):
//   scene  {cameras: [{name, size, center, border (unit rays), image_up, ...}], up, bones, source, include_2d}
//   status {processes: {engine: {age_s, stale, data}, "capture-<cam>": ...}, viewer: {...}}
//   pose   the websocket bridge's JSON pose (+ views, views2d with --include-2d)
//   thumbnail  {camera, size, frame_size, jpeg (base64), hands: [{side, conf, uv}] of its own pose} (--include-2d,
//          while the engine's thumbnail_fps > 0)
// The page's state is window.handstreamView (also sent to the server every 0.5 s: GET /state).
"use strict";
(() => {
  const WAIT_AFTER_MS = 1000; // no pose for this long: "waiting for poses"
  const FOV = (50 * Math.PI) / 180; // vertical field of view of the orbit camera
  const HAND_COLOR = { left: "#5aa9ff", right: "#ff9a4d" };
  const THUMB_STALE_MS = 2000; // a camera image older than this is not drawn (the engine stopped sending)

  const state = (window.handstreamView = {
    connected: false, // the WebSocket to the viewer server is open
    waiting: true, // no pose for WAIT_AFTER_MS (or not connected)
    posesReceived: 0,
    lastSeq: null,
    handsDrawn: 0, // in the last frame drawn
    jointsDrawn: 0,
    maxJointsDrawn: 0, // the most joints any frame has drawn
    framesDrawn: 0,
    framesWithHands: 0,
    camerasDrawn: 0,
    views2dDrawn: 0, // 2D views with at least one joint in the last frame
    thumbnailsReceived: 0,
    thumbnailsDrawn: 0, // 2D views showing a camera image in the last frame
    thumbnailSize: null, // [w, h] of the last camera image drawn
    reconnects: 0,
    sceneSource: null,
  });

  const canvas = document.getElementById("scene");
  const ctx = canvas.getContext("2d");
  const el = (id) => document.getElementById(id);

  let scene = null; // the last scene message
  let pose = null; // the last pose message
  let status = null; // the last status message
  let ws = null;
  let attempt = 0;
  let tLastPose = 0;
  const arrivals = []; // [performance.now() ms] of the last poses, for the rate
  const latPublish = []; // capture -> publish, ms
  const latPage = []; // capture -> this page, ms
  const seenJoints = []; // a few hands' joints seen so far, for the auto-fit

  // ---- small vector helpers ([x, y, z] arrays) ------------------------------------------------------------------
  const add = (a, b) => [a[0] + b[0], a[1] + b[1], a[2] + b[2]];
  const sub = (a, b) => [a[0] - b[0], a[1] - b[1], a[2] - b[2]];
  const mul = (a, s) => [a[0] * s, a[1] * s, a[2] * s];
  const dot = (a, b) => a[0] * b[0] + a[1] * b[1] + a[2] * b[2];
  const cross = (a, b) => [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]];
  const norm = (a) => Math.hypot(a[0], a[1], a[2]);
  const unit = (a) => { const n = norm(a); return n > 1e-12 ? mul(a, 1 / n) : [0, 0, 0]; };
  const ok3 = (p) => Array.isArray(p) && p.length === 3 && p.every((v) => typeof v === "number" && isFinite(v));
  const median = (xs) => { if (!xs.length) return NaN; const s = [...xs].sort((a, b) => a - b); return s[s.length >> 1]; };
  const push = (xs, v, n) => { xs.push(v); if (xs.length > n) xs.shift(); };

  // ---- the orbit camera -------------------------------------------------------------------------------------------
  const view = { target: [0, 0, 0.3], yaw: 1.15, pitch: 0.35, dist: 1.0, up: [0, -1, 0], a: [0, 0, -1], b: [1, 0, 0] };
  let fitted = 0; // how many joints the last auto-fit saw (it fits again at 42 and at MAX_SEEN)
  const MAX_SEEN = 420; // joints kept for the fit (10 poses' worth of two hands, sampled from all seen)

  function setUp(up, forward) {
    // a, b: the horizontal plane (perpendicular to up); a points from the rig backwards, so yaw 0 looks along
    // the cameras' mean viewing direction (over the shoulder of a headset)
    view.up = unit(up);
    let back = sub(mul(view.up, dot(forward, view.up)), forward);
    if (norm(back) < 1e-6) back = Math.abs(view.up[0]) < 0.9 ? [1, 0, 0] : [0, 0, 1];
    view.a = unit(sub(back, mul(view.up, dot(back, view.up))));
    view.b = cross(view.up, view.a);
  }

  function camera() {
    const cp = Math.cos(view.pitch), sp = Math.sin(view.pitch);
    const dir = add(add(mul(view.a, cp * Math.cos(view.yaw)), mul(view.b, cp * Math.sin(view.yaw))), mul(view.up, sp));
    const eye = add(view.target, mul(dir, view.dist));
    const fwd = unit(sub(view.target, eye));
    let right = cross(fwd, view.up);
    right = norm(right) < 1e-6 ? view.b : unit(right);
    const up = cross(right, fwd);
    const h = canvas.height, w = canvas.width;
    return { eye, fwd, right, up, f: h / 2 / Math.tan(FOV / 2), cx: w / 2, cy: h / 2, near: view.dist * 0.01 };
  }

  function toCam(c, p) {
    const d = sub(p, c.eye);
    return [dot(d, c.right), dot(d, c.up), dot(d, c.fwd)];
  }
  function screen(c, q) {
    return [c.cx + (c.f * q[0]) / q[2], c.cy - (c.f * q[1]) / q[2]];
  }
  function project(c, p) {
    const q = toCam(c, p);
    return q[2] > c.near ? [...screen(c, q), q[2]] : null;
  }
  function line(c, p0, p1) {
    // a world segment, clipped at the near plane
    let q0 = toCam(c, p0), q1 = toCam(c, p1);
    if (q0[2] <= c.near && q1[2] <= c.near) return false;
    if (q0[2] <= c.near || q1[2] <= c.near) {
      const t = (c.near - q0[2]) / (q1[2] - q0[2]);
      const q = add(q0, mul(sub(q1, q0), t));
      if (q0[2] <= c.near) q0 = q; else q1 = q;
    }
    const s0 = screen(c, q0), s1 = screen(c, q1);
    ctx.moveTo(s0[0], s0[1]);
    ctx.lineTo(s1[0], s1[1]);
    return true;
  }

  function frustumLength() {
    const cams = scene ? scene.cameras : [];
    let extent = 0;
    for (const a of cams) for (const b of cams) extent = Math.max(extent, norm(sub(a.center, b.center)));
    return cams.length > 1 ? Math.min(0.3, Math.max(0.04, 0.4 * extent)) : 0.1;
  }

  function jointBounds() {
    // the hands' recent joints, 5th to 95th percentile per axis: one mis-triangulated joint must not move the view
    if (seenJoints.length < 10) return null;
    const lo = [], hi = [];
    for (let k = 0; k < 3; k++) {
      const v = seenJoints.map((p) => p[k]).sort((a, b) => a - b);
      lo.push(v[Math.floor(0.05 * (v.length - 1))]);
      hi.push(v[Math.ceil(0.95 * (v.length - 1))]);
    }
    return [lo, hi];
  }

  function fitPoints() {
    // the cameras (centres and frustum ends) and the corners of the hands' robust box
    const pts = [];
    const L = frustumLength();
    for (const c of scene ? scene.cameras : []) {
      pts.push(c.center);
      for (const r of c.border) if (r) pts.push(add(c.center, mul(r, L)));
    }
    const jb = jointBounds();
    if (jb) for (let i = 0; i < 8; i++) pts.push([0, 1, 2].map((k) => jb[(i >> k) & 1][k]));
    return pts;
  }

  let seenCount = 0;
  function remember(p) {
    // a uniform sample of every joint seen (reservoir sampling): the fit sees where the hands go, not where they
    // were in the last second
    seenCount++;
    if (seenJoints.length < MAX_SEEN) seenJoints.push(p);
    else if (Math.random() < MAX_SEEN / seenCount) seenJoints[Math.floor(Math.random() * MAX_SEEN)] = p;
  }

  function fit() {
    const pts = fitPoints();
    if (!pts.length) return;
    resize();
    let lo = [...pts[0]], hi = [...pts[0]];
    for (const p of pts) for (let k = 0; k < 3; k++) { lo[k] = Math.min(lo[k], p[k]); hi[k] = Math.max(hi[k], p[k]); }
    view.target = mul(add(lo, hi), 0.5);
    let r = 0;
    for (const p of pts) r = Math.max(r, norm(sub(p, view.target)));
    const aspect = Math.min(1, canvas.width / Math.max(1, canvas.height));
    view.dist = Math.max(0.05, (0.9 * r) / Math.sin((FOV / 2) * aspect));
    fitted = jointBounds() ? seenJoints.length : 0;
  }

  // ---- drawing ------------------------------------------------------------------------------------------------------
  function niceStep(x) {
    const e = Math.pow(10, Math.floor(Math.log10(x)));
    const m = x / e;
    return (m < 1.5 ? 1 : m < 3.5 ? 2 : m < 7.5 ? 5 : 10) * e;
  }

  function drawGrid(c) {
    // a floor perpendicular to "up", just below everything the fit saw, and the world axes at the origin
    const up = view.up;
    const pts = fitPoints();
    let low = pts.length ? Math.min(...pts.map((p) => dot(p, up))) : dot(view.target, up) - 0.3;
    const step = niceStep(view.dist / 6);
    low -= step * 0.5;
    const centre = add(sub(view.target, mul(up, dot(view.target, up))), mul(up, low));
    const n = 6;
    const ua = view.a, ub = view.b;
    const snapA = Math.round(dot(centre, ua) / step) * step, snapB = Math.round(dot(centre, ub) / step) * step;
    const base = add(add(mul(up, low), mul(ua, snapA)), mul(ub, snapB));
    ctx.lineWidth = 1;
    ctx.strokeStyle = "rgba(140, 150, 165, 0.16)";
    ctx.beginPath();
    for (let i = -n; i <= n; i++) {
      line(c, add(base, add(mul(ua, i * step), mul(ub, -n * step))), add(base, add(mul(ua, i * step), mul(ub, n * step))));
      line(c, add(base, add(mul(ub, i * step), mul(ua, -n * step))), add(base, add(mul(ub, i * step), mul(ua, n * step))));
    }
    ctx.stroke();
    const axes = [["#e06c6c", [1, 0, 0], "x"], ["#8fd16a", [0, 1, 0], "y"], ["#6c9cff", [0, 0, 1], "z"]];
    ctx.lineWidth = 2;
    ctx.font = "11px ui-monospace, monospace";
    for (const [color, d, name] of axes) {
      ctx.strokeStyle = color;
      ctx.beginPath();
      if (line(c, [0, 0, 0], mul(d, step))) ctx.stroke();
      const s = project(c, mul(d, step * 1.15));
      if (s) { ctx.fillStyle = color; ctx.fillText(name, s[0] - 3, s[1] + 4); }
    }
  }

  function drawCameras(c) {
    let drawn = 0;
    if (!scene) return 0;
    const L = frustumLength();
    const used = new Set(pose && pose.views ? pose.views : []);
    ctx.font = "11px ui-monospace, monospace";
    for (const cam of scene.cameras) {
      const ends = cam.border.map((r) => (r ? add(cam.center, mul(r, L)) : null));
      const n = ends.length / 4;
      ctx.strokeStyle = used.has(cam.name) ? "rgba(127, 179, 255, 0.95)" : "rgba(150, 170, 190, 0.7)";
      ctx.lineWidth = 1.3;
      ctx.beginPath();
      let any = false;
      for (let k = 0; k < 4; k++) if (ends[k * n]) any = line(c, cam.center, ends[k * n]) || any;
      for (let i = 0; i < ends.length; i++) {
        const p = ends[i], q = ends[(i + 1) % ends.length];
        if (p && q) any = line(c, p, q) || any;
      }
      // a small triangle on the image's top edge: which way is up in this camera
      const top = ends[n >> 1];
      if (top) {
        const tip = add(top, mul(cam.image_up, L * 0.22));
        const side = mul(unit(sub(ends[0] || top, ends[n] || top)), L * 0.12);
        line(c, add(top, side), tip);
        line(c, tip, sub(top, side));
      }
      ctx.stroke();
      const s = project(c, cam.center);
      if (s) {
        ctx.fillStyle = "rgba(190, 200, 215, 0.85)";
        ctx.beginPath();
        ctx.arc(s[0], s[1], 2.5, 0, 2 * Math.PI);
        ctx.fill();
        ctx.fillText(cam.name, s[0] + 5, s[1] - 5);
      }
      drawn += any ? 1 : 0;
    }
    return drawn;
  }

  function confColor(conf) {
    // red (0) -> yellow -> green (1); grey when the engine gave none
    if (typeof conf !== "number" || !isFinite(conf)) return "#9aa3ad";
    const t = Math.max(0, Math.min(1, conf));
    return `hsl(${Math.round(120 * t)}, 85%, 52%)`;
  }

  function drawHands(c) {
    let hands = 0, joints = 0;
    if (!pose || !scene) return [0, 0];
    const dots = [];
    for (const hand of pose.hands) {
      const J = hand.joints;
      const pts = J.map((p) => (ok3(p) ? project(c, p) : null));
      ctx.strokeStyle = HAND_COLOR[hand.side] || "#ddd";
      ctx.lineWidth = 3;
      ctx.lineCap = "round";
      ctx.beginPath();
      for (const [i, j] of scene.bones) if (ok3(J[i]) && ok3(J[j])) line(c, J[i], J[j]);
      ctx.stroke();
      let n = 0;
      const inside = (s) => s[0] >= 0 && s[1] >= 0 && s[0] <= c.cx * 2 && s[1] <= c.cy * 2;
      pts.forEach((s, k) => { if (s) { n += inside(s); dots.push([s, hand.conf[k]]); } }); // drawn = on the canvas
      joints += n;
      hands += n > 0 ? 1 : 0;
      if (pts[0]) {
        ctx.font = "12px ui-monospace, monospace";
        ctx.fillStyle = HAND_COLOR[hand.side] || "#ddd";
        ctx.fillText(hand.side, pts[0][0] + 8, pts[0][1] + 14);
      }
    }
    dots.sort((p, q) => q[0][2] - p[0][2]); // far to near
    for (const [s, conf] of dots) {
      const r = Math.max(2, Math.min(5, (c.f * 0.0045) / s[2]));
      ctx.fillStyle = confColor(conf);
      ctx.strokeStyle = "rgba(0, 0, 0, 0.6)";
      ctx.lineWidth = 1;
      ctx.beginPath();
      ctx.arc(s[0], s[1], r, 0, 2 * Math.PI);
      ctx.fill();
      ctx.stroke();
    }
    return [hands, joints];
  }

  function resize() {
    const dpr = window.devicePixelRatio || 1;
    const w = Math.round(canvas.clientWidth * dpr), h = Math.round(canvas.clientHeight * dpr);
    if (canvas.width !== w || canvas.height !== h) { canvas.width = w; canvas.height = h; }
    return [w, h];
  }

  function draw() {
    scheduled = false;
    const [w, h] = resize();
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.fillStyle = "#14171c";
    ctx.fillRect(0, 0, w, h);
    const c = camera();
    drawGrid(c);
    state.camerasDrawn = drawCameras(c);
    const [hands, joints] = state.waiting ? [0, 0] : drawHands(c);
    state.handsDrawn = hands;
    state.jointsDrawn = joints;
    state.maxJointsDrawn = Math.max(state.maxJointsDrawn, joints);
    state.framesDrawn++;
    if (hands) state.framesWithHands++;
    state.views2dDrawn = drawViews();
  }

  let scheduled = false;
  function schedule() {
    if (scheduled) return;
    scheduled = true;
    requestAnimationFrame(() => scheduled && draw());
    setTimeout(() => scheduled && draw(), 100); // where frames are not animated (a hidden or headless page)
  }

  // ---- the 2D views (--include-2d): each camera's image rectangle with the joints projected into it -----------------
  const thumbs = new Map(); // camera name -> {fig, canvas}
  function buildViews() {
    const box = el("views");
    box.replaceChildren();
    thumbs.clear();
    if (!scene || !scene.include_2d) return;
    for (const cam of scene.cameras) {
      const [iw, ih] = cam.size;
      const tw = Math.min(220, Math.max(120, Math.round(880 / scene.cameras.length)));
      const fig = document.createElement("figure");
      const cv = document.createElement("canvas");
      cv.width = tw;
      cv.height = Math.round((tw * ih) / iw);
      const cap = document.createElement("figcaption");
      fig.style.width = `${tw}px`;
      fig.append(cv, cap);
      box.append(fig);
      thumbs.set(cam.name, { fig, canvas: cv, cap, label: `${cam.name} · ${iw}x${ih}`, scale: tw / iw });
    }
  }

  const images = new Map(); // camera name -> {img, msg, t, loaded}: the newest camera image (thumbnail message)
  function onThumbnail(msg) {
    if (!msg.jpeg) return;
    const img = new Image();
    const entry = { img, msg, t: performance.now(), loaded: false };
    img.onload = () => { entry.loaded = true; images.set(msg.camera, entry); schedule(); };
    img.src = `data:image/jpeg;base64,${msg.jpeg}`;
    state.thumbnailsReceived++;
  }

  function drawSkeleton(g, hands, uvOf, scale, w, h) {
    // the 2D joints (pixels of the calibrated image, pixel centres at integers) scaled to the canvas
    let any = false;
    hands.forEach((hand, k) => {
      const s = (uvOf(hand, k) || []).map((p) => (p ? [(p[0] + 0.5) * scale, (p[1] + 0.5) * scale] : null));
      g.strokeStyle = HAND_COLOR[hand.side] || "#ddd";
      g.lineWidth = 2;
      g.beginPath();
      for (const [i, j] of scene.bones) if (s[i] && s[j]) { g.moveTo(...s[i]); g.lineTo(...s[j]); }
      g.stroke();
      s.forEach((p, j) => {
        if (!p || p[0] < 0 || p[1] < 0 || p[0] > w || p[1] > h) return;
        any = true;
        g.fillStyle = confColor(hand.conf[j]);
        g.fillRect(p[0] - 1.5, p[1] - 1.5, 3, 3);
      });
    });
    return any;
  }

  function drawViews() {
    let drawn = 0, withImage = 0;
    const used = new Set(pose && pose.views ? pose.views : []);
    const now = performance.now();
    for (const [name, t] of thumbs) {
      const g = t.canvas.getContext("2d");
      const W = t.canvas.width, H = t.canvas.height;
      t.fig.classList.toggle("used", used.has(name));
      const im = images.get(name);
      const fresh = im && im.loaded && !state.waiting && now - im.t < THUMB_STALE_MS;
      if (fresh) {
        // the camera image under the skeleton of its own pose (same frame set), so both show the same instant
        g.drawImage(im.img, 0, 0, W, H);
        withImage++;
        state.thumbnailSize = im.msg.size;
        t.cap.textContent = `${t.label} · image`;
      } else {
        g.fillStyle = "#1b1f26";
        g.fillRect(0, 0, W, H);
        g.fillStyle = "rgba(170, 180, 195, 0.75)";
        g.font = "10px ui-monospace, monospace";
        g.fillText("no camera image", 6, 14);
        g.fillText("(engine.thumbnail_fps = 0)", 6, 27);
        t.cap.textContent = `${t.label} · reprojected`;
      }
      let any = false;
      if (fresh && im.msg.hands) any = drawSkeleton(g, im.msg.hands, (hand) => hand.uv, t.scale, W, H);
      else {
        const views = !state.waiting && pose && pose.views2d ? pose.views2d[name] : null;
        if (views) any = drawSkeleton(g, pose.hands, (_, k) => views[k], t.scale, W, H);
      }
      drawn += any ? 1 : 0;
    }
    state.thumbnailsDrawn = withImage;
    return drawn;
  }

  // ---- the status line --------------------------------------------------------------------------------------------
  const fmt = (x, d = 1) => (typeof x === "number" && isFinite(x) ? x.toFixed(d) : "–");

  function updateStatus() {
    const now = performance.now();
    state.waiting = !state.connected || now - tLastPose > WAIT_AFTER_MS;
    while (arrivals.length && now - arrivals[0] > 2000) arrivals.shift();
    const rate = arrivals.length > 1 ? (1000 * (arrivals.length - 1)) / (arrivals[arrivals.length - 1] - arrivals[0]) : 0;
    const v = status ? status.viewer : {};
    const zmq = v.subscriber || {};
    const cls = !state.connected ? "dot-off" : state.waiting ? "dot-wait" : "dot-live";
    const word = !state.connected ? "disconnected" : state.waiting ? "waiting" : "live";
    el("status-live").innerHTML =
      `<span class="${cls}">●</span> ${word} · ${fmt(state.waiting ? 0 : rate)} poses/s · seq ${state.lastSeq ?? "–"}` +
      ` · latency capture→publish ${fmt(median(latPublish))} ms, capture→page ${fmt(median(latPage))} ms` +
      ` · dropped: ${v.poses_dropped ?? 0} here (slow page), ${(zmq.missed ?? 0) + (zmq.superseded ?? 0)} by the viewer's subscriber`;
    const procs = status ? status.processes : {};
    const eng = procs.engine;
    let line = "engine: no status yet";
    if (eng && eng.stale) line = `engine: silent for ${fmt(eng.age_s, 0)} s`;
    else if (eng) {
      const d = eng.data, lat = d.latency_ms || {}, rc = d.receiver || {}, df = d.dropped_frames || {};
      const invalid = Object.values(rc.dropped || {}).reduce((a, b) => a + b, 0);
      const frameDrops = (rc.missed ?? 0) + (rc.superseded ?? 0) + invalid + (df.size ?? 0) + (df.error ?? 0);
      const fps = Object.values(d.fps_in || {});
      const fpsText = fps.length ? `${fmt(Math.min(...fps), 0)}${Math.max(...fps) - Math.min(...fps) >= 1 ? `–${fmt(Math.max(...fps), 0)}` : ""} fps x ${fps.length}` : "–";
      line = `engine: ${fmt(d.pose_rate)} poses/s, latency p50 ${fmt(lat.p50)} / p99 ${fmt(lat.p99)} ms, ${d.backend ?? "?"},` +
        ` frames in ${fpsText}, ${frameDrops} unused`;
      const names = Object.keys(d.fps_in || {}).sort().join(",");
      const ours = scene && scene.cameras.length ? scene.cameras.map((k) => k.name).sort().join(",") : names;
      if (names && ours !== names) line += " · the calibration's cameras are not the engine's";
    }
    const caps = Object.entries(procs).filter(([k]) => k.startsWith("capture-"));
    if (caps.length) {
      const dropped = caps.reduce((a, [, p]) => a + (p.data.dropped ?? 0), 0);
      line += ` · captures: ${dropped} dropped at send`;
    }
    el("status-engine").textContent = line;
    const cams = scene ? scene.cameras.length : 0;
    el("status-scene").textContent = scene ? `cameras: ${cams ? `${cams} from ` : ""}${scene.source}` : "";
    const box = el("waiting");
    box.classList.toggle("shown", state.waiting);
    el("waiting-detail").textContent = !state.connected
      ? `reconnecting to the viewer at ${location.host}…`
      : `from ${scene ? scene.endpoint : "the engine"}: is handstream serve running?`;
    const text = JSON.stringify(state);
    el("hs-state").textContent = text;
    if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ type: "state", ...state }));
    schedule();
  }

  // ---- messages -----------------------------------------------------------------------------------------------------
  function onScene(msg) {
    scene = msg;
    state.sceneSource = msg.source;
    const fwd = msg.cameras.length ? unit(msg.cameras.reduce((s, k) => add(s, k.R[2]), [0, 0, 0])) : [0, 0, 1];
    setUp(msg.up, norm(fwd) > 0.1 ? fwd : [0, 0, 1]);
    buildViews();
    fit();
  }

  function onPose(msg) {
    pose = msg;
    const now = performance.now();
    tLastPose = now;
    state.posesReceived++;
    state.lastSeq = msg.seq;
    push(arrivals, now, 120);
    push(latPublish, (msg.t_publish_ns - msg.t_capture_ns) / 1e6, 60);
    push(latPage, Date.now() - msg.t_capture_ns / 1e6, 60);
    for (const h of msg.hands) for (const p of h.joints) if (ok3(p)) remember(p);
    // fit the view twice by itself: when the hands appear, and once they have been seen for a while
    if ((fitted < 42 && seenJoints.length >= 42) || (fitted < MAX_SEEN && seenJoints.length >= MAX_SEEN)) fit();
    if (state.waiting) updateStatus();
    schedule();
  }

  function connect() {
    const url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`;
    ws = new WebSocket(url);
    ws.onopen = () => { state.connected = true; attempt = 0; };
    ws.onmessage = (ev) => {
      let msg;
      try { msg = JSON.parse(ev.data); } catch { return; }
      if (msg.type === "pose") onPose(msg);
      else if (msg.type === "status") status = msg;
      else if (msg.type === "scene") onScene(msg);
      else if (msg.type === "thumbnail") onThumbnail(msg);
    };
    ws.onclose = () => {
      // back off 0.25, 0.5, 1, 2, 4 s (then every 4 s): the viewer server may be restarting
      if (state.connected) state.reconnects++;
      state.connected = false;
      ws = null;
      setTimeout(connect, Math.min(4000, 250 * 2 ** attempt++));
    };
  }

  // ---- interaction --------------------------------------------------------------------------------------------------
  let drag = null;
  canvas.addEventListener("pointerdown", (e) => {
    drag = { x: e.clientX, y: e.clientY, pan: e.shiftKey || e.button !== 0 };
    canvas.setPointerCapture(e.pointerId);
    canvas.classList.add("dragging");
  });
  canvas.addEventListener("pointermove", (e) => {
    if (!drag) return;
    const dx = e.clientX - drag.x, dy = e.clientY - drag.y;
    drag.x = e.clientX;
    drag.y = e.clientY;
    if (drag.pan) {
      const c = camera(), k = ((window.devicePixelRatio || 1) * view.dist) / c.f;
      view.target = add(view.target, add(mul(c.right, -dx * k), mul(c.up, dy * k)));
    } else {
      view.yaw -= dx * 0.008;
      view.pitch = Math.max(-1.5, Math.min(1.5, view.pitch + dy * 0.008));
    }
    schedule();
  });
  const endDrag = () => { drag = null; canvas.classList.remove("dragging"); };
  canvas.addEventListener("pointerup", endDrag);
  canvas.addEventListener("pointercancel", endDrag);
  canvas.addEventListener("contextmenu", (e) => e.preventDefault());
  canvas.addEventListener("wheel", (e) => {
    e.preventDefault();
    view.dist = Math.max(0.02, Math.min(200, view.dist * Math.exp(e.deltaY * 0.0015)));
    schedule();
  }, { passive: false });
  canvas.addEventListener("dblclick", () => { fit(); schedule(); });
  window.addEventListener("keydown", (e) => { if (e.key === "f" || e.key === "F") { fit(); schedule(); } });
  window.addEventListener("resize", schedule);

  connect();
  setInterval(updateStatus, 250);
  updateStatus();
})();
