"""``untwine explore``: the Explorer (MI heat map, picks, decodes), its web app, and a real browser.

The browser test drives Debian's headless ``chromium`` with selenium (``apt-get install chromium
chromium-driver``; ``pip install selenium``); it is skipped, with the reason, when either is absent.
"""

from __future__ import annotations

import base64
import io
import json
import shutil
import sys
import urllib.error
import urllib.request

import numpy as np
import pytest
import torch
from PIL import Image

from untwine.cli import main
from untwine.data import load
from untwine.explore import Explorer, png
from untwine.metrics import mig
from untwine.train import RunConfig, load_run, train

from conftest import TINY


def pixels(data: bytes | str) -> np.ndarray:
    """PNG bytes or a data: URL -> uint8 array H x W (grey) or H x W x 3."""
    if isinstance(data, str):
        data = base64.b64decode(data.split(",", 1)[1])
    return np.asarray(Image.open(io.BytesIO(data)))


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("explore") / "run"
    cfg = RunConfig(dataset=TINY, model="beta-vae", steps=8, batch_size=16, latents=3, eval_every=8, lr=1e-3,
                    eval_images=32, log_every=6, device="cpu", out=str(out))
    train(cfg, progress=False)
    return out


@pytest.fixture(scope="module")
def explorer(run_dir):
    return Explorer(load_run(run_dir), load(TINY), samples=512, seed=0)


# ----------------------------------------------------------------------------- the Explorer
def test_info_sorts_latents_by_kl_and_labels_them_with_mig_mutual_information(explorer, run_dir):
    run, data = explorer.run, explorer.data
    kl = run.summary["val"]["kl_dims"]
    assert explorer.order == sorted(range(3), key=lambda d: -kl[d])
    rng = np.random.default_rng(0)  # the sample the Explorer drew (same seed, same draws)
    f = data.sample_factors(512, rng)
    codes = run.encode(data.images_at(torch.from_numpy(data.indices_from_factors(f, rng))))
    ref = mig(codes, f)
    np.testing.assert_allclose(explorer.mutual_info, ref["mutual_info"])
    info = explorer.info()
    assert [lat["index"] for lat in info["latents"]] == explorer.order
    assert [f["name"] for f in info["factors"]] == ["x", "y", "size"]
    for row, lat in zip(info["nmi"], info["latents"]):
        d = lat["index"]
        np.testing.assert_allclose(row, ref["mutual_info"][d] / ref["entropy"])
        assert lat["factor"] == ["x", "y", "size"][int(np.argmax(row))] and lat["kl"] == kl[d]
    assert info["run"]["mig_sample"] == pytest.approx(ref["mig"])
    json.dumps(info)  # the page gets it as JSON


def test_info_shows_a_shipped_models_caveat(run_dir, explorer, tmp_path, monkeypatch, capsys):
    from pathlib import Path

    import untwine.explore
    from untwine import pretrained

    assert explorer.info()["run"]["caveat"] is None  # a run folder of the user's
    models = tmp_path / "models"
    shutil.copytree(run_dir, models / "tiny-caveat")  # shipped, as far as untwine.pretrained sees
    monkeypatch.setattr(pretrained, "MODELS_DIR", models)
    monkeypatch.setitem(pretrained.CAVEATS, "tiny-caveat", "FactorVAE with KL weight 16, not Kim & Mnih's loss")
    info = Explorer(pretrained.load("tiny-caveat"), load(TINY), samples=64, seed=0).info()
    assert info["run"]["caveat"] == "FactorVAE with KL weight 16, not Kim & Mnih's loss"
    page = (Path(untwine.explore.__file__).parent / "static" / "index.html").read_text()
    assert '<div id="caveat"></div>' in page and '$("caveat").textContent = r.caveat ? "Note: " + r.caveat' in page
    pytest.importorskip("uvicorn")
    from untwine.explore import app

    monkeypatch.setattr(app.Server, "run", lambda self: None)
    assert main(["explore", "tiny-caveat", "--port", "0", "--no-browser", "--samples", "64"]) == 0
    assert "\nnote: FactorVAE with KL weight 16, not Kim & Mnih's loss\n" in capsys.readouterr().out


def test_pick_by_factors_shows_that_image_and_its_code(explorer):
    r = explorer.pick([5, 2, 1])
    data = explorer.data
    assert r["factors"] == [5, 2, 1] and data.factors[r["index"]].tolist() == [5, 2, 1]
    np.testing.assert_array_equal(pixels(r["input"]), data.images[r["index"], 0].numpy())
    x = data.images[r["index"]][None]
    np.testing.assert_array_equal(r["code"], explorer.run.encode(x)[0])
    assert r["reconstruction"] == png(explorer.run.decode(np.asarray([r["code"]], np.float32))[0])
    f = explorer.pick(None, seed=3)["factors"]
    assert explorer.pick(None, seed=3)["factors"] == f and len(f) == 3


