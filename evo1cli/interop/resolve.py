"""A checkpoint argument -> an evo1 checkpoint directory, whatever the user named.

    an evo1 directory              used as it is
    an authors' or LeRobot dir     imported once into <cache>/imports/<name>-<hash>/ and reused
    a hub id (ORG/NAME)            downloaded with huggingface_hub into the usual HF cache (offline,
                                   `HF_HUB_OFFLINE=1`, it uses that cache), then as above

<cache> is $EVO1_CACHE, else $XDG_CACHE_HOME/evo1, else ~/.cache/evo1. The hash covers the source's
path, its files' sizes and times, the backbone and evo1's version, so a changed source is imported
again. A lock file makes concurrent processes (an `accelerate launch` benchmark) import it only once.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path

from evo1cli import __version__
from evo1cli.errors import Evo1Error
from evo1cli.interop.convert import import_checkpoint
from evo1cli.interop.formats import EVO1, detect

HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
SKIPPED_FILES = ["*optim_states.pt", "zero_pp_rank_*", "*.pth.tar", "events.out.*"]  # optimizer and logs


def cache_root() -> Path:
    if os.environ.get("EVO1_CACHE"):
        return Path(os.environ["EVO1_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "evo1"


def download(repo_id: str) -> Path:
    """A hub repo's files (no optimizer states) in the HF cache; offline, the cached snapshot."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError, RepositoryNotFoundError

    try:
        return Path(snapshot_download(repo_id, ignore_patterns=SKIPPED_FILES))
    except RepositoryNotFoundError:
        raise Evo1Error("no such model repository on the hub (or it is private)", field=repo_id) from None
    except LocalEntryNotFoundError:
        raise Evo1Error(
            "not in the local Hugging Face cache, and the hub cannot be reached (offline?)", field=repo_id
        ) from None
    except (HfHubHTTPError, OSError, ValueError) as err:
        raise Evo1Error(f"download failed ({str(err).splitlines()[0]})", field=repo_id) from None


def locate(source: str | Path) -> tuple[Path, str]:
    """(a local directory, the name it was given by): a path as it is, a hub id downloaded."""
    text = str(source)
    path = Path(text).expanduser()
    if path.exists():
        return path, text
    if HUB_ID.match(text):
        return download(text), text
    raise Evo1Error("no such checkpoint directory (nor a hub id ORG/NAME)", path=text)


def _fingerprint(root: Path, backbone: str | None) -> str:
    files = sorted(p for p in root.rglob("*") if p.is_file() and not any(part.startswith(".") for part in p.parts))
    stamp = [(str(p.relative_to(root)), p.stat().st_size, p.stat().st_mtime_ns) for p in files]
    blob = json.dumps([str(root.resolve()), stamp, backbone, __version__])
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def resolve_checkpoint(
    source: str | Path, *, backbone: str | None = None, notify: Callable[[str], None] | None = None
) -> Path:
    """The evo1 checkpoint directory for `source`, importing a foreign one into the cache on first use.

    `notify` hears one line when an import happens (where the imported copy lives).
    """
    directory, name = locate(source)
    source_format, root = detect(directory)
    if source_format is EVO1:
        return root
    label = name if not Path(name).expanduser().exists() else "-".join(root.resolve().parts[-2:])  # hub id or dir
    slug = re.sub(r"[^\w.-]+", "-", label).strip("-")[-60:] or "checkpoint"
    target = cache_root() / "imports" / f"{slug}-{_fingerprint(root, backbone)}"
    with _locked(target.with_name(target.name + ".lock")):
        if not EVO1.detect(target):
            result = import_checkpoint(root, target, backbone=backbone, origin=name)
            if notify is not None:
                notify(f"imported {name} ({result.format}) into {target}")
    return target
