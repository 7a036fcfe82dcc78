"""``eoslab.report.write_report``: the page's content (no browser), and the page in headless Chromium.

The results directory is made here: a run store with synthetic metrics (two GD runs, one of them
diverging, and an Adam run, whose threshold is on the effective sharpness), a claims.json of a
--quick reproduction with a pass, a fail and an n/a claim, a small PNG figure and its PDF.
"""
import json
import re
import shutil
import struct
import zlib
from html.parser import HTMLParser
from importlib import resources
from pathlib import Path

import numpy as np
import pytest

from eoslab.errors import InputError
from eoslab.report import write_report
from eoslab.report.curves import downsample
from eoslab.store import RunStore

STEPS = 3000  # loss every step: longer than the 2000 points a series keeps
EVAL_EVERY = 50
DIVERGED_AT = 120
CLAIMS = [
    {"claim": "sharpness rises to 2/eta", "quantity": "median lambda_1 / (2/eta)", "value": 1.01,
     "holds": True, "paper": "Cohen et al. 2021", "detail": "holds if within 10% of 1", "accuracy":
     {"used": 60, "unconverged": 0, "max_rel_error": 1e-4}, "quick": True},
    {"claim": "the loss decreases over long time scales", "quantity": "final loss / initial loss",
     "value": 1.7, "holds": False, "paper": "Cohen et al. 2021", "detail": "holds if below 0.5",
     "accuracy": None, "quick": True},
    {"claim": "cross-entropy runs reach the edge too", "quantity": "median lambda_1 / (2/eta)",
     "value": None, "holds": None, "paper": "Cohen et al. 2021",
     "detail": "not run: --quick skips the cross-entropy runs", "accuracy": None, "quick": True},
]


def png_bytes(width: int = 6, height: int = 4) -> bytes:
    """A valid RGB PNG (a colour gradient), written without any imaging library."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    rows = b"".join(b"\x00" + bytes(v for x in range(width) for v in (40 * x, 60 * y, 200)) for y in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def config(rule: str, lr: float, seed: int = 0) -> dict:
    return {"name": f"test-{rule}", "seed": seed, "data": {"name": "digits"}, "loss": {"name": "mse"},
            "model": {"name": "fc-tanh", "widths": [8]},
            "optimizer": {"name": rule, "lr": lr, "lr_units": "absolute"},
            "train": {"steps": STEPS, "eval_every": EVAL_EVERY}}


def make_store(directory: Path) -> list[int]:
    """Three runs with the metrics the trainer stores; returns their ids (GD, GD diverged, Adam)."""
    ids = []
    with RunStore(directory / "runs.db") as store:
        for rule, lr, seed in (("gd", 0.1, 0), ("gd", 0.3, 0), ("adam", 0.001, 1)):
            rid = store.start_run(config(rule, lr, seed), name=f"test-{rule}", seed=seed)
            last = DIVERGED_AT if lr == 0.3 else STEPS - 1
            steps = np.arange(last + 1)
            loss = 0.5 * np.exp(-steps * lr / 80) * (1 + 0.3 * np.sin(steps * 2.1)) + 1e-3
            if lr == 0.3:
                loss[-1] = np.inf
            ev = steps[::EVAL_EVERY]
            eff_thr = 2.0
            thr = eff_thr / lr if rule == "gd" else eff_thr
            sharp = np.minimum(4 + ev / 100, 2 / lr) if rule == "gd" else 5 + ev / 300
            eff = sharp * lr if rule == "gd" else np.minimum(0.5 + ev / 500, 2.05)
            store.log_metrics(rid, {
                "loss": (steps, loss), "train_loss": (ev, loss[ev]), "sharpness": (ev, sharp),
                "effective_sharpness": (ev, eff), "edge_ratio": (ev, eff / eff_thr),
                "threshold": (ev, np.full(len(ev), thr)), "effective_threshold": (ev, np.full(len(ev), eff_thr)),
                "eta": (ev, np.full(len(ev), lr)), "sharpness_converged": (ev, np.ones(len(ev)))})
            if lr == 0.3:
                store.finish_run(rid, "diverged", diverged_step=DIVERGED_AT)
            else:
                store.finish_run(rid)
            ids.append(rid)
    return ids


@pytest.fixture
def results(tmp_path) -> Path:
    d = tmp_path / "q-eos"
    d.mkdir()
    make_store(d)
    (d / "claims.json").write_text(json.dumps(CLAIMS, indent=2))
    (d / "claims.md").write_text("# claims\n")
    (d / "table.txt").write_text("eta  final loss\n0.1  0.001\n")
    (d / "eos-gd.png").write_bytes(png_bytes())
    (d / "eos-gd.pdf").write_bytes(b"%PDF-1.4\n%%EOF\n")
    return d


class Page(HTMLParser):
    """The parts of a report page the tests look at: rows, images, links and the curves' JSON."""

    def __init__(self, html: str):
        super().__init__()
        self.rows: list[dict] = []  # <tr> attributes
        self.imgs: list[dict] = []
        self.refs: list[str] = []  # every src= and href=
        self.title = ""
        self.data = ""
        self._in = None
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.refs += [v for k, v in attrs if k in ("src", "href") and v is not None]
        if tag == "tr":
            self.rows.append(a)
        elif tag == "img":
            self.imgs.append(a)
        elif tag == "title" or (tag == "script" and a.get("id") == "eoslab-data"):
            self._in = tag

    def handle_endtag(self, tag):
        self._in = None if tag == self._in else self._in

    def handle_data(self, data):
        if self._in == "title":
            self.title += data
        elif self._in == "script":
            self.data += data