def test_decode_and_traversals_are_the_models(explorer):
    z = [0.5, -1.0, 2.0]
    img, ms = explorer.decode(z)
    expect = explorer.run.decode(np.asarray([z], np.float32))[0, 0]
    np.testing.assert_array_equal(pixels(img), (expect * 255).round().astype(np.uint8))
    assert ms > 0
    rows = explorer.traversals(z)
    assert [d for d, _ in rows] == explorer.order
    d, strip_png = rows[0]
    s = pixels(strip_png)
    assert s.shape == (64, 9 * 64 + 8 * 2)
    zz = np.asarray(z, np.float32)
    zz[d] = 2.0  # the last column: the latent at +span
    np.testing.assert_array_equal(s[:, -64:], (explorer.run.decode(zz[None])[0, 0] * 255).round().astype(np.uint8))


def test_bad_requests_name_the_problem(explorer, run_dir):
    with pytest.raises(ValueError, match=r"^z must be 3 numbers \(one per latent\), got 2$"):
        explorer.decode([1.0, 2.0])
    with pytest.raises(ValueError, match=r"^z must be 3 numbers, got an array of shape \(1, 3\)$"):
        explorer.decode(np.zeros((1, 3)))
    with pytest.raises(ValueError, match=r"^z\[2\] = 101.0 is out of range: latent values lie in \[-100, 100\]$"):
        explorer.traversals([0, 0, 101.0])
    with pytest.raises(ValueError, match=r"^factors must be 3 integers \(x, y, size\), got 2$"):
        explorer.pick([1, 2])
    with pytest.raises(ValueError, match=r"^factor x = 8 is out of range: x takes 0..7$"):
        explorer.pick([8, 0, 0])
    with pytest.raises(ValueError, match=r"^factor size must be an integer, got 1.0$"):
        explorer.pick([0, 0, 1.0])
    with pytest.raises(ValueError, match=r"^seed must be an integer in \[0, 2\*\*64\), got -1$"):
        explorer.pick(None, seed=-1)
    assert explorer.pick(np.array([1, 2, 1]))["factors"] == [1, 2, 1]  # numpy values are numbers too
    np.testing.assert_array_equal(explorer.code(np.array([0.5, -1, 2], np.float64)), np.float32([0.5, -1, 2]))
    with pytest.raises(ValueError, match=r"samples must be >= 2, got 1"):
        Explorer(load_run(run_dir), load(TINY), samples=1)


# ----------------------------------------------------------------------------- the web app
@pytest.fixture(scope="module")
def server(explorer):
    pytest.importorskip("starlette")
    pytest.importorskip("uvicorn")
    from untwine.explore.app import Server

    s = Server(explorer, port=0).start()
    yield s
    s.stop()


def get(url: str, body: dict | None = None) -> tuple[int, dict | str]:
    req = urllib.request.Request(url, data=None if body is None else json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            text = r.read().decode()
            return r.status, json.loads(text) if r.headers.get_content_type() == "application/json" else text
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read().decode())


def test_server_endpoints(server, explorer):
    assert server.url.startswith("http://127.0.0.1:")
    status, page = get(server.url)
    assert status == 200 and "<title>untwine explore</title>" in page
    assert get(server.url + "api/info") == (200, json.loads(json.dumps(explorer.info())))
    status, r = get(server.url + "api/input?factors=3,4,0")
    assert status == 200 and r["factors"] == [3, 4, 0]
    np.testing.assert_array_equal(pixels(r["input"]), explorer.data.images[r["index"], 0].numpy())
    status, r = get(server.url + "api/decode", {"z": [0.0, 1.0, -1.0]})
    assert status == 200 and pixels(r["image"]).tobytes() == pixels(explorer.decode([0.0, 1.0, -1.0])[0]).tobytes()
    status, r = get(server.url + "api/traversals", {"z": [0.0, 1.0, -1.0]})
    assert status == 200 and [row["index"] for row in r["rows"]] == explorer.order


@pytest.mark.parametrize("path, body, status, error", [
    ("api/input?factors=1,x", None, 400, "factors must be comma-separated integers, got '1,x'"),
    ("api/input?factors=1,2", None, 400, "factors must be 3 integers (x, y, size), got 2"),
    ("api/decode", {"z": [1]}, 400, "z must be 3 numbers (one per latent), got 1"),
    ("api/decode", {"z": ["a", 1, 2]}, 400, "z[0] must be a number, got 'a'"),
    ("api/decode", {"x": 1}, 400, 'the body has no "z"; expected {"z": [numbers]}'),
])
def test_server_errors(server, path, body, status, error):
    assert get(server.url + path, body) == (status, {"error": error})


def test_busy_port_is_a_clear_error(server):
    from untwine.explore.app import bind

    with pytest.raises(OSError, match=rf"cannot listen on 127.0.0.1:{server.port} .*pick another port with --port"):
        bind(server.port)


def test_cli_serves_the_page_without_a_browser(run_dir, monkeypatch, capsys):
    pytest.importorskip("uvicorn")
    from untwine.explore import app

    seen = {}

    def run_briefly(self):  # serve from a thread, fetch the info, stop (instead of blocking)
        self.start()
        seen["info"] = get(self.url + "api/info")
        self.stop()

    monkeypatch.setattr(app.Server, "run", run_briefly)
    monkeypatch.setattr("webbrowser.open", lambda url: pytest.fail("--no-browser opened a browser"))
    assert main(["explore", str(run_dir), "--port", "0", "--no-browser", "--samples", "64"]) == 0
    assert seen["info"][0] == 200 and seen["info"][1]["run"]["dir"] == str(run_dir)
    assert "serving" in capsys.readouterr().out


