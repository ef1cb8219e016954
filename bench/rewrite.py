#!/usr/bin/env python3
"""Rewriting a multi-GB dump: `mediashift rewrite` over a generated
WordPress mysqldump with a 100,000-entry map (called by bench/rewrite,
which builds mediashift; see bench/rewrite for what is measured).

Environment from bench/rewrite: BENCH_MEDIASHIFT (the binary),
BENCH_BUILD ("release" or "debug").

The generator is deterministic by seed: the same seed and size give the
same bytes, and it records what it inserted (replacements per table,
references not in the map, references the rewrite must leave alone) in
expected.json beside the dump, which the output is checked against.
"""

import argparse
import hashlib
import json
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time
from urllib.parse import quote

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORK = os.path.join(ROOT, "bench", "work")
RESULTS = os.path.join(ROOT, "bench", "results")
RUNS_DIR = os.path.join(WORK, "rewrite-runs")
MIB = 1024 * 1024

SEED = 2026
# Bump when the generator's output changes: cached data is made anew.
GEN_VERSION = 2
FULL = {"dump_bytes": 5_000_000_000, "entries": 100_000}
SMOKE = {"dump_bytes": 20_000_000, "entries": 10_000}
TARGET_MB_S = 200.0
TARGET_RSS_MIB = 150.0
# Wait for the 1-minute load average to drop to this before measuring.
QUIET_LOAD = 1.5

SOURCE = "/srv/shop/wp-content/uploads"
DESTINATION = "s3://media/uploads/"
SOURCE_BASE = "https://shop.example/wp-content/uploads/"
HTTP_BASE = "http://shop.example/wp-content/uploads/"
PUBLIC_BASE = "https://cdn.example"
BASES = [SOURCE_BASE, HTTP_BASE]
# The base as it appears in the dump in plain and in JSON-escaped text
# (`\/`, itself escaped by mysqldump to `\\/`): what is left of it in the
# output is counted.
BASE_PLAIN = b"shop.example/wp-content/uploads/"
BASE_JSON = b"shop.example\\\\/wp-content\\\\/uploads\\\\/"
# Share of references whose file is not in the map (a size regenerated
# after the migration).
UNMAPPED = 0.001
# mysqldump's default net_buffer_length: where it starts a new INSERT.
INSERT_BYTES = 1_000_000


def log(msg):
    print(f"bench/rewrite: {msg}", file=sys.stderr, flush=True)


# --- the map ---------------------------------------------------------------------------

def enc(path):
    """Strict RFC 3986: only A-Z a-z 0-9 - . _ ~ raw, `/` kept (as mediashift)."""
    return quote(path, safe="/")


class Attachment:
    """A WordPress attachment: an original and, for images, its sizes."""
    __slots__ = ("id", "dir", "stem", "ext", "mime", "files", "enc", "raw_ok", "juni", "missing")


MIMES = {"jpg": "image/jpeg", "png": "image/png", "webp": "image/webp", "pdf": "application/pdf",
         "mp4": "video/mp4"}
SIZES = ["1024x683", "300x200", "150x150"]


def make_map(n, seed):
    """n files in all, as attachments of 1 (pdf, mp4) or 4 (images) files;
    2% of originals are duplicates of an earlier one. Returns (the map
    document, the attachments)."""
    rng = random.Random(seed)
    atts, entries, originals = [], [], []
    aid = 0
    while len(entries) < n:
        aid += 1
        a = Attachment()
        a.id = aid
        a.dir = f"{rng.randint(2016, 2024)}/{rng.randint(1, 12):02d}"
        r = rng.random()
        if r < 0.03:
            a.stem, a.ext = f"café-{aid}", rng.choice(["jpg", "png"])
        elif r < 0.04:
            a.stem, a.ext = f"Produkt Übersicht {aid}", "jpg"
        elif r < 0.06:
            a.stem, a.ext = f"catalogue-{aid}", "pdf"
        elif r < 0.07:
            a.stem, a.ext = f"video-{aid}", "mp4"
        else:
            a.stem, a.ext = f"img-{aid}", rng.choices(["jpg", "png", "webp"], [7, 2, 1])[0]
        a.mime = MIMES[a.ext]
        names = [f"{a.stem}.{a.ext}"]
        if a.mime.startswith("image/"):
            names += [f"{a.stem}-{s}.{a.ext}" for s in SIZES]
        names = names[:n - len(entries)]
        a.files = [f"{a.dir}/{x}" for x in names]
        a.enc = [enc(p) for p in a.files]
        # Written raw (UTF-8) only if it has no space (a space ends a URL).
        a.raw_ok = " " not in a.stem
        # JSON's \u00XX form, as the dump holds it (`\\u00e9`).
        a.juni = [p.replace("é", "\\\\u00e9") for p in a.files] if "é" in a.stem else None
        a.missing = enc(f"{a.dir}/{a.stem}-768x512.{a.ext}" if a.mime.startswith("image/")
                        else f"{a.dir}/{a.stem}-old.{a.ext}")
        for i, rel in enumerate(a.files):
            key = "uploads/" + rel
            dup = ""
            if i == 0 and originals and rng.random() < 0.02:
                dup, key = rng.choice(originals)
            entries.append({
                "old_url": SOURCE_BASE + enc(rel),
                "new_url": PUBLIC_BASE + "/" + enc(key),
                "key": key,
                "sha256": hashlib.sha256(key.encode()).hexdigest(),
                "size": rng.randint(2_000, 3_000_000),
                "content_type": a.mime,
                "duplicate_of": dup,
            })
            if i == 0 and not dup:
                originals.append((rel, key))
        atts.append(a)
    doc = {"version": 1, "source": SOURCE, "destination": DESTINATION, "source_base_url": SOURCE_BASE,
           "public_base_url": PUBLIC_BASE, "entries": entries}
    return doc, atts


# --- the dump ----------------------------------------------------------------------------

# mysqldump's escaping inside '...'.
ESC = str.maketrans({"\\": "\\\\", "'": "\\'", '"': '\\"', "\n": "\\n", "\r": "\\r", "\0": "\\0",
                     "\x1a": "\\Z"})


def esc(s):
    return s.translate(ESC)


def ser_len(s):
    """A PHP-serialized string's length: its bytes."""
    return len(s.encode("utf-8"))


WORDS = ("the of and to in a is that for it as was with be by on not he this are or his from at which "
         "but have an they you were her she there been one all we their has would when if so no will "
         "product shipping colour size order cart review gallery summer collection linen cotton price "
         "delivery returns stock sale café naïve Übersicht Größe señor déjà-vu crème brûlée 🙂 ½ "
         "it's don't we're \"quoted\" 'single' C:\\Temp\\export back\\slash 50% & <b>bold</b> "
         "wp-content uploads shop.example/about https://example.org/page?x=1&y=2").split(" ")


