"""A stdio MCP server with one tool, `lookup_order`, in the standard library only: what a
harness app's `.mcp.json` may start (newline-delimited JSON-RPC over stdin and stdout)."""

import json
import sys

TOOL = {
    "name": "lookup_order",
    "description": "Look up an order of Beans & Co. by its id.",
    "inputSchema": {"type": "object", "properties": {"order_id": {"type": "string"}}},
}


def answer(request: dict) -> dict | None:
    method, params = request.get("method"), request.get("params") or {}
    if method == "initialize":
        version = params.get("protocolVersion", "2024-11-05")
        info = {"name": "orders", "version": "1.0"}
        return {"protocolVersion": version, "capabilities": {"tools": {}}, "serverInfo": info}
    if method == "tools/list":
        return {"tools": [TOOL]}
    if method == "tools/call":
        order = (params.get("arguments") or {}).get("order_id")
        return {"content": [{"type": "text", "text": f"order {order} shipped yesterday"}]}
    return None


for line in sys.stdin:
    request = json.loads(line)
    if "id" not in request:
        continue  # a notification (`notifications/initialized`) wants no answer
    result = answer(request)
    reply = {"jsonrpc": "2.0", "id": request["id"]}
    if result is None:
        reply["error"] = {"code": -32601, "message": f"no method {request.get('method')}"}
    else:
        reply["result"] = result
    sys.stdout.write(json.dumps(reply) + "\n")
    sys.stdout.flush()