def test_page_content(results):
    path = write_report(results)
    assert path == results / "report.html"
    html = path.read_text(encoding="utf-8")
    page = Page(html)
    assert page.title == "eoslab report: q-eos (quick)"
    assert f"<h1>{page.title}</h1>" in html

    claims = [r["class"] for r in page.rows if "claim" in r.get("class", "").split()]
    assert claims == ["claim pass", "claim fail", "claim na"]
    assert "✓ pass" in html and "✗ fail" in html and "– n/a" in html
    assert "not run: --quick skips the cross-entropy runs" in html  # the reason of the n/a row
    assert "final loss / initial loss" in html and ">1.7<" in html and "holds if below 0.5" in html
    assert "claims: 1 pass, 1 fail, 1 n/a" in html

    assert len(page.imgs) == 1 and page.imgs[0]["src"].startswith("data:image/png;base64,")
    assert "<figcaption>eos-gd.png</figcaption>" in html and "eos-gd.pdf" not in html
    assert "eta  final loss" in html  # table.txt

    runs = [r for r in page.rows if r.get("class") == "run"]
    assert [r["data-run"] for r in runs] == ["1", "2", "3"]
    assert f"diverged at step {DIVERGED_AT}" in html
    configs = re.findall(r"<summary>config</summary><pre>(.*?)</pre>", html, re.S)
    assert len(configs) == 3 and json.loads(configs[2].replace("&amp;", "&")) == config("adam", 0.001, 1)
    assert ">adam<" in html and ">0.001<" in html

    # nothing on the page is fetched: every src/href is a data URI or an anchor, and no web address at all
    assert all(ref.startswith(("data:", "#")) for ref in page.refs), page.refs
    assert not re.search(r"https?:|//[a-z0-9.-]+\.[a-z]{2,}/", html, re.I)
    assert "<script>" in html and "class Chart" in html  # curves.js is inline


def test_curves_data(results):
    page = Page(write_report(results).read_text(encoding="utf-8"))
    data = json.loads(page.data)
    charts = {c["key"]: c for c in data["charts"]}
    assert list(charts) == ["loss", "sharpness", "effective_sharpness", "edge_ratio"]
    assert charts["loss"]["log"] is True and charts["sharpness"]["log"] is False
    assert charts["edge_ratio"]["hline"] == 1.0
    assert all(len(c["series"]) == 3 for c in charts.values())
    gd_loss = charts["loss"]["series"][0]
    assert gd_loss["metric"] == "loss" and 1000 < len(gd_loss["x"]) <= 2000 + 3
    assert set(range(0, STEPS, EVAL_EVERY)) <= set(gd_loss["x"])  # every evaluation step kept
    assert gd_loss["x"][0] == 0 and gd_loss["x"][-1] == STEPS - 1
    diverged = charts["loss"]["series"][1]
    assert len(diverged["x"]) == DIVERGED_AT + 1 and diverged["y"][-1] is None  # inf: a gap, not a number
    # the threshold goes on the curvature it is a threshold of: raw sharpness for GD, effective for Adam
    sharp_refs = [s.get("ref") for s in charts["sharpness"]["series"]]
    assert sharp_refs[0]["y"][0] == 20.0 and sharp_refs[1]["y"][0] == pytest.approx(2 / 0.3, rel=1e-4)
    assert sharp_refs[2] is None
    assert all(s["ref"]["y"][0] == 2.0 for s in charts["effective_sharpness"]["series"])
    labels = {r["id"]: r["label"] for r in data["runs"]}
    assert labels[3] == "#3 test-adam adam η=0.001 seed 1"
    html = write_report(results).read_text(encoding="utf-8")
    assert "Downsampled: 2 of 12 series" in html


