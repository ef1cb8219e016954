//! A real WordPress round trip, judged the way the shop sees it: Debian's
//! WordPress 6.1 on a private MariaDB ([`crate::support::wordpress`]) makes
//! its own media library from real images (its sizes, a `-scaled` copy,
//! a second upload of one picture, names with accents and a space) and
//! posts as the block editor and the classic editor write them; the
//! uploads are migrated for real; then the cutover the README gives for
//! WordPress (dump, `mediashift rewrite`, import, `upload_url_path`) and
//! WordPress's own PHP renders the shop again. Every media URL it renders
//! must be a new URL that answers 200 without credentials with the
//! original file's bytes; every `<img>` must keep the attributes WordPress
//! gave it before (`srcset` and `sizes` above all: WordPress adds them
//! only when it recognises the `src` as one of the attachment's files);
//! serialized values must stay arrays; and the undo must give the dump
//! back byte for byte. Last, the base switch alone (`upload_url_path` on
//! the database as it was) must serve every size of every attachment.
//!
//! Every problem found is collected, and the test fails at the end with
//! all of them, each naming its check, the URL, the attachment or post,
//! and the attribute.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::support::mariadb::MariaDb;
use crate::support::wordpress::WordPress;
use crate::support::{anonymous_get, browser_url, json as doc, mediashift, server, stderr, target};

const HOST: &str = "shop.test";
/// Where WordPress serves its uploads before the cutover, as it writes
/// them (`siteurl` is `http://shop.test`)...
const OLD_BASE: &str = "http://shop.test/wp-content/uploads/";
/// ...and as a theme or an editor may write them, root-relative.
const OLD_ROOT: &str = "/wp-content/uploads/";
/// The date the media are uploaded at: WordPress files them under 2024/05.
const UPLOADED: &str = "2024-05-10 10:00:00";
/// The `<img>` attributes WordPress adds (or an editor wrote) whose
/// presence must not change with the cutover.
const IMG_ATTRS: [&str; 6] = ["srcset", "sizes", "width", "height", "loading", "decoding"];

/// The media library, in upload order. `how`: `upload` hands the file to
/// WordPress as its uploader does (`media_handle_sideload`: WordPress
/// names it, files it and makes its sizes); `import` puts the file under
/// its own name and makes the attachment the way an importer does, or as
/// a site upgraded from before WordPress 6.1 has them (6.1's
/// `sanitize_file_name` strips accents, which earlier versions kept; a
/// space becomes a dash on upload): `wp_insert_attachment` with that
/// file, then `wp_generate_attachment_metadata`.
fn library() -> Value {
    json!([
        {"role": "product", "name": "product-01.jpg", "picture": "product-01.jpg",
         "width": 1200, "height": 900, "seed": 1, "how": "upload"},
        // The same picture uploaded again: WordPress names it product-01-1.jpg.
        {"role": "product_again", "name": "product-01.jpg", "picture": "product-01.jpg",
         "width": 1200, "height": 900, "seed": 1, "how": "upload"},
        {"role": "cafe", "name": "café-crème.jpg", "picture": "cafe.jpg",
         "width": 1200, "height": 900, "seed": 2, "how": "upload"},
        // Wider than 2560 px: WordPress keeps panorama.jpg as the
        // original_image and serves panorama-scaled.jpg.
        {"role": "panorama", "name": "panorama.jpg", "picture": "panorama.jpg",
         "width": 3000, "height": 1000, "seed": 3, "how": "upload"},
        {"role": "logo", "name": "logo.png", "picture": "logo.png",
         "width": 1200, "height": 900, "seed": 4, "how": "upload"},
        {"role": "accents", "name": "crème-brûlée.jpg", "picture": "creme.jpg",
         "width": 1200, "height": 900, "seed": 5, "how": "import"},
        {"role": "space", "name": "sunset beach.jpg", "picture": "sunset.jpg",
         "width": 1200, "height": 900, "seed": 6, "how": "import"},
    ])
}

