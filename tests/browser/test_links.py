"""Every link and every form of the dashboard, followed in real headless Chromium against
a real `bass serve` with a real local worker: each answers a styled HTML page (or, for
raw logs, plain text), at a desktop's size and a phone's."""

from __future__ import annotations

import json
import re
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import parse_qs, urldefrag, urlsplit

import pytest

from tests.browser.pages import (
    DESKTOP,
    PHONE,
    assert_no_horizontal_overflow,
    serve_scripts,
)
from tests.conftest import Server, http
from tests.e2e.waiting import wait_until

pytestmark = pytest.mark.browser

SHAPES = r"""#!/usr/bin/env python3
from bass import build

build({"name": "shapes", "steps": [
    {"name": "compile", "exec": "echo compiling widgets"},
    {"name": "checks", "steps": [
        {"name": "unit", "exec": "echo 'unit widgets passed'"},
        {"name": "lint", "exec": "printf '\\033[32mclean\\033[0m widgets\\n'"},
    ]},
]})
"""
BROKEN = r"""#!/usr/bin/env python3
from bass import build

build({"name": "broken", "steps": [
    {"name": "setup", "exec": "echo preparing widgets"},
    {"name": "test", "exec": "echo 'widgets broke'; exit 2"},
]})
"""
GATED = r"""#!/usr/bin/env python3
from bass import build

build({"name": "gated", "steps": [
    {"name": "hold", "exec": 'echo holding widgets; while [ ! -f "$GATE" ]; do sleep 0.05; done'},
]})
"""
WORD = "widgets"  # in every build's log
BUILD_PAGE = re.compile(r"/pipelines/[^/]+/\d+")
# the links of a page in its own words and resolved (an SVG <a> has no string href)
LINKS = "els => els.map((a) => [a.getAttribute('href'), new URL(a.getAttribute('href'), document.baseURI).href])"  # noqa: E501
VARIANTS = frozenset({"span", "expand", "offset", "from", "to", "after", "before"})


