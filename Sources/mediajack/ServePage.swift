let servePageHTML = #"""
<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>mediajack serve</title>
<link rel="icon" href="data:,">
<style>
  :root { color-scheme: dark; }
  html, body { margin: 0; padding: 0; background: #16181c; color: #d5d8dd;
    font: 13px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
  header { position: absolute; top: 0; left: 16px; right: 16px; height: 40px;
    display: flex; align-items: center; gap: 10px; white-space: nowrap; }
  header b { color: #f0f2f5; font-weight: 600; letter-spacing: .02em; }
  header span { color: #8a9099; }
  /* The picture's top-left corner is always at (16px, 48px) of the page. */
  #stage { position: absolute; top: 48px; left: 16px; padding-bottom: 24px; }
  #frame { position: relative; width: 640px; height: 360px; background: #000; }
  #picture { display: block; width: 640px; height: 360px; margin: 0; padding: 0; border: 0;
    background: #000; object-fit: contain; }
  /* Messages over the picture stay clear of its top rows (tests read a barcode there). */
  #banner { position: absolute; left: 0; right: 0; top: max(48px, calc(100% - 64px));
    text-align: center; pointer-events: none; display: none; }
  #banner span { display: inline-block; background: rgba(10, 12, 15, .78); color: #f3f4f6;
    padding: 6px 14px; border-radius: 4px; font-size: 14px; }
  #status { margin-top: 8px; font: 12px/1.5 ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace;
    color: #aab0b8; white-space: nowrap; }
  #status .dot { display: inline-block; width: 8px; height: 8px; border-radius: 50%;
    margin-right: 6px; background: #6b7280; vertical-align: 0; }
  #status.playing .dot { background: #22c55e; }
  #status.buffering .dot { background: #eab308; }
  #status.ended .dot { background: #ef4444; }
  #sound { margin-left: 12px; font: inherit; color: #d5d8dd; background: #262a31; border: 1px solid #3a3f48;
    border-radius: 4px; padding: 1px 8px; cursor: pointer; }
  #sound[hidden] { display: none; }
</style>
</head>
<body>
<header><b>mediajack serve</b><span id="where"></span></header>
<div id="stage">
  <div id="frame">
    <video id="picture" muted autoplay playsinline disablepictureinpicture></video>
    <div id="banner"><span id="bannertext">waiting for a publisher</span></div>
  </div>
  <div id="status"><span class="dot"></span><span id="statustext">connecting&hellip;</span><button id="sound" type="button" hidden>sound off: click for sound</button></div>