def filler_pool(rng, n):
    """Paragraphs as Gutenberg stores them, escaped as mysqldump writes
    them: quotes, backslashes, newlines, now and then \\r\\n and a NUL."""
    pool = []
    for i in range(n):
        text = " ".join(rng.choices(WORDS, k=rng.randint(15, 110)))
        nl = "\r\n" if i % 17 == 0 else "\n"
        if i % 97 == 0:
            text += "\0"
        pool.append(esc(f"<!-- wp:paragraph -->{nl}<p>{text.capitalize()}.</p>{nl}<!-- /wp:paragraph -->{nl}{nl}"))
    return pool


class Gen:
    """Writes the dump in INSERT lines of about 1 MB, hashing and counting
    as it goes, and counts the references it puts in: per table, those the
    map knows (to be replaced), those it does not, and those the rewrite
    must leave alone (posts.guid)."""

    def __init__(self, path, atts, rng):
        self.f = open(path, "wb")
        self.sha = hashlib.sha256()
        self.bytes = 0
        self.atts = atts
        self.images = [a for a in atts if a.mime.startswith("image/") and len(a.files) == 4]
        self.docs = [a for a in atts if a.ext == "pdf"]
        self.videos = [a for a in atts if a.ext == "mp4"]
        self.rng = rng
        self.mapped = self.unmapped = self.left_alone = 0
        self.tables = {}
        self.unmapped_by_table = {}
        self.rows = {}

    def write(self, s):
        b = s.encode("utf-8")
        self.f.write(b)
        self.sha.update(b)
        self.bytes += len(b)

    def table(self, name, create, rows):
        """CREATE TABLE, then the rows (an iterator of row strings) as
        extended INSERTs, as mysqldump writes them."""
        m0, u0 = self.mapped, self.unmapped
        self.write(f"\n--\n-- Table structure for table `{name}`\n--\n\nDROP TABLE IF EXISTS `{name}`;\n"
                   "/*!40101 SET @saved_cs_client     = @@character_set_client */;\n"
                   "/*!40101 SET character_set_client = utf8 */;\n"
                   f"CREATE TABLE `{name}` (\n{create}\n) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 "
                   "COLLATE=utf8mb4_unicode_520_ci;\n/*!40101 SET character_set_client = @saved_cs_client */;\n\n"
                   f"--\n-- Dumping data for table `{name}`\n--\n\nLOCK TABLES `{name}` WRITE;\n"
                   f"/*!40000 ALTER TABLE `{name}` DISABLE KEYS */;\n")
        head = f"INSERT INTO `{name}` VALUES "
        batch, size, count = [], 0, 0
        for row in rows:
            batch.append(row)
            size += len(row) + 1
            count += 1
            if size >= INSERT_BYTES:
                self.write(head + ",".join(batch) + ";\n")
                batch, size = [], 0
        if batch:
            self.write(head + ",".join(batch) + ";\n")
        self.write(f"/*!40000 ALTER TABLE `{name}` ENABLE KEYS */;\nUNLOCK TABLES;\n")
        self.tables[name] = self.mapped - m0
        self.rows[name] = count
        self.unmapped_by_table[name] = self.unmapped - u0

    def close(self):
        self.f.close()

    # references: each call is one reference in the dump

    def path(self, a, i):
        """The encoded path of a's file i, or (0.1%) of a file the map
        does not know."""
        if self.rng.random() < UNMAPPED:
            self.unmapped += 1
            return a.missing
        self.mapped += 1
        return a.enc[i]

    def scheme(self):
        return HTTP_BASE if self.rng.random() < 0.2 else SOURCE_BASE

    def json_url(self, a, i):
        """A URL inside JSON (`\\/`), as the dump holds it (`\\\\/`); an
        é name sometimes as `\\u00e9`."""
        if a.juni and self.rng.random() < 0.5:
            self.mapped += 1
            p = a.juni[i]
        else:
            p = self.path(a, i)
        return (self.scheme() + p).replace("/", "\\\\/")

    def fragment(self):
        """Some HTML or block markup with references, dump-escaped."""
        rng = self.rng
        r = rng.random()
        if r < 0.30:
            a = rng.choice(self.images)
            return (f'<!-- wp:image {{\\"id\\":{a.id},\\"sizeSlug\\":\\"large\\"}} -->\\n<figure class=\\"wp-block-image '
                    f'size-large\\"><img src=\\"{self.scheme()}{self.path(a, 1)}\\" alt=\\"\\" class=\\"wp-image-{a.id}\\"/>'
                    '</figure>\\n<!-- /wp:image -->\\n\\n')
        if r < 0.55:
            a = rng.choice(self.images)
            return (f'<p><img class=\\"alignnone size-large wp-image-{a.id}\\" src=\\"{self.scheme()}{self.path(a, 1)}\\" '
                    f'alt=\\"\\" width=\\"1024\\" height=\\"683\\" srcset=\\"{self.scheme()}{self.path(a, 1)} 1024w, '
                    f'{self.scheme()}{self.path(a, 2)} 300w, {self.scheme()}{self.path(a, 3)} 150w\\" '
                    'sizes=\\"(max-width: 1024px) 100vw, 1024px\\" /></p>\\n')
        if r < 0.70:
            a = rng.choice(self.images)
            return (f'<a href=\\"{self.scheme()}{self.path(a, 0)}\\"><img src=\\"{self.scheme()}{self.path(a, 2)}\\" '
                    f'alt=\\"\\" width=\\"300\\" height=\\"200\\" /></a>\\n')
        if r < 0.82:
            a = rng.choice(self.images)
            return (f'<!-- wp:cover {{\\"url\\":\\"{self.json_url(a, 0)}\\",\\"id\\":{a.id},\\"dimRatio\\":50}} -->\\n'
                    f'<div class=\\"wp-block-cover\\" style=\\"background-image:url({self.scheme()}{self.path(a, 0)})\\">'
                    '</div>\\n<!-- /wp:cover -->\\n\\n')
        if r < 0.88:
            a = rng.choice(self.images)
            shown = a.files[0] if a.raw_ok and rng.random() >= UNMAPPED else None
            if shown is not None:
                self.mapped += 1
            else:
                shown = self.path(a, 0)
            return (f'<p>Full size: <a href=\\"{SOURCE_BASE}{self.path(a, 0)}\\">{SOURCE_BASE}{shown}</a>.</p>\\n')
        if r < 0.93:
            a = rng.choice(self.images)
            return f'<img src=\\"{self.scheme()}{self.path(a, 3)}?ver=2\\" alt=\\"\\" />\\n'
        if r < 0.97:
            a = rng.choice(self.docs)
            return (f'<!-- wp:file {{\\"id\\":{a.id},\\"href\\":\\"{self.json_url(a, 0)}\\"}} -->\\n<div class=\\"wp-block-file\\">'
                    f'<a href=\\"{self.scheme()}{self.path(a, 0)}\\">Download the catalogue</a></div>\\n<!-- /wp:file -->\\n\\n')
        a = rng.choice(self.videos)
        return (f'<!-- wp:video {{\\"id\\":{a.id}}} -->\\n<figure class=\\"wp-block-video\\"><video controls '
                f'src=\\"{self.scheme()}{self.path(a, 0)}\\"></video></figure>\\n<!-- /wp:video -->\\n\\n')

    def serialized_url(self, a, i):
        """A PHP-serialized array with a URL (raw UTF-8 when the name allows),
        lengths in bytes, dump-escaped."""
        if a.raw_ok and "é" in a.stem and self.rng.random() >= UNMAPPED:
            self.mapped += 1
            url = SOURCE_BASE + a.files[i]
        else:
            url = SOURCE_BASE + self.path(a, i)
        return esc(f'a:3:{{s:3:"url";s:{ser_len(url)}:"{url}";s:5:"width";i:1024;s:6:"height";i:683;}}')


