"""Synthetic world for training and testing ember's world model (pure Python, no dependencies).

A tiled, hashed-colour ground texture that the camera pans over with the mouse, and a 4x4 sprite
that walks with the keys. Integer arithmetic only, so ember's C++ twin (include/ember/world/
synthetic.h) renders the same bytes; tests/world/synthetic_test.cpp checks that against
tests/data/world/synthetic_golden.bin, which `python3 tools/world/synthetic.py --golden OUT`
writes.

Actions use ember's compact text form ("W W+D@0.1,0 . S"): keys W/S/A/D move the sprite STEP = 3
pixels per frame, Space makes it hop for that frame, the mouse (dx, dy) pans the camera by PAN = 40
px per unit (camera step 0.1 -> 4 px, one patch of the model; dy > 0 looks up). The first version
moved the sprite 1 px (its model ignored the keys: too small to pay under the MSE loss); the second
panned 60 px a unit, 1.5 patches a step, and its models never used the mouse (docs/world.md).
"""
import math
import sys

SIZE = 32
SPRITE = 4
KEYS = ["W", "S", "A", "D", "SPACE"]
STEP = 3   # sprite pixels per frame per key
PAN = 40   # camera pixels per mouse unit


def hash2(a, b):
    h = (a * 73856093) ^ (b * 19349663)
    h &= 0xFFFFFFFF
    h ^= h >> 13
    h = (h * 0x5BD1E995) & 0xFFFFFFFF
    h ^= h >> 15
    return h


PALETTE = [(200, 60, 50), (60, 170, 80), (50, 90, 200), (220, 190, 60), (150, 70, 170), (90, 200, 210)]


def texel(u, v):
    base = PALETTE[hash2(u // 8, v // 8) % len(PALETTE)]
    shade = 30 if ((u // 2 + v // 2) % 2) else 0
    return tuple(max(0, c - shade) for c in base)


def parse_compact(text):
    frames = []
    for tok in text.split():
        keys, _, m = tok.partition("@")
        pressed = set() if keys == "." else {k.upper() for k in keys.split("+")}
        for k in pressed:
            if k not in KEYS:
                raise ValueError(f"unknown key {k!r}")
        dx, dy = (float(x) for x in m.split(",")) if m else (0.0, 0.0)
        frames.append((pressed, dx, dy))
    return frames


def pan(d):
    return int(math.floor(d * PAN + 0.5))


class World:
    def __init__(self, seed=0):
        self.cam_x = (seed * 37) % 256
        self.cam_y = (seed * 91) % 256
        self.x, self.y = 14, 14

    def step(self, pressed, dx, dy):
        self.cam_x += pan(dx)
        self.cam_y -= pan(dy)
        self.y += STEP * (("S" in pressed) - ("W" in pressed))
        self.x += STEP * (("D" in pressed) - ("A" in pressed))
        self.x = min(max(self.x, 0), SIZE - SPRITE)
        self.y = min(max(self.y, 2), SIZE - SPRITE)
        return self.render(hop="SPACE" in pressed)

    def render(self, hop=False):
        """bytes, row-major [H][W][3] (RGB)."""
        out = bytearray()
        sy = self.y - (2 if hop else 0)
        for y in range(SIZE):
            for x in range(SIZE):
                if self.x <= x < self.x + SPRITE and sy <= y < sy + SPRITE:
                    edge = x in (self.x, self.x + SPRITE - 1) or y in (sy, sy + SPRITE - 1)
                    out += bytes((255, 255, 255) if edge else (240, 40, 40))
                else:
                    out += bytes(texel(x + self.cam_x, y + self.cam_y))
        return bytes(out)


def rollout(text, seed=0):
    """Frame i shows the world after the actions of frames 0..i-1 (frame 0: the start), matching
    the model's conditioning (latent frame f reads actions f-3..f-1)."""
    w = World(seed)
    frames = [w.render()]
    for pressed, dx, dy in parse_compact(text)[:-1]:
        frames.append(w.step(pressed, dx, dy))
    return frames


GOLDEN_ACTIONS = "W@0,0.2 W+D@0.1,0 D .@0,-0.1 S+Space A@-0.3,0.1 W+A . D@0.3,0"

if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--golden":
        with open(sys.argv[2], "wb") as f:
            for fr in rollout(GOLDEN_ACTIONS, seed=0):
                f.write(fr)
    else:
        print(__doc__)
