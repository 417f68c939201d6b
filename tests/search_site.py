"""A generated test website served by a real HTTP server on 127.0.0.1 (crawl tests and benchmark).

`make_site(n)` builds n articles in ten languages and scripts plus everything a crawler must get
right: robots.txt rules, a sitemap index with `lastmod`, exact and near duplicates, redirects, broken
links, an off-site link, a `noindex` page, PDF/DOCX/TXT files, an oversized file, dates in page
metadata and in `Last-Modified` only. `SiteServer` serves it over HTTP/1.1 (keep-alive) with ETag /
Last-Modified validators (answering 304 to conditional requests) and counts every request per path.
"""

from __future__ import annotations

import hashlib
import io
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime, parsedate_to_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from xml.sax.saxutils import escape

WORDS = {
    "en": (
        "the of and to in is that it was for on are as with his they "
        "at be this have from or one had by word but not what all "
        "were we when your can said there use each which she do how "
        "their if will up other about out many then them these so "
        "some would make like him into time has look two more write"
    ),
    "fr": (
        "le de un être et à il avoir ne je son que se qui ce dans en "
        "du elle au pour pas que vous par sur faire plus dire me on "
        "mon lui nous comme mais pouvoir avec tout y aller voir en "
        "bien où sans tu ou leur"
    ),
    "de": (
        "der die und in den von zu das mit sich des auf für ist im "
        "dem nicht ein eine als auch es an werden aus er hat dass sie "
        "nach wird bei einer um am sind noch wie einem über einen so "
        "zum war haben nur oder"
    ),
    "es": (
        "el la de que y a en un ser se no haber por con su para como "
        "estar tener le lo todo pero más hacer o poder decir este ir "
        "otro ese si me ya ver porque dar cuando él muy sin vez mucho "
        "saber qué sobre mi"
    ),
    "it": (
        "il di che e la a per un in è essere non sono con mi si ma lo "
        "ha le ci questo una come io hai del anche da se della tutto "
        "ti bene gli sei mio quando fatto molto cosa dei loro nel "
        "alla qui sempre"
    ),
    "ru": (
        "и в не на я быть он с что а по это она этот к но они мы как "
        "из у который то за свой что весь год от так о для ты же все "
        "тот мочь вы человек такой его сказать только или ещё бы себя "
        "один как уже"
    ),
    "zh": (
        "的一是不了人我在有他这中大来上国个到说们为子和你地出道也时年得就那要下以生会自着"
        "去之过家学对可她里后小么心多天而能好都然没日于起还发成事只作当想看文无开手十用主"
        "行方又如前所本见经头面公同三已老从动两长"
    ),
    "ja": (
        "の に は を た が で て と し れ さ ある いる も する から な こと として い や れる など なっ "
        "ない この ため その あっ よう また もの という あり まで られ "
        "なる へ か だ これ によって により おり より による ず なり"
    ),
    "ar": (
        "في من على إلى أن عن مع هذا هذه التي الذي كان لا ما بين كل "
        "بعد قد ذلك أو هو عند حتى قبل لم إن كانت وقد فيها منذ هناك "
        "غير أي نحو حيث ضمن لدى عليه أيضا بعض خلال تلك الى كما الأول"
    ),
    "th": (
        "การ ที่ ใน ของ และ เป็น ได้ ให้ มี จะ ไม่ ว่า ความ กับ แต่ "
        "จาก ไป มา แล้ว นี้ คน อยู่ เรา เขา ก็ ด้วย หรือ ต้อง ทำ กัน "
        "เมื่อ โดย ซึ่ง อย่าง ถึง ยัง ตาม เพราะ คือ ถ้า ทั้ง ออก เข้า"
    ),
}
NO_SPACES = {"zh", "ja", "th"}
LANGS = tuple(WORDS)
TOPICS = ("astronomy", "cooking", "gardening", "sailing", "chess", "volcanoes", "beekeeping", "typography")
FIXED_NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)


@dataclass
class Resource:
    body: bytes = b""
    content_type: str = "text/html; charset=utf-8"
    status: int = 200
    location: str | None = None
    last_modified: datetime | None = None

    @property
    def etag(self) -> str:
        return '"' + hashlib.sha1(self.body).hexdigest()[:16] + '"'