def test_downsample_keeps_extremes_eval_steps_and_gaps():
    steps = np.arange(10_000)
    values = np.cos(steps * 3.0) * (1 + steps / 1000)
    values[5003] = np.nan
    values[7777] = 100.0
    keep = set(range(0, 10_000, 100))
    x, y, cut = downsample(steps, values, keep=keep, max_points=2000)
    assert cut and len(x) <= 2000 + 2 and len(x) == len(y)
    assert keep <= set(x) and x == sorted(x)
    assert 7777 in x and max(v for v in y if v is not None) == 100.0
    assert 5003 in x and y[x.index(5003)] is None
    assert min(v for v in y if v is not None) == pytest.approx(np.nanmin(values), rel=1e-4)
    short = downsample([0, 1, 2], [1.0, np.inf, 0.123456789], keep=(), max_points=2000)
    assert short == ([0, 1, 2], [1.0, None, 0.12346], False)


def test_run_directory_without_claims(tmp_path):
    d = tmp_path / "run"
    d.mkdir()
    make_store(d)
    out = write_report(d, tmp_path / "elsewhere" / "page.html")
    assert out == tmp_path / "elsewhere" / "page.html" and not (d / "report.html").exists()
    html = out.read_text(encoding="utf-8")
    page = Page(html)
    assert page.title == "eoslab report: run"
    assert not any("claim" in r.get("class", "") for r in page.rows) and 'id="claims"' not in html
    assert len([r for r in page.rows if r.get("class") == "run"]) == 3 and not page.imgs
    assert write_report(d, tmp_path).name == "report.html"  # a directory as out: report.html inside it


def test_claims_directory_without_runs(tmp_path):
    (tmp_path / "claims.json").write_text(json.dumps(CLAIMS[:1]))
    (tmp_path / "a.png").write_bytes(png_bytes())
    (tmp_path / "b.png").write_bytes(png_bytes(3, 3))
    html = write_report(tmp_path).read_text(encoding="utf-8")
    page = Page(html)
    assert page.title.endswith("(quick)")
    assert [r.get("class") for r in page.rows if r.get("class")] == ["claim pass"]
    assert len(page.imgs) == 2 and 'id="runs"' not in html and 'id="curves"' not in html


def one_sentence(message: str) -> bool:
    return message.endswith(".") and ". " not in message.rstrip(".") and "\n" not in message


@pytest.mark.parametrize("case", ["missing", "empty", "file", "bad-json", "not-claims"])
def test_bad_input_is_one_sentence(tmp_path, case):
    target = tmp_path / "results"
    if case == "empty":
        target.mkdir()
    elif case == "file":
        target.write_text("x")
    elif case in ("bad-json", "not-claims"):
        target.mkdir()
        (target / "claims.json").write_text("{not json" if case == "bad-json" else '{"claim": "x"}')
    with pytest.raises(InputError) as err:
        write_report(target)
    message = str(err.value)
    assert one_sentence(message), message
    assert str(target) in message
    expected = {"missing": "does not exist", "empty": "neither runs.db nor claims.json", "file": "not a directory",
                "bad-json": "cannot be read as JSON", "not-claims": "not a list of claims"}[case]
    assert expected in message
    assert not (target / "report.html").exists() if target.is_dir() else True


