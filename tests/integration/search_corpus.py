"""Pages for the search index tests: many languages and scripts, sites, file types and dates."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fimum_ai.search.documents import Page

NOW = datetime.now(UTC)

# (lang, sentence, a word of it to search for): one page each, all saying "the lighthouse keeper
# watched the storm".
LIGHTHOUSE: list[tuple[str, str, str]] = [
    ("en", "The lighthouse keeper watched the storm from the gallery", "lighthouse"),
    ("de", "Der Leuchtturmwärter beobachtete den Sturm von der Galerie", "leuchtturmwärter"),
    ("fr", "Le gardien du phare regardait la tempête depuis la galerie", "phare"),
    ("es", "El farero observaba la tormenta desde la galería", "farero"),
    ("it", "Il guardiano del faro osservava la tempesta dalla galleria", "guardiano"),
    ("pt", "O faroleiro observava a tempestade da galeria", "faroleiro"),
    ("nl", "De vuurtorenwachter keek vanaf de galerij naar de storm", "vuurtorenwachter"),
    ("sv", "Fyrvaktaren såg stormen från galleriet", "fyrvaktaren"),
    ("da", "Fyrpasseren så stormen fra galleriet", "fyrpasseren"),
    ("no", "Fyrvokteren så på stormen fra galleriet", "fyrvokteren"),
    ("fi", "Majakanvartija katseli myrskyä parvekkeelta", "majakanvartija"),
    ("pl", "Latarnik obserwował burzę z galerii", "latarnik"),
    ("cs", "Strážce majáku pozoroval bouři z ochozu", "majáku"),
    ("hu", "A világítótorony őre figyelte a vihart", "világítótorony"),
    ("ro", "Paznicul farului privea furtuna de pe galerie", "paznicul"),
    ("tr", "Deniz feneri bekçisi fırtınayı galeriden izledi", "bekçisi"),
    ("ru", "Смотритель маяка наблюдал за бурей с галереи", "смотритель"),
    ("uk", "Доглядач маяка спостерігав за бурею з галереї", "доглядач"),
    ("el", "Ο φαροφύλακας παρακολουθούσε την καταιγίδα", "φαροφύλακας"),
    ("ar", "حارس المنارة راقب العاصفة من الشرفة", "المنارة"),
    ("fa", "نگهبان فانوس دریایی طوفان را تماشا کرد", "فانوس"),
    ("he", "שומר המגדלור צפה בסערה מהמרפסת", "המגדלור"),
    ("hi", "प्रकाशस्तंभ के रक्षक ने तूफान देखा", "तूफान"),
    ("bn", "বাতিঘরের রক্ষক ঝড় দেখছিল", "রক্ষক"),
    ("ta", "கலங்கரை விளக்கக் காவலர் புயலைப் பார்த்தார்", "கலங்கரை"),
    ("vi", "Người giữ hải đăng quan sát cơn bão", "hải"),
    ("id", "Penjaga mercusuar mengamati badai dari galeri", "mercusuar"),
    ("zh", "灯塔看守人在走廊上注视着暴风雨", "灯塔"),
    ("ja", "灯台守は回廊から嵐を見守っていた", "灯台守"),
    ("ko", "등대지기는 회랑에서 폭풍을 지켜보았다", "폭풍"),
    ("th", "ผู้ดูแลประภาคารเฝ้าดูพายุจากระเบียง", "ประภาคาร"),
]


def lighthouse_pages() -> list[Page]:
    return [
        Page(
            url=f"https://lighthouse-{lang}.example/{lang}/keeper",
            title=f"{lang}: {sentence.split()[0]}",
            text=sentence,
            lang=lang,
            published=NOW - timedelta(days=30),
            fetched_at=NOW,
            filetype="html",
        )
        for lang, sentence, _ in LIGHTHOUSE
    ]


def topic_pages() -> list[Page]:
    """Pages for filters, stemming, snippets, credibility and semantic search."""
    return [
        Page(
            url="https://docs.python.example/tutorial/indexing",
            title="Indexing documents for fast search",
            text="An inverted index maps each term to the documents containing it. Running queries "
            "against an index is fast because the engine only reads the postings of the query terms.",
            lang="en",
            published=datetime(2025, 3, 1, tzinfo=UTC),
            fetched_at=NOW,
            filetype="html",
            author="Ada Lovelace",
            publisher="Python Docs",
            links=("https://blog.sub.search.example/bm25",),
        ),
        Page(
            url="https://blog.sub.search.example/bm25",
            title="BM25 ranking explained",
            text="BM25 ranks documents by term frequency and inverse document frequency, saturating "
            "repeated terms. It runs inside most search engines, including tantivy and Lucene.",
            lang="en",
            published=datetime(2024, 6, 15, tzinfo=UTC),
            fetched_at=NOW,
            filetype="pdf",
            links=("https://docs.python.example/tutorial/indexing",),
        ),
        Page(
            url="http://recipes.example/bread",
            title="Sourdough bread at home",
            text="Feed the starter, mix flour and water, let the dough rest overnight and bake it in "
            "a hot oven until the crust is dark.",
            lang="en",
            published=datetime(2023, 1, 10, tzinfo=UTC),
            fetched_at=NOW,
            filetype="txt",
            links=("https://docs.python.example/tutorial/indexing",),
        ),
        Page(
            url="https://recipes.example/baguette",
            title="Baking a French baguette",
            text="A baguette needs flour, water, salt and yeast; shape the dough into long loaves and "
            "bake them with steam so the crust crackles.",
            lang="en",
            published=datetime(2025, 9, 1, tzinfo=UTC),
            fetched_at=NOW,
            filetype="docx",
            links=("https://docs.python.example/tutorial/indexing",),
        ),
        Page(
            url="https://kochen.example/brot",
            title="Brot backen",
            text="Mehl, Wasser und Sauerteig mischen, den Teig über Nacht ruhen lassen und im heißen "
            "Ofen backen. Die Bäcker backen jeden Morgen frische Brote.",
            lang="de",
            published=datetime(2024, 11, 2, tzinfo=UTC),
            fetched_at=NOW,
            filetype="html",
        ),
    ]