/// Draws each picture with GD (stripes and ellipses from its seed, its
/// name written on it) and puts it in the media library as `how` says.
/// Returns role -> {id, file (`_wp_attached_file`), meta}.
const MEDIA_PHP: &str = r#"
wp_set_current_user($in['admin']);
$out = [];
foreach ($in['media'] as $m) {
    $src = $in['camera'] . '/' . $m['picture'];
    if (!file_exists($src)) {
        mt_srand($m['seed']);
        [$w, $h] = [$m['width'], $m['height']];
        $im = imagecreatetruecolor($w, $h);
        for ($x = 0; $x < $w; $x += 40) {
            $c = imagecolorallocate($im, mt_rand(0, 255), mt_rand(0, 255), mt_rand(0, 255));
            imagefilledrectangle($im, $x, 0, $x + 39, $h - 1, $c);
        }
        for ($i = 0; $i < 12; $i++) {
            $c = imagecolorallocate($im, mt_rand(0, 255), mt_rand(0, 255), mt_rand(0, 255));
            imagefilledellipse($im, mt_rand(0, $w), mt_rand(0, $h), mt_rand(50, intdiv($w, 2)), mt_rand(50, intdiv($h, 2)), $c);
        }
        imagestring($im, 5, 20, 20, $m['picture'], imagecolorallocate($im, 0, 0, 0));
        $ok = str_ends_with($src, '.png') ? imagepng($im, $src) : imagejpeg($im, $src, 85);
        if (!$ok) throw new Exception("GD could not write $src");
    }
    if ($m['how'] === 'upload') {
        $tmp = wp_tempnam($m['name']);
        copy($src, $tmp);
        $id = media_handle_sideload(['name' => $m['name'], 'tmp_name' => $tmp], 0, null, ['post_date' => $in['date']]);
    } else {
        $dir = wp_upload_dir($in['date']);
        $abs = $dir['path'] . '/' . $m['name'];
        if (file_exists($abs)) throw new Exception("$abs exists already");
        copy($src, $abs);
        $id = wp_insert_attachment([
            'post_mime_type' => wp_check_filetype($m['name'])['type'],
            'post_title' => preg_replace('/\.[^.]+$/', '', $m['name']),
            'post_content' => '',
            'post_status' => 'inherit',
            'guid' => $dir['url'] . '/' . $m['name'],
            'post_date' => $in['date'],
        ], $abs, 0, true);
        if (!is_wp_error($id)) {
            wp_update_attachment_metadata($id, wp_generate_attachment_metadata($id, $abs));
        }
    }
    if (is_wp_error($id)) throw new Exception($m['name'] . ': ' . $id->get_error_message());
    $out[$m['role']] = [
        'id' => $id,
        'file' => get_post_meta($id, '_wp_attached_file', true),
        'meta' => wp_get_attachment_metadata($id),
    ];
}
return $out;
"#;

/// The posts, as the block editor saves them (block comments, its HTML,
/// the `src` of the size picked, `wp-image-N`) and as the classic editor
/// inserted images (with `width`/`height`, one with a `srcset` of its
/// own), made from WordPress's own URLs; featured images; a serialized
/// post meta and an option holding URLs. Each post is stored as the REST
/// API stores it (slashed, by the administrator: no kses), and read back.
const CONTENT_PHP: &str = r#"
wp_set_current_user($in['admin']);
$a = $in['a'];
$src = fn($role, $size) => wp_get_attachment_image_src($a[$role], $size)[0];
$full = fn($role) => wp_get_attachment_url($a[$role]);
$block = fn($name, $attrs, $html) => get_comment_delimited_block_content($name, $attrs, "\n" . $html . "\n");
$image = function ($role, $size, $link = false) use ($a, $src, $full, $block) {
    $id = $a[$role];
    $img = '<img src="' . $src($role, $size) . '" alt="" class="wp-image-' . $id . '"/>';
    if ($link) $img = '<a href="' . $full($role) . '">' . $img . '</a>';
    return $block('core/image', ['id' => $id, 'sizeSlug' => $size, 'linkDestination' => $link ? 'media' : 'none'],
        '<figure class="wp-block-image size-' . $size . '">' . $img . '</figure>');
};

$images = implode("\n\n", [
    $image('product', 'large'), $image('product_again', 'large'), $image('cafe', 'large'),
    $image('accents', 'large'), $image('space', 'large'), $image('panorama', 'large'),
    $image('logo', 'medium'),
]);

$gallery = $block('core/gallery', ['linkTo' => 'media'],
    '<figure class="wp-block-gallery has-nested-images columns-default is-cropped">'
    . implode("\n\n", array_map(fn($r) => $image($r, 'large', true), ['product_again', 'cafe', 'accents', 'space', 'logo']))
    . '</figure>');

$title = $block('core/paragraph', ['align' => 'center', 'fontSize' => 'large'],
    '<p class="has-text-align-center has-large-font-size">Crème brûlée</p>');
