#!/usr/bin/env python3
"""Screenshots of one element of a live page, taken by headless Chromium over the DevTools protocol.

    browser-screenshots.py URL OUTDIR [--count 2] [--interval 1.0] [--timeout 30]
                           [--selector '#picture'] [--ready-js EXPR] [--state FILE]
                           [--click SELECTOR --clicked-js EXPR]

Starts Chromium headless with a temporary profile, opens URL, waits until EXPR is true, then writes
OUTDIR/shot-1.png, shot-2.png, ... (PNG, clipped to the element's box, device scale factor 1) and prints
one line per shot: "PATH WIDTHxHEIGHT"; with --state, then writes window.mediajack as JSON to FILE
(--count 0: no shots, the state alone). --click: once ready, a real mouse click (a user gesture, as
autoplay rules want) on the element's centre, then a wait until --clicked-js is true. Exit status 0 on success, 1 on failure (with the page's
console log, the value of window.mediajack and Chromium's stderr tail printed to stderr).
Chromium is found as $CHROMIUM, or chromium / chromium-browser / google-chrome on PATH.
Needs the `websocket` module (Debian: python3-websocket; PyPI: websocket-client).
"""
import argparse
import base64
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time

try:
    import websocket  # websocket-client
except ImportError:
    # A python3 first on PATH (e.g. pyenv's) may lack the module that the system python3 has.
    _sys_py = '/usr/bin/python3'
    if (os.path.exists(_sys_py) and os.path.realpath(sys.executable) != os.path.realpath(_sys_py)
            and not os.environ.get('BROWSER_SCREENSHOTS_REEXEC')):
        os.environ['BROWSER_SCREENSHOTS_REEXEC'] = '1'
        os.execv(_sys_py, [_sys_py] + sys.argv)
    sys.exit('browser-screenshots: the python module `websocket` is missing '
             '(apt-get install python3-websocket, or pip install websocket-client)')

DEFAULT_READY = ("window.mediajack && window.mediajack.state==='playing' "
                 "&& window.mediajack.framesShown>5")


class Failure(Exception):
    pass


def log(msg):
    print('browser-screenshots: ' + msg, file=sys.stderr, flush=True)


def find_chromium(explicit):
    for c in [explicit, os.environ.get('CHROMIUM'), 'chromium', 'chromium-browser',
              'google-chrome', 'google-chrome-stable']:
        if c:
            p = shutil.which(c)
            if p:
                return p
    raise Failure('no Chromium found (set $CHROMIUM or install the chromium package)')


def die_with_parent():
    # Linux: Chromium gets SIGKILL if this script is killed outright (SIGKILL leaves no clean-up).
    try:
        import ctypes
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
    except Exception:
        pass


