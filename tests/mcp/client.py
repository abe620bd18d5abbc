"""A real MCP client (the official Python SDK, Streamable HTTP) driving a Pressroom MCP endpoint.

Usage: client.py URL CALLS_JSON [BEARER_TOKEN]
CALLS_JSON is a list of [tool, arguments]. Prints one JSON object: the server's name and protocol version,
the tools (name, has an output schema), the resources and the text of the first (when the server has
resources), and per call either the result (is_error, structured content, text)
or the protocol error the SDK raised. A session that cannot start (a 401) prints {"connect_error": ...}.
"""
import asyncio
import json
import sys

import httpx2
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client


async def main(url: str, calls: list, token: str | None) -> dict:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    out: dict = {"calls": []}
    async with httpx2.AsyncClient(headers=headers, timeout=30) as http:
        async with streamable_http_client(url, http_client=http) as (read, write):
            async with ClientSession(read, write) as session:
                init = await session.initialize()
                out["server"] = init.server_info.name
                out["protocol_version"] = init.protocol_version
                listed = await session.list_tools()
                out["tools"] = [{"name": t.name, "output_schema": t.output_schema is not None} for t in listed.tools]
                if init.capabilities.resources is not None:
                    resources = (await session.list_resources()).resources
                    out["resources"] = [{"uri": str(r.uri), "mime_type": r.mime_type} for r in resources]
                    if resources:
                        read = await session.read_resource(resources[0].uri)
                        out["resource_text"] = [getattr(c, "text", None) for c in read.contents]
                for name, arguments in calls:
                    try:
                        r = await session.call_tool(name, arguments)
                        texts = [c.text for c in r.content if getattr(c, "type", "") == "text"]
                        out["calls"].append(
                            {
                                "tool": name,
                                "is_error": bool(r.is_error),
                                "structured": r.structured_content,
                                "text": texts,
                                "meta": r.meta,
                            }
                        )
                    except Exception as e:  # the SDK raises protocol errors (unknown tool, invalid arguments)
                        out["calls"].append({"tool": name, "protocol_error": str(e)})
    return out


def flatten(e: BaseException) -> str:
    """The messages of an exception and, for a group (the SDK's task groups raise them), its members."""
    if isinstance(e, BaseExceptionGroup):
        return "; ".join(flatten(x) for x in e.exceptions)
    return f"{type(e).__name__}: {e}"


if __name__ == "__main__":
    token = sys.argv[3] if len(sys.argv) > 3 else None
    try:
        result = asyncio.run(main(sys.argv[1], json.loads(sys.argv[2]), token))
    except Exception as e:  # noqa: BLE001 - reported to the test, which decides
        result = {"connect_error": flatten(e)}
    print(json.dumps(result, default=str))