$u = $full('accents');
$parallax = $block('core/cover', ['url' => $u, 'id' => $a['accents'], 'hasParallax' => true, 'dimRatio' => 50, 'isDark' => false],
    '<div class="wp-block-cover is-light has-parallax"><span aria-hidden="true" class="wp-block-cover__background has-background-dim"></span>'
    . '<div role="img" class="wp-block-cover__image-background wp-image-' . $a['accents'] . ' has-parallax" style="background-image:url(' . $u . ')"></div>'
    . '<div class="wp-block-cover__inner-container">' . $title . '</div></div>');
$u = $full('panorama');
$cover = $block('core/cover', ['url' => $u, 'id' => $a['panorama'], 'dimRatio' => 50, 'isDark' => false],
    '<div class="wp-block-cover is-light"><span aria-hidden="true" class="wp-block-cover__background has-background-dim"></span>'
    . '<img class="wp-block-cover__image-background wp-image-' . $a['panorama'] . '" alt="" src="' . $u . '" data-object-fit="cover"/>'
    . '<div class="wp-block-cover__inner-container">' . $title . '</div></div>');

$classic = "<p>Our new crème brûlée, as the classic editor inserted it.</p>\n\n"
    . '<img class="alignnone size-medium wp-image-' . $a['accents'] . '" src="' . $src('accents', 'medium')
    . '" alt="" width="300" height="225" srcset="' . wp_get_attachment_image_srcset($a['accents'], 'medium')
    . '" sizes="(max-width: 300px) 100vw, 300px" />' . "\n\n"
    . 'The beach at sunset: <a href="' . $full('space') . '">full size</a>.' . "\n\n"
    . '<img class="alignnone size-medium wp-image-' . $a['space'] . '" src="' . $src('space', 'medium') . '" alt="" width="300" height="225" />' . "\n\n"
    . 'The product, full size: <a href="' . wp_make_link_relative($full('product_again')) . '">download</a>.' . "\n\n"
    . '<img class="alignright size-thumbnail wp-image-' . $a['cafe'] . '" src="' . $src('cafe', 'thumbnail') . '" alt="" width="150" height="150" />';

$ids = [];
foreach ([
    ['Image blocks', $images, 'product'],
    ['Gallery', $gallery, null],
    ['Covers', $parallax . "\n\n" . $cover, 'panorama'],
    ['Classic', $classic, 'space'],
] as [$t, $content, $thumb]) {
    $id = wp_insert_post(wp_slash([
        'post_title' => $t, 'post_content' => $content, 'post_status' => 'publish',
        'post_type' => 'post', 'post_date' => '2024-05-12 09:00:00', 'post_author' => $in['admin'],
    ]), true);
    if (is_wp_error($id)) throw new Exception("$t: " . $id->get_error_message());
    if (get_post($id)->post_content !== $content) throw new Exception("$t was not stored as given");
    if ($thumb && !set_post_thumbnail($id, $a[$thumb])) throw new Exception("$t: no featured image");
    $ids[$t] = $id;
}
$gallery_meta = [
    'title' => 'Galerie d’été',
    'images' => [$full('product_again'), $src('accents', 'medium'), $full('space')],
    'hero' => ['id' => $a['panorama'], 'url' => $full('panorama')],
];
update_post_meta($ids['Classic'], '_shop_gallery', wp_slash($gallery_meta));
update_option('shop_banner', [
    'desktop' => $src('cafe', 'large'),
    'mobile' => $src('logo', 'medium'),
    'fallback' => wp_make_link_relative($full('product')),
    'width' => 1024,
]);
return ['posts' => $ids, 'meta' => [[$ids['Classic'], '_shop_gallery']], 'options' => ['shop_banner']];
"#;

