-- wrk: MCP ping on the query API (stateless Streamable HTTP): what the SDK's transport costs per request.
wrk.method = "POST"
wrk.headers["content-type"] = "application/json"
wrk.headers["accept"] = "application/json, text/event-stream"
wrk.body = '{"jsonrpc":"2.0","id":1,"method":"ping"}'