CREATE_OPTIONS = """  `option_id` bigint(20) unsigned NOT NULL AUTO_INCREMENT,
  `option_name` varchar(191) NOT NULL DEFAULT '',
  `option_value` longtext NOT NULL,
  `autoload` varchar(20) NOT NULL DEFAULT 'yes',
  PRIMARY KEY (`option_id`),
  UNIQUE KEY `option_name` (`option_name`),
  KEY `autoload` (`autoload`)"""

CREATE_POSTMETA = """  `meta_id` bigint(20) unsigned NOT NULL AUTO_INCREMENT,
  `post_id` bigint(20) unsigned NOT NULL DEFAULT 0,
  `meta_key` varchar(255) DEFAULT NULL,
  `meta_value` longtext DEFAULT NULL,
  PRIMARY KEY (`meta_id`),
  KEY `post_id` (`post_id`),
  KEY `meta_key` (`meta_key`(191))"""

CREATE_POSTS = """  `ID` bigint(20) unsigned NOT NULL AUTO_INCREMENT,
  `post_author` bigint(20) unsigned NOT NULL DEFAULT 0,
  `post_date` datetime NOT NULL DEFAULT '0000-00-00 00:00:00',
  `post_date_gmt` datetime NOT NULL DEFAULT '0000-00-00 00:00:00',
  `post_content` longtext NOT NULL,
  `post_title` text NOT NULL,
  `post_excerpt` text NOT NULL,
  `post_status` varchar(20) NOT NULL DEFAULT 'publish',
  `comment_status` varchar(20) NOT NULL DEFAULT 'open',
  `ping_status` varchar(20) NOT NULL DEFAULT 'open',
  `post_password` varchar(255) NOT NULL DEFAULT '',
  `post_name` varchar(200) NOT NULL DEFAULT '',
  `to_ping` text NOT NULL,
  `pinged` text NOT NULL,
  `post_modified` datetime NOT NULL DEFAULT '0000-00-00 00:00:00',
  `post_modified_gmt` datetime NOT NULL DEFAULT '0000-00-00 00:00:00',
  `post_content_filtered` longtext NOT NULL,
  `post_parent` bigint(20) unsigned NOT NULL DEFAULT 0,
  `guid` varchar(255) NOT NULL DEFAULT '',
  `menu_order` int(11) NOT NULL DEFAULT 0,
  `post_type` varchar(20) NOT NULL DEFAULT 'post',
  `post_mime_type` varchar(100) NOT NULL DEFAULT '',
  `comment_count` bigint(20) NOT NULL DEFAULT 0,
  PRIMARY KEY (`ID`),
  KEY `post_name` (`post_name`(191)),
  KEY `type_status_date` (`post_type`,`post_status`,`post_date`,`ID`),
  KEY `post_parent` (`post_parent`),
  KEY `post_author` (`post_author`)"""

HEADER = """-- MariaDB dump 10.19  Distrib 10.11.6-MariaDB, for debian-linux-gnu (x86_64)
--
-- Host: localhost    Database: shop
-- ------------------------------------------------------
-- Server version\t10.11.6-MariaDB-0+deb12u1

/*!40101 SET @OLD_CHARACTER_SET_CLIENT=@@CHARACTER_SET_CLIENT */;
/*!40101 SET @OLD_CHARACTER_SET_RESULTS=@@CHARACTER_SET_RESULTS */;
/*!40101 SET @OLD_COLLATION_CONNECTION=@@COLLATION_CONNECTION */;
/*!40101 SET NAMES utf8mb4 */;
/*!40103 SET @OLD_TIME_ZONE=@@TIME_ZONE */;
/*!40103 SET TIME_ZONE='+00:00' */;
/*!40014 SET @OLD_UNIQUE_CHECKS=@@UNIQUE_CHECKS, UNIQUE_CHECKS=0 */;
/*!40014 SET @OLD_FOREIGN_KEY_CHECKS=@@FOREIGN_KEY_CHECKS, FOREIGN_KEY_CHECKS=0 */;
/*!40101 SET @OLD_SQL_MODE=@@SQL_MODE, SQL_MODE='NO_AUTO_VALUE_ON_ZERO' */;
/*!40111 SET @OLD_SQL_NOTES=@@SQL_NOTES, SQL_NOTES=0 */;
"""

FOOTER = """/*!40103 SET TIME_ZONE=@OLD_TIME_ZONE */;

/*!40101 SET SQL_MODE=@OLD_SQL_MODE */;
/*!40014 SET FOREIGN_KEY_CHECKS=@OLD_FOREIGN_KEY_CHECKS */;
/*!40014 SET UNIQUE_CHECKS=@OLD_UNIQUE_CHECKS */;
/*!40101 SET CHARACTER_SET_CLIENT=@OLD_CHARACTER_SET_CLIENT */;
/*!40101 SET CHARACTER_SET_RESULTS=@OLD_CHARACTER_SET_RESULTS */;
/*!40101 SET COLLATION_CONNECTION=@OLD_COLLATION_CONNECTION */;
/*!40111 SET SQL_NOTES=@OLD_SQL_NOTES */;

-- Dump completed on 2026-11-30  3:14:07
"""


