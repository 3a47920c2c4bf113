"""The media example's local service on 127.0.0.1: images to download and
a place to upload thumbnails, kept in memory.

    python3 images.py [--port N] [--images N]

Prints `listening on PORT` once it accepts connections (port 0, the default,
picks a free one).

  GET /images            a JSON array of the images' URLs
  GET /images/NAME.png   one image: a PNG of a few hundred thousand pixels
  PUT /thumbs/NAME.png   stores an uploaded thumbnail
  GET /thumbs            [{name, bytes, width, height}] of every upload,
                         width and height read from the PNG itself
"""

import argparse
import json
import struct
import threading
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SIZES = [(640, 480), (480, 640), (800, 600), (600, 800), (1024, 768), (512, 512), (960, 540), (300, 200)]
IMAGES = {}
THUMBS = {}
LOCK = threading.Lock()


def png(width, height, seed):
    """An RGB PNG with gradients, made without any imaging library."""
    xs = bytes((x * 255 // max(width - 1, 1) + seed * 37) % 256 for x in range(width))
    back = xs[::-1]
    raw = bytearray()
    for y in range(height):
        row = bytearray(3 * width)
        row[0::3] = xs
        row[1::3] = bytes([(y * 255 // max(height - 1, 1)) % 256]) * width
        row[2::3] = back
        raw += b"\0" + row

    def chunk(kind, data):
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(bytes(raw), 6)) + chunk(b"IEND", b""))


def dimensions(data):
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        return None, None
    return struct.unpack(">II", data[16:24])


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reply(self, status, data, kind="application/json"):
        self.send_response(status)
        self.send_header("content-type", kind)
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path == "/images":
            host = f"http://127.0.0.1:{self.server.server_address[1]}"
            urls = [f"{host}/images/{name}" for name in sorted(IMAGES)]
            return self.reply(200, json.dumps(urls).encode())
        if self.path.startswith("/images/") and self.path[8:] in IMAGES:
            return self.reply(200, IMAGES[self.path[8:]], "image/png")
        if self.path == "/thumbs":
            with LOCK:
                listing = []
                for name, data in sorted(THUMBS.items()):
                    width, height = dimensions(data)
                    listing.append({"name": name, "bytes": len(data), "width": width, "height": height})
            return self.reply(200, json.dumps(listing).encode())
        self.reply(404, b'{"error": "not found"}')

    def do_PUT(self):
        length = int(self.headers.get("content-length") or 0)
        data = self.rfile.read(length)
        if not self.path.startswith("/thumbs/"):
            return self.reply(404, b'{"error": "not found"}')
        with LOCK:
            THUMBS[self.path[8:]] = data
        self.reply(201, b'{"stored": true}')


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--images", type=int, default=len(SIZES))
    arguments = parser.parse_args()
    for n in range(arguments.images):
        width, height = SIZES[n % len(SIZES)]
        IMAGES[f"photo-{n:03}.png"] = png(width, height, n)
    server = ThreadingHTTPServer(("127.0.0.1", arguments.port), Handler)
    print(f"listening on {server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
