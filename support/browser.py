"""Driving a web page (the playground, app.py) in a real browser: headless Chromium through Selenium, for its
end-to-end test and its benchmark. Debian: apt-get install chromium chromium-driver; pip install selenium gradio.

The browser may reach 127.0.0.1 only (every other host name resolves to nothing), and every request it made is
kept, so a test can check that the page fetched nothing from the internet."""
import json
import shutil
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

CHROMIUM = ("chromium", "chromium-browser", "google-chrome")
DRIVERS = ("chromedriver", "chromium-driver")

# Every change of an element's HTML, with its time (ms since the page loaded): the frames the user saw
WATCH = """
const el = document.querySelector(arguments[0]);
window.__frames = window.__frames || {};
const log = window.__frames[arguments[0]] = [];
new MutationObserver(() => log.push([performance.now(), el.innerHTML])).observe(
    el, {subtree: true, childList: true, characterData: true, attributes: true});
"""


def missing():
    """Why no browser test can run here (None: it can)."""
    try:
        import gradio  # noqa: F401
        import selenium  # noqa: F401
    except ImportError as e:
        return f"{e.name} is not installed (pip install gradio selenium)"
    if not any(shutil.which(b) for b in CHROMIUM):
        return "no Chromium (apt-get install chromium chromium-driver)"
    if not any(shutil.which(d) for d in DRIVERS):
        return "no chromedriver (apt-get install chromium-driver)"
    return None


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serve(script, *args, timeout=120):
    """`python script --port P *args` (the caller's app) in the background, until it answers; yields its URL;
    stopped after."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(script), "--port", str(port), *args], cwd=Path(script).parent,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        t0 = time.time()
        while time.time() - t0 < timeout:
            if proc.poll() is not None:
                raise RuntimeError(f"app.py exited with {proc.returncode}: {proc.stdout.read()[-2000:]}")
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.2)
        else:
            raise RuntimeError(f"app.py did not answer on port {port} within {timeout} s")
        yield f"http://127.0.0.1:{port}/"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def chromium(width=1500, height=1100):
    from selenium import webdriver

    o = webdriver.ChromeOptions()
    for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
              f"--window-size={width},{height}", "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1"):
        o.add_argument(a)
    o.binary_location = next(shutil.which(b) for b in CHROMIUM if shutil.which(b))
    o.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    service = webdriver.ChromeService(next(shutil.which(d) for d in DRIVERS if shutil.which(d)))
    return webdriver.Chrome(service=service, options=o)


def open_page(driver, url, timeout=60):
    """Load the page and wait for the Generate button."""
    from selenium.webdriver.common.by import By

    driver.get(url)
    wait_for(lambda: driver.find_elements(By.CSS_SELECTOR, "#generate"), timeout, "the page")


def wait_for(check, timeout, what):
    t0 = time.time()
    while time.time() - t0 < timeout:
        if value := check():
            return value
        time.sleep(0.02)
    raise TimeoutError(f"{what}: not within {timeout} s")


def watch(driver, selector):
    driver.execute_script(WATCH, selector)


def frames(driver, selector):
    """[(ms since page load, innerHTML)] of every change since watch()."""
    return driver.execute_script("return (window.__frames || {})[arguments[0]] || []", selector)


def now(driver):
    return driver.execute_script("return performance.now()")


def set_text(driver, selector, text):
    """Type into a Gradio textbox (its textarea or input), as a user would: the app sees the input event."""
    from selenium.webdriver.common.by import By

    box = driver.find_element(By.CSS_SELECTOR, f"{selector} textarea, {selector} input")
    driver.execute_script("arguments[0].value = arguments[1]; arguments[0].dispatchEvent(new Event('input', "
                          "{bubbles: true}));", box, text)


def text_of(driver, selector):
    from selenium.webdriver.common.by import By

    els = driver.find_elements(By.CSS_SELECTOR, f"{selector} textarea, {selector} input")
    return els[0].get_attribute("value") if els else driver.find_element(By.CSS_SELECTOR, selector).text


def requests_made(driver):
    """Every URL the page asked for since it was opened."""
    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls


def outside(urls):
    """The URLs that left this machine (data:, blob: and loopback stay)."""
    return [u for u in urls if not u.startswith(("http://127.0.0.1", "ws://127.0.0.1", "data:", "blob:"))]


def click(driver, selector):
    from selenium.webdriver.common.by import By

    driver.execute_script("arguments[0].click()", driver.find_element(By.CSS_SELECTOR, selector))


def tab(driver, name):
    """Open the page's tab called `name`."""
    from selenium.webdriver.common.by import By

    button = wait_for(lambda: [b for b in driver.find_elements(By.CSS_SELECTOR, "button[role=tab]")
                               if b.text.strip() == name], 10, f"the {name} tab")[0]
    driver.execute_script("arguments[0].click()", button)