def options_rows(g, rng):
    """Settings, a theme's header image (serialized), image widgets (a
    serialized string inside a serialized array) and a JSON option."""
    oid = 0
    fixed = [("siteurl", "https://shop.example"), ("home", "https://shop.example"),
             ("blogname", "Shop d'été"), ("upload_path", SOURCE), ("upload_url_path", ""),
             ("uploads_use_yearmonth_folders", "1")]
    for name, value in fixed:
        oid += 1
        yield f"({oid},'{esc(name)}','{esc(value)}','yes')"
    for t in range(60):
        oid += 1
        a = rng.choice(g.images)
        url = SOURCE_BASE + g.path(a, 0)
        v = (f'a:3:{{s:18:"custom_css_post_id";i:-1;s:12:"header_image";s:{ser_len(url)}:"{url}";'
             f's:16:"background_color";s:6:"ffffff";}}')
        yield f"({oid},'theme_mods_theme-{t}','{esc(v)}','yes')"
    for w in range(60):
        oid += 1
        a = rng.choice(g.images)
        url = SOURCE_BASE + g.path(a, 1)
        inner = f'a:2:{{s:3:"url";s:{ser_len(url)}:"{url}";s:13:"attachment_id";i:{a.id};}}'
        v = f'a:2:{{i:2;a:2:{{s:5:"title";s:0:"";s:6:"widget";s:{ser_len(inner)}:"{inner}";}}s:12:"_multiwidget";i:1;}}'
        yield f"({oid},'widget_media_image_{w}','{esc(v)}','yes')"
    for j in range(60):
        oid += 1
        a = rng.choice(g.images)
        yield (f"({oid},'_transient_gallery_{j}','{{\\\"image\\\":\\\"{g.json_url(a, 2)}\\\","
               f"\\\"id\\\":{a.id}}}','no')")
    for j in range(200):
        oid += 1
        yield f"({oid},'_transient_timeout_feed_{j:04x}','{1764000000 + j}','no')"


def attachment_meta(a):
    """_wp_attachment_metadata: relative names only, no URL (left alone)."""
    sizes = []
    for label, s, f in zip(["large", "medium", "thumbnail"], SIZES, a.files[1:]):
        w, h = s.split("x")
        name = f.rsplit("/", 1)[1]
        sizes.append(f's:{len(label)}:"{label}";a:4:{{s:4:"file";s:{ser_len(name)}:"{name}";s:5:"width";i:{w};'
                     f's:6:"height";i:{h};s:9:"mime-type";s:{len(a.mime)}:"{a.mime}";}}')
    return (f'a:5:{{s:5:"width";i:2048;s:6:"height";i:1365;s:4:"file";s:{ser_len(a.files[0])}:"{a.files[0]}";'
            f's:5:"sizes";a:{len(sizes)}:{{{"".join(sizes)}}}s:10:"image_meta";a:0:{{}}}}')


def postmeta_rows(g, rng, first_post, posts):
    mid = 0
    for a in g.atts:
        mid += 1
        yield f"({mid},{a.id},'_wp_attached_file','{esc(a.files[0])}')"
        if len(a.files) == 4:
            mid += 1
            yield f"({mid},{a.id},'_wp_attachment_metadata','{esc(attachment_meta(a))}')"
    for pid in range(first_post, first_post + posts):
        r = rng.random()
        if r < 0.5:
            mid += 1
            yield f"({mid},{pid},'_thumbnail_id','{rng.choice(g.images).id}')"
        if r < 0.15:
            mid += 1
            a = rng.choice(g.images)
            data = (f'[{{\\"id\\":\\"{pid:07x}\\",\\"elType\\":\\"section\\",\\"settings\\":{{\\"background_image\\":'
                    f'{{\\"url\\":\\"{g.json_url(a, 0)}\\",\\"id\\":{a.id}}}}},\\"elements\\":[{{\\"id\\":\\"{pid:07x}b\\",'
                    f'\\"elType\\":\\"widget\\",\\"settings\\":{{\\"image\\":{{\\"url\\":\\"{g.json_url(a, 1)}\\",\\"id\\":{a.id}}},'
                    f'\\"title\\":\\"Summer\\\\u2019s collection\\"}},\\"widgetType\\":\\"image\\"}}]}}]')
            yield f"({mid},{pid},'_elementor_data','{data}')"
        elif r < 0.30:
            mid += 1
            yield f"({mid},{pid},'_product_header','{g.serialized_url(rng.choice(g.images), 1)}')"
        elif r < 0.40:
            mid += 1
            a = rng.choice(g.images)
            yield f"({mid},{pid},'_yoast_wpseo_opengraph-image','{g.scheme()}{g.path(a, 0)}')"
        elif r < 0.70:
            mid += 1
            yield f"({mid},{pid},'_edit_lock','{1764000000 + pid}:1')"


def dates(rng, n=1000):
    out = []
    for _ in range(n):
        t = rng.randint(1451606400, 1764000000)
        out.append(time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(t)))
    return out


def attachment_rows(g, when):
    for a in g.atts:
        d = when[a.id % len(when)]
        # guid: the original's URL, an identifier the rewrite leaves alone.
        g.left_alone += 1
        title = esc(a.stem)
        slug = enc(a.stem.lower())
        yield (f"({a.id},1,'{d}','{d}','','{title}','','inherit','open','closed','','{slug}','','','{d}','{d}','',0,"
               f"'{HTTP_BASE}{a.enc[0]}',0,'attachment','{a.mime}',0)")


def post_rows(g, rng, first, budget, pool, when):
    """Posts until the dump holds `budget` more bytes: about 15% without
    media, the rest with one to four fragments of markup among the
    paragraphs."""
    titles = [esc(" ".join(rng.choices(WORDS[:60], k=rng.randint(2, 7))).title()) for _ in range(500)]
    pid = first
    start = g.bytes
    written = 0
    while g.bytes - start + written < budget:
        parts = rng.choices(pool, k=rng.randint(2, 16))
        if rng.random() >= 0.15:
            for _ in range(rng.choices([1, 2, 3, 4], [4, 3, 2, 1])[0]):
                parts.insert(rng.randrange(len(parts) + 1), g.fragment())
        content = "".join(parts)
        d = when[pid % len(when)]
        title = titles[pid % len(titles)]
        kind = "page" if pid % 23 == 0 else ("product" if pid % 3 == 0 else "post")
        row = (f"({pid},1,'{d}','{d}','{content}','{title}','','publish','open','open','','post-{pid}','','',"
               f"'{d}','{d}','',0,'https://shop.example/?p={pid}',0,'{kind}','',0)")
        # Bytes not yet written (the batch in progress), roughly.
        written = (written + len(row) + 1) if written + len(row) < INSERT_BYTES else 0
        pid += 1
        yield row


