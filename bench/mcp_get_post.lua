-- wrk: MCP tools/call get_post on the query API (stateless Streamable HTTP, JSON responses).
-- SLUG names a published post.
wrk.method = "POST"
wrk.headers["content-type"] = "application/json"
wrk.headers["accept"] = "application/json, text/event-stream"
wrk.body = '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"get_post","arguments":{"slug":"'
  .. os.getenv("SLUG") .. '"}}}'