</div>
<script>
(function () {
  'use strict';

  var params = new URLSearchParams(location.search);
  var forceMJPEG = params.has('mjpeg');
  var RETRY_MS = 750;          // poll interval while waiting / after a stream ended
  var STALL_MS = 10000;        // no bytes for this long: drop the connection and retry
  // How far behind the newest data the page plays: ?edge=S (seconds) trades smoothness for delay.
  var EDGE_S = Math.min(2, Math.max(0.02, parseFloat(params.get('edge')) || 0.1));
  var CHASE_S = Math.max(0.5, 4 * EDGE_S);  // jump to EDGE_S behind the newest data when this far behind
  var CATCHUP_S = 1.5 * EDGE_S;             // between this and CHASE_S: play 10% fast until back near the edge
  var KEEP_S = 10;             // keep this much played video in the SourceBuffer

  var mj = window.mediajack = {
    state: 'waiting',          // 'waiting' | 'buffering' | 'playing' | 'ended'
    framesShown: 0,            // frames presented since the page loaded
    streamFrames: 0,           // frames presented from the current connection
    streams: 0,                // connections that showed at least one frame
    mode: forceMJPEG || !window.MediaSource ? 'mjpeg' : 'mse',
    width: 0, height: 0, fps: 0, dropped: 0, latency: null, clients: null, error: null,
    audio: false,              // the stream being played carries sound
    soundOn: false,            // the viewer turned the sound on (pages start muted: autoplay rules)
    audioBytes: null,          // audio bytes the browser decoded (Chromium), for the curious and the tests
    delay: null,               // ms from capture to screen, median of the last 30 frames (MSE, rVFC)
    delays: [],                // the last 600 of those delays, ms
    stalls: 0                  // times playback ran out of data (MSE)
  };

  var frame = document.getElementById('frame');
  var picture = document.getElementById('picture');
  var banner = document.getElementById('banner');
  var bannerText = document.getElementById('bannertext');
  var statusBox = document.getElementById('status');
  var statusText = document.getElementById('statustext');
  var soundButton = document.getElementById('sound');
  soundButton.addEventListener('click', function () {
    mj.soundOn = !mj.soundOn;
    if (picture.tagName === 'VIDEO') { picture.muted = !mj.soundOn; if (mj.soundOn) picture.play().catch(function () {}); }
    renderSound();
  });
  function renderSound() {
    soundButton.hidden = !(mj.audio && mj.mode === 'mse');
    soundButton.textContent = mj.soundOn ? 'sound on: click to mute' : 'sound off: click for sound';
  }
  document.getElementById('where').textContent = location.host + (forceMJPEG ? '  (MJPEG forced)' : '');

  var mseBroken = false;       // MSE failed before showing a frame: use MJPEG from then on
  var lastFrameAt = 0;         // performance.now() of the last presented frame
  var session = null;          // the current connection {abort(), ...}

  function sleep(ms) { return new Promise(function (r) { setTimeout(r, ms); }); }
  function log() { try { console.log.apply(console, ['[mediajack]'].concat([].slice.call(arguments))); } catch (e) {} }

  // ---- layout: native pixel size ----------------------------------------------------------
  var boxW = 0, boxH = 0;
  function setSize(w, h, placeholder) {
    w = w | 0; h = h | 0;
    if (w <= 0 || h <= 0) return;
    if (!placeholder) { mj.width = w; mj.height = h; }
    if (w === boxW && h === boxH) return;
    boxW = w; boxH = h;
    frame.style.width = w + 'px'; frame.style.height = h + 'px';
    picture.style.width = w + 'px'; picture.style.height = h + 'px';
  }
  setSize(640, 360, true);  // until the stream's size is known

  function usePicture(kind) {  // kind: 'video' | 'img'
    if (picture.tagName.toLowerCase() === kind) return picture;
    var el = document.createElement(kind);
    if (kind === 'video') {
      el.muted = !mj.soundOn; el.autoplay = true; el.playsInline = true;
      if (!mj.soundOn) el.setAttribute('muted', ''); el.setAttribute('autoplay', ''); el.setAttribute('playsinline', '');
    } else {
      el.alt = 'live picture';
    }
    el.id = 'picture';
    el.style.width = boxW + 'px'; el.style.height = boxH + 'px';
    frame.replaceChild(el, picture);
    picture = el;
    if (kind === 'video') watchVideo(el);
    return el;
  }

  // ---- state and status line --------------------------------------------------------------
  var STATE_TEXT = {
    waiting: 'waiting for a publisher',
    buffering: 'buffering',
    playing: 'live',
    ended: 'stream ended \u2014 waiting for the publisher'
  };
  function setState(s, force) {
    if (mj.state === s && !force) return;
    // While reconnecting after an end, keep saying so until pictures flow again.
    if (s === 'buffering' && mj.state === 'ended') { mj.state = s; statusBox.className = s; return; }
    mj.state = s;
    statusBox.className = s;
    if (s === 'playing') { banner.style.display = 'none'; }
    else if (s === 'buffering') { bannerText.textContent = 'buffering\u2026'; banner.style.display = 'block'; }
    else { bannerText.textContent = STATE_TEXT[s]; banner.style.display = 'block'; }
    renderStatus();
  }
  function renderStatus() {
    var parts = [STATE_TEXT[mj.state] || mj.state];
    if (mj.width) parts.push(mj.width + '\u00d7' + mj.height);
    if (mj.state === 'playing' || mj.state === 'buffering') {
      parts.push(mj.fps.toFixed(1) + ' fps');
      if (mj.mode === 'mse') {
        parts.push('dropped ' + mj.dropped);
        if (mj.stalls) parts.push('stalls ' + mj.stalls);
        if (mj.delay != null) parts.push(Math.round(mj.delay) + ' ms from capture to screen');
        else parts.push('latency ' + (mj.latency == null ? '\u2013' : Math.round(mj.latency * 1000) + ' ms'));
      }
    }
    parts.push(mj.mode === 'mse' ? 'MSE' : 'MJPEG');
    if (mj.clients != null) parts.push(mj.clients + (mj.clients === 1 ? ' viewer' : ' viewers'));
    statusText.textContent = parts.join('  \u00b7  ');
  }

  // ---- frame counting ---------------------------------------------------------------------
  function frameShown(n) {
    n = n || 1;
    mj.framesShown += n;
    if (mj.streamFrames === 0) mj.streams++;
    mj.streamFrames += n;
    lastFrameAt = performance.now();
    if (mj.state !== 'playing') setState('playing');
  }

  var rvfc = 'requestVideoFrameCallback' in HTMLVideoElement.prototype;
  var rvfcToken = 0;
  var lastPresented = -1;
  var captureMsAtZero = null;  // from status.json: the capture time (Unix ms) of media time zero
  // A frame's delay from capture to screen: when it is shown (performance.timeOrigin is Unix ms) less
  // when it was captured (the capture time of media time zero plus its media time).
  function noteDelay(meta) {
    if (captureMsAtZero == null || !meta || typeof meta.mediaTime !== 'number' || typeof meta.expectedDisplayTime !== 'number') return;
    var d = performance.timeOrigin + meta.expectedDisplayTime - (captureMsAtZero + meta.mediaTime * 1000);
    mj.delays.push(d);
    if (mj.delays.length > 600) mj.delays.shift();
    var recent = mj.delays.slice(-30).sort(function (a, b) { return a - b; });
    mj.delay = recent[recent.length >> 1];
  }
  function watchVideo(v) {
    if (!rvfc) return;
    var token = ++rvfcToken;
    var cb = function (now, meta) {
      if (token !== rvfcToken || v !== picture) return;
      var p = meta && typeof meta.presentedFrames === 'number' ? meta.presentedFrames : -1;
      var n = 1;
      if (p >= 0 && lastPresented >= 0 && p > lastPresented) n = Math.min(p - lastPresented, 100);
      lastPresented = p;
      noteDelay(meta);
      frameShown(n);
      v.requestVideoFrameCallback(cb);
    };
    v.requestVideoFrameCallback(cb);
  }
  watchVideo(picture);

  var fpsMark = { t: performance.now(), n: 0 };
  var lastTotal = 0;
  function tick() {
    var now = performance.now();
    var v = picture.tagName === 'VIDEO' ? picture : null;
    if (v && !rvfc && v.getVideoPlaybackQuality) {   // no rVFC: count decoded-and-kept frames
      var q = v.getVideoPlaybackQuality();
      var shown = q.totalVideoFrames - q.droppedVideoFrames;
      if (shown < lastTotal) lastTotal = 0;
      if (shown > lastTotal) frameShown(shown - lastTotal);
      lastTotal = shown;
    }
    if (v && v.getVideoPlaybackQuality) mj.dropped = v.getVideoPlaybackQuality().droppedVideoFrames;
    if (v && typeof v.webkitAudioDecodedByteCount === 'number') mj.audioBytes = v.webkitAudioDecodedByteCount;
    if (now - fpsMark.t >= 1000) {
      mj.fps = (mj.framesShown - fpsMark.n) * 1000 / (now - fpsMark.t);
      fpsMark = { t: now, n: mj.framesShown };
    }
    if (session && session.tick) session.tick();
    if (mj.state === 'playing' && now - lastFrameAt > 2000) setState(session ? 'buffering' : 'ended');
    renderStatus();
  }
  setInterval(tick, 250);

  // ---- status.json ------------------------------------------------------------------------
  function getStatus() {
    return fetch('status.json', { cache: 'no-store' }).then(function (r) {
      if (!r.ok) throw new Error('status.json: HTTP ' + r.status);
      return r.json();
    }).then(function (st) {
      if (typeof st.clients === 'number') mj.clients = st.clients;
      return st;
    });
  }
  function videoStream(st) {
    var s = (st && st.streams) || [];
    for (var i = 0; i < s.length; i++) if (s[i].kind === 'video') return s[i];
    return null;
  }
  function mseMime(vs) {
    if (forceMJPEG || mseBroken || !vs || !vs.mime) return null;
    var MS = window.MediaSource;
    if (!MS || typeof MS.isTypeSupported !== 'function' || !MS.isTypeSupported(vs.mime)) return null;
    if (!window.ReadableStream || !('body' in Response.prototype)) return null;
    return vs.mime;
  }

  // Reads one chunk, giving up after STALL_MS without data.
  function readChunk(reader, ctl) {
    var timer;
    return Promise.race([
      reader.read(),
      new Promise(function (_, rej) {
        timer = setTimeout(function () { ctl.abort(); rej(new Error('no data for ' + STALL_MS / 1000 + ' s')); }, STALL_MS);
      })
    ]).then(function (r) { clearTimeout(timer); return r; }, function (e) { clearTimeout(timer); throw e; });
  }

  // ---- MSE / fMP4 ---------------------------------------------------------------------------
  function keepLastPicture(v) {  // the current frame becomes the poster while the next stream starts
    try {
      if (!v.videoWidth || v.readyState < 2) return;
      var c = document.createElement('canvas');
      c.width = v.videoWidth; c.height = v.videoHeight;
      c.getContext('2d').drawImage(v, 0, 0);
      v.poster = c.toDataURL('image/jpeg', 0.92);
    } catch (e) { /* best effort */ }
  }

  async function playMSE(mime) {
    var ctl = new AbortController();
    var resp = await fetch('stream.mp4', { cache: 'no-store', signal: ctl.signal });
    if (!resp.ok || !resp.body) {
      try { ctl.abort(); } catch (e) {}
      return 'HTTP ' + resp.status;
    }
    // The stream says what its init segment holds: status.json may be older than a restart of the feed.
    var sent = resp.headers.get('x-mediajack-mime');
    if (sent && sent !== mime) {
      if (!MediaSource.isTypeSupported(sent)) { try { ctl.abort(); } catch (e) {} return 'codecs changed to ' + sent; }
      mime = sent;
    }
    var zero = parseFloat(resp.headers.get('x-mediajack-capture-ms-at-zero') || '');
    if (!isNaN(zero)) captureMsAtZero = zero;
    mj.audio = /mp4a/.test(mime);
    renderSound();
    var v = usePicture('video');
    keepLastPicture(v);
    var ms = new MediaSource();
    var url = URL.createObjectURL(ms);
    v.src = url;
    lastPresented = -1; lastTotal = 0;
    var sb;
    try {
      await new Promise(function (res, rej) {
        ms.addEventListener('sourceopen', res, { once: true });
        setTimeout(function () { rej(new Error('MediaSource did not open')); }, 5000);
      });
      URL.revokeObjectURL(url);
      sb = ms.addSourceBuffer(mime);
    } catch (e) {
      ctl.abort();  // never leave the server streaming into a response nobody reads
      mseBroken = true;
      throw e;
    }
    try { sb.mode = 'segments'; } catch (e) {}

    var queue = [], queued = 0, started = false, failed = null, trimAt = 0, drained = null;
    var s = session = { abort: function () { ctl.abort(); } };

    function fail(e) { if (!failed) { failed = e || new Error('media error'); ctl.abort(); } }
    sb.addEventListener('error', function () { fail(new Error('SourceBuffer error')); });
    // A stall: playing along, the data ran out (not the start, not a jump to the edge).
    v.onwaiting = function () { if (started && !v.seeking && session === s && mj.streamFrames > 30) mj.stalls++; };
    v.onerror = function () { fail(new Error('video error ' + (v.error ? v.error.code + ' ' + v.error.message : ''))); };

    function edge() {
      var b = v.buffered;
      if (!b.length || v.seeking) return;
      var start = b.start(b.length - 1), end = b.end(b.length - 1), t = v.currentTime;
      if (!started) {
        started = true;
        v.currentTime = start;         // timestamps do not start at 0
        v.play().catch(function (e) { log('play()', e.name, e.message); });
        return;
      }
      var lat = mj.latency = Math.max(0, end - t);
      if (lat > CHASE_S || t < start - 0.001) {
        v.currentTime = Math.max(start, end - EDGE_S);
        v.playbackRate = 1;
      } else if (lat > CATCHUP_S) {
        if (v.playbackRate !== 1.1) v.playbackRate = 1.1;   // drift back to the edge, unnoticed
      } else if (lat < EDGE_S * 1.1 && v.playbackRate !== 1) {
        v.playbackRate = 1;
      }
      if (v.paused) v.play().catch(function () {});
    }
    function pump() {
      if (sb.updating || failed || ms.readyState !== 'open') return;
      if (queue.length) {
        var data;
        if (queue.length === 1) data = queue[0];
        else {
          data = new Uint8Array(queued);
          for (var i = 0, o = 0; i < queue.length; i++) { data.set(queue[i], o); o += queue[i].length; }
        }
        try {
          sb.appendBuffer(data);
          queue = []; queued = 0;
        } catch (e) {
          if (e.name === 'QuotaExceededError') { queue = [data]; trim(1); }
          else fail(e);
        }
        return;
      }
      if (drained) { var d = drained; drained = null; d(); return; }
      var now = performance.now();
      if (now >= trimAt) { trimAt = now + 2000; trim(KEEP_S); }
    }
    function trim(keep) {
      var b = sb.buffered;
      if (!b.length || sb.updating) return;
      var upto = v.currentTime - keep;
      if (upto > b.start(0) + 0.5) { try { sb.remove(b.start(0), upto); } catch (e) { log('remove', e); } }
    }
    sb.addEventListener('updateend', function () { edge(); pump(); });
    s.tick = function () { if (!failed) { edge(); pump(); } };

    setState('buffering');
    var reader = resp.body.getReader();
    try {
      for (;;) {
        var r = await readChunk(reader, ctl);
        if (r.done) break;
        if (!r.value || !r.value.length) continue;
        queue.push(r.value); queued += r.value.length;
        pump();
        if (failed) break;
      }
    } catch (e) {
      if (!failed) { log('stream.mp4 read:', e.message); }
    }
    if (!failed && (queue.length || sb.updating)) {
      await new Promise(function (res) { drained = res; pump(); setTimeout(res, 3000); });
    }
    if (session === s) session = null;
    if (failed) {
      mj.error = String(failed.message || failed);
      if (mj.streamFrames === 0) {
        mseBroken = true;
        log('MSE failed before the first frame, falling back to MJPEG:', mj.error);
      }
      throw failed;
    }
    return 'ended';
  }

  // ---- MJPEG (multipart/x-mixed-replace) ----------------------------------------------------
  function indexOf(buf, pat, from) {
    var n = buf.length - pat.length, p0 = pat[0];
    outer: for (var i = from || 0; i <= n; i++) {
      if (buf[i] !== p0) continue;
      for (var j = 1; j < pat.length; j++) if (buf[i + j] !== pat[j]) continue outer;
      return i;
    }
    return -1;
  }
  function ascii(s) { var a = new Uint8Array(s.length); for (var i = 0; i < s.length; i++) a[i] = s.charCodeAt(i) & 255; return a; }

  function showJPEG(img, state, bytes) {
    var blob = new Blob([bytes], { type: 'image/jpeg' });
    if (state.busy) { state.next = blob; return; }  // decoder behind: keep only the newest frame
    state.busy = true;
    var url = URL.createObjectURL(blob);
    img.onload = function () {
      if (state.shown) URL.revokeObjectURL(state.shown);
      state.shown = url;
      setSize(img.naturalWidth, img.naturalHeight);
      frameShown(1);
      state.busy = false;
      if (state.next) { var nb = state.next; state.next = null; showJPEG(img, state, nb); }
    };
    img.onerror = function () {
      URL.revokeObjectURL(url);
      state.busy = false;
      if (state.next) { var nb = state.next; state.next = null; showJPEG(img, state, nb); }
    };
    img.src = url;
  }

  async function playMJPEG() {
    var img = usePicture('img');
    if (!window.ReadableStream || !('body' in Response.prototype)) {
      // No streaming fetch: let the browser render the multipart stream itself.
      return new Promise(function (res) {
        setState('buffering');
        img.onload = function () { setSize(img.naturalWidth, img.naturalHeight); frameShown(1); };
        img.onerror = function () { res('img error'); };
        img.src = 'stream.mjpeg?t=' + Date.now();
      });
    }
    var ctl = new AbortController();
    var resp = await fetch('stream.mjpeg', { cache: 'no-store', signal: ctl.signal });
    if (!resp.ok || !resp.body) { try { ctl.abort(); } catch (e) {} return 'HTTP ' + resp.status; }
    var ct = resp.headers.get('content-type') || '';
    var m = /boundary="?([^";,\s]+)"?/i.exec(ct);
    var boundary = m ? m[1] : 'mjpegframe';
    var delim = ascii('--' + boundary), crlf2 = ascii('\r\n\r\n'), nextDelim = ascii('\r\n--' + boundary);
    var state = { busy: false, next: null, shown: null };
    var s = session = { abort: function () { ctl.abort(); } };
    mj.latency = null;
    setState('buffering');

    var buf = new Uint8Array(0);
    var reader = resp.body.getReader();
    try {
      for (;;) {
        var r = await readChunk(reader, ctl);
        if (r.done) break;
        var nb = new Uint8Array(buf.length + r.value.length);
        nb.set(buf, 0); nb.set(r.value, buf.length); buf = nb;
        var pos = 0;
        for (;;) {
          var d = indexOf(buf, delim, pos);
          if (d < 0) break;
          var he = indexOf(buf, crlf2, d + delim.length);
          if (he < 0) break;
          var headers = String.fromCharCode.apply(null, buf.subarray(d + delim.length, he));
          var lm = /content-length:\s*(\d+)/i.exec(headers);
          var start = he + 4, end;
          if (lm) {
            end = start + parseInt(lm[1], 10);
            if (end > buf.length) break;
          } else {
            end = indexOf(buf, nextDelim, start);
            if (end < 0) break;
          }
          if (end > start) showJPEG(img, state, buf.slice(start, end));
          pos = end;
        }
        if (pos > 0) buf = buf.slice(pos);
        if (buf.length > 32 * 1024 * 1024) throw new Error('MJPEG part too large');
      }
    } catch (e) {
      log('stream.mjpeg read:', e.message);
    }
    if (session === s) session = null;
    return 'ended';
  }

  // ---- main loop ----------------------------------------------------------------------------
  async function main() {
    for (;;) {
      var st = null;
      try { st = await getStatus(); } catch (e) { log(e.message); }
      var vs = videoStream(st);
      if (!st || st.state !== 'live' || !vs) {
        setState(mj.framesShown > 0 ? 'ended' : 'waiting');
        await sleep(RETRY_MS);
        continue;
      }
      if (!mj.framesShown || mj.state !== 'playing') setSize(vs.width, vs.height);
      if (vs.mse && !vs.ready && !forceMJPEG && !mseBroken && window.MediaSource) {
        // The stream will come as fMP4 from its first keyframe: wait for it rather than fall back.
        setState(mj.framesShown > 0 ? 'ended' : 'buffering');
        await sleep(250);
        continue;
      }
      var mime = mseMime(vs);
      mj.mode = mime ? 'mse' : 'mjpeg';
      mj.audio = !!mime && vs.audio != null;
      captureMsAtZero = typeof vs.captureMsAtZero === 'number' ? vs.captureMsAtZero : null;
      mj.delay = null;
      renderSound();
      mj.streamFrames = 0;
      var why;
      try {
        why = mime ? await playMSE(mime) : await playMJPEG();
      } catch (e) {
        why = 'error: ' + (e && e.message);
      }
      log('stream closed:', why);
      if (mj.streamFrames > 0 || mj.framesShown > 0) setState('ended');
      else setState('waiting');
      await sleep(RETRY_MS);
    }
  }

  document.addEventListener('visibilitychange', function () {
    if (!document.hidden && session && session.tick) session.tick();
  });
  // Keep the CSS size equal to the decoded size (native pixels, no scaling).
  function syncVideoSize(e) {
    var v = e.target;
    if (v === picture && v.videoWidth) setSize(v.videoWidth, v.videoHeight);
  }
  frame.addEventListener('resize', syncVideoSize, true);
  frame.addEventListener('loadedmetadata', syncVideoSize, true);

  setInterval(function () { if (session) getStatus().catch(function () {}); }, 2000);  // viewer count
  setState('waiting', true);
  main();
})();
</script>
</body>
</html>
"""#
