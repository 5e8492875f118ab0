"""A scripted OpenAI-compatible teacher for scripts/bench-bounds.sh: every rollout writes a
file of BENCH_FILE_BYTES bytes in the workspace and submits it; calls without tools (self-check,
synthetic issue) answer yes. Prints the total bytes of the requests it received on exit."""
import json
import os
import signal
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SIZE = int(os.environ.get("BENCH_FILE_BYTES", str(200 << 20)))
RECEIVED = {"bytes": 0, "requests": 0}


def reply(message):
    return {
        "id": "bench",
        "object": "chat.completion",
        "created": 0,
        "model": "bench",
        "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }


def call(name, arguments):
    return {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": "c", "type": "function", "function": {"name": name, "arguments": json.dumps(arguments)}}
        ],
    }


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def send(self, body):
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        self.send({"object": "list", "data": [{"id": "bench", "object": "model"}]})

    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length)
        RECEIVED["bytes"] += length
        RECEIVED["requests"] += 1
        req = json.loads(body)
        if not req.get("tools"):
            self.send(reply({"role": "assistant", "content": "Yes, it does."}))
            return
        turns = sum(1 for m in req["messages"] if m.get("role") == "assistant")
        if turns == 0:
            cmd = f"cd /workspace && yes 'a line of the generated file' | head -c {SIZE} > big.txt"
            self.send(reply(call("bash", {"command": cmd})))
        else:
            self.send(reply(call("submit", {})))


def main():
    server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler)

    def stop(*_):
        print(json.dumps(RECEIVED), flush=True)
        os._exit(0)

    signal.signal(signal.SIGTERM, stop)
    server.serve_forever()


main()
