"""Write every ``spec/vectors/*.json`` file (spec/README.md, "Test vectors").

Usage (from the repository root, with the project's virtualenv)::

    python tools/gen_vectors.py            # (re)write the vector files
    python tools/gen_vectors.py --check    # exit 1 if a file on disk differs

Each spec chapter with vectors has a generator module next to this script that exposes
``generate() -> dict``: a document ``{"description": ..., "revision": ..., "vectors":
[...]}``. ``CHAPTERS`` below says which module writes which file; a module that does not
exist yet is skipped with a note, so chapters can land one at a time.

Output is deterministic: keys come from fixed seeds, timestamps are fixed, Ed25519 is
deterministic, JSON keys are sorted and bytes are written as lower-case hex. Running the
script twice changes nothing, and ``--check`` is what the tests run.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

TOOLS = Path(__file__).resolve().parent
ROOT = TOOLS.parent
VECTORS = ROOT / "spec" / "vectors"

if str(TOOLS) not in sys.path:
    sys.path.insert(0, str(TOOLS))


@dataclass(frozen=True)
class Chapter:
    #: File written under spec/vectors/.
    file: str
    #: Generator module in tools/ exposing ``generate() -> dict``.
    module: str
    #: The spec chapter the vectors belong to.
    spec: str


CHAPTERS: tuple[Chapter, ...] = (
    Chapter("encoding.json", "vectors_encoding", "01-encoding.md"),
    Chapter("identity.json", "vectors_identity", "02-identity.md"),
    Chapter("log.json", "vectors_log", "03-log.md"),
    Chapter("membership.json", "vectors_membership", "04-membership.md"),
    Chapter("channel.json", "vectors_channel", "05-channel.md"),
    Chapter("sync.json", "vectors_sync", "06-sync.md"),
    Chapter("bundle.json", "vectors_bundle", "11-bundle.md"),
    Chapter("access.json", "vectors_access", "06-sync.md"),
    Chapter("discovery.json", "vectors_discovery", "08-discovery.md"),
    Chapter("gossip.json", "vectors_gossip", "07-gossip.md"),
    Chapter("encryption.json", "vectors_encryption", "12-encryption.md"),
)


def load_generator(chapter: Chapter) -> ModuleType | None:
    """The chapter's generator module, or None if it does not exist (yet).

    Only the absence of the module itself counts as "not there": an import error inside
    an existing module propagates.
    """
    try:
        return importlib.import_module(chapter.module)
    except ModuleNotFoundError as exc:
        if exc.name == chapter.module:
            return None
        raise


def render(document: dict[str, Any]) -> str:
    """The exact text written for a vector document."""
    for key in ("description", "revision", "vectors"):
        if key not in document:
            raise ValueError(f"vector document lacks {key!r}")
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=True) + "\n"


def build(note: Callable[[str], None] = print) -> dict[Path, str]:
    """Path -> text for every chapter whose generator exists."""
    out: dict[Path, str] = {}
    for chapter in CHAPTERS:
        module = load_generator(chapter)
        if module is None:
            note(f"note: {chapter.module}.py is not there yet; {chapter.file} not generated")
            continue
        out[VECTORS / chapter.file] = render(module.generate())
    return out


def differences(files: dict[Path, str]) -> list[str]:
    """What differs between ``files`` and the disk, one line per file."""
    problems = []
    for path, text in files.items():
        rel = path.relative_to(ROOT)
        if not path.exists():
            problems.append(f"{rel} is missing")
        elif path.read_text(encoding="utf-8") != text:
            problems.append(f"{rel} differs from what tools/gen_vectors.py generates")
    return problems


def strays(files: dict[Path, str]) -> list[Path]:
    """``*.json`` files in spec/vectors/ that no generator wrote."""
    return sorted(p for p in VECTORS.glob("*.json") if p not in files)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 if any file differs from what would be written",
    )
    args = parser.parse_args(argv)
    files = build()
    for path in strays(files):
        print(f"note: {path.relative_to(ROOT)} has no generator in CHAPTERS")
    if args.check:
        problems = differences(files)
        for line in problems:
            print(line)
        if problems:
            print("run: python tools/gen_vectors.py")
            return 1
        print(f"{len(files)} vector files are up to date")
        return 0
    VECTORS.mkdir(parents=True, exist_ok=True)
    for path, text in files.items():
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8", newline="\n")
            print(f"wrote {path.relative_to(ROOT)}")
        else:
            print(f"unchanged {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
