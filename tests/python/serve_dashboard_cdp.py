"""Drives headless Chromium through the DevTools protocol over `hvmigrate serve`'s
dashboard: logs in on the login page with a token, reads the host table,
searches it, opens a host's page, takes screenshots (desktop and phone
width) and records every request the pages made.

Usage: serve_dashboard_cdp.py CHROMIUM BASE_URL TOKEN OUT_DIR
Prints one JSON document: what it saw. Exits non-zero when a step fails.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

import websocket  # websocket-client, tests/python/requirements.txt

chromium, base, token, out = sys.argv[1:5]
profile = tempfile.mkdtemp(prefix="cdp-profile-")
browser = subprocess.Popen(
    [
        chromium,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-quic",
        "--hide-scrollbars",
        "--remote-debugging-address=127.0.0.1",
        "--remote-debugging-port=0",
        "--user-data-dir=" + profile,
        "about:blank",
    ],
    stdout=subprocess.DEVNULL,
    stderr=subprocess.DEVNULL,
)
try:
    port_file = os.path.join(profile, "DevToolsActivePort")
    for _ in range(300):
        if os.path.exists(port_file) and open(port_file).read().strip():
            break
        time.sleep(0.1)
    port = open(port_file).read().split()[0]
    pages = json.load(urllib.request.urlopen("http://127.0.0.1:%s/json/list" % port))
    page = next(p for p in pages if p["type"] == "page")
    ws = websocket.create_connection(page["webSocketDebuggerUrl"], timeout=60)
    ids = iter(range(1, 1_000_000))
    requests = []
    events = []

    def call(method, **params):
        ident = next(ids)
        ws.send(json.dumps({"id": ident, "method": method, "params": params}))
        while True:
            message = json.loads(ws.recv())
            if message.get("id") == ident:
                if "error" in message:
                    raise RuntimeError("%s: %s" % (method, message["error"]))
                return message.get("result", {})
            note(message)

    def note(message):
        if message.get("method") == "Network.requestWillBeSent":
            requests.append(message["params"]["request"]["url"])
        events.append(message.get("method"))

    def wait_for_load():
        while True:
            message = json.loads(ws.recv())
            note(message)
            if message.get("method") == "Page.loadEventFired":
                return

    def evaluate(expression):
        result = call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError("%s: %s" % (expression, result["exceptionDetails"]))
        return result["result"].get("value")

    def navigate(url):
        call("Page.navigate", url=url)
        wait_for_load()

    def screenshot(name):
        import base64

        data = call("Page.captureScreenshot", format="png", captureBeyondViewport=False)["data"]
        path = os.path.join(out, name)
        with open(path, "wb") as file:
            file.write(base64.b64decode(data))
        return path

    call("Network.enable")
    call("Page.enable")
    call("Emulation.setDeviceMetricsOverride", width=1100, height=1500, deviceScaleFactor=1, mobile=False)
    seen = {}

    navigate(base + "/")
    seen["before_login"] = evaluate("location.pathname")
    evaluate(
        "document.getElementById('token').value = %s; document.getElementById('login').click(); true"
        % json.dumps(token)
    )
    wait_for_load()
    seen["after_login"] = evaluate("location.pathname")
    seen["cookie_visible_to_scripts"] = evaluate("document.cookie")
    seen["host_rows"] = evaluate("document.querySelectorAll('#hosts tr').length - 1")
    seen["hosts"] = evaluate("[...document.querySelectorAll('#hosts tr td:first-child')].map(td => td.textContent)")
    seen["svg"] = evaluate("document.querySelectorAll('.chart svg').length")
    seen["overview_png"] = screenshot("overview.png")

    first = seen["hosts"][0]
    evaluate("document.getElementById('q').value = %s; document.getElementById('search').submit(); true" % json.dumps(first))
    wait_for_load()
    seen["search_rows"] = evaluate("document.querySelectorAll('#hosts tr').length - 1")
    link = evaluate("document.querySelector('#hosts a').href")
    navigate(link)
    seen["host_title"] = evaluate("document.getElementById('host').textContent")
    seen["timeline_rows"] = evaluate("document.querySelectorAll('#timeline tr').length - 1")
    seen["host_png"] = screenshot("host.png")

    call("Emulation.setDeviceMetricsOverride", width=390, height=844, deviceScaleFactor=1, mobile=True)
    navigate(base + "/")
    seen["phone_overflow"] = evaluate("document.documentElement.scrollWidth - window.innerWidth")
    seen["phone_png"] = screenshot("phone.png")
    seen["requests"] = requests
    print(json.dumps(seen))
finally:
    browser.kill()
    browser.wait()
    shutil.rmtree(profile, ignore_errors=True)