@pytest.fixture(scope="module")
def builds(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """shapes #1 (ok), shapes #2 (ok, a push of main), broken #1 (failed), gated #1
    (running until a test cancels it), nightly_integration (never built)."""
    root = tmp_path_factory.mktemp("links")
    server = serve_scripts(
        root,
        {"shapes": SHAPES, "broken": BROKEN, "gated": GATED, "nightly_integration": SHAPES},
        env=f"GATE={root / 'gate'}\n",
    )
    try:
        assert server.wait_for(server.webhook("shapes")["id"])["state"] == "ok"
        sha = (root / "repo").joinpath(".git", "refs", "heads", "main").read_text().strip()
        status, body = http(
            "POST",
            f"{server.url}/webhook?pipeline=shapes",
            {"ref": "refs/heads/main", "before": "0" * 40, "after": sha},
        )
        assert status == 200 and body["queued"], body
        assert server.wait_for(body["id"])["state"] == "ok"
        assert server.build("shapes", 2)["build"]["branch"] == "main"
        assert server.wait_for(server.webhook("broken")["id"])["state"] == "failed"
        gated = server.webhook("gated")["id"]
        wait_until(
            lambda: http("GET", f"{server.url}/api/jobs/{gated}")[1]["state"] == "running",
            "the gated build to run",
        )
        yield server
    finally:
        server.stop()


class Crawl:
    """A browser page walking the dashboard: every page it opens must be a 200 HTML page
    with the dashboard's header; it notes every link and form it finds there."""

    def __init__(
        self,
        server: Server,
        page: Any,
        *,
        forms: bool = True,
        on_page: Callable[[str], None] = lambda url: None,
        key: Callable[[str], str] = lambda url: url,
    ) -> None:
        self.server, self.page = server, page
        self.forms, self.on_page, self.key = forms, on_page, key
        self.seen: set[str] = set()  # keys of the URLs visited
        self.looked: set[str] = set()  # URLs (without fragment) whose links and forms were seen
        self.origin = server.url
        self.visited: dict[str, str] = {}  # URL opened → the URL it landed on
        self.shapes: set[tuple[str, frozenset[str]]] = set()  # see new_shape
        self.raw_logs: set[str] = set()
        self.cells: set[str] = set()  # the grids' cells' links
        self.post_forms: dict[str, list[tuple[str, str]]] = {}  # kind → [(page, action)]
        self.get_forms_sent: list[tuple[str, str]] = []  # (page, URL the form led to)
        self.queue: deque[str] = deque()
        self.problems: list[str] = []
        page.on("pageerror", lambda e: self.problems.append(f"{page.url}: {e}"))
        page.on(
            "console",
            lambda m: self.problems.append(f"{page.url}: {m.text}") if m.type == "error" else None,
        )

    def check_html(self, response: Any, what: str) -> None:
        assert response is not None, what
        assert response.status == 200, (what, response.status, response.url)
        ctype = response.headers.get("content-type", "")
        assert ctype.startswith("text/html"), (what, ctype)
        body = response.text()
        try:
            json.loads(body)
        except ValueError:
            pass
        else:
            raise AssertionError(f"{what} answered JSON: {body[:200]}")
        header = self.page.locator("header.top")
        assert header.locator("a.brand").get_attribute("href") == self.origin + "/", what
        for name in ("search", "status"):  # the header's links, on every page
            link = header.locator("a", has_text=name)
            assert link.get_attribute("href") == f"{self.origin}/{name}", what
        assert self.page.locator("header.top").evaluate(
            "e => getComputedStyle(e).display"
        ) == "flex", f"{what}: the stylesheet is not applied"  # fmt: skip

    def new_shape(self, url: str) -> bool:
        """Whether no link of this page and these query parameters was queued yet: a
        waterfall links each of its spans (?span=), folds, pages and zooms, and one of
        each kind is enough."""
        parts = urlsplit(url)
        names = frozenset(parse_qs(parts.query))
        if not names & VARIANTS:
            return True
        shape = (parts.path, names)
        seen = shape in self.shapes
        self.shapes.add(shape)
        return not seen

    def ours(self, url: str) -> bool:
        return url.startswith(self.origin + "/")

    def run(self, *seeds: str) -> None:
        for seed in seeds:
            self.visited.pop(seed, None)
            self.seen.discard(self.key(seed))
            self.looked.discard(urldefrag(seed).url)
            self.queue.append(seed)
        while self.queue:
            url = self.queue.popleft()
            if url in self.visited or self.key(url) in self.seen:
                continue
            self.seen.add(self.key(url))
            if urldefrag(self.page.url).url == urldefrag(url).url:
                self.page.goto("about:blank")  # else only the fragment changes: no load
            response = self.page.goto(url)
            self.visited[url] = self.page.url
            self.check_html(response, url)
            fragment = urlsplit(url).fragment
            if fragment.startswith("step-"):  # a grid cell's or a search result's link
                self.check_step_opened(url, fragment)
            self.on_page(url)
            if urldefrag(url).url not in self.looked:  # the same page, another step opened
                self.looked.add(urldefrag(url).url)
                self.look_around(url)

    def check_step_opened(self, url: str, fragment: str) -> None:
        """A link to a step opens it on the build's page (and to a line, shows that line)."""
        span, _, line = fragment.removeprefix("step-").partition("-L")
        step = self.page.locator(f"#step-{span}")
        assert "target" in (step.get_attribute("class") or "").split(), url
        details = step if step.evaluate("e => e.tagName") == "DETAILS" else step.locator(
            ":scope > details"
        )  # fmt: skip
        assert details.get_attribute("open") is not None, url
        if line:
            target = self.page.locator(f'#log-{span} .lv-line.lv-target[data-n="{line}"] .lv-x')
            target.wait_for(timeout=10000)

    def look_around(self, url: str) -> None:
        """Note the links and forms of the page open (at `url`), all of them shown."""
        page = self.page
        # a step's own links (its raw log) exist once it is opened
        opened = page.evaluate(
            """() => { const closed = [...document.querySelectorAll("details:not([open])")];
                       closed.forEach((d) => { d.open = true; });
                       return document.querySelectorAll(".logview[data-span]").length; }"""
        )
        if opened:
            wait_until(
                lambda: page.locator(".logview .lv-raw").count() == opened,
                f"every log viewer of {url} to start",
                timeout=10,
            )
        self.cells |= set(page.locator("td.cell a").evaluate_all("els => els.map((a) => a.href)"))
        links = page.eval_on_selector_all("a[href]", LINKS)
        for raw, absolute in links:
            if raw.startswith("#") or not self.ours(absolute):
                continue  # a place on this page; another site (a forge's compare page)
            if urlsplit(absolute).path.endswith("/log"):
                self.raw_log(absolute)
            elif absolute not in self.visited and self.new_shape(absolute):
                self.queue.append(absolute)
        forms = page.eval_on_selector_all(
            "form",
            "els => els.map((f) => [f.method, f.action, f.querySelector('button') ? "
            "f.querySelector('button').textContent.trim() : ''])",
        )
        for index, (method, action, button) in enumerate(forms):
            if not self.forms:
                continue
            if method == "get":
                self.send_get_form(url, index)
            else:
                kind = urlsplit(action).path.rsplit("/", 1)[-1]
                self.post_forms.setdefault(kind, []).append((url, action))
                assert button, f"a POST form of {url} has no button"

    def raw_log(self, url: str) -> None:
        key = urldefrag(url).url
        if key in self.raw_logs:
            return
        self.raw_logs.add(key)
        answer = self.page.request.get(key)
        assert answer.status == 200, (url, answer.status)
        assert answer.headers["content-type"].startswith("text/plain"), answer.headers
        text = answer.text()
        assert text.strip(), url
        if "span=" in url:  # one step's: its lines only, no headings of steps
            assert "── " not in text, (url, text[:300])
        else:  # the whole build's, a heading for each step
            assert WORD in text and "── checkout ──" in text, (url, text[:300])

    def send_get_form(self, url: str, index: int) -> None:
        """Fill the GET form `index` of the page at `url` sensibly, submit it as a reader
        would (its button, else Enter), check where it leads, and come back."""
        page = self.page
        form = page.locator("form").nth(index)
        shown = page.locator("tr[data-build] th.build-col .badge").all_inner_texts()
        for field in form.locator("input:not([type=hidden]), select").all():
            name = field.get_attribute("name")
            if field.evaluate("e => e.tagName") == "SELECT":
                options = field.locator("option").evaluate_all("os => os.map((o) => o.value)")
                # the state of the newest build shown, the last branch known
                wanted = shown[0] if name == "status" and shown else options[-1]
                field.select_option(wanted)
            elif name == "q":
                field.fill(WORD)
            elif name == "pipeline":
                field.fill("shapes")
            elif name == "number":
                field.fill("1")
        button = form.locator("button")
        with page.expect_navigation() as navigation:
            if button.count():
                button.first.click()
            else:
                form.locator("input[type=search], input[type=text]").first.press("Enter")
        landed = page.url
        self.check_html(navigation.value, f"the form {index} of {url}")
        self.get_forms_sent.append((url, landed))
        self.visited.setdefault(landed, landed)
        self.check_form_answer(url, landed)
        for raw, absolute in page.eval_on_selector_all("a[href]", LINKS):
            if not raw.startswith("#") and self.ours(absolute) and absolute not in self.visited:
                if not urlsplit(absolute).path.endswith("/log"):
                    self.queue.append(absolute)
        response = page.goto(url)  # back where the crawl was
        self.check_html(response, url)

    def check_form_answer(self, url: str, landed: str) -> None:
        """What the page a GET form led to shows: what was asked for, and only that."""
        page = self.page
        query = parse_qs(urlsplit(landed).query)
        path = urlsplit(landed).path
        if path == "/search":
            assert query.get("q") == [WORD], landed
            links = page.locator("table.results tbody a").evaluate_all(
                "els => els.map((a) => new URL(a.href).pathname)"
            )
            assert links, f"{landed}: no result for {WORD!r}"
            if BUILD_PAGE.fullmatch(urlsplit(url).path):  # its search box: this build only
                assert set(links) == {urlsplit(url).path}, (url, landed, links)
            elif "number" in query:  # the search page's, given a build
                only = f"/pipelines/{query['pipeline'][0]}/{query['number'][0]}"
                assert set(links) == {only}, (url, landed, links)
        elif path.startswith("/pipelines/"):
            states = page.locator("tr[data-build] th.build-col .badge").all_inner_texts()
            if not states:  # nothing of this state: the grid says so
                assert page.locator("#grid .empty").count() == 1, landed
            elif query.get("status"):
                assert set(states) == set(query["status"]), (landed, states)
            if query.get("branch"):
                sources = page.locator("tr[data-build] th.build-col").all_inner_texts()
                assert sources and all(query["branch"][0] in s for s in sources), sources
        elif path == "/traces":  # the Traces page's filters: only what was chosen
            rows = page.locator("table.traces tbody tr")
            services = rows.locator("td:nth-child(2)").all_inner_texts()
            if query.get("service"):
                assert set(services) <= set(query["service"]), (landed, services)
            if query.get("status"):
                statuses = rows.evaluate_all("rs => rs.map((r) => r.dataset.status)")
                assert set(statuses) <= set(query["status"]), (landed, statuses)
            if not services:
                assert page.locator("#traces .empty").count() == 1, landed
        else:
            raise AssertionError(f"{url}: a form led to {landed}")

    def submit_post(self, url: str, kind: str) -> tuple[str, Any]:
        """Open `url`, press its `kind` form's button; the 303 lands on an HTML page."""
        page = self.page
        self.check_html(page.goto(url), url)
        form = page.locator(f'form[method=post][action$="/{kind}"]').first
        with page.expect_navigation() as navigation:
            form.locator("button").click()
        response = navigation.value
        self.check_html(response, f"{kind} on {url}")
        post = response.request.redirected_from
        assert post is not None and post.method == "POST", (kind, url)
        assert post.response().status == 303, (kind, post.response().status)
        return page.url, response


def test_every_link_and_form_of_every_page_answers_a_page(builds, browser):
    server = builds
    context = browser.new_context(viewport=DESKTOP)
    page = context.new_page()
    crawl = Crawl(server, page)
    crawl.run(f"{server.url}/")

    paths = {urlsplit(u).path for u in crawl.visited}
    assert {"/", "/search", "/status", "/pipelines/shapes", "/pipelines/broken"} <= paths
    for build in ("shapes/1", "shapes/2", "broken/1", "gated/1"):
        assert f"/pipelines/{build}" in paths and f"/pipelines/{build}/timeline" in paths
    # the grid's cells lead to their step, opened, on the build's page
    assert len(crawl.cells) >= 8 and crawl.cells <= set(crawl.visited), crawl.cells
    assert all("#step-" in u for u in crawl.cells), crawl.cells
    # every build's raw log, and each step's
    assert {urlsplit(u).path for u in crawl.raw_logs} >= {
        "/pipelines/shapes/1/log", "/pipelines/broken/1/log", "/pipelines/gated/1/log"
    }  # fmt: skip
    assert any("span=" in u for u in crawl.raw_logs)
    # each page's GET forms were sent: the search page's, each build's search box, the
    # pipeline filter
    sent = {(urlsplit(a).path, urlsplit(b).path) for a, b in crawl.get_forms_sent}
    assert ("/search", "/search") in sent
    assert ("/pipelines/shapes/2", "/search") in sent and ("/pipelines/gated/1", "/search") in sent
    assert ("/pipelines/shapes", "/pipelines/shapes") in sent
    assert set(crawl.post_forms) == {"trigger", "pause", "rerun", "cancel"}, crawl.post_forms

    # every POST form once, through the browser: each answers 303 to an HTML page
    landed, _ = crawl.submit_post(f"{server.url}/pipelines/gated/1", "cancel")
    assert urlsplit(landed).path == "/pipelines/gated/1"
    assert server.wait_for(server.build("gated", 1)["build"]["id"])["state"] == "cancelled"
    landed, _ = crawl.submit_post(f"{server.url}/pipelines/broken/1", "rerun")
    assert urlsplit(landed).path == "/pipelines/broken/2"
    assert page.locator("a", has_text="an earlier build").count() == 1
    rerun = landed
    landed, _ = crawl.submit_post(f"{server.url}/", "trigger")
    assert BUILD_PAGE.fullmatch(urlsplit(landed).path), landed
    landed, _ = crawl.submit_post(f"{server.url}/pipelines/shapes", "pause")
    assert urlsplit(landed).path == "/pipelines/shapes"
    assert page.locator("h1 .badge", has_text="paused").count() == 1
    landed, _ = crawl.submit_post(f"{server.url}/pipelines/shapes", "resume")
    assert urlsplit(landed).path == "/pipelines/shapes"
    assert page.locator("h1 .badge", has_text="paused").count() == 0
    page.goto(f"{server.url}/pipelines/shapes")
    page.locator("form.trigger input[name=ref]").fill("main")
    with page.expect_navigation() as navigation:
        page.locator("form.trigger button").click()
    crawl.check_html(navigation.value, "Build now of main")
    assert re.fullmatch(r"/pipelines/shapes/\d+", urlsplit(page.url).path), page.url

    # and what they made: the new builds' pages, the rerun's link to its original
    crawl.run(f"{server.url}/", rerun)
    assert "/pipelines/broken/2" in {urlsplit(u).path for u in crawl.visited}
    earlier = [u for u in crawl.visited if urlsplit(u).path.startswith("/builds/")]
    assert earlier, sorted(crawl.visited)
    assert {urlsplit(crawl.visited[u]).path for u in earlier} == {"/pipelines/broken/1"}
    assert not crawl.problems, crawl.problems
    context.close()


def test_every_page_reached_by_links_fits_a_phone(builds, browser):
    """At 390 px wide, no page is wider than the phone (log lines and the grid scroll in
    their own boxes): the home page, search pages, pipelines, builds, timelines, status."""
    server = builds
    context = browser.new_context(viewport=PHONE)
    page = context.new_page()
    too_wide: list[str] = []

    def measure(url: str) -> None:
        try:
            assert_no_horizontal_overflow(page, url)
        except AssertionError as e:
            too_wide.append(str(e))

    def key(url: str) -> str:  # a page, and once more with a step opened by a link
        path, fragment = urldefrag(url)
        return path + ("#step" if fragment else "")

    crawl = Crawl(server, page, forms=False, on_page=measure, key=key)
    crawl.run(
        f"{server.url}/",
        f"{server.url}/search?q={WORD}",
        f"{server.url}/search?q={WORD}&pipeline=broken&number=1",
    )
    paths = {urlsplit(u).path for u in crawl.visited}
    assert {"/", "/search", "/pipelines/shapes/1", "/pipelines/broken/1"} <= paths, paths
    assert not too_wide, "\n".join(too_wide)
    assert not crawl.problems, crawl.problems
    context.close()


def test_a_missing_page_is_the_styled_error_page_and_the_icon_resolves(tmp_path, browser):
    server = serve_scripts(tmp_path, {"shapes": SHAPES})
    context = browser.new_context(viewport=DESKTOP)
    page = context.new_page()
    for path, says in [
        ("/no/such/page", "/no/such/page"),
        ("/pipelines/nope", "nope"),
        ("/pipelines/shapes/999", "shapes #999"),
        ("/pipelines/shapes/999/timeline", "shapes #999"),
    ]:
        response = page.goto(server.url + path)
        assert response is not None and response.status == 404, path
        assert response.headers["content-type"].startswith("text/html"), path
        assert page.locator("header.top a.brand").count() == 1
        assert page.locator("header.top").evaluate("e => getComputedStyle(e).display") == "flex"
        assert page.locator("header.top a", has_text="search").count() == 1
        assert page.locator("h1").inner_text() == "Not found", path
        assert says in page.locator("main").inner_text(), (path, page.locator("main").inner_text())
    icon = page.locator("link[rel=icon]").evaluate("e => e.href")
    for url in (icon, f"{server.url}/favicon.ico"):
        answer = page.request.get(url)
        assert answer.status == 200, (url, answer.status)
        assert answer.headers["content-type"].startswith("image/"), answer.headers
        assert answer.body().lstrip().startswith(b"<svg"), answer.body()[:80]
    context.close()
    server.stop()