class Browser:
    def __init__(self, binary, width, height, verbose):
        self.verbose = verbose
        self.tmp = tempfile.mkdtemp(prefix='browser-screenshots-')
        self.profile = os.path.join(self.tmp, 'profile')
        os.mkdir(self.profile)
        self.stderr_path = os.path.join(self.tmp, 'chromium.stderr')
        self.proc = None
        self.ws = None
        self.next_id = 0
        self.events = []
        self.console = []
        self.session = None
        self.flags = [
            '--headless=new',
            '--no-sandbox',
            '--disable-gpu',
            '--disable-dev-shm-usage',
            '--force-device-scale-factor=1',
            '--hide-scrollbars',
            '--mute-audio',
            '--autoplay-policy=no-user-gesture-required',
            '--disable-background-timer-throttling',
            '--disable-renderer-backgrounding',
            '--disable-backgrounding-occluded-windows',
            '--no-first-run',
            '--no-default-browser-check',
            '--disable-extensions',
            '--disable-component-update',
            '--disable-sync',
            '--password-store=basic',
            '--use-mock-keychain',
            '--window-size=%d,%d' % (width, height),
            '--user-data-dir=' + self.profile,
            '--remote-debugging-address=127.0.0.1',
            '--remote-debugging-port=0',
            'about:blank',
        ]
        self.binary = binary

    def stderr_tail(self, n=25):
        try:
            with open(self.stderr_path, 'rb') as f:
                lines = f.read().decode('utf-8', 'replace').splitlines()
        except OSError:
            return ''
        noise = ('dbus/', 'Fontconfig', 'DevTools listening on')
        keep = [l for l in lines if not any(x in l for x in noise)] or lines
        return '\n'.join(keep[-n:])

    def start(self, timeout=20.0):
        env = dict(os.environ)
        env.pop('DBUS_SESSION_BUS_ADDRESS', None)
        with open(self.stderr_path, 'wb') as err:
            self.proc = subprocess.Popen([self.binary] + self.flags, stdin=subprocess.DEVNULL,
                                         stdout=err, stderr=err, env=env, start_new_session=True,
                                         preexec_fn=die_with_parent)
        port_file = os.path.join(self.profile, 'DevToolsActivePort')
        deadline = time.time() + timeout
        while True:
            if self.proc.poll() is not None:
                raise Failure('Chromium exited with status %s while starting:\n%s'
                              % (self.proc.returncode, self.stderr_tail()))
            try:
                with open(port_file) as f:
                    lines = f.read().split('\n')
                if len(lines) >= 2 and lines[0].strip() and lines[1].strip():
                    port, path = int(lines[0]), lines[1].strip()
                    break
            except (OSError, ValueError):
                pass
            if time.time() > deadline:
                raise Failure('Chromium did not open its DevTools port within %.0f s:\n%s'
                              % (timeout, self.stderr_tail()))
            time.sleep(0.05)
        url = 'ws://127.0.0.1:%d%s' % (port, path)
        self.ws = websocket.create_connection(url, timeout=30, suppress_origin=True,
                                              enable_multithread=False)
        # One tab of our own, driven through a flat session on the browser connection.
        target = self.call('Target.createTarget', {'url': 'about:blank'})['targetId']
        self.session = self.call('Target.attachToTarget', {'targetId': target, 'flatten': True})['sessionId']
        for m in ('Page.enable', 'Runtime.enable', 'Log.enable'):
            self.call(m, session=True)
        self.call('Page.bringToFront', session=True)

    def _handle_event(self, msg):
        method = msg.get('method', '')
        p = msg.get('params', {})
        if method == 'Runtime.consoleAPICalled':
            args = []
            for a in p.get('args', []):
                if 'value' in a:
                    args.append(a['value'] if isinstance(a['value'], str) else json.dumps(a['value']))
                else:
                    args.append(a.get('description', a.get('type', '?')))
            self.console.append('console.%s: %s' % (p.get('type'), ' '.join(str(x) for x in args)))
        elif method == 'Runtime.exceptionThrown':
            d = p.get('exceptionDetails', {})
            ex = d.get('exception', {}).get('description') or d.get('text')
            self.console.append('exception: %s' % ex)
        elif method == 'Log.entryAdded':
            e = p.get('entry', {})
            self.console.append('log.%s: %s %s' % (e.get('level'), e.get('text'), e.get('url', '')))
        elif method in ('Target.targetCrashed', 'Inspector.targetCrashed'):
            self.console.append('TAB CRASHED')
            raise Failure('the tab crashed')
        elif method == 'Target.detachedFromTarget':
            raise Failure('the tab went away')
        if self.verbose and method.startswith(('Runtime.console', 'Runtime.exception', 'Log.')):
            log(self.console[-1])
        if len(self.console) > 2000:
            del self.console[:1000]

    def call(self, method, params=None, session=False, timeout=30.0):
        self.next_id += 1
        mid = self.next_id
        msg = {'id': mid, 'method': method, 'params': params or {}}
        if session:
            msg['sessionId'] = self.session
        self.ws.send(json.dumps(msg))
        deadline = time.time() + timeout
        while True:
            left = deadline - time.time()
            if left <= 0:
                raise Failure('no answer to %s within %.0f s' % (method, timeout))
            self.ws.settimeout(left)
            try:
                raw = self.ws.recv()
            except websocket.WebSocketTimeoutException:
                continue
            except (websocket.WebSocketConnectionClosedException, ConnectionError) as e:
                raise Failure('lost the DevTools connection (%s); Chromium stderr:\n%s'
                              % (e, self.stderr_tail()))
            m = json.loads(raw)
            if m.get('id') == mid:
                if 'error' in m:
                    raise Failure('%s failed: %s' % (method, m['error'].get('message', m['error'])))
                return m.get('result', {})
            if 'method' in m:
                self._handle_event(m)

    def evaluate(self, expr, timeout=30.0):
        r = self.call('Runtime.evaluate', {'expression': expr, 'returnByValue': True,
                                           'awaitPromise': True}, session=True, timeout=timeout)
        if 'exceptionDetails' in r:
            d = r['exceptionDetails']
            raise Failure('evaluating %r threw: %s' % (
                expr, d.get('exception', {}).get('description') or d.get('text')))
        return r.get('result', {}).get('value')

    def close(self):
        try:
            if self.ws is not None:
                try:
                    self.ws.settimeout(2)
                    self.ws.send(json.dumps({'id': 999999, 'method': 'Browser.close'}))
                except Exception:
                    pass
                try:
                    self.ws.close()
                except Exception:
                    pass
            if self.proc is not None and self.proc.poll() is None:
                try:
                    self.proc.wait(timeout=3)
                except subprocess.TimeoutExpired:
                    pass
            if self.proc is not None:
                # Chromium's helpers (zygote, renderers, GPU) share its process group.
                for sig in (signal.SIGTERM, signal.SIGKILL):
                    try:
                        os.killpg(self.proc.pid, sig)
                    except (ProcessLookupError, PermissionError):
                        break
                    try:
                        self.proc.wait(timeout=3)
                        time.sleep(0.2)
                    except subprocess.TimeoutExpired:
                        continue
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
                try:
                    self.proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    pass
        finally:
            shutil.rmtree(self.tmp, ignore_errors=True)