def generate(d, params, seed):
    """map.json, dump.sql and expected.json in d (made once: expected.json
    last, as the stamp)."""
    t0 = time.monotonic()
    os.makedirs(d, exist_ok=True)
    doc, atts = make_map(params["entries"], seed)
    with open(os.path.join(d, "map.json.tmp"), "w") as f:
        json.dump(doc, f, indent=2, ensure_ascii=False)
    os.replace(os.path.join(d, "map.json.tmp"), os.path.join(d, "map.json"))
    rng = random.Random(seed + 1)
    g = Gen(os.path.join(d, "dump.sql.tmp"), atts, rng)
    pool = filler_pool(random.Random(seed + 2), 4096)
    when = dates(random.Random(seed + 3))
    target = params["dump_bytes"]
    g.write(HEADER)
    g.table("wp_options", CREATE_OPTIONS, options_rows(g, rng))
    first_post = atts[-1].id + 1
    # Post metadata comes first (mysqldump goes in name order): for as many
    # posts as the byte budget will hold, at about 4.5 KB a post.
    est_posts = max(100, int(target * 0.88 / 4500))
    g.table("wp_postmeta", CREATE_POSTMETA, postmeta_rows(g, rng, first_post, est_posts))

    def all_posts():
        yield from attachment_rows(g, when)
        yield from post_rows(g, rng, first_post, target - g.bytes - len(FOOTER) - 200, pool, when)
    g.table("wp_posts", CREATE_POSTS, all_posts())
    g.write(FOOTER)
    g.close()
    os.replace(os.path.join(d, "dump.sql.tmp"), os.path.join(d, "dump.sql"))
    expected = {
        "generator_version": GEN_VERSION, "seed": seed, "params": params, "bytes": g.bytes,
        "sha256": g.sha.hexdigest(), "map_entries": len(doc["entries"]),
        "attachments": len(atts), "rows": g.rows,
        "replacements": g.mapped, "replacements_by_table": g.tables,
        "not_in_map": g.unmapped, "not_in_map_by_table": g.unmapped_by_table,
        # Left in the output: references not in the map, and posts.guid.
        "guid_refs": g.left_alone, "base_left_in_output": g.unmapped + g.left_alone,
        "generated_s": round(time.monotonic() - t0, 1),
    }
    with open(os.path.join(d, "expected.json.tmp"), "w") as f:
        json.dump(expected, f, indent=2)
    os.replace(os.path.join(d, "expected.json.tmp"), os.path.join(d, "expected.json"))
    return expected


def data_dir(params, seed):
    return os.path.join(WORK, f"rewrite-data-{params['entries']}-{params['dump_bytes']}-s{seed}-v{GEN_VERSION}")


def ensure_data(params, seed):
    d = data_dir(params, seed)
    keep = {os.path.basename(data_dir(FULL, SEED)), os.path.basename(data_dir(SMOKE, SEED)),
            os.path.basename(d)}
    for name in os.listdir(WORK):
        if name.startswith("rewrite-data-") and name not in keep:
            log(f"removing stale generated data bench/work/{name}")
            shutil.rmtree(os.path.join(WORK, name), ignore_errors=True)
    try:
        with open(os.path.join(d, "expected.json")) as f:
            exp = json.load(f)
        if exp.get("generator_version") == GEN_VERSION and os.path.getsize(os.path.join(d, "dump.sql")) == exp["bytes"]:
            return d, exp
    except (OSError, ValueError, KeyError):
        pass
    log(f"generating a {params['dump_bytes'] / 1e6:,.0f} MB dump and a {params['entries']:,}-entry map "
        f"(seed {seed}) in {os.path.relpath(d, ROOT)} ...")
    exp = generate(d, params, seed)
    log(f"generated {exp['bytes']:,} bytes in {exp['generated_s']} s: {exp['replacements']:,} references "
        f"to mapped files, {exp['not_in_map']:,} not in the map, {exp['guid_refs']:,} in posts.guid")
    return d, exp


# --- measuring -------------------------------------------------------------------------

def timed(cmd, rundir, name):
    """cmd under GNU time; returns (exit code, wall, user, sys, rss_kib, stdout text)."""
    tfile = os.path.join(rundir, f"{name}.time")
    with open(os.path.join(rundir, f"{name}.stdout"), "w") as so, \
            open(os.path.join(rundir, f"{name}.stderr"), "w") as se:
        rc = subprocess.run(["/usr/bin/time", "-f", "%e %U %S %M", "-o", tfile, *cmd],
                            stdout=so, stderr=se).returncode
    # On failure GNU time writes "Command exited with non-zero status N" first.
    wall, user, sys_, rss = open(tfile).read().strip().splitlines()[-1].split()
    return rc, float(wall), float(user), float(sys_), int(rss), open(os.path.join(rundir, f"{name}.stdout")).read()


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(8 * MIB)
            if not b:
                return h.hexdigest()
            h.update(b)


SER_URL = re.compile(rb's:(\d+):\\"(https?://[^"\\]*)\\";')
SER_WIDGET = re.compile(rb's:6:\\"widget\\";s:(\d+):\\"(a:2:\{.*?\})\\";')


def scan_output(path):
    """What of the base is left in the rewritten dump (plain and
    JSON-escaped), and whether every serialized URL string, and each
    serialized string holding one, has its length in bytes."""
    left = bad = checked = 0
    examples = []
    carry = b""
    with open(path, "rb") as f:
        while True:
            b = f.read(16 * MIB)
            if not b:
                break
            # Lines are whole INSERTs: scan up to the last newline.
            buf = carry + b
            cut = buf.rfind(b"\n") + 1 or len(buf)
            part, carry = buf[:cut], buf[cut:]
            left += part.count(BASE_PLAIN) + part.count(BASE_JSON)
            for m in SER_URL.finditer(part):
                checked += 1
                if int(m.group(1)) != len(m.group(2)):
                    bad += 1
                    if len(examples) < 3:
                        examples.append(m.group(0)[:200].decode("utf-8", "replace"))
            for m in SER_WIDGET.finditer(part):
                checked += 1
                inner = m.group(2).replace(b'\\"', b'"').replace(b"\\\\", b"\\")
                if int(m.group(1)) != len(inner):
                    bad += 1
                    if len(examples) < 3:
                        examples.append(m.group(0)[:200].decode("utf-8", "replace"))
    if carry:
        left += carry.count(BASE_PLAIN) + carry.count(BASE_JSON)
    return {"base_left": left, "serialized_checked": checked, "serialized_bad": bad, "bad_examples": examples}


def warm(path):
    """The input in the page cache (it fits: the runs measure the
    rewrite, not the disk's reads)."""
    with open(path, "rb", buffering=0) as f:
        while f.read(16 * MIB):
            pass


def loadavg():
    return [round(x, 2) for x in os.getloadavg()]


def wait_quiet(max_wait):
    """Waits (up to max_wait seconds) for the 1-minute load average to
    fall to QUIET_LOAD; returns what it was when measuring began."""
    waited = 0
    while os.getloadavg()[0] > QUIET_LOAD and waited < max_wait:
        if waited == 0:
            log(f"load average {loadavg()}: waiting up to {max_wait} s for it to fall to {QUIET_LOAD}")
        time.sleep(15)
        waited += 15
    if waited:
        log(f"load average {loadavg()} after waiting {waited} s")
    return waited


def rewrite_cmd(bin_, d, out, dry=False):
    cmd = [bin_, "rewrite", "--map", os.path.join(d, "map.json")]
    for b in BASES:
        cmd += ["--base", b]
    cmd += [os.path.join(d, "dump.sql"), "-o", out, "--json"]
    return cmd + (["--dry-run"] if dry else [])


