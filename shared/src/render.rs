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
    fn reading_time_rounds_up_and_is_at_least_one_minute() {
        assert_eq!(reading_time_minutes(""), 1);
        assert_eq!(reading_time_minutes(&"w ".repeat(231)), 2);
    }
}