@dataclass
class Site:
    resources: dict[str, Resource] = field(default_factory=dict)
    # What the crawl must and must not index (paths), for the tests' assertions.
    articles: list[str] = field(default_factory=list)
    article_lang: dict[str, str] = field(default_factory=dict)
    article_text: dict[str, str] = field(default_factory=dict)
    sitemap_only: list[str] = field(default_factory=list)
    forbidden: list[str] = field(default_factory=list)  # robots.txt Disallow
    exact_duplicate: str = ""  # same text as `duplicate_of`
    near_duplicate: str = ""
    duplicate_of: str = ""
    redirects: dict[str, str] = field(default_factory=dict)
    broken: list[str] = field(default_factory=list)
    noindex: str = ""
    files: dict[str, str] = field(default_factory=dict)  # path -> filetype
    oversized: str = ""
    published: dict[str, datetime] = field(default_factory=dict)  # path -> the date to find
    offsite_url: str = ""

    def set_html(self, path: str, title: str, text: str, *, modified: datetime | None = None) -> None:
        """Replace a page (a recrawl must notice)."""
        self.resources[path] = Resource(
            _html(title, [text], "en", links=[]), last_modified=modified or datetime.now(UTC)
        )


def sentence(rng: random.Random, lang: str, n: int) -> str:
    words = list(WORDS[lang]) if lang == "zh" else WORDS[lang].split()
    picked = [rng.choice(words) for _ in range(n)]
    return ("" if lang in NO_SPACES and lang != "th" else " ").join(picked) + (
        "。" if lang in ("zh", "ja") else "."
    )


def paragraphs(rng: random.Random, lang: str, topic: str, count: int = 6) -> list[str]:
    out = []
    for i in range(count):
        text = sentence(rng, lang, 40)
        if lang == "en" or i == 0:
            text = f"{topic} {text}"
        out.append(text)
    return out


def _html(
    title: str,
    paras: list[str],
    lang: str,
    links: list[tuple[str, str]],
    head: str = "",
    body_extra: str = "",
) -> bytes:
    anchors = "".join(f'<li><a href="{escape(href)}">{escape(text)}</a></li>' for href, text in links)
    ps = "".join(f"<p>{escape(p)}</p>" for p in paras)
    return (
        f'<!doctype html><html lang="{lang}"><head><meta charset="utf-8"><title>{escape(title)}</title>{head}'
        f'</head><body><nav><a href="/">Home</a></nav><article><h1>{escape(title)}</h1>{ps}</article>'
        f"{body_extra}<aside><ul>{anchors}</ul></aside><footer>Test site</footer></body></html>"
    ).encode()


def make_pdf(title: str, lines: list[str], created: datetime) -> bytes:
    """A small valid PDF (Helvetica text, an Info dictionary): nothing in the stack writes PDFs."""

    def lit(text: str) -> str:
        return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")

    ops = "BT /F1 11 Tf 14 TL 72 760 Td " + " ".join(f"({lit(line)}) Tj T*" for line in lines) + " ET"
    stream = ops.encode("latin-1")
    date = created.strftime("D:%Y%m%d%H%M%SZ")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        f"<< /Title ({lit(title)}) /Author (Test Author) /CreationDate ({date}) >>".encode("latin-1"),
    ]
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n")
    offsets = []
    for number, obj in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n" % number + obj + b"\nendobj\n")
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    for offset in offsets:
        out.write(b"%010d 00000 n \n" % offset)
    out.write(
        b"trailer\n<< /Size %d /Root 1 0 R /Info 6 0 R >>\nstartxref\n%d\n%%%%EOF\n"
        % (len(objects) + 1, xref)
    )
    return out.getvalue()