/// What the shop shows, rendered by WordPress: with `content`, every
/// published post through `the_content`, its featured image
/// (`get_the_post_thumbnail`), the post metas and options named (with
/// their PHP type); always, for every attachment, `wp_get_attachment_url`,
/// `wp_get_original_image_url` and `wp_get_attachment_image_src` for every
/// registered size and `full`.
const RENDER_PHP: &str = r#"
$out = ['baseurl' => wp_get_upload_dir()['baseurl'], 'posts' => [], 'thumbnails' => [], 'values' => []];
if ($in['content']) {
    $posts = get_posts(['post_type' => 'post', 'post_status' => 'publish', 'numberposts' => -1, 'orderby' => 'ID', 'order' => 'ASC']);
    foreach ($posts as $post) {
        $GLOBALS['post'] = $post;
        setup_postdata($post);
        $out['posts'][] = ['id' => $post->ID, 'title' => $post->post_title, 'html' => apply_filters('the_content', $post->post_content)];
        if (has_post_thumbnail($post)) {
            $out['thumbnails'][] = ['id' => $post->ID, 'title' => $post->post_title, 'html' => get_the_post_thumbnail($post)];
        }
    }
    wp_reset_postdata();
    foreach ($in['meta'] as [$id, $key]) {
        $v = get_post_meta($id, $key, true);
        $out['values'][] = ['what' => "post $id meta $key", 'type' => gettype($v), 'value' => $v];
    }
    foreach ($in['options'] as $name) {
        $v = get_option($name);
        $out['values'][] = ['what' => "option $name", 'type' => gettype($v), 'value' => $v];
    }
}
$sizes = array_merge(get_intermediate_image_sizes(), ['full']);
$out['attachments'] = [];
foreach (get_posts(['post_type' => 'attachment', 'post_status' => 'inherit', 'numberposts' => -1, 'orderby' => 'ID', 'order' => 'ASC']) as $att) {
    $e = [
        'id' => $att->ID,
        'file' => get_post_meta($att->ID, '_wp_attached_file', true),
        'urls' => [
            'wp_get_attachment_url' => wp_get_attachment_url($att->ID),
            'wp_get_original_image_url' => wp_get_original_image_url($att->ID),
        ],
    ];
    foreach ($sizes as $s) {
        $img = wp_get_attachment_image_src($att->ID, $s);
        $e['urls']["wp_get_attachment_image_src $s"] = $img ? $img[0] : null;
    }
    $out['attachments'][] = $e;
}
return $out;
"#;

const SET_OPTION_PHP: &str = r#"
update_option($in['name'], $in['value']);
return get_option($in['name']);
"#;

/// What a render shows, by place (`post 12 "Gallery" the_content: <img>
/// 03 srcset[1]`, `attachment 9 2024/05/x.jpg: wp_get_attachment_url`):
/// the media URLs, the `<img>` tags, the serialized values' PHP types.
#[derive(Debug, Default)]
struct Rendered {
    baseurl: String,
    urls: BTreeMap<String, String>,
    /// place -> (the tag as rendered, the attributes of IMG_ATTRS it has)
    imgs: BTreeMap<String, (String, BTreeSet<String>)>,
    types: BTreeMap<String, String>,
    /// Rendered HTML that mentions `wp-content/uploads/` outside the
    /// attributes read for URLs (a URL the checks would not see).
    stray: Vec<String>,
}

/// An attribute value as the browser reads it (the entities WordPress
/// writes in URLs).
fn unescape(v: &str) -> String {
    v.replace("&amp;", "&").replace("&#038;", "&")
}

fn is_media(v: &str) -> bool {
    v.contains("wp-content/uploads/")
}

/// A tag of rendered HTML: its name (lower case), its text, its
/// attributes (name, value) in order.
type Tag = (String, String, Vec<(String, String)>);

/// The tags of `html`, comments skipped.
fn tags(html: &str) -> Vec<Tag> {
    let b = html.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(lt) = html[i..].find('<') {
        let start = i + lt;
        if html[start..].starts_with("<!--") {
            i = html[start..].find("-->").map_or(b.len(), |e| start + e + 3);
            continue;
        }
        let mut j = start + 1;
        while j < b.len() && b[j].is_ascii_alphanumeric() {
            j += 1;
        }
        if j == start + 1 {
            i = start + 1;
            continue;
        }
        let name = html[start + 1..j].to_ascii_lowercase();
        let mut attrs = Vec::new();
        loop {
            while j < b.len() && (b[j].is_ascii_whitespace() || b[j] == b'/') {
                j += 1;
            }
            if j >= b.len() || b[j] == b'>' {
                break;
            }
            let n0 = j;
            while j < b.len() && !b[j].is_ascii_whitespace() && !matches!(b[j], b'=' | b'>' | b'/')
            {
                j += 1;
            }
            let attr = html[n0..j].to_ascii_lowercase();
            let mut value = String::new();
            if j < b.len() && b[j] == b'=' {
                j += 1;
                if j < b.len() && (b[j] == b'"' || b[j] == b'\'') {
                    let q = b[j];
                    let v0 = j + 1;
                    j = v0 + b[v0..].iter().position(|&c| c == q).unwrap_or(b.len() - v0);
                    value = html[v0..j.min(b.len())].to_string();
                    j += 1;
                } else {
                    let v0 = j;
                    while j < b.len() && !b[j].is_ascii_whitespace() && b[j] != b'>' {
                        j += 1;
                    }
                    value = html[v0..j].to_string();
                }
            }
            if attr.is_empty() {
                j += 1;
            } else {
                attrs.push((attr, unescape(&value)));
            }
        }
        let end = (j + 1).min(b.len());
        out.push((name, html[start..end].to_string(), attrs));
        i = end;
    }
    out
}