def test_script_is_package_data():
    script = resources.files("eoslab.report").joinpath("curves.js")
    assert script.is_file() and "eoslab-data" in script.read_text(encoding="utf-8")
    pyproject = Path(__file__).resolve().parents[2] / "pyproject.toml"
    assert '"report/*.js"' in pyproject.read_text()


# -- in a real browser --------------------------------------------------------------------------------

def browser_paths():
    """(chromium, chromedriver) of the system packages, or None where either is missing."""
    chromium = next((p for p in map(shutil.which, ("chromium", "chromium-browser")) if p), None)
    driver = shutil.which("chromedriver") or next(
        (p for p in ("/usr/lib/chromium/chromedriver", "/usr/bin/chromedriver") if Path(p).is_file()), None)
    return (chromium, driver) if chromium and driver else None


def test_page_in_headless_chromium(results, tmp_path):
    paths = browser_paths()
    if paths is None:
        pytest.skip("Chromium and chromedriver not installed (apt-get install chromium chromium-driver)")
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium not installed (pip install -e '.[test]')")
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    page = write_report(results)
    options = webdriver.ChromeOptions()
    options.binary_location = paths[0]  # the system browser, and its driver below: Selenium Manager never runs
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1280,1000", "--disable-extensions"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(paths[1]))
    try:
        driver.set_page_load_timeout(60)
        driver.get(page.as_uri())
        severe = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        assert not severe, severe

        assert len(driver.find_elements(By.CSS_SELECTOR, "table.claims tbody tr")) == len(CLAIMS)
        charts = driver.find_elements(By.CSS_SELECTOR, "div.chart")
        assert [c.get_attribute("data-chart") for c in charts] == [
            "loss", "sharpness", "effective_sharpness", "edge_ratio"]

        def drawn(chart) -> dict:
            """run id -> the path data of its series in this chart."""
            return {p.get_attribute("data-run"): p.get_attribute("d")
                    for p in chart.find_elements(By.CSS_SELECTOR, "svg path.series")}

        for chart in charts:
            series = drawn(chart)
            assert sorted(series) == ["1", "2", "3"], chart.get_attribute("data-chart")
            assert all(re.match(r"M[\d.]+ [\d.-]+L", d) for d in series.values()), series
        assert len(charts[1].find_elements(By.CSS_SELECTOR, "path.reference")) == 2  # GD thresholds only

        # a legend click hides the run in every chart; a second click shows it again
        charts[0].find_element(By.CSS_SELECTOR, '.legend-item[data-run="2"]').click()
        for chart in charts:
            assert sorted(drawn(chart)) == ["1", "3"]
        assert "off" in charts[3].find_element(By.CSS_SELECTOR, '.legend-item[data-run="2"]').get_attribute("class")
        charts[2].find_element(By.CSS_SELECTOR, '.legend-item[data-run="2"]').click()
        assert sorted(drawn(charts[0])) == ["1", "2", "3"]

        # dragging a box zooms (the step ticks change); a double-click shows all the data again
        svg = charts[0].find_element(By.CSS_SELECTOR, "svg")
        driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", svg)
        ticks = lambda: [t.text for t in svg.find_elements(By.CSS_SELECTOR, "g.axes text")]
        before = ticks()
        ActionChains(driver).move_to_element_with_offset(svg, -150, -60).click_and_hold() \
            .move_by_offset(120, 80).release().perform()
        zoomed = ticks()
        assert zoomed != before
        ActionChains(driver).double_click(svg).perform()
        assert ticks() == before

        # the y-axis switches between log and linear
        log_box = charts[0].find_element(By.CSS_SELECTOR, ".controls input")
        assert log_box.is_selected()
        log_box.click()
        assert not log_box.is_selected() and ticks() != before
        log_box.click()
        assert ticks() == before

        widths = driver.execute_script("return [...document.images].map(i => i.complete ? i.naturalWidth : 0)")
        assert widths == [6]

        driver.execute_script("window.scrollTo(0, 0)")
        height = driver.execute_script("return document.documentElement.scrollHeight")
        driver.set_window_size(1280, min(int(height) + 40, 12000))
        shot = tmp_path / "report.png"
        assert driver.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
        print(f"screenshot of the report: {shot}")
        severe = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        assert not severe, severe
    finally:
        driver.quit()