def make_docx(title: str, paras: list[str], created: datetime) -> bytes:
    import docx

    document = docx.Document()
    document.add_heading(title, level=1)
    for para in paras:
        document.add_paragraph(para)
    document.core_properties.title = title
    document.core_properties.author = "Docx Author"
    document.core_properties.created = created.replace(tzinfo=None)
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def make_site(n_articles: int = 300, *, offsite: str = "", seed: int = 8, per_section: int = 50) -> Site:
    """The test website. `offsite` is the base URL of another host (linked, never to be crawled)."""
    rng = random.Random(seed)
    site = Site(offsite_url=offsite)
    res = site.resources
    base_day = datetime(2020, 1, 1, tzinfo=UTC)

    paths = [f"/articles/{i}.html" for i in range(n_articles)]
    sections: list[list[str]] = [paths[i : i + per_section] for i in range(0, n_articles, per_section)]
    for i, path in enumerate(paths):
        lang = LANGS[i % len(LANGS)]
        topic = TOPICS[i % len(TOPICS)]
        title = f"{topic.title()} article {i}"
        paras = paragraphs(rng, lang, topic)
        links = [(rng.choice(paths), "related"), (paths[(i + 1) % n_articles], "next")]
        head = ""
        extra = ""
        modified = base_day + timedelta(days=i)
        if i % 3 == 0:
            published = datetime(2021, 1, 1, tzinfo=UTC) + timedelta(days=i)
            head = f'<meta property="article:published_time" content="{published.isoformat()}">'
            site.published[path] = published
        elif i % 3 == 2:
            site.published[path] = modified  # no date in the page: Last-Modified is the fallback
        if i % 25 == 5:
            head += '<meta property="og:site_name" content="Test Gazette">'
            head += '<meta name="author" content="Ann Writer">'
        if i % 40 == 7:
            broken = f"/missing/{i}.html"
            links.append((broken, "broken"))
            site.broken.append(broken)
        if i % 40 == 9 and offsite:
            links.append((f"{offsite}/elsewhere/{i}.html", "elsewhere"))
        if i % 40 == 11:
            old = f"/old/{i}"
            links.append((old, "old address"))
            res[old] = Resource(status=301, location=path)
            site.redirects[old] = path
        # Tracking parameters and a fragment: the same page, one URL after normalisation.
        links.append((f"{paths[(i + 2) % n_articles]}?utm_source=test#top", "tracked"))
        res[path] = Resource(_html(title, paras, lang, links, head, extra), last_modified=modified)
        site.articles.append(path)
        site.article_lang[path] = lang
        site.article_text[path] = " ".join(paras)

    for number, members in enumerate(sections):
        links = [(p, f"Article {p}") for p in members]
        res[f"/section/{number}.html"] = Resource(
            _html(
                f"Section {number}",
                [f"Section {number} lists {len(members)} articles of this site."],
                "en",
                links,
            ),
            last_modified=FIXED_NOW,
        )

    # Disallowed by robots.txt, linked from the home page.
    site.forbidden = ["/private/secret.html", "/private/other.html"]
    for path in site.forbidden:
        res[path] = Resource(
            _html("Secret", ["This page must never be crawled by a polite robot."], "en", [])
        )

    # An exact copy (another URL) and a near copy (a few words differ) of the first article.
    original = paths[0]
    site.duplicate_of = original
    original_paras = paragraphs(random.Random(seed), LANGS[0], TOPICS[0], count=30)
    site.exact_duplicate = "/copies/exact.html"
    site.near_duplicate = "/copies/near.html"
    res[site.exact_duplicate] = Resource(_html("Copy of article 0", original_paras, "en", []))
    near = list(original_paras)
    near[-1] = near[-1] + " Reposted."
    res[site.near_duplicate] = Resource(_html("Near copy of article 0", near, "en", []))
    res[original] = Resource(
        _html(f"{TOPICS[0].title()} article 0", original_paras, "en", [(paths[1 % n_articles], "next")]),
        last_modified=base_day,
    )
    site.article_text[original] = " ".join(original_paras)

    site.noindex = "/hidden/noindex.html"
    res[site.noindex] = Resource(
        _html(
            "Hidden",
            ["A page that asks not to be indexed but whose links may be followed."],
            "en",
            [("/hidden/followed.html", "followed")],
            head='<meta name="robots" content="noindex">',
        )
    )
    res["/hidden/followed.html"] = Resource(
        _html("Followed from a noindex page", paragraphs(rng, "en", "sailing", 3), "en", [])
    )

    created = datetime(2023, 3, 4, 5, 6, 7, tzinfo=UTC)
    pdf_lines = [f"Annual report on {TOPICS[2]} and pollination."] + [
        sentence(rng, "en", 12) for _ in range(8)
    ]
    res["/files/report.pdf"] = Resource(
        make_pdf("Gardening annual report", pdf_lines, created), "application/pdf"
    )
    res["/files/notes.docx"] = Resource(
        make_docx("Chess opening notes", paragraphs(rng, "en", "chess", 4), created),
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    )
    res["/files/readme.txt"] = Resource(
        ("Beekeeping readme\n\n" + "\n".join(paragraphs(rng, "en", "beekeeping", 3))).encode(),
        "text/plain; charset=utf-8",
        last_modified=created,
    )
    site.files = {"/files/report.pdf": "pdf", "/files/notes.docx": "docx", "/files/readme.txt": "txt"}
    site.published["/files/report.pdf"] = created
    site.oversized = "/files/huge.txt"
    res[site.oversized] = Resource(b"volcanoes " * 60_000, "text/plain")

    # Only in the sitemap (no page links to them).
    site.sitemap_only = [f"/orphans/{i}.html" for i in range(5)]
    for i, path in enumerate(site.sitemap_only):
        res[path] = Resource(
            _html(f"Orphan {i}", paragraphs(rng, "en", "typography", 3), "en", []), last_modified=FIXED_NOW
        )

    home_links = [(f"/section/{n}.html", f"Section {n}") for n in range(len(sections))]
    home_links += [(p, "private") for p in site.forbidden]
    home_links += [
        (site.exact_duplicate, "copy"),
        (site.near_duplicate, "near copy"),
        (site.noindex, "hidden"),
    ]
    home_links += [(p, p) for p in site.files] + [(site.oversized, "big file")]
    if offsite:
        home_links.append((f"{offsite}/", "another site"))
    res["/"] = Resource(
        _html(
            "Test site home", ["Welcome to the generated test site for the Fimum crawler."], "en", home_links
        )
    )
    res["/robots.txt"] = Resource(
        b"User-agent: *\nDisallow: /private/\n\nSitemap: /sitemap.xml\n", "text/plain"
    )
    urlset = "".join(
        f"<url><loc>{p}</loc><lastmod>{FIXED_NOW.date().isoformat()}</lastmod></url>"
        for p in [*site.sitemap_only, *paths[:20]]
    )
    res["/sitemap-pages.xml"] = Resource(
        f'<?xml version="1.0" encoding="UTF-8"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
        f"{urlset}</urlset>".encode(),
        "application/xml",
    )
    res["/sitemap.xml"] = Resource(
        b'<?xml version="1.0" encoding="UTF-8"?><sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
        b"<sitemap><loc>/sitemap-pages.xml</loc></sitemap></sitemapindex>",
        "application/xml",
    )
    return site


