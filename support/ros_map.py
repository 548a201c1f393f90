"""ROS map_server maps (a YAML beside a PGM or PNG) in, poses in metres out (lesson 16's `plan`).

Read as map_server's image_loader.cpp reads them: the YAML's `image` (relative to the YAML), `resolution` (metres
per pixel), `origin` [x, y, yaw] (the pose of the lower-left pixel's lower-left corner), `negate`,
`occupied_thresh`, `free_thresh`, `mode` (trinary, scale or raw). A pixel's occupancy is (255 - mean of its
channels) / 255 (alpha averaged in only in trinary mode), after `negate`; image row 0 is the map's top. A planner
may cross only free pixels (occupancy below free_thresh; raw mode: value 0): unknown ones count as occupied.
The written path is nav_msgs/Path-shaped YAML (frame `map`, metres, yaw as a quaternion; REP 103/105).
"""
import math
from dataclasses import dataclass
from pathlib import Path

from support.cli import UsageError
from support.files import MARK, atomic_write, check_output, read_text, write_text

YAML_MARK = f"# {MARK}"  # the first line of every YAML written here: a file a command here made
MAP_KIND, PATH_KIND = "(map_server format)", "(nav_msgs/Path)"  # how that first line ends: which kind of file


@dataclass
class GridMap:
    """A map_server map: which pixels a robot may cross, and where they are in metres."""

    free: object  # (H, W) numpy bool array, image rows: row 0 is the top of the map
    resolution: float  # metres per pixel
    origin: tuple  # (x, y, yaw) of the lower-left corner of the lower-left pixel
    name: str

    def to_pixel(self, x, y):
        """Metres in the map frame -> (column, row from the top), in pixels (floats)."""
        ox, oy, yaw = self.origin
        dx, dy = x - ox, y - oy
        u = (math.cos(yaw) * dx + math.sin(yaw) * dy) / self.resolution  # along the image's rows
        v = (-math.sin(yaw) * dx + math.cos(yaw) * dy) / self.resolution  # up from its bottom
        return u, self.free.shape[0] - v

    def to_metres(self, u, row):
        ox, oy, yaw = self.origin
        a, b = u * self.resolution, (self.free.shape[0] - row) * self.resolution
        return ox + math.cos(yaw) * a - math.sin(yaw) * b, oy + math.sin(yaw) * a + math.cos(yaw) * b

    def cell_px(self, size):
        """Pixels per side of one grid cell: the whole map fits in size x size cells."""
        return math.ceil(max(self.free.shape) / size)

    def cell_of(self, xy, size, what):
        H, W = self.free.shape
        u, row = self.to_pixel(*xy)
        # A pixel holds its left and lower edges (map_server: pixel i spans [i, i + 1) x resolution
        # from the origin), so a point on the line between two image rows is in the upper one.
        col, r = (math.floor(u), H - 1 - math.floor(H - row)) if math.isfinite(u + row) else (-1, -1)
        if not (0 <= col < W and 0 <= r < H):
            raise UsageError(f"{what} ({xy[0]:g}, {xy[1]:g}) m is outside the map {self.name} "
                             f"({W} x {H} pixels of {self.resolution:g} m)")
        if not self.free[r, col]:
            raise UsageError(f"{what} ({xy[0]:g}, {xy[1]:g}) m is on an occupied or unknown pixel of {self.name}")
        c = self.cell_px(size)
        return r // c * size + col // c

    def grid(self, size, start, goal):
        """The map as size x size cells, row by row from the top: `#` if any pixel in the cell is not free (or
        the cell reaches past the image), else `.`; `S` and `G` in the cells of start and goal (metres)."""
        H, W = self.free.shape
        c = self.cell_px(size)
        cells = []
        for r in range(size):
            for col in range(size):
                block = self.free[r * c : (r + 1) * c, col * c : (col + 1) * c]
                whole = block.shape == (c, c)
                cells.append("." if whole and block.all() else "#")
        s, g = self.cell_of(start, size, "--start"), self.cell_of(goal, size, "--goal")
        for cell, what in ((s, "--start"), (g, "--goal")):
            if cells[cell] == "#":
                raise UsageError(f"{what} is in a grid cell ({c} x {c} pixels) that holds an occupied or unknown "
                                 "pixel: choose a point farther from the walls")
        if s == g:
            raise UsageError(f"--start and --goal are in the same grid cell ({c * self.resolution:g} m wide): "
                             "nothing to plan")
        cells[s], cells[g] = "S", "G"
        return "".join(cells)

    def poses(self, path, size, start, goal):
        """[(x, y, yaw)] in metres: the start, the centre of every cell between, the goal; yaw faces the next
        pose (the last keeps the one before). Two consecutive poses lie in two neighbouring free cells, whose
        union is a rectangle: no segment crosses an occupied pixel."""
        c = self.cell_px(size)
        points = [tuple(start)] + [self.to_metres((i % size + 0.5) * c, (i // size + 0.5) * c)
                                   for i in path[1:-1]] + [tuple(goal)]
        yaws = [math.atan2(b[1] - a[1], b[0] - a[0]) for a, b in zip(points, points[1:])]
        return [(x, y, yaw) for (x, y), yaw in zip(points, yaws + yaws[-1:])]


def plan_cli(args, size, planner, distances):
    """Lesson 16's `plan MAP.yaml --start X Y --goal X Y [--out PATH.yaml]`: the map read, reduced to size x size
    cells, checked for a way from start to goal (distances: BFS moves to a cell), planned (planner: 256 characters
    -> cells from S to G, or None), printed as `x y yaw` poses; --out also writes them as a nav_msgs/Path."""
    import sys

    if args.out:
        check_out(args.out, args.force, args.map)  # before any work
    grid_map = read(args.map)
    cells = grid_map.grid(size, args.start, args.goal)  # `#` where any pixel is not free
    if cells.index("S") not in distances([ch == "#" for ch in cells], cells.index("G")):
        raise UsageError(f"{args.map}: no path exists from --start to --goal on the {size} x {size} grid (a cell is "
                         "a wall if any pixel in it is not free)")
    path = planner(cells)
    if path is None:
        raise UsageError(f"{args.map}: the {args.model} found no path from --start to --goal")
    poses = grid_map.poses(path, size, args.start, args.goal)
    print("\n".join(f"{x:.3f} {y:.3f} {yaw:.4f}" for x, y, yaw in poses))
    if args.out:
        write_path(args.out, poses, force=args.force)
        print(f"wrote {args.out} (nav_msgs/Path, frame map)", file=sys.stderr)
    return poses


def as_number(value):
    """A YAML value as map_server's yaml-cpp reads a double, else None. PyYAML reads YAML 1.1, where `5e-2` (no
    dot) is a string; yaml-cpp reads it as 0.05, and so do we. Booleans are not numbers."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    try:
        return float(value)
    except ValueError:
        return None


def yaml_number(meta, key, path, default=None, lo=-math.inf, hi=math.inf):
    value = meta.get(key, default)
    if value is None:
        raise UsageError(f"{path}: no `{key}` (map_server needs it)")
    number = as_number(value)
    if number is None or not math.isfinite(number) or not lo <= number <= hi:  # .inf metres a pixel: no map
        within = f"at least {lo:g}" if hi == math.inf else f"in [{lo:g}, {hi:g}]"
        raise UsageError(f"{path}: `{key}` must be a finite number {within}, not {value!r}")
    return number


def read(path):
    """A map_server YAML and its image -> GridMap; anything wrong is one line."""
    import numpy as np
    import yaml
    from PIL import Image

    try:
        meta = yaml.safe_load(read_text(path))
    except yaml.YAMLError as e:
        raise UsageError(f"{path} is not YAML ({str(e).splitlines()[0]})") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("image"), str):
        raise UsageError(f"{path}: not a map_server map (no `image:` key naming a PGM or PNG)")
    origin = meta.get("origin")
    xyw = [as_number(v) for v in origin] if isinstance(origin, list) and len(origin) == 3 else [None]
    if not all(v is not None and math.isfinite(v) for v in xyw):
        raise UsageError(f"{path}: `origin` must be [x, y, yaw], finite numbers, not {origin!r}")
    res = yaml_number(meta, "resolution", path, lo=1e-9)
    occ_th = yaml_number(meta, "occupied_thresh", path, 0.65, 0, 1)
    free_th = yaml_number(meta, "free_thresh", path, 0.196, 0, 1)
    mode = meta.get("mode", "trinary")
    if mode not in ("trinary", "scale", "raw"):
        raise UsageError(f"{path}: `mode` is trinary, scale or raw, not {mode!r}")
    if free_th > occ_th:
        raise UsageError(f"{path}: free_thresh {free_th:g} is above occupied_thresh {occ_th:g}")
    image = Path(path).parent / meta["image"]
    try:
        with Image.open(image) as im:
            alpha = "A" in im.mode or "transparency" in im.info
            if im.mode.startswith("I"):  # 16 bits a pixel: im.convert("L") would clip all above 255 to white
                level = np.asarray(im, dtype=float)  # 0-65535 (PIL scales any PGM maxval to that)
                pixels = level[..., None] * (255 / 65535)  # fractions of white, as map_server reads them
                if alpha:  # one grey value marked transparent (PNG's tRNS)
                    opaque = level != im.info["transparency"]
                    pixels = np.concatenate([pixels, 255.0 * opaque[..., None]], -1)
            else:
                grey = im.mode in ("L", "LA", "1", "F") or (im.mode == "P" and not alpha)
                pixels = np.asarray(im.convert(("L" if grey else "RGB") + "A" * alpha), dtype=float)
    except FileNotFoundError:
        raise UsageError(f"{path}: its image {image} does not exist") from None
    except (OSError, ValueError, Image.DecompressionBombError) as e:  # the bomb: a header claiming 10^10 pixels
        raise UsageError(f"{path}: cannot read its image {image} ({e})") from None
    if pixels.ndim == 2:
        pixels = pixels[..., None]  # one channel
    colour = pixels[..., :-1] if alpha else pixels
    # trinary averages an alpha channel in with the colours (image_loader.cpp); the other modes leave it out
    avg = pixels.mean(-1) if mode == "trinary" else colour.mean(-1)
    if meta.get("negate", 0):
        avg = 255 - avg
    if mode == "raw":
        free = avg == 0
    else:
        free = (255 - avg) / 255 < free_th
        if mode == "scale":
            free &= pixels[..., -1] > 0 if alpha else True  # a transparent pixel is unknown
    if free.size == 0:
        raise UsageError(f"{path}: its image {image} has no pixels")
    return GridMap(free, res, tuple(xyw), str(path))


def write_map(yaml_path, rows, resolution=0.1, origin=(0.0, 0.0, 0.0), cell_px=5, force=False):
    """A map_server map of rows (strings, top first; `#` occupied) as map_saver writes one: a P5 PGM (free 254,
    occupied 0) beside a YAML, each cell cell_px x cell_px pixels."""
    import numpy as np

    yaml_path = Path(yaml_path)
    if yaml_path.suffix != ".yaml":
        raise UsageError(f"--ros {yaml_path}: needs a file name ending in .yaml")
    if yaml_path.exists() and not force and not made_here_text(yaml_path, MAP_KIND):
        raise UsageError(f"--ros {yaml_path} already exists and was not made here as a map: --force replaces it")
    image = yaml_path.with_suffix(".pgm")
    check_output(image, ".pgm", force or made_here_text(yaml_path, MAP_KIND), flag="--ros's image")
    block = np.array([[0 if ch == "#" else 254 for ch in row] for row in rows], dtype=np.uint8)
    pixels = block.repeat(cell_px, 0).repeat(cell_px, 1)
    header = f"P5\n# {MARK}\n{pixels.shape[1]} {pixels.shape[0]}\n255\n".encode()
    atomic_write(image, lambda tmp: Path(tmp).write_bytes(header + pixels.tobytes()))
    write_text(yaml_path, f"{YAML_MARK}: robot_maps.py --ros {MAP_KIND}\nimage: {image.name}\n"
                          f"resolution: {resolution}\norigin: [{origin[0]}, {origin[1]}, {origin[2]}]\n"
                          "negate: 0\noccupied_thresh: 0.65\nfree_thresh: 0.196\nmode: trinary\n")
    return yaml_path


def made_here_text(path, kind):
    """True if the text file at `path` opens with this repository's mark on a first line that ends with `kind`
    (MAP_KIND, PATH_KIND): a writer replaces only the files it made, so `plan MAP --out MAP` cannot write a path
    over a map."""
    try:
        with open(path, "rb") as f:
            first = f.readline(200).decode("utf-8", "replace").rstrip("\r\n")
    except OSError:
        return False
    return first.startswith(YAML_MARK) and first.endswith(kind)


def check_out(path, force=False, map_path=None):
    """--out of `plan`, checked before any work: a .yaml name, not the map being planned, and no file there but a
    path a command here made (unless force)."""
    path = Path(path)
    if path.suffix.lower() not in (".yaml", ".yml"):
        raise UsageError(f"--out {path}: needs a file name ending in .yaml")
    if map_path is not None and path.exists() and path.resolve() == Path(map_path).resolve():
        raise UsageError(f"--out {path} is the map being planned: name another file for the path")
    if path.exists() and not force and not made_here_text(path, PATH_KIND):
        raise UsageError(f"--out {path} already exists and was not made here as a path: choose another name, "
                         "or add --force to replace it")
    return path


def write_path(path, poses, force=False):
    """poses [(x, y, yaw)] as a nav_msgs/Path-shaped YAML (frame map), e.g. for `ros2 topic pub`."""
    path = check_out(path, force)
    lines = [f"{YAML_MARK}: 16_robot_paths.py plan {PATH_KIND}", "header:", "  frame_id: map", "poses:"]
    for x, y, yaw in poses:
        lines += ["- header:", "    frame_id: map", "  pose:",
                  f"    position: {{x: {x:.4f}, y: {y:.4f}, z: 0.0}}",
                  f"    orientation: {{x: 0.0, y: 0.0, z: {math.sin(yaw / 2):.6f}, w: {math.cos(yaw / 2):.6f}}}"]
    write_text(path, "\n".join(lines) + "\n")
    return path
