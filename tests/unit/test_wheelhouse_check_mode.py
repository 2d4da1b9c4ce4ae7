"""The wheelhouse in check mode on a controller whose cache is still empty (a first `--check` run)."""

from __future__ import annotations

import hashlib
import json


def test_a_check_run_on_an_empty_cache_downloads_nothing_and_reports_incomplete(wh, store, tmp_path):
    """It lists the index, picks the files and says it would change: nothing downloaded, built or written,
    and no error for the files it did not fetch (it once hashed a wheel it had not downloaded)."""
    root, base = store
    files = {
        "demo-1.0-py3-none-any.whl": b"a pure wheel's bytes",
        "other-2.0.tar.gz": b"an sdist's bytes",
    }
    sha = {name: hashlib.sha256(data).hexdigest() for name, data in files.items()}
    (root / "files").mkdir()
    for name, data in files.items():
        (root / "files" / name).write_bytes(data)
    for project, name in (("demo", "demo-1.0-py3-none-any.whl"), ("other", "other-2.0.tar.gz")):
        page = root / "simple" / project
        page.mkdir(parents=True)
        listing = {
            "files": [{"filename": name, "url": f"{base}/files/{name}", "hashes": {"sha256": sha[name]}}]
        }
        (page / "index.html").write_text(json.dumps(listing))
    lock = tmp_path / "requirements.lock"
    lock.write_text(
        f"demo==1.0 --hash=sha256:{sha['demo-1.0-py3-none-any.whl']}\n"
        f"other==2.0 --hash=sha256:{sha['other-2.0.tar.gz']}\n"
    )
    cache = tmp_path / "cache"
    house = wh.Wheelhouse(cache, wh.Index(f"{base}/simple"), check_mode=True)
    target = wh.Target("x86_64", "3.11", "2.36")

    result = house.prepare(lock, wh.parse_lock(lock.read_text()), target, ("1.0.0", None, "d" * 64))

    assert result["complete"] is False
    assert result["needs_build"] == []
    assert house.changed is True  # it would download
    assert not cache.exists() or not any(cache.rglob("*")), sorted(cache.rglob("*"))