/// Reads the media URLs and `<img>` tags of one rendered piece of HTML.
fn scan_html(piece: &str, html: &str, r: &mut Rendered) {
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    let mut found = 0;
    for (name, tag, attrs) in tags(html) {
        let n = counts.entry(name.clone()).or_insert(0);
        *n += 1;
        let here = format!("{piece}: <{name}> {n:02}");
        for (attr, value) in &attrs {
            let mut put = |place: String, url: &str| {
                if is_media(url) {
                    found += 1;
                    assert!(
                        r.urls.insert(place.clone(), url.to_string()).is_none(),
                        "{place} twice"
                    );
                }
            };
            match attr.as_str() {
                "src" | "href" | "poster" => put(format!("{here} {attr}"), value),
                "srcset" => {
                    for (k, cand) in value.split(',').enumerate() {
                        let cand = cand.trim();
                        let url = match cand.rsplit_once(' ') {
                            Some((u, d))
                                if d.ends_with(['w', 'x'])
                                    && d[..d.len() - 1]
                                        .chars()
                                        .all(|c| c.is_ascii_digit() || c == '.') =>
                            {
                                u.trim_end()
                            }
                            _ => cand,
                        };
                        put(format!("{here} srcset[{k}]"), url);
                    }
                }
                "style" => {
                    let mut rest = value.as_str();
                    let mut k = 0;
                    while let Some(at) = rest.find("url(") {
                        let after = &rest[at + 4..];
                        let close = after.find(')').unwrap_or(after.len());
                        let url = after[..close].trim().trim_matches(['"', '\'']);
                        put(format!("{here} style url()[{k}]"), url);
                        k += 1;
                        rest = &after[close..];
                    }
                }
                _ => {}
            }
        }
        if name == "img" {
            let has: BTreeSet<String> = IMG_ATTRS
                .iter()
                .filter(|a| attrs.iter().any(|(n, _)| n == *a))
                .map(|a| a.to_string())
                .collect();
            r.imgs.insert(here, (tag, has));
        }
    }
    let mentions = html.matches("wp-content/uploads/").count();
    if mentions != found {
        r.stray.push(format!(
            "{piece}: {mentions} mentions of wp-content/uploads/, {found} in the attributes read:\n{html}"
        ));
    }
}

/// The leaves of a value that holds media URLs, by their path in it.
fn scan_value(what: &str, v: &Value, path: String, r: &mut Rendered) {
    match v {
        Value::String(s) if is_media(s) => {
            r.urls.insert(format!("{what}{path}"), s.clone());
        }
        Value::Array(items) => {
            for (i, x) in items.iter().enumerate() {
                scan_value(what, x, format!("{path}[{i}]"), r);
            }
        }
        Value::Object(m) => {
            for (k, x) in m {
                scan_value(what, x, format!("{path}[{k}]"), r);
            }
        }
        _ => {}
    }
}

fn collect(render: &Value) -> Rendered {
    let mut r = Rendered {
        baseurl: render["baseurl"].as_str().unwrap().to_string(),
        ..Rendered::default()
    };
    for (list, how) in [
        ("posts", "the_content"),
        ("thumbnails", "get_the_post_thumbnail"),
    ] {
        for p in render[list].as_array().unwrap() {
            let piece = format!(
                "post {} \"{}\" {how}",
                p["id"],
                p["title"].as_str().unwrap()
            );
            scan_html(&piece, p["html"].as_str().unwrap(), &mut r);
        }
    }
    for v in render["values"].as_array().unwrap() {
        let what = v["what"].as_str().unwrap();
        r.types
            .insert(what.to_string(), v["type"].as_str().unwrap().to_string());
        scan_value(what, &v["value"], String::new(), &mut r);
    }
    for a in render["attachments"].as_array().unwrap() {
        for (call, url) in a["urls"].as_object().unwrap() {
            let place = format!(
                "attachment {} {}: {call}",
                a["id"],
                a["file"].as_str().unwrap()
            );
            let url = url
                .as_str()
                .unwrap_or_else(|| panic!("{place} gives no URL"));
            r.urls.insert(place, url.to_string());
        }
    }
    r
}

fn render(wp: &WordPress, db: &str, content: bool, posts: &Value) -> Rendered {
    let input = json!({
        "content": content,
        "meta": posts["meta"],
        "options": posts["options"],
    });
    collect(&wp.run(db, "render", RENDER_PHP, &input))
}