def check_doc(rc, stdout, exp):
    """Problems with a rewrite's report against what was generated."""
    try:
        doc = json.loads(stdout)
        f = doc["files"][0]
    except (ValueError, KeyError, IndexError):
        return [f"exit {rc}, no JSON report"], None
    problems = []
    # References not in the map are listed, not an error (without --strict).
    want_rc = 0
    if rc != want_rc:
        problems.append(f"exit {rc}, expected {want_rc}")
    if f.get("error"):
        problems.append(f"error: {f['error']}")
    if f.get("format") != "mysql dump":
        problems.append(f"read as {f.get('format')!r}, not a mysql dump")
    if doc.get("replacements") != exp["replacements"]:
        problems.append(f"{doc.get('replacements')} replacements, the generator inserted {exp['replacements']}")
    want_tables = {k: v for k, v in exp["replacements_by_table"].items() if v}
    if f.get("tables") != want_tables:
        problems.append(f"replacements by table {f.get('tables')}, expected {want_tables}")
    if f.get("not_in_map_total") != exp["not_in_map"]:
        problems.append(f"not_in_map_total {f.get('not_in_map_total')}, the generator inserted {exp['not_in_map']}")
    if f.get("serialized_errors"):
        problems.append(f"{len(f['serialized_errors'])} serialized errors, e.g. {f['serialized_errors'][0]}")
    if f.get("invalid_utf8_at") is not None:
        problems.append(f"invalid UTF-8 at {f['invalid_utf8_at']}")
    return problems, doc


def run_one(bin_, d, exp, rundir, name, dry=False):
    out = os.path.join(rundir, "out.sql")
    for p in (out, out + ".rollback"):
        if os.path.exists(p):
            os.remove(p)
    load = loadavg()
    rc, wall, user, sys_, rss, stdout = timed(rewrite_cmd(bin_, d, out, dry), rundir, name)
    problems, doc = check_doc(rc, stdout, exp)
    if dry and os.path.exists(out):
        problems.append("--dry-run wrote the output")
    res = {"name": name, "dry_run": dry, "exit_code": rc, "wall_s": wall, "user_s": user, "sys_s": sys_,
           "cpu_s": round(user + sys_, 2), "peak_rss_kib": rss, "peak_rss_mib": round(rss / 1024, 1),
           "mb_per_s": round(exp["bytes"] / wall / 1e6, 1) if wall else None, "load_before": load,
           "replacements": doc.get("replacements") if doc else None,
           "not_in_map_total": doc["files"][0].get("not_in_map_total") if doc else None,
           "output_bytes": os.path.getsize(out) if os.path.exists(out) else None,
           "rollback_bytes": os.path.getsize(out + ".rollback") if os.path.exists(out + ".rollback") else None,
           "problems": problems, "ok": not problems}
    log(f"{name}: exit {rc}, {wall:.2f} s wall ({res['mb_per_s']} MB/s), {user:.2f} user + {sys_:.2f} sys, "
        f"peak RSS {rss / 1024:.1f} MiB, {res['replacements']} replacements, load {load[0]}"
        + ("" if not problems else "  PROBLEMS: " + "; ".join(problems)))
    return res, out


def check_output(bin_, out, exp, rundir):
    """The rewritten dump scanned, then undone (timed) and compared."""
    res = {"scan": scan_output(out)}
    s = res["scan"]
    problems = []
    if s["base_left"] != exp["base_left_in_output"]:
        problems.append(f"{s['base_left']} occurrences of the old base left in the output, expected "
                        f"{exp['base_left_in_output']} (references not in the map + posts.guid)")
    if s["serialized_bad"]:
        problems.append(f"{s['serialized_bad']} of {s['serialized_checked']} serialized strings with a wrong "
                        f"length, e.g. {s['bad_examples'][0]}")
    restored = os.path.join(rundir, "restored.sql")
    load = loadavg()
    rc, wall, user, sys_, rss, stdout = timed([bin_, "rewrite", "--undo", out + ".rollback", out, "-o", restored,
                                               "--json"], rundir, "undo")
    res["undo"] = {"exit_code": rc, "wall_s": wall, "user_s": user, "sys_s": sys_, "cpu_s": round(user + sys_, 2),
                   "peak_rss_kib": rss, "peak_rss_mib": round(rss / 1024, 1),
                   "mb_per_s": round(exp["bytes"] / wall / 1e6, 1) if wall else None, "load_before": load}
    if rc != 0:
        problems.append(f"undo: exit {rc}")
    try:
        u = json.loads(stdout)
        res["undo"]["spans"] = u.get("spans")
        if u.get("sha256") != exp["sha256"]:
            problems.append(f"undo reports SHA-256 {u.get('sha256')}, the input's is {exp['sha256']}")
    except ValueError:
        problems.append("undo: no JSON report")
    if os.path.exists(restored):
        got = sha256_file(restored)
        res["restored_sha256"] = got
        if got != exp["sha256"]:
            problems.append(f"the restored file's SHA-256 {got} is not the input's {exp['sha256']}")
        os.remove(restored)
    else:
        problems.append("undo wrote no file")
    res["restored_matches_input"] = res.get("restored_sha256") == exp["sha256"]
    log(f"output check: {s['base_left']:,} old-base occurrences left (expected {exp['base_left_in_output']:,}), "
        f"{s['serialized_checked']:,} serialized strings checked, {s['serialized_bad']} wrong; undo {wall:.2f} s, "
        f"peak RSS {rss / 1024:.1f} MiB, restored SHA-256 "
        + ("matches" if res["restored_matches_input"] else "DIFFERS"))
    res["problems"] = problems
    return res


def disk_write_mb_s(rundir, mb):
    """Sequential write with fdatasync, as the rewrite's output is synced."""
    p = os.path.join(rundir, "dd.bin")
    r = subprocess.run(["dd", "if=/dev/zero", f"of={p}", "bs=1M", f"count={mb}", "conv=fdatasync"],
                       capture_output=True, text=True)
    os.remove(p)
    m = re.search(r"copied, ([\d.]+) s", r.stderr)
    return round(mb * MIB / float(m.group(1)) / 1e6, 1) if m else None


def profile(bin_, d, rundir, dry, top=15):
    """A flat CPU profile (perf, 999 Hz, user and kernel) of one run: the
    top symbols and their share of the samples. Not timed."""
    data = os.path.join(rundir, "perf.data")
    out = os.path.join(rundir, "out.sql")
    cmd = ["perf", "record", "-F", "999", "-o", data, "--"] + rewrite_cmd(bin_, d, out, dry=dry)
    r = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    for p in (out, out + ".rollback"):
        if os.path.exists(p):
            os.remove(p)
    if r.returncode not in (0, 1):
        log(f"perf record failed: {r.stderr.strip()[-300:]}")
        return None
    rep = subprocess.run(["perf", "report", "-i", data, "--no-children", "--sort", "symbol", "--stdio", "-q"],
                         capture_output=True, text=True).stdout
    os.remove(data)
    rows = []
    for line in rep.splitlines():
        m = re.match(r"\s*([\d.]+)%\s+\[(.)\]\s+(.+?)(\s{2,}|$)", line)
        if m:
            rows.append({"share_pct": float(m.group(1)), "kernel": m.group(2) == "k", "symbol": m.group(3)})
    return rows[:top]


