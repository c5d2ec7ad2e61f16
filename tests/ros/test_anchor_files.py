"""Anchor pool paths: only files inside anchors.dir are read or written."""
from __future__ import annotations

from pathlib import Path

import pytest

from hpe_ros.anchor_files import AnchorPathError, resolve_anchor_path


def test_names_inside_the_directory_resolve(tmp_path: Path) -> None:
    assert resolve_anchor_path(str(tmp_path), "", "anchors.hpepool") == tmp_path.resolve() / "anchors.hpepool"
    assert resolve_anchor_path(str(tmp_path), " sub/p.hpepool ", "x") == tmp_path.resolve() / "sub" / "p.hpepool"
    assert resolve_anchor_path(str(tmp_path), "sub/../p.hpepool", "x") == tmp_path.resolve() / "p.hpepool"


@pytest.mark.parametrize("requested", ["/etc/passwd", "../escape.hpepool", "sub/../../x", ".", "a\x00b"])
def test_paths_leaving_the_directory_are_refused(tmp_path: Path, requested: str) -> None:
    with pytest.raises(AnchorPathError):
        resolve_anchor_path(str(tmp_path / "anchors"), requested, "anchors.hpepool")


def test_symbolic_links_pointing_outside_are_refused(tmp_path: Path) -> None:
    anchors = tmp_path / "anchors"
    anchors.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    (anchors / "link_dir").symlink_to(outside, target_is_directory=True)
    (anchors / "link_file.hpepool").symlink_to(outside / "pool.hpepool")
    for requested in ("link_dir/pool.hpepool", "link_file.hpepool"):
        with pytest.raises(AnchorPathError, match="leaves the anchor directory"):
            resolve_anchor_path(str(anchors), requested, "anchors.hpepool")
