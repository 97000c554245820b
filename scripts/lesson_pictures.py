"""The README's lesson pictures come from the executed lessons, never from elsewhere.

    .venv/bin/python scripts/lesson_pictures.py           # write docs/lesson1.png ... lesson5.png
    .venv/bin/python scripts/lesson_pictures.py --check   # exit 1 if one differs

Each lesson marks one cell with the tag "readme-figure"; its first PNG output (as committed,
after scripts/execute_notebooks.py) is docs/lessonN.png. tests/test_notebooks.py checks that
they match, so a re-executed lesson cannot leave an old picture in the README.
"""

from __future__ import annotations

import base64
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TAG = "readme-figure"


def picture(lesson: Path) -> bytes:
    """The first PNG of the lesson's one cell tagged `TAG`."""
    tagged = [c for c in json.loads(lesson.read_text())["cells"]
              if TAG in c.get("metadata", {}).get("tags", [])]
    if len(tagged) != 1:
        raise ValueError(f"{lesson.name}: {len(tagged)} cells tagged {TAG!r}, want 1")
    pngs = [o["data"]["image/png"] for o in tagged[0].get("outputs", [])
            if "image/png" in o.get("data", {})]
    if not pngs:
        raise ValueError(f"{lesson.name}: the {TAG!r} cell has no stored picture; execute it")
    return base64.b64decode(pngs[0])


def pictures() -> dict[Path, bytes]:
    """docs/lessonN.png -> the picture it must hold."""
    lessons = sorted((ROOT / "notebooks").glob("0*.ipynb"))
    return {ROOT / "docs" / f"lesson{i}.png": picture(p) for i, p in enumerate(lessons, 1)}


def main(argv: list[str]) -> int:
    stale = [path for path, png in pictures().items()
             if not path.exists() or path.read_bytes() != png]
    if "--check" in argv:
        for path in stale:
            print(f"{path.relative_to(ROOT)} is not its lesson's picture: run "
                  "scripts/lesson_pictures.py")
        return 1 if stale else 0
    for path, png in pictures().items():
        path.write_bytes(png)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
