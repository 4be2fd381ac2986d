"""Generated root credentials: gateways sharing a data dir and starting at
once all end up with the same ones (docs/design/multi-gateway.md)."""

from __future__ import annotations

import threading
from pathlib import Path

from gateway import credentials


def test_gateways_starting_together_on_one_data_dir_share_credentials(tmp_path: Path) -> None:
    start = threading.Barrier(8)
    found: list[credentials.Credentials] = []

    def one() -> None:
        start.wait()
        found.append(credentials.load_or_create(tmp_path / "data", None, None))

    threads = [threading.Thread(target=one) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({(c.access_key, c.secret_key) for c in found}) == 1
    assert sum(c.generated for c in found) == 1  # one start made them
    again = credentials.load_or_create(tmp_path / "data", None, None)
    assert (again.access_key, again.secret_key) == (found[0].access_key, found[0].secret_key)
    assert [p.name for p in (tmp_path / "data").iterdir()] == [credentials.FILE_NAME]


def test_credentials_from_the_environment_win(tmp_path: Path) -> None:
    creds = credentials.load_or_create(tmp_path, "ak", "sk")
    assert (creds.access_key, creds.secret_key, creds.generated) == ("ak", "sk", False)
    assert not (tmp_path / credentials.FILE_NAME).exists()
