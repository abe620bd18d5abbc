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

/// Reading time at 230 words a minute, at least one minute.
pub fn reading_time_minutes(markdown: &str) -> i32 {
    let words = markdown.split_whitespace().count();
    (words.div_ceil(230)).max(1) as i32
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
    fn reading_time_rounds_up_and_is_at_least_one_minute() {
        assert_eq!(reading_time_minutes(""), 1);
        assert_eq!(reading_time_minutes(&"w ".repeat(231)), 2);
    }
}