/// The uploads path a URL under `base` names: query and fragment off,
/// percent-decoded.
fn rel_under(url: &str, base: &str) -> Option<String> {
    let rest = url.strip_prefix(base)?;
    let rest = rest.split(['?', '#']).next().unwrap_or_default();
    Some(
        percent_encoding::percent_decode_str(rest)
            .decode_utf8()
            .ok()?
            .into_owned(),
    )
}

/// The uploads path of a URL as the shop writes it before the cutover.
fn old_rel(url: &str) -> Option<String> {
    rel_under(url, OLD_BASE).or_else(|| rel_under(url, OLD_ROOT))
}

/// Collects what is wrong, and checks URLs against the files on disk.
struct Checks {
    uploads: PathBuf,
    new_base: String,
    failures: Vec<String>,
    gets: BTreeMap<String, (u16, Vec<u8>)>,
}

impl Checks {
    fn fail(&mut self, check: &str, msg: String) {
        self.failures.push(format!("[{check}] {msg}"));
    }

    fn file(&self, rel: &str) -> Option<Vec<u8>> {
        std::fs::read(self.uploads.join(rel)).ok()
    }

    /// `url`, rendered at `place`, is under the new base and answers 200
    /// with the bytes of the uploads file `rel`.
    fn served(&mut self, check: &str, place: &str, url: &str, rel: &str) {
        if !url.starts_with(&self.new_base) {
            let which = if old_rel(url).is_some() {
                "still the old URL"
            } else {
                "not under the new base"
            };
            self.fail(check, format!("{place}: {url} is {which}"));
            return;
        }
        let Some(want) = self.file(rel) else {
            self.fail(
                check,
                format!("{place}: {url}: no file {rel} in the uploads to compare with"),
            );
            return;
        };
        let sent = browser_url(url.split('#').next().unwrap_or_default());
        let (status, body) = self
            .gets
            .entry(sent.clone())
            .or_insert_with(|| anonymous_get(&sent))
            .clone();
        if status != 200 {
            self.fail(
                check,
                format!("{place}: GET {sent} answered {status} (it should serve {rel})"),
            );
        } else if body != want {
            self.fail(
                check,
                format!(
                    "{place}: GET {sent} answered 200 with {} bytes that are not {rel} ({} bytes)",
                    body.len(),
                    want.len()
                ),
            );
        }
    }
}

/// Every file under `dir`, as paths relative to it.
fn files_under(dir: &Path) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                todo.push(p);
            } else {
                let rel = p.strip_prefix(dir).unwrap().to_str().unwrap().to_string();
                out.insert(rel);
            }
        }
    }
    out
}

/// The fixture is what the test means it to be: WordPress named, sized
/// and scaled the files as expected. Returns role -> (id, file).
fn check_library(wp: &WordPress, media: &Value) -> BTreeMap<String, (u64, String)> {
    let lib: BTreeMap<String, (u64, String)> = media
        .as_object()
        .unwrap()
        .iter()
        .map(|(role, m)| {
            (
                role.clone(),
                (
                    m["id"].as_u64().unwrap(),
                    m["file"].as_str().unwrap().to_string(),
                ),
            )
        })
        .collect();
    let file = |role: &str| lib[role].1.as_str();
    assert_eq!(file("product"), "2024/05/product-01.jpg");
    assert_eq!(
        file("product_again"),
        "2024/05/product-01-1.jpg",
        "WordPress names the second upload of a name with -1"
    );
    assert_eq!(file("panorama"), "2024/05/panorama-scaled.jpg");
    assert_eq!(media["panorama"]["meta"]["original_image"], "panorama.jpg");
    assert_eq!(file("accents"), "2024/05/crème-brûlée.jpg");
    assert_eq!(file("space"), "2024/05/sunset beach.jpg");
    assert_eq!(
        media["space"]["meta"]["sizes"]["medium"]["file"], "sunset beach-300x225.jpg",
        "WordPress names the sizes after the file, space included"
    );
    let up = wp.uploads().join("2024/05");
    for (a, b) in [
        ("product-01.jpg", "product-01-1.jpg"),
        ("product-01-1024x768.jpg", "product-01-1-1024x768.jpg"),
        ("product-01-300x225.jpg", "product-01-1-300x225.jpg"),
    ] {
        assert!(
            std::fs::read(up.join(a)).unwrap() == std::fs::read(up.join(b)).unwrap(),
            "{a} and {b} (one picture uploaded twice) should hold the same bytes"
        );
    }
    lib
}

