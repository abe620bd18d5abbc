//! Markdown rendering for the read side: CommonMark (+ tables, strikethrough) to sanitized HTML.

use pulldown_cmark::{html, Options, Parser};

/// Renders Markdown and sanitizes the result with ammonia: scripts, event handlers and
/// `javascript:` URLs never survive.
pub fn markdown_to_safe_html(markdown: &str) -> String {
    let mut opts = Options::empty();
    opts.insert(Options::ENABLE_TABLES);
    opts.insert(Options::ENABLE_STRIKETHROUGH);
    let mut raw = String::with_capacity(markdown.len() + markdown.len() / 2);
    html::push_html(&mut raw, Parser::new_ext(markdown, opts));
    ammonia::clean(&raw)
}

/// Escapes text for HTML element content and attribute values (`&`, `<`, `>`, `"`, `'`).
pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / 8);
    push_escaped(&mut out, text);
    out
}

fn push_escaped(out: &mut String, text: &str) {
    let mut last = 0;
    for (i, c) in text.char_indices() {
        let entity = match c {
            '&' => "&amp;",
            '<' => "&lt;",
            '>' => "&gt;",
            '"' => "&quot;",
            '\'' => "&#39;",
            _ => continue,
        };
        out.push_str(&text[last..i]);
        out.push_str(entity);
        last = i + 1;
    }
    out.push_str(&text[last..]);
}

/// Where a search excerpt's match starts and ends, as marked by the database (private-use characters,
/// removed from the searched text first, so no author can forge one).
pub const MATCH_START: char = '\u{E000}';
pub const MATCH_END: char = '\u{E001}';

/// A search excerpt as safe HTML: every character of the author's text is escaped, and the only markup
/// is `<mark>`…`</mark>` around the matches the database marked with [`MATCH_START`]/[`MATCH_END`].
pub fn highlighted_excerpt(marked: &str) -> String {
    let mut out = String::with_capacity(marked.len() + marked.len() / 8);
    let mut open = false;
    for part in marked.split_inclusive([MATCH_START, MATCH_END]) {
        let (text, marker) = match part.chars().last() {
            Some(c @ (MATCH_START | MATCH_END)) => (&part[..part.len() - c.len_utf8()], Some(c)),
            _ => (part, None),
        };
        push_escaped(&mut out, text);
        match marker {
            Some(MATCH_START) if !open => {
                out.push_str("<mark>");
                open = true;
            }
            Some(MATCH_END) if open => {
                out.push_str("</mark>");
                open = false;
            }
            _ => {}
        }
    }
    if open {
        out.push_str("</mark>");
    }
    out
}

/// The text of (sanitised) HTML: tags dropped, the common entities decoded, whitespace collapsed.
pub fn text_of(html: &str) -> String {
    let mut text = String::with_capacity(html.len());
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => {
                in_tag = true;
                text.push(' ');
            }
            '>' if in_tag => in_tag = false,
            c if !in_tag => text.push(c),
            _ => {}
        }
    }
    let text = text
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&");
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The first `max` characters of the HTML's text, cut at a word and ended with `…` when longer.
pub fn excerpt(html: &str, max: usize) -> String {
    let text = text_of(html);
    if text.chars().count() <= max {
        return text;
    }
    let cut: String = text.chars().take(max).collect();
    let cut = cut.rsplit_once(' ').map_or(cut.as_str(), |(head, _)| head);
    format!("{}…", cut.trim_end_matches([',', '.', ';', ':']))
}

/// Words in the HTML's text.
pub fn word_count(html: &str) -> usize {
    words_in(&text_of(html))
}

/// Reading time at 230 words a minute, at least one minute.
pub fn reading_time_minutes(markdown: &str) -> i32 {
    (words_in(markdown).div_ceil(230)).max(1) as i32
}

/// Words as `str::split_whitespace` counts them; ASCII text (most bodies) byte by byte, without decoding
/// characters (a rebuild counts every post's words).
fn words_in(text: &str) -> usize {
    if !text.is_ascii() {
        return text.split_whitespace().count();
    }
    // The ASCII characters `char::is_whitespace` accepts (vertical tab included, unlike `u8::is_ascii_whitespace`).
    let space = |b: u8| matches!(b, b' ' | b'\t' | b'\n' | b'\x0B' | b'\x0C' | b'\r');
    // A word starts at a non-space byte that is first or follows a space: counted pairwise, without a
    // carried state, so the compiler can compare many bytes at once.
    let bytes = text.as_bytes();
    let first = bytes.first().is_some_and(|&b| !space(b));
    let next = bytes.get(1..).unwrap_or_default();
    let after_space: usize = bytes.iter().zip(next).map(|(&a, &b)| usize::from(space(a) && !space(b))).sum();
    usize::from(first) + after_space
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts_and_handlers_never_survive_rendering() {
        let html = markdown_to_safe_html(
            "# Hi\n\n<script>alert(1)</script><img src=x onerror=alert(1)>\n\n[a](javascript:alert(1)) <a href=\"javascript:x\">b</a>",
        );
        assert!(html.contains("<h1>Hi</h1>"), "{html}");
        for bad in ["<script", "onerror", "href=\"javascript"] {
            assert!(!html.contains(bad), "{bad} in {html}");
        }
    }

    #[test]
    fn excerpts_escape_the_authors_markup_and_keep_only_the_marks() {
        let marked = "a <img src=x onerror=alert(1)> \u{E000}word\u{E001} & \"q\" \u{E000}more";
        assert_eq!(
            highlighted_excerpt(marked),
            "a &lt;img src=x onerror=alert(1)&gt; <mark>word</mark> &amp; &quot;q&quot; <mark>more</mark>"
        );
        assert_eq!(highlighted_excerpt("\u{E001}x\u{E000}\u{E000}y"), "x<mark>y</mark>");
        assert_eq!(escape_html("<a href='x'>"), "&lt;a href=&#39;x&#39;&gt;");
    }

    #[test]
    fn text_and_excerpts_come_from_the_html_without_its_markup() {
        let html = "<h2>Title</h2><p>One &amp; two <em>three</em> four five six</p>";
        assert_eq!(text_of(html), "Title One & two three four five six");
        assert_eq!(excerpt(html, 17), "Title One & two…");
        assert_eq!(excerpt(html, 200), "Title One & two three four five six");
        assert_eq!(word_count(html), 8);
    }

    #[test]
    fn reading_time_rounds_up_and_is_at_least_one_minute() {
        assert_eq!(reading_time_minutes(""), 1);
        assert_eq!(reading_time_minutes(&"w ".repeat(231)), 2);
    }

    #[test]
    fn words_are_counted_as_split_whitespace_counts_them_in_ascii_and_other_text() {
        for text in [
            "",
            "  ",
            "one",
            " two  words ",
            "a\tb\nc\rd\x0Be\x0Cf",
            "**bold**\n\n- item",
            "naïve café",
            "a\u{00A0}b\u{2003}c",
        ] {
            assert_eq!(words_in(text), text.split_whitespace().count(), "{text:?}");
        }
    }
}
