#!/usr/bin/python3
"""A static web server for Ferry's tests: serves a directory on 127.0.0.1 with byte ranges, logs every
request as a JSON line, and misbehaves on demand (for mirror-fallback and hostile-network tests).

Usage: test-http-server.py --root DIR --log FILE [--faults FILE] [--port N]
Prints "PORT <n>" on its first line. Faults are re-read from the JSON file on every request:
  {"<path suffix>": {"mode": MODE, "after": BYTES, "times": N}}
modes: cut (send AFTER bytes then close), corrupt (flip one byte), stall (send AFTER bytes, then hang),
endless (stream zeros without end), bad-length (announce more bytes than sent, then close),
redirect-loop (302 to itself), redirect-chain (302 to itself with a new query each time: never a cycle),
stall-headers (accept the request, never answer), endless-length (announce a huge Content-Length, stream zeros),
slow (send at RATE bytes/s, default 1 MiB/s), status-N (any N), drip (send AFTER bytes, then one byte every
INTERVAL seconds, default 0.5), drip-headers (send the status line, then one header byte every INTERVAL seconds),
challenge (401 with the header "WWW-Authenticate: CHALLENGE"), no-ranges (ignore Range: 200 with the whole file, as
some servers do). "times" (default: always) counts down.
Each log line has the request's Authorization header ("authorization", or null).
"""
import argparse, json, os, sys, threading, time
from http.server import ThreadingHTTPServer, BaseHTTPRequestHandler
from urllib.parse import unquote, urlsplit

lock = threading.Lock()

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", required=True)
    ap.add_argument("--log", required=True)
    ap.add_argument("--faults")
    ap.add_argument("--port", type=int, default=0)
    args = ap.parse_args()
    root = os.path.realpath(args.root)

    def take_fault(path):
        if not args.faults or not os.path.exists(args.faults):
            return None
        with lock:
            try:
                with open(args.faults) as f:
                    faults = json.load(f)
            except (OSError, ValueError):
                return None
            for suffix, fault in faults.items():
                if not path.endswith(suffix):
                    continue
                times = fault.get("times")
                if times is not None:
                    if times <= 0:
                        continue
                    fault["times"] = times - 1
                    with open(args.faults + ".tmp", "w") as f:
                        json.dump(faults, f)
                    os.replace(args.faults + ".tmp", args.faults)
                return fault
        return None

    def log(entry):
        with lock, open(args.log, "a") as f:
            f.write(json.dumps(entry) + "\n")

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a):
            pass

        def do_HEAD(self):
            self.handle_get(head=True)

        def do_GET(self):
            self.handle_get(head=False)

        def handle_get(self, head):
            path = unquote(urlsplit(self.path).path)
            entry = {"path": path, "range": self.headers.get("Range"), "status": 0, "bytes": 0,
                     "authorization": self.headers.get("Authorization")}
            try:
                self.serve(path, head, entry)
            except (BrokenPipeError, ConnectionResetError):
                pass
            finally:
                log(entry)

        def send(self, status, body=b"", headers=None, entry=None):
            self.send_response(status)
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            entry["status"] = status
            entry["bytes"] += len(body)

        def serve(self, path, head, entry):
            fault = take_fault(path)
            mode = fault.get("mode") if fault else None
            if mode == "redirect-loop":
                return self.send(302, headers={"Location": self.path}, entry=entry)
            if mode == "redirect-chain":
                n = int(urlsplit(self.path).query or 0) + 1
                return self.send(302, headers={"Location": "%s?%d" % (urlsplit(self.path).path, n)}, entry=entry)
            if mode == "stall-headers":
                time.sleep(300)
                self.close_connection = True
                return
            if mode == "challenge":
                return self.send(401, b"unauthorized\n", headers={"WWW-Authenticate": fault["challenge"]},
                                 entry=entry)
            if mode == "drip-headers":
                self.wfile.write(b"HTTP/1.1 200 OK\r\nX-Drip: ")
                self.wfile.flush()
                entry["status"] = 200
                deadline = time.time() + 120
                while time.time() < deadline:
                    time.sleep(float(fault.get("interval", 0.5)))
                    self.wfile.write(b"a")
                    self.wfile.flush()
                self.close_connection = True
                return
            if mode and mode.startswith("status-"):
                return self.send(int(mode[7:]), b"fault\n", entry=entry)
            full = os.path.realpath(os.path.join(root, path.lstrip("/")))
            if not full.startswith(root + os.sep) and full != root:
                return self.send(403, b"forbidden\n", entry=entry)
            if os.path.isdir(full):
                full = os.path.join(full, "index.html")
            if mode in ("endless", "endless-length"):
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                if mode == "endless-length":
                    self.send_header("Content-Length", str(1 << 40))
                self.end_headers()
                entry["status"] = 200
                chunk = b"\0" * 65536
                deadline = time.time() + 120
                while time.time() < deadline:
                    self.wfile.write(chunk)
                    entry["bytes"] += len(chunk)
                return
            if not os.path.isfile(full):
                return self.send(404, b"not found\n", entry=entry)
            with open(full, "rb") as f:
                data = f.read()
            start, status = 0, 200
            rng = self.headers.get("Range")
            if rng and rng.startswith("bytes=") and mode in (None, "slow"):
                first, _, last = rng[6:].partition("-")
                start = int(first or 0)
                end = int(last) + 1 if last else len(data)
                if start >= len(data):
                    return self.send(416, entry=entry, headers={"Content-Range": "bytes */%d" % len(data)})
                data_out = data[start:end]
                status = 206
                headers = {"Content-Range": "bytes %d-%d/%d" % (start, start + len(data_out) - 1, len(data))}
            else:
                data_out, headers = data, {}
            headers["Accept-Ranges"] = "bytes"
            headers["Content-Type"] = "application/json" if full.endswith(".json") else "application/octet-stream"
            after = int(fault.get("after", len(data_out) // 2)) if fault else 0
            if mode == "corrupt":
                b = bytearray(data_out)
                if b:
                    b[min(after, len(b) - 1)] ^= 0xFF
                data_out = bytes(b)
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            if mode == "bad-length":
                self.send_header("Content-Length", str(len(data_out) + 1000))
            else:
                self.send_header("Content-Length", str(len(data_out)))
            self.end_headers()
            entry["status"] = status
            if head:
                return
            if mode in ("cut", "stall", "bad-length"):
                part = data_out[:after] if mode != "bad-length" else data_out
                self.wfile.write(part)
                self.wfile.flush()
                entry["bytes"] += len(part)
                if mode == "stall":
                    time.sleep(300)
                self.close_connection = True
                return
            if mode == "drip":
                self.wfile.write(data_out[:after])
                self.wfile.flush()
                entry["bytes"] += after
                deadline = time.time() + 120
                for i in range(after, len(data_out)):
                    if time.time() > deadline:
                        break
                    time.sleep(float(fault.get("interval", 0.5)))
                    self.wfile.write(data_out[i:i + 1])
                    self.wfile.flush()
                    entry["bytes"] += 1
                self.close_connection = True
                return
            if mode == "slow":
                rate = int(fault.get("rate", 1 << 20))
                step = max(1, rate // 20)
                for i in range(0, len(data_out), step):
                    self.wfile.write(data_out[i:i + step])
                    self.wfile.flush()
                    entry["bytes"] += len(data_out[i:i + step])
                    time.sleep(0.05)
                return
            self.wfile.write(data_out)
            entry["bytes"] += len(data_out)

    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    print("PORT %d" % server.server_address[1], flush=True)
    server.serve_forever()

if __name__ == "__main__":
    main()