def test_cli_host_names_the_url_and_the_only_extra_host_answered(run_dir, monkeypatch, capsys):
    pytest.importorskip("uvicorn")
    from untwine.explore import app

    seen = {}

    def run_briefly(self):
        self.start()
        for host in ("localhost", "evil.example"):
            req = urllib.request.Request(f"http://127.0.0.1:{self.port}/api/info", headers={"Host": host})
            try:
                with urllib.request.urlopen(req, timeout=30) as r:
                    seen[host] = r.status
            except urllib.error.HTTPError as e:
                seen[host] = (e.code, e.read().decode())
        seen["url"], seen["threads"] = self.url, torch.get_num_threads()
        self.stop()

    monkeypatch.setattr(app.Server, "run", run_briefly)
    torch.set_num_threads(2)
    assert main(["explore", str(run_dir), "--port", "0", "--no-browser", "--samples", "64", "--host", "localhost"]) == 0
    assert seen["url"].startswith("http://localhost:") and seen["threads"] == 1  # --threads 1 by default
    assert seen["localhost"] == 200 and seen["evil.example"] == (400, "Invalid host header")
    assert "warning" not in capsys.readouterr().out
    assert main(["explore", str(run_dir), "--no-browser", "--threads", "-1"]) == 2
    assert "--threads must be >= 0, got -1" in capsys.readouterr().err


def test_cli_errors(tmp_path, run_dir, monkeypatch, capsys):
    assert main(["explore", str(tmp_path / "nope"), "--no-browser"]) == 2
    assert "is neither a run folder nor a pretrained model" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "uvicorn", None)  # as if the extra were not installed
    monkeypatch.delitem(sys.modules, "untwine.explore.app", raising=False)
    assert main(["explore", str(run_dir), "--no-browser"]) == 2
    assert "pip install 'untwine[explore]'" in capsys.readouterr().err


# ----------------------------------------------------------------------------- a real browser
def chrome():
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install selenium)")
    binary, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not binary or not driver:
        pytest.skip("Debian's chromium and chromium-driver are not installed (apt-get install chromium chromium-driver)")
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = binary
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1400,1100"):
        opts.add_argument(a)
    return webdriver.Chrome(service=Service(driver), options=opts)


@pytest.mark.slow
@pytest.mark.browser
def test_browser_moves_a_latent_and_picks_by_factors(server, explorer):
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    driver = chrome()
    try:
        wait = WebDriverWait(driver, 30)

        def idle(d) -> bool:
            return d.find_element("tag name", "body").get_attribute("data-busy") == "0"

        driver.get(server.url)
        wait.until(lambda d: d.find_element("tag name", "body").get_attribute("data-ready") == "1" and idle(d))
        el = lambda i: driver.find_element("id", i)  # noqa: E731
        # set the factors with the keyboard, as a user would: x=5, y=2, size=1
        for k, v in enumerate([5, 2, 1]):
            el(f"f-{k}").send_keys(Keys.HOME, *[Keys.ARROW_RIGHT] * v)
        wait.until(lambda d: el("img-input").get_attribute("data-factors") == "5,2,1" and idle(d))
        shown = pixels(el("img-input").get_attribute("src"))
        index = int(explorer.data.indices_from_factors(np.array([[5, 2, 1]]), np.random.default_rng())[0])
        np.testing.assert_array_equal(shown, explorer.data.images[index, 0].numpy())
        assert "x 5, y 2, size 1" in el("picked").text
        # move the latent with the largest KL by 10 steps of 0.05
        d0 = explorer.order[0]
        before_src, before_z = el("img-decoded").get_attribute("src"), json.loads(el("img-decoded").get_attribute("data-z"))
        decodes = int(driver.find_element("tag name", "body").get_attribute("data-decodes"))
        el(f"z-{d0}").send_keys(*[Keys.ARROW_RIGHT] * 10)
        wait.until(lambda d: int(d.find_element("tag name", "body").get_attribute("data-decodes")) > decodes and idle(d))
        z = json.loads(el("img-decoded").get_attribute("data-z"))
        assert z[d0] == pytest.approx(float(el(f"z-{d0}").get_attribute("value")))
        assert z[d0] != pytest.approx(before_z[d0]) and [v for i, v in enumerate(z) if i != d0] == \
            [v for i, v in enumerate(before_z) if i != d0]
        after = el("img-decoded").get_attribute("src")
        assert after != before_src
        np.testing.assert_array_equal(pixels(after), pixels(explorer.decode(z)[0]))
        print(f"\nbrowser: {el('decode-ms').text}")
        assert len(driver.find_elements("css selector", "#traversals img")) == 3
        assert len(driver.find_elements("css selector", "#heatmap td")) == 3 * 3
    finally:
        driver.quit()
