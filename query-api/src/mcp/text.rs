//! What a read tool answers: its structured content (as the tool's output schema says) and a short text
//! rendering of the same for clients that show the model only text — a post as Markdown, a list as a line
//! per post — instead of the JSON again as an escaped string.

use std::fmt::Write;

use rmcp::handler::server::tool::IntoCallToolResult;
use rmcp::model::{CallToolResponse, CallToolResult, ContentBlock};
use rmcp::ErrorData;
use serde::Serialize;

use super::shapes::*;

/// A result with its text rendering.
pub struct Answer<T>(pub T);

/// The short text an agent reads when its client shows only text.
pub trait Text {
    fn text(&self) -> String;
}

impl<T: Serialize + Text> IntoCallToolResult for Answer<T> {
    fn into_call_tool_result(self) -> Result<CallToolResponse, ErrorData> {
        let result =
            answer(&self.0).map_err(|e| ErrorData::internal_error(format!("a result did not serialize: {e}"), None))?;
        Ok(result.into())
    }
}

/// The tool result for `out`: structured content plus its text.
pub fn answer<T: Serialize + Text>(out: &T) -> Result<CallToolResult, serde_json::Error> {
    let value = serde_json::to_value(out)?;
    let mut result = CallToolResult::success(vec![ContentBlock::text(out.text())]);
    result.structured_content = Some(value);
    Ok(result)
}

fn date(at: &Option<chrono::DateTime<chrono::Utc>>) -> String {
    at.map(|t| t.format("%Y-%m-%d").to_string()).unwrap_or_default()
}

fn item_line(out: &mut String, p: &PostItem) {
    let _ = write!(out, "- {} (`{}`, {}, {})", p.title, p.slug, p.author, date(&p.published_at));
    if let Some(summary) = &p.summary {
        let _ = write!(out, ": {summary}");
    }
    out.push('\n');
}

fn footer(out: &mut String, next_cursor: &Option<String>, position: i64) {
    if let Some(cursor) = next_cursor {
        let _ = writeln!(out, "next_cursor: {cursor}");
    }
    let _ = write!(out, "position: {position}");
}

impl Text for PostOut {
    fn text(&self) -> String {
        let mut out = format!("# {}\n\n{} · {}", self.title, self.author, date(&self.published_at));
        if !self.tags.is_empty() {
            let _ = write!(out, " · {}", self.tags.join(", "));
        }
        let _ = write!(out, " · {} · version {}, position {}\n\n", self.url, self.version, self.position);
        out.push_str(&self.body_markdown);
        out
    }
}

/// A line per post, then the cursor and position.
fn post_lines(posts: &[PostItem], next_cursor: &Option<String>, position: i64) -> String {
    let mut out = String::new();
    posts.iter().for_each(|p| item_line(&mut out, p));
    footer(&mut out, next_cursor, position);
    out
}

impl Text for PostList {
    fn text(&self) -> String {
        post_lines(&self.posts, &self.next_cursor, self.position)
    }
}

impl Text for SearchResults {
    fn text(&self) -> String {
        let mut out = String::new();
        for hit in &self.results {
            item_line(&mut out, &hit.post);
            let _ = writeln!(out, "  {}", hit.snippet);
        }
        footer(&mut out, &self.next_cursor, self.position);
        out
    }
}

impl Text for TagsOut {
    fn text(&self) -> String {
        let mut out = String::new();
        for t in &self.tags {
            let _ = writeln!(out, "- {} (`{}`): {} posts", t.name, t.slug, t.post_count);
        }
        footer(&mut out, &None, self.position);
        out
    }
}

impl Text for AuthorOut {
    fn text(&self) -> String {
        let bio = self.bio.as_deref().map(|b| format!(": {b}")).unwrap_or_default();
        format!(
            "{} (`{}`){bio}\n{} posts · {}\nposition: {}",
            self.name, self.slug, self.post_count, self.url, self.position
        )
    }
}

impl Text for TrendingOut {
    fn text(&self) -> String {
        post_lines(&self.posts, &None, self.position)
    }
}