#[test]
fn wordpress_cutover_renders_every_media_url_from_the_bucket() {
    let started = std::time::Instant::now();
    let db = MariaDb::start();
    let wp = WordPress::install(&db, "shop", HOST);

    // The media library, made by WordPress.
    let camera = wp.scratch().join("camera");
    std::fs::create_dir_all(&camera).unwrap();
    let media = wp.run(
        "shop",
        "media",
        MEDIA_PHP,
        &json!({"admin": wp.admin, "camera": camera, "date": UPLOADED, "media": library()}),
    );
    let lib = check_library(&wp, &media);
    let ids: BTreeMap<&str, u64> = lib.iter().map(|(r, (id, _))| (r.as_str(), *id)).collect();
    let posts = wp.run(
        "shop",
        "content",
        CONTENT_PHP,
        &json!({"admin": wp.admin, "a": ids}),
    );

    // What the shop shows before the cutover.
    let before = render(&wp, "shop", true, &posts);
    assert_eq!(before.baseurl, OLD_BASE.trim_end_matches('/'));
    assert!(
        before.stray.is_empty(),
        "media the checks would not see:\n{}",
        before.stray.join("\n")
    );
    for (place, url) in &before.urls {
        let rel = old_rel(url).unwrap_or_else(|| panic!("{place}: {url} is not under {OLD_BASE}"));
        assert!(
            wp.uploads().join(&rel).is_file(),
            "{place}: {url} names no file in the uploads"
        );
    }
    let with_srcset = before
        .imgs
        .values()
        .filter(|(_, a)| a.contains("srcset"))
        .count();
    assert!(
        with_srcset >= 15 && before.urls.len() > 150,
        "the fixture should have WordPress add srcset to its images: {with_srcset} <img> with srcset, {} media URLs",
        before.urls.len()
    );

    // The migration, into a public bucket under wp-content/uploads/.
    let t = target("wordpress");
    let endpoint = server().endpoint.trim_end_matches('/').to_string();
    let public = format!("{endpoint}/{}/", t.bucket);
    let new_base = format!("{public}{}wp-content/uploads/", t.prefix);
    let work = wp.scratch();
    let maps = work.join("maps");
    let out = mediashift([
        "migrate".as_ref(),
        wp.uploads().as_os_str(),
        format!("s3://{}/{}wp-content/uploads/", t.bucket, t.prefix).as_ref(),
        "--source-base-url".as_ref(),
        OLD_BASE.as_ref(),
        "--public-base-url".as_ref(),
        public.as_ref(),
        "--map-dir".as_ref(),
        maps.as_os_str(),
        "--state".as_ref(),
        work.join("state").as_os_str(),
        "--json".as_ref(),
    ]);
    let v = doc(&out);
    assert!(out.status.success(), "migrate: {}\n{v:#}", stderr(&out));
    let on_disk = files_under(&wp.uploads());
    assert_eq!(
        v["map_entries"].as_u64(),
        Some(on_disk.len() as u64),
        "one map entry per file of the uploads: {on_disk:?}\n{v:#}"
    );
    t.make_public();

    let mut checks = Checks {
        uploads: wp.uploads(),
        new_base: new_base.clone(),
        failures: Vec::new(),
        gets: BTreeMap::new(),
    };

    // 5. The cutover as the README gives it: dump, rewrite, import into a
    // fresh database, upload_url_path, render again.
    let original = work.join("shop.sql");
    std::fs::rename(db.dump("shop"), &original).unwrap();
    let rewritten = work.join("shop.new.sql");
    let out = mediashift([
        "rewrite".as_ref(),
        "--map".as_ref(),
        maps.as_os_str(),
        "--base".as_ref(),
        OLD_BASE.as_ref(),
        "--base".as_ref(),
        OLD_ROOT.as_ref(),
        original.as_os_str(),
        "-o".as_ref(),
        rewritten.as_os_str(),
        "--json".as_ref(),
    ]);
    let report = doc(&out);
    if out.status.code() != Some(0) {
        let file = &report["files"][0];
        checks.fail(
            "5 rewrite",
            format!(
                "mediashift rewrite exited {:?}; not_in_map: {}; replacements {}; stderr: {}",
                out.status.code(),
                file["not_in_map"],
                report["replacements"],
                stderr(&out).trim()
            ),
        );
    }
    assert!(
        rewritten.is_file(),
        "mediashift rewrite wrote no {}: {}\n{report:#}",
        rewritten.display(),
        stderr(&out)
    );
    db.sql(
        "",
        "CREATE DATABASE rewritten CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_520_ci",
    );
    db.import("rewritten", &rewritten);
    let upload_url_path = new_base.trim_end_matches('/').to_string();
    let set = json!({"name": "upload_url_path", "value": upload_url_path});
    wp.run("rewritten", "upload_url_path", SET_OPTION_PHP, &set);
    let after = render(&wp, "rewritten", true, &posts);
    assert_eq!(after.baseurl, upload_url_path);

    if before.urls.len() != after.urls.len() {
        let gone: Vec<&String> = before
            .urls
            .keys()
            .filter(|p| !after.urls.contains_key(*p))
            .collect();
        let new: Vec<&String> = after
            .urls
            .keys()
            .filter(|p| !before.urls.contains_key(*p))
            .collect();
        checks.fail(
            "5 count",
            format!(
                "{} media URLs rendered before the cutover, {} after; gone: {gone:#?}; new: {new:#?}",
                before.urls.len(),
                after.urls.len()
            ),
        );
    }
    for (place, url) in &after.urls {
        let was = before.urls.get(place).and_then(|u| old_rel(u));
        let now = rel_under(url, &new_base);
        if let (Some(was), Some(now)) = (&was, &now)
            && was != now
        {
            checks.fail(
                "5 path",
                format!(
                    "{place}: {url} names {now}, but before the cutover this was {was} \
                         (WordPress finds an attachment's sizes by its own file name)"
                ),
            );
        }
        let rel = was.or(now).unwrap_or_default();
        checks.served("5 serve", place, url, &rel);
    }
    for (place, url) in &before.urls {
        if !after.urls.contains_key(place) {
            checks.fail(
                "5 gone",
                format!("{place}: rendered {url} before the cutover, and no media URL now"),
            );
        }
    }
    for (place, (tag, had)) in &before.imgs {
        match after.imgs.get(place) {
            None => checks.fail(
                "5 img",
                format!("{place}: gone after the cutover: was {tag}"),
            ),
            Some((now_tag, has)) if has != had => {
                let lost: Vec<&String> = had.difference(has).collect();
                let gained: Vec<&String> = has.difference(had).collect();
                checks.fail(
                    "5 img",
                    format!(
                        "{place}: lost {lost:?}, gained {gained:?} with the cutover\n  before: {tag}\n  after:  {now_tag}"
                    ),
                );
            }
            Some(_) => {}
        }
    }
    for (what, ty) in &after.types {
        if ty != "array" {
            checks.fail(
                "5 serialized",
                format!("{what}: WordPress reads a {ty}, not an array, after the rewrite"),
            );
        }
    }
    for s in &after.stray {
        checks.fail("5 stray", s.clone());
    }

    // The undo gives the dump back byte for byte.
    let restored = work.join("shop.restored.sql");
    let record = PathBuf::from(format!("{}.rollback", rewritten.display()));
    let out = mediashift([
        "rewrite".as_ref(),
        "--undo".as_ref(),
        record.as_os_str(),
        rewritten.as_os_str(),
        "-o".as_ref(),
        restored.as_os_str(),
    ]);
    if out.status.code() != Some(0) {
        checks.fail(
            "5 undo",
            format!(
                "rewrite --undo exited {:?}: {}",
                out.status.code(),
                stderr(&out)
            ),
        );
    } else if std::fs::read(&restored).unwrap() != std::fs::read(&original).unwrap() {
        checks.fail(
            "5 undo",
            format!("{} is not {}", restored.display(), original.display()),
        );
    }

    // 6. The base switch alone, on the database as it was: every URL of
    // every attachment, every size, from the bucket.
    wp.run("shop", "upload_url_path", SET_OPTION_PHP, &set);
    let switched = render(&wp, "shop", false, &posts);
    let mut n = 0;
    for (place, url) in &switched.urls {
        let Some(rel) = before.urls.get(place).and_then(|u| old_rel(u)) else {
            checks.fail(
                "6 base switch",
                format!("{place}: {url} was not rendered before"),
            );
            continue;
        };
        checks.served("6 base switch", place, url, &rel);
        n += 1;
    }
    assert!(n >= 7 * 8, "only {n} attachment URLs checked");

    let took = started.elapsed();
    let failures = checks.failures;
    assert!(
        failures.is_empty(),
        "WordPress {} (which stored café-crème.jpg as {}) after the cutover: {} problems ({} media URLs before, {} after; {} URLs fetched; {took:.1?}):\n\n{}",
        wp.version,
        lib["cafe"].1,
        failures.len(),
        before.urls.len(),
        after.urls.len(),
        checks.gets.len(),
        failures.join("\n\n")
    );
}
