"""The webhook spool's group commit (issue 30 point 1, decision 177): deliveries that come while a group is being
made durable are written together as the next group, one file and one fsync; each is answered only once its group
is durable, reads back from its place in that file, and a group that cannot be written fails every delivery in it."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from convoscope import spool as spool_module
from convoscope.spool import Spool


def keep_in_threads(spool: Spool, names: list[str]) -> dict[str, tuple[Path, int, str] | OSError]:
    found: dict[str, tuple[Path, int, str] | OSError] = {}

    def keep(name: str) -> None:
        try:
            found[name] = spool.keep("chatwoot", "acme", f"body of {name}".encode(), delivery=name)
        except OSError as exc:
            found[name] = exc

    threads = [threading.Thread(target=keep, args=(name,)) for name in names]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return found


def test_deliveries_that_come_while_a_group_is_written_are_kept_together(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    spool = Spool(tmp_path / "store.duckdb.spool")
    committer = spool_module._committer(spool.folder)
    writing, release = threading.Event(), threading.Event()
    real_write = committer._write
    groups: list[int] = []

    def write_slowly(records: list[bytes]) -> Path:  # the real write, held back the first time
        groups.append(len(records))
        if len(groups) == 1:
            writing.set()
            assert release.wait(30)
        return real_write(records)

    monkeypatch.setattr(committer, "_write", write_slowly)
    first = threading.Thread(target=lambda: keep_in_threads(spool, ["first"]))
    first.start()
    assert writing.wait(30)  # the first delivery's group is being written
    later = threading.Thread(target=lambda: found.update(keep_in_threads(spool, [f"d{i}" for i in range(5)])))
    found: dict[str, tuple[Path, int, str] | OSError] = {}
    later.start()
    while len(committer._open) < 5:  # all five joined the open group, and wait
        threading.Event().wait(0.01)
    assert not found, "a delivery was answered before its group was durable"
    release.set()
    first.join(30)
    later.join(30)

    assert groups == [1, 5]
    files = spool.waiting()
    assert len(files) == 2
    kept = {name: outcome for name, outcome in found.items() if not isinstance(outcome, OSError)}
    assert len(kept) == 5 and {path for path, _, _ in kept.values()} == {files[1]}
    read = spool.read(files[1])
    assert sorted(place for _, place, _ in kept.values()) == [0, 1, 2, 3, 4]
    for name, (_, place, delivery) in kept.items():
        assert (read[place].delivery, read[place].body) == (delivery, f"body of {name}".encode()) == (
            name, f"body of {name}".encode())
    assert [d.delivery for d in spool.read(files[0])] == ["first"]  # the files sort in the order they came


def test_a_group_that_cannot_be_written_fails_each_of_its_deliveries(tmp_path: Path) -> None:
    (tmp_path / "not-a-folder").write_text("a file where the spool's folder should be")
    spool = Spool(tmp_path / "not-a-folder" / "store.duckdb.spool")
    found = keep_in_threads(spool, [f"d{i}" for i in range(6)])
    assert len(found) == 6 and all(isinstance(outcome, OSError) for outcome in found.values())
    assert "could not be kept in the spool" in str(found["d0"])
    # Nothing waits for ever, and a spool that can be written again keeps what comes next.
    (tmp_path / "not-a-folder").unlink()
    (path, place, delivery), = keep_in_threads(spool, ["again"]).values()  # type: ignore[misc]
    assert [d.delivery for d in spool.read(path)] == ["again"] and place == 0


def test_a_file_written_before_groups_is_read_as_one_delivery(tmp_path: Path) -> None:
    """A spool left by an older server: one delivery a file, its body running to the end."""
    spool = Spool(tmp_path / "spool")
    spool.folder.mkdir()
    head = {"system": "chatwoot", "brand": "acme", "delivery": "old", "received_at": "2026-12-01T10:00:00Z"}
    body = b'{"event": "message_created"}\n{"not": "a second delivery"}'
    path = spool.folder / "00000000000000000001-old.delivery"
    path.write_bytes(json.dumps(head).encode() + b"\n" + body)
    delivery, = spool.read(path)
    assert (delivery.delivery, delivery.brand, delivery.body) == ("old", "acme", body)


def test_a_file_cut_short_is_not_read_as_deliveries(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    path, _, _ = spool.keep("chatwoot", "acme", b'{"event": "message_created"}', delivery="whole")
    path.write_bytes(path.read_bytes()[:-3])
    with pytest.raises(ValueError, match="cut short"):
        spool.read(path)