def png_size(data):
    if data[:8] != b'\x89PNG\r\n\x1a\n':
        raise Failure('Chromium returned something that is not a PNG')
    return struct.unpack('>II', data[16:24])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('url')
    ap.add_argument('outdir')
    ap.add_argument('--count', type=int, default=2)
    ap.add_argument('--interval', type=float, default=1.0, help='seconds between shots')
    ap.add_argument('--timeout', type=float, default=30.0, help='seconds to wait for --ready-js')
    ap.add_argument('--selector', default='#picture')
    ap.add_argument('--ready-js', default=DEFAULT_READY)
    ap.add_argument('--window-size', default='1280,900', help='W,H of the browser window')
    ap.add_argument('--chromium', help='Chromium binary (default: $CHROMIUM or chromium on PATH)')
    ap.add_argument('--verbose', action='store_true', help='echo the page console as it happens')
    ap.add_argument('--state', help='after the shots, write window.mediajack (JSON) to this file')
    ap.add_argument('--click', help='once ready, click the centre of this element (a real mouse event)')
    ap.add_argument('--clicked-js', default='true', help='after --click, wait until this is true')
    a = ap.parse_args()

    def on_signal(signum, frame):
        raise Failure('stopped by signal %d' % signum)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGHUP, on_signal)

    b = None
    try:
        ww, wh = (int(x) for x in a.window_size.split(','))
        os.makedirs(a.outdir, exist_ok=True)
        b = Browser(find_chromium(a.chromium), ww, wh, a.verbose)
        b.start()
        deadline = time.time() + a.timeout
        while True:  # the server may still be starting: retry a refused connection
            nav = b.call('Page.navigate', {'url': a.url}, session=True)
            if not nav.get('errorText'):
                break
            if time.time() > deadline:
                raise Failure('could not load %s: %s' % (a.url, nav['errorText']))
            time.sleep(0.5)

        last_error = None
        while True:
            try:
                ok = b.evaluate('!!(%s)' % a.ready_js, timeout=10)
            except Failure as e:
                if 'threw' not in str(e) and 'context' not in str(e).lower():
                    raise
                ok, last_error = False, str(e)  # page still loading, or a bad expression
            if ok:
                break
            if time.time() > deadline:
                raise Failure('timed out after %.0f s waiting for: %s%s' % (
                    a.timeout, a.ready_js, ('\n  (last try: %s)' % last_error) if last_error else ''))
            time.sleep(0.2)

        if a.click:
            r = b.evaluate('(function(){var e=document.querySelector(%s); if(!e) return null;'
                           'var r=e.getBoundingClientRect(); return {x:r.left+r.width/2, y:r.top+r.height/2};})()'
                           % json.dumps(a.click))
            if not r:
                raise Failure('no element matches %s to click' % a.click)
            for kind in ('mouseMoved', 'mousePressed', 'mouseReleased'):
                b.call('Input.dispatchMouseEvent', {'type': kind, 'x': r['x'], 'y': r['y'], 'button': 'left',
                                                    'buttons': 1 if kind == 'mousePressed' else 0,
                                                    'clickCount': 0 if kind == 'mouseMoved' else 1}, session=True)
            while not b.evaluate('!!(%s)' % a.clicked_js, timeout=10):
                if time.time() > deadline:
                    raise Failure('timed out after clicking %s waiting for: %s' % (a.click, a.clicked_js))
                time.sleep(0.2)

        sel = json.dumps(a.selector)
        rect_js = ('(function(){var e=document.querySelector(%s); if(!e) return null;'
                   'var r=e.getBoundingClientRect();'
                   'return {x:r.left+window.scrollX, y:r.top+window.scrollY, w:r.width, h:r.height,'
                   'vw:window.innerWidth, vh:window.innerHeight};})()' % sel)
        for i in range(1, a.count + 1):
            t_shot = time.time()
            r = b.evaluate(rect_js)
            if not r:
                raise Failure('no element matches %s' % a.selector)
            x, y = int(round(r['x'])), int(round(r['y']))
            w, h = int(round(r['w'])), int(round(r['h']))
            if w <= 0 or h <= 0:
                raise Failure('element %s has an empty box (%sx%s)' % (a.selector, w, h))
            beyond = x + w > r['vw'] or y + h > r['vh']
            shot = b.call('Page.captureScreenshot', {
                'format': 'png', 'fromSurface': True, 'captureBeyondViewport': beyond,
                'clip': {'x': x, 'y': y, 'width': w, 'height': h, 'scale': 1}}, session=True)
            data = base64.b64decode(shot['data'])
            pw, ph = png_size(data)
            path = os.path.join(a.outdir, 'shot-%d.png' % i)
            with open(path, 'wb') as f:
                f.write(data)
            print('%s %dx%d' % (path, pw, ph), flush=True)
            if i < a.count:
                time.sleep(max(0.0, a.interval - (time.time() - t_shot)))
        if a.state:
            with open(a.state, 'w') as f:
                f.write(b.evaluate('JSON.stringify(window.mediajack === undefined ? null : window.mediajack)'))
        return 0
    except Failure as e:
        log('FAILED: %s' % e)
        if b is not None:
            try:
                if b.ws is not None and b.session:
                    st = b.evaluate('JSON.stringify(window.mediajack === undefined ? null : window.mediajack)',
                                    timeout=5)
                    log('window.mediajack = %s' % st)
                    log('location = %s' % b.evaluate('location.href', timeout=5))
            except Exception as e2:
                log('(could not read the page state: %s)' % e2)
            if b.console:
                log('page console (last 60 lines):')
                for line in b.console[-60:]:
                    print('    ' + line, file=sys.stderr)
            else:
                log('page console: (empty)')
            tail = b.stderr_tail(15)
            if tail:
                log('Chromium stderr tail:')
                print('    ' + tail.replace('\n', '\n    '), file=sys.stderr)
        return 1
    finally:
        for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(s, signal.SIG_IGN)  # let the clean-up finish
        if b is not None:
            b.close()


if __name__ == '__main__':
    sys.exit(main())