def median(runs, key):
    vals = [r[key] for r in runs if r.get(key) is not None]
    return statistics.median(vals) if vals else None


def markdown(doc):
    s, e = doc["summary"], doc["dump"]
    smoke = doc["mode"] == "smoke"

    def yes(ok):
        if smoke:
            return "not judged (smoke: debug build, tiny dump)"
        return "yes" if ok else "**no**"
    disk = f"{doc['disk_write_mb_s']} MB/s" if doc.get("disk_write_mb_s") else "not measured"
    md = [f"# mediashift rewrite over a {e['bytes'] / 1e9:.2f} GB dump ({doc['mode']} run, {doc['date']})", "",
          f"{doc['build']} build ({doc['version']}, {doc['source']}), {doc['cores']} cores, {doc['memory_gib']} GiB RAM; the dump "
          f"is in the page cache (read just before each run); the disk's sequential write with fdatasync: {disk}. "
          f"Load average (1, 5, 15 min) before the runs: {doc['load_before']}, after: {doc['load_after']}. "
          "See bench/rewrite for the method.", "",
          f"A WordPress mysqldump (`-- MariaDB dump 10.19`, extended INSERTs of ~1 MB) of {e['bytes']:,} bytes: "
          f"{e['rows'].get('wp_posts', 0):,} wp_posts rows, {e['rows'].get('wp_postmeta', 0):,} wp_postmeta, "
          f"{e['rows'].get('wp_options', 0):,} wp_options; {e['replacements']:,} references to mapped files "
          f"(HTML src/srcset over http and https, block JSON with `\\/`, PHP-serialized values, raw and "
          f"percent-encoded non-ASCII names), {e['not_in_map']:,} not in the map, {e['guid_refs']:,} in "
          f"posts.guid (left alone). Map: {e['map_entries']:,} entries.", "",
          "`mediashift rewrite --map map.json --base https://shop.example/wp-content/uploads/ "
          "--base http://shop.example/wp-content/uploads/ dump.sql -o out.sql --json` under GNU time.", "",
          f"| | target | median of {len(doc['runs'])} | met? |", "|---|---|---|---|",
          f"| throughput | >= {TARGET_MB_S:.0f} MB/s | {s['mb_per_s']} MB/s ({s['wall_s']} s wall) | "
          f"{yes(s['throughput_met'])} |",
          f"| peak RSS | <= {TARGET_RSS_MIB:.0f} MiB | {s['peak_rss_mib']} MiB | {yes(s['rss_met'])} |", "",
          "| run | wall s | MB/s | user s | sys s | CPU s | peak RSS MiB | replacements | not in map | load | ok |",
          "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in doc["runs"] + ([doc["dry_run"]] if doc.get("dry_run") else []):
        md.append(f"| {r['name']} | {r['wall_s']} | {r['mb_per_s']} | {r['user_s']} | {r['sys_s']} | {r['cpu_s']} | "
                  f"{r['peak_rss_mib']} | {r['replacements']} | {r['not_in_map_total']} | {r['load_before'][0]} | "
                  f"{'yes' if r['ok'] else 'NO'} |")
    c = doc.get("check")
    if c:
        u = c["undo"]
        md.append(f"| undo | {u['wall_s']} | {u['mb_per_s']} | {u['user_s']} | {u['sys_s']} | {u['cpu_s']} | "
                  f"{u['peak_rss_mib']} | | | {u['load_before'][0]} | "
                  f"{'yes' if c['restored_matches_input'] else 'NO'} |")
        md += ["", f"Output check (run {len(doc['runs'])}): {c['scan']['base_left']:,} occurrences of the old base left (expected "
               f"{e['base_left_in_output']:,}: not in the map + guid), {c['scan']['serialized_checked']:,} "
               f"serialized URL strings checked for their byte length ({c['scan']['serialized_bad']} wrong); "
               f"`rewrite --undo` restored a file with the input's SHA-256: "
               f"{'yes' if c['restored_matches_input'] else 'NO'}."]
    if s.get("dry_run_wall_s"):
        dry = doc["dry_run"]
        md += ["", f"--dry-run (reads and rewrites in memory, writes nothing): {s['dry_run_wall_s']} s, "
               f"{s['dry_run_mb_per_s']} MB/s, {s['dry_run_cpu_s']} CPU s ({dry['user_s']} user, {dry['sys_s']} sys); "
               f"writing the output (and syncing it) costs {s['write_cost_s']} s of the median run's wall "
               f"({s['user_s'] - dry['user_s']:+.2f} s user, {s['sys_s'] - dry['sys_s']:+.2f} s sys)."]
    md += ["", f"Median CPU {s['cpu_s']} s ({s['user_s']} user, {s['sys_s']} sys): {s['mb_per_cpu_s']} MB per "
           "CPU-second. The rewrite scans on one thread; the input is hashed on a second and the output hashed and written on a third."]
    for kind, what in (("dry_run", "a --dry-run"), ("run", "a run that writes")):
        rows = (doc.get("profile") or {}).get(kind)
        if rows:
            md += ["", f"Where the CPU goes in {what} (perf record -F 999, flat profile, user and kernel; not "
                   "one of the timed runs):", "", "| share | symbol |", "|---:|---|"]
            md += [f"| {p['share_pct']}% | {'[kernel] ' if p['kernel'] else ''}`{p['symbol']}` |" for p in rows]
    if doc["problems"]:
        md += ["", "Problems:", ""] + [f"- {p}" for p in doc["problems"]]
    return "\n".join(md) + "\n"


def main():
    ap = argparse.ArgumentParser(prog="bench/rewrite", description="mediashift rewrite over a generated "
                                 "multi-GB WordPress dump (see the header of bench/rewrite).")
    ap.add_argument("--smoke", action="store_true", help="a ~20 MB dump, 1 run, results in bench/work/")
    ap.add_argument("--runs", type=int, default=None, help="timed runs (default 3; 1 with --smoke)")
    ap.add_argument("--seed", type=int, default=SEED)
    ap.add_argument("--max-wait", type=int, default=None,
                    help=f"seconds to wait for the load average to fall to {QUIET_LOAD} (default 600; 0 with --smoke)")
    ap.add_argument("--perf", action="store_true", help="also profile one --dry-run with perf (not timed)")
    ap.add_argument("--generate-only", action="store_true", help="make the dump and map, measure nothing")
    a = ap.parse_args()
    if a.runs is not None and a.runs < 1:
        ap.error("--runs must be at least 1")
    if "BENCH_MEDIASHIFT" not in os.environ:
        sys.exit("bench/rewrite: run bench/rewrite, not bench/rewrite.py (it builds mediashift)")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    bin_ = os.environ["BENCH_MEDIASHIFT"]
    params = SMOKE if a.smoke else FULL
    runs = a.runs or (1 if a.smoke else 3)
    os.makedirs(WORK, exist_ok=True)

    d, exp = ensure_data(params, a.seed)
    if a.generate_only:
        return
    shutil.rmtree(RUNS_DIR, ignore_errors=True)
    os.makedirs(RUNS_DIR)
    need = 2 * exp["bytes"] + 512 * MIB  # the output, and the restored copy beside it
    free = shutil.disk_usage(WORK).free
    if free < need:
        sys.exit(f"bench/rewrite: {free / 2**30:.1f} GiB free in bench/work, {need / 2**30:.1f} GiB needed")

    disk = None if a.smoke else disk_write_mb_s(RUNS_DIR, 1024)
    waited = wait_quiet(a.max_wait if a.max_wait is not None else (0 if a.smoke else 600))
    load_before = loadavg()
    log(f"{runs} run(s) over {exp['bytes']:,} bytes, {exp['map_entries']:,} map entries; load {load_before}")

    results, check, problems = [], None, []
    kept = os.path.join(RUNS_DIR, "checked")
    os.makedirs(kept)
    for i in range(1, runs + 1):
        warm(os.path.join(d, "dump.sql"))
        res, out = run_one(bin_, d, exp, RUNS_DIR, f"run {i}")
        results.append(res)
        problems += [f"run {i}: {p}" for p in res["problems"]]
        if i == runs and os.path.exists(out) and os.path.exists(out + ".rollback"):
            # The last run's output is checked after the dry run (reading
            # it, and the restored copy, would push the input out of the
            # page cache).
            os.replace(out, os.path.join(kept, "out.sql"))
            os.replace(out + ".rollback", os.path.join(kept, "out.sql.rollback"))
        for p in (out, out + ".rollback"):
            if os.path.exists(p):
                os.remove(p)
    warm(os.path.join(d, "dump.sql"))
    dry, _ = run_one(bin_, d, exp, RUNS_DIR, "dry-run", dry=True)
    problems += [f"dry-run: {p}" for p in dry["problems"]]
    if os.path.exists(os.path.join(kept, "out.sql")):
        check = check_output(bin_, os.path.join(kept, "out.sql"), exp, RUNS_DIR)
        problems += [f"output check: {p}" for p in check["problems"]]
    else:
        problems.append(f"the output of run {runs} was not checked (the run left no output and record)")
    shutil.rmtree(kept, ignore_errors=True)

    prof = None
    if a.perf:
        if shutil.which("perf"):
            prof = {}
            for kind, is_dry in (("dry_run", True), ("run", False)):
                warm(os.path.join(d, "dump.sql"))
                prof[kind] = profile(bin_, d, RUNS_DIR, is_dry)
        else:
            log("--perf: perf is not installed (apt-get install linux-perf); no profile")
    wall = median(results, "wall_s")
    summary = {
        "wall_s": wall, "mb_per_s": round(exp["bytes"] / wall / 1e6, 1),
        "user_s": median(results, "user_s"), "sys_s": median(results, "sys_s"),
        "cpu_s": median(results, "cpu_s"), "peak_rss_mib": median(results, "peak_rss_mib"),
        # What one core does when it gets the CPU: bytes per CPU-second.
        "mb_per_cpu_s": round(exp["bytes"] / median(results, "cpu_s") / 1e6, 1),
        "max_peak_rss_mib": max(r["peak_rss_mib"] for r in results),
        "replacements": median(results, "replacements"), "not_in_map_total": median(results, "not_in_map_total"),
        "dry_run_wall_s": dry["wall_s"], "dry_run_mb_per_s": dry["mb_per_s"], "dry_run_cpu_s": dry["cpu_s"],
        "dry_run_peak_rss_mib": dry["peak_rss_mib"], "write_cost_s": round(wall - dry["wall_s"], 2),
        "undo_wall_s": check["undo"]["wall_s"] if check else None,
        "undo_mb_per_s": check["undo"]["mb_per_s"] if check else None,
    }
    summary["throughput_met"] = summary["mb_per_s"] >= TARGET_MB_S
    summary["rss_met"] = summary["max_peak_rss_mib"] <= TARGET_RSS_MIB
    try:
        version = subprocess.run([bin_, "--version"], capture_output=True, text=True).stdout.strip()
    except OSError:
        version = "unknown"
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    git = lambda *args: subprocess.run(["git", "-C", ROOT, *args], capture_output=True, text=True).stdout.strip()
    head = git("rev-parse", "--short", "HEAD") or "unknown"
    dirty = git("status", "--porcelain", "--", "src", "Cargo.toml", "Cargo.lock")
    source = f"HEAD {head}" + (" + uncommitted changes in src/" if dirty else "")
    doc = {
        "mode": "smoke" if a.smoke else "full", "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "cores": os.cpu_count(), "memory_gib": round(mem / 2**30, 1), "build": os.environ.get("BENCH_BUILD", "?"),
        "version": version, "source": source, "disk_write_mb_s": disk, "load_before": load_before, "waited_for_load_s": waited,
        "load_after": loadavg(),
        "targets": {"mb_per_s_at_least": TARGET_MB_S, "peak_rss_mib_at_most": TARGET_RSS_MIB},
        "units": {"MB": "10^6 bytes", "RSS": "MiB (GNU time %M)", "cpu_s": "user + sys",
                  "mb_per_s": "input bytes / wall"},
        "command": " ".join(rewrite_cmd("mediashift", "DATA", "OUT")).replace("DATA/", ""),
        "dump": exp | {"path": os.path.relpath(os.path.join(d, "dump.sql"), ROOT)},
        "summary": summary, "runs": results, "dry_run": dry, "check": check, "profile": prof,
        "problems": problems,
    }
    outdir, stem = (WORK, "rewrite-smoke") if a.smoke else (RESULTS, "rewrite")
    os.makedirs(outdir, exist_ok=True)
    for ext, text in (("json", json.dumps(doc, indent=2) + "\n"), ("md", markdown(doc))):
        path = os.path.join(outdir, f"{stem}.{ext}")
        with open(path + ".tmp", "w") as f:
            f.write(text)
        os.replace(path + ".tmp", path)
    print(markdown(doc))
    log(f"wrote {os.path.relpath(os.path.join(outdir, stem), ROOT)}.{{json,md}}")
    if problems:
        for p in problems:
            log(f"FAIL: {p}")
        sys.exit(1)
    shutil.rmtree(RUNS_DIR, ignore_errors=True)


if __name__ == "__main__":
    main()