class SiteServer:
    """Serves a `Site` on 127.0.0.1 (a free port) in a background thread."""

    def __init__(
        self,
        site: Site,
        host: str = "127.0.0.1",
        name: str | None = None,
        *,
        delay_s: float = 0.0,
        wait_for_agents: int = 0,
        wait_s: float = 60.0,
    ) -> None:
        """`name`: the host name in `url` (e.g. "localhost" for a second, different site).
        `delay_s`: time each answer takes. `wait_for_agents`: hold every answer but the entry pages
        (robots.txt, / and the sitemap) until that many different User-Agents have asked, so crawler
        processes that start apart share the work: the first one's entry pages fill the shared
        frontier, which the later one takes its first requests from."""
        self.site = site
        self.delay_s = delay_s
        self.wait_for_agents = wait_for_agents
        self.wait_s = wait_s
        self.agents_arrived = threading.Event()
        self.hits: Counter[str] = Counter()
        self.hits_by_agent: dict[str, Counter[str]] = {}
        self.conditional: Counter[str] = Counter()  # requests that carried a validator
        self.not_modified: Counter[str] = Counter()
        self.lock = threading.Lock()
        self.httpd = _QuietServer((host, 0), _handler(self))
        self.httpd.daemon_threads = True
        self.host = name or host
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def __enter__(self) -> SiteServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


_ENTRY_PAGES = frozenset({"/robots.txt", "/", "/sitemap.xml"})


class _QuietServer(ThreadingHTTPServer):
    # socketserver's default listen backlog of 5 drops connection attempts when a crawler opens
    # its 16+ connections at once; each drop costs the client a 1 s (then 3 s...) SYN retry.
    request_queue_size = 1024

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a crawler that closes a kept-alive connection is not an error


def _handler(server: SiteServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # keep-alive + Nagle + delayed ACKs = 40 ms per response

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0].split("#", 1)[0]
            agent = self.headers.get("User-Agent", "")
            with server.lock:
                server.hits[path] += 1
                server.hits_by_agent.setdefault(agent, Counter())[path] += 1
                if len(server.hits_by_agent) >= server.wait_for_agents:
                    server.agents_arrived.set()
            if path not in _ENTRY_PAGES and not server.agents_arrived.is_set():
                server.agents_arrived.wait(server.wait_s)
            if server.delay_s:
                time.sleep(server.delay_s)
            resource = server.site.resources.get(path)
            if resource is None:
                self._send(404, b"not found", "text/plain", {})
                return
            if resource.status in (301, 302):
                self._send(resource.status, b"", "text/plain", {"Location": resource.location or "/"})
                return
            headers = {"ETag": resource.etag}
            if resource.last_modified is not None:
                headers["Last-Modified"] = format_datetime(resource.last_modified, usegmt=True)
            if self._not_modified(path, resource):
                self._send(304, b"", None, headers)
                return
            self._send(200, resource.body, resource.content_type, headers)

        def _not_modified(self, path: str, resource: Resource) -> bool:
            inm = self.headers.get("If-None-Match")
            ims = self.headers.get("If-Modified-Since")
            if inm is None and ims is None:
                return False
            with server.lock:
                server.conditional[path] += 1
            if inm is not None:
                result = resource.etag in [tag.strip() for tag in inm.split(",")]
            else:
                try:
                    since = parsedate_to_datetime(ims or "")
                except (TypeError, ValueError):
                    return False
                result = (
                    resource.last_modified is not None
                    and resource.last_modified.replace(microsecond=0) <= since
                )
            if result:
                with server.lock:
                    server.not_modified[path] += 1
            return result

        def _send(self, status: int, body: bytes, content_type: str | None, headers: dict[str, str]) -> None:
            self.send_response(status)
            if content_type:
                self.send_header("Content-Type", content_type)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if body:
                self.wfile.write(body)

    return Handler