def masks(html):
    return html.count('class="m')


def run_text(driver, timeout=120):
    """Press Generate and watch #canvas until it holds no mask and has not changed for a second.
    -> (ms at the click, [(ms, html)] each change, with repeats of the same HTML dropped)."""
    watch(driver, "#canvas")
    t0 = now(driver)
    click(driver, "#generate")

    def settled():  # a canvas of masks was shown (this run's), then one without, unchanged for a second
        seen = frames(driver, "#canvas")
        began = any(masks(h) for _, h in seen)
        return began and masks(seen[-1][1]) == 0 and now(driver) - seen[-1][0] > 1000
    wait_for(settled, timeout, "a finished canvas")
    kept = []
    for t, h in frames(driver, "#canvas"):
        if not kept or h != kept[-1][1]:
            kept.append((t, h))
    return t0, kept


def message(driver, selector, timeout=30):
    """The text that appears in a message element (#message, #sudoku-message)."""
    from selenium.webdriver.common.by import By

    return wait_for(lambda: driver.find_element(By.CSS_SELECTOR, selector).text.strip(), timeout, selector)


def run_sudoku(driver, puzzle, how=None, timeout=60):
    """Paste `puzzle` into the Sudoku tab, press Solve -> (seconds until the verdict is shown, #grid, the verdict)."""
    from selenium.webdriver.common.by import By

    tab(driver, "Sudoku")
    set_text(driver, "#puzzle", puzzle)
    if how:
        label = wait_for(lambda: [x for x in driver.find_elements(By.CSS_SELECTOR, "#sudoku-mode label")
                                  if x.text.strip() == how], 10, f"the choice {how!r}")[0]
        driver.execute_script("arguments[0].click()", label)
    seconds, said = press_for_verdict(driver, "#solve", "#sudoku-message", "solving", "dLLM (", timeout)
    return seconds, text_of(driver, "#grid").strip(), said


def run_path(driver, grid, timeout=60):
    """Paste a map into the Robot path tab, press Plan -> (seconds until the verdict is shown, the verdict)."""
    tab(driver, "Robot path")
    set_text(driver, "#map", grid)
    return press_for_verdict(driver, "#plan", "#path-message", "planning", "dLLM (", timeout)


def press_for_verdict(driver, button, box, busy, done, timeout):
    """Click `button`, wait for the first verdict in `box` after its `busy` text (the page clears the old one first):
    a line holding `done`, or a warning. -> (seconds, the verdict's text, "" if none came)."""
    watch(driver, box)
    t0 = time.perf_counter()
    click(driver, button)

    def verdict():
        seen = [h for _, h in frames(driver, box)]
        start = next((i for i, h in enumerate(seen) if busy in h), None)
        return start is not None and any(done in h or "⚠️" in h for h in seen[start:])
    came = wait_for(verdict, timeout, "the verdict")
    return time.perf_counter() - t0, message(driver, box) if came else ""
