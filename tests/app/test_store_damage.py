"""A damaged, read-only or full data directory (issue 14, items 5 and 6), at the store: the
playground starts anyway and says in words which file is wrong and what was done; a damaged
database is moved aside (kept) and a new one started; read-only data is served read-only; one
unreadable run is left out of the list and named; a save that finds the disk full raises a
clear error and changes nothing. Real files, a real tmpfs, real mounts."""
from __future__ import annotations

import re
import sqlite3

import psycopg
import pytest

from server import create_app
from server.engine.records import DB_NAME, RecordError, RunStore, StoreFullError, StoreReadOnlyError
from tests.support.disks import FullDisk, read_only_file, read_only_folder, tmpfs
from tests.support.helpers import Inbox

CONFIG = {"hidden_sizes": [8], "activation": "relu", "optimizer": "sgd", "momentum": 0.9, "lr": 0.1,
          "batch_size": 4, "output": "logits", "weight_decay": 0, "seed": 1}


def progress(steps):
    return dict(status="paused", steps=steps, history=[{"step": steps, "loss": 1.0}],
                epochs=[{"epoch": 1, "step": steps, "val_accuracy": 0.5}], config=CONFIG, config_changes=[])


def store_with_runs(folder, n=3, weights=b"w" * 5000) -> list[int]:
    store = RunStore(folder)
    ids = []
    for _ in range(n):
        run_id = store.create(config=CONFIG, dataset="mnist")
        store.save_progress(run_id, **progress(4), weights=weights)
        ids.append(run_id)
    store.close()
    return ids


def moved_aside(folder):
    return sorted(p.name for p in folder.iterdir() if ".damaged-" in p.name)


# ---- damaged ------------------------------------------------------------------------------------

def test_a_file_that_is_not_a_database_is_moved_aside_kept_and_a_new_one_started(tmp_path):
    damaged = b"this was a text file saved over the runs database\n" * 100
    (tmp_path / DB_NAME).write_bytes(damaged)
    (tmp_path / (DB_NAME + "-journal")).write_bytes(b"a journal that belongs to the damaged file")

    store = RunStore(tmp_path)
    try:
        [moved, journal] = moved_aside(tmp_path)
        assert re.fullmatch(r"runs\.sqlite3\.damaged-\d{8}-\d{6}", moved) and journal == moved + "-journal"
        assert (tmp_path / moved).read_bytes() == damaged  # kept as it was, never deleted
        assert not (tmp_path / (DB_NAME + "-journal")).exists()  # not replayed into the new one
        [notice] = store.notices
        assert notice.startswith(f"{tmp_path / DB_NAME} was damaged (file is not a database): it was moved aside "
                                 f"to {moved} in the same folder (kept, not deleted) and a new, empty runs database "
                                 "was started")
        run_id = store.create(config=CONFIG, dataset="mnist")  # the new database works
        assert [r["id"] for r in store.list()] == [run_id]
        assert store.list_runs().problems == [notice]
    finally:
        store.close()
    with sqlite3.connect(tmp_path / DB_NAME) as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    db.close()


def test_a_database_damaged_inside_is_found_at_start_and_moved_aside(tmp_path):
    store_with_runs(tmp_path, n=20)
    path = tmp_path / DB_NAME
    data = bytearray(path.read_bytes())
    page_size = int.from_bytes(data[16:18], "big")
    data[page_size:3 * page_size] = b"\xa5" * (2 * page_size)  # pages 2 and 3 (the tables' roots) overwritten
    path.write_bytes(bytes(data))

    store = RunStore(tmp_path)
    try:
        [moved] = moved_aside(tmp_path)
        assert (tmp_path / moved).read_bytes() == bytes(data)
        [notice] = store.notices
        assert f"{path} was damaged (" in notice and f"moved aside to {moved}" in notice
        assert store.list() == []
    finally:
        store.close()


def test_a_damaged_database_in_a_read_only_folder_is_said_and_nothing_is_served(tmp_path):
    folder = tmp_path / "data"
    with read_only_folder(folder) as make_read_only:
        (folder / DB_NAME).write_bytes(b"not a database at all" * 50)
        how = make_read_only()
        store = RunStore(folder)
        [notice] = store.notices
        assert notice == (f"{folder / DB_NAME} is damaged (file is not a database) and the data directory is "
                          "read-only, so it could not be moved aside: no runs can be shown or recorded until it is "
                          "replaced or removed"), how
        assert store.list() == [] and store.list_runs().problems == [notice]
        with pytest.raises(StoreReadOnlyError, match="a new run could not be recorded: .* is damaged and the data "
                                                     "directory is read-only"):
            store.create(config=CONFIG, dataset="mnist")
        with pytest.raises(RecordError, match="there is no run #1"):
            store.get(1)
        assert moved_aside(folder) == []


# ---- read-only -----------------------------------------------------------------------------------

def test_a_read_only_data_directory_is_served_read_only_and_writes_are_refused_in_words(tmp_path):
    folder = tmp_path / "data"
    with read_only_folder(folder) as make_read_only:
        ids = store_with_runs(folder, n=2, weights=b"kept weights")
        before = (folder / DB_NAME).read_bytes()
        how = make_read_only()
        store = RunStore(folder)
        print(f"read-only: {how}")
        try:
            [notice] = store.notices
            assert notice.startswith(f"{folder / DB_NAME} is read-only (the data directory or the file is read-only): "
                                     "the runs in it can be listed, read and restored, but new runs are not recorded")
            # Reading works: the list, a run with its curves, its weights.
            assert [r["id"] for r in store.list()] == ids[::-1]
            assert [r["status"] for r in store.list()] == ["paused", "paused"]  # not marked: nothing is written
            assert store.get(ids[0])["history"] == [{"step": 4, "loss": 1.0}]
            assert store.checkpoint(ids[0]) == (4, b"kept weights")
            # Every write is refused with words, and nothing changes.
            writes = [
                lambda: store.create(config=CONFIG, dataset="mnist"),
                lambda: store.update(ids[0], **progress(9)),
                lambda: store.save_progress(ids[0], **progress(9), weights=b"new"),
                lambda: store.save_checkpoint(ids[0], 9, b"new"),
                lambda: store.rename(ids[0], "new name"),
                lambda: store.delete(ids[0]),
            ]
            for write in writes:
                with pytest.raises(StoreReadOnlyError, match=f"{re.escape(str(folder / DB_NAME))} is served read-only"):
                    write()
            assert store.get(ids[0])["steps"] == 4
        finally:
            store.close()
        assert (folder / DB_NAME).read_bytes() == before


def test_a_read_only_database_file_in_a_writable_folder_is_served_read_only(tmp_path):
    ids = store_with_runs(tmp_path, n=2, weights=b"kept weights")
    before = (tmp_path / DB_NAME).read_bytes()
    with read_only_file(tmp_path / DB_NAME) as how:
        store = RunStore(tmp_path)
        try:
            [notice] = store.notices
            assert notice.startswith(f"{tmp_path / DB_NAME} is read-only ("), how
            assert [r["id"] for r in store.list()] == ids[::-1]
            assert store.checkpoint(ids[1]) == (4, b"kept weights")
            with pytest.raises(StoreReadOnlyError, match="run #1's progress at step 9 could not be saved: .* is served "
                                                         "read-only"):
                store.update(ids[0], **progress(9))
        finally:
            store.close()
    assert (tmp_path / DB_NAME).read_bytes() == before
    assert moved_aside(tmp_path) == []


def test_a_read_only_folder_without_a_database_starts_with_no_runs_and_says_so(tmp_path):
    folder = tmp_path / "data"
    with read_only_folder(folder) as make_read_only:
        make_read_only()
        store = RunStore(folder)
        [notice] = store.notices
        assert notice == (f"{folder} has no runs database and it cannot be made (the data directory or the file is "
                          "read-only): runs are not recorded while the playground runs")
        assert store.list() == []
        with pytest.raises(StoreReadOnlyError, match="a new run could not be recorded"):
            store.create(config=CONFIG, dataset="mnist")


def test_the_playground_starts_on_a_read_only_data_directory_and_lists_its_runs(tmp_path, small_dataset):
    folder = tmp_path / "data"
    with read_only_folder(folder) as make_read_only:
        ids = store_with_runs(folder, n=2)
        make_read_only()
        app = create_app({"testing": True, "data_dir": str(folder), "device": "cpu"}, dataset=small_dataset)
        try:
            client = app.extensions["playground"].socketio.test_client(app)
            answer = client.emit("runs:list", callback=True)
            assert answer["ok"] and [r["id"] for r in answer["runs"]] == ids[::-1]
            session = app.extensions["playground"].engine.handle.engine.part().run
            session.reset({"batch_size": 250})
            session.step(2)  # training goes on; the new run just is not recorded
            assert session.trainer.global_step == 2
            assert [r["id"] for r in client.emit("runs:list", callback=True)["runs"]] == ids[::-1]
            client.disconnect()
        finally:
            app.extensions["playground"].shutdown()


# ---- one unreadable run ------------------------------------------------------------------------

def break_config(database, tmp_path, run_id):
    if database is None:
        with sqlite3.connect(tmp_path / DB_NAME) as db:
            db.execute("UPDATE runs SET config = '{\"hidden_sizes\": [8' WHERE id = ?", (run_id,))
        db.close()
    else:
        with psycopg.connect(database) as db:
            db.execute("UPDATE runs SET config = '{\"hidden_sizes\": [8' WHERE id = %s", (run_id,))


def test_one_run_with_broken_json_is_left_out_of_the_list_and_named(tmp_path, database):
    store = RunStore(tmp_path, database_url=database)
    try:
        ids = [store.create(config=CONFIG, dataset="mnist") for _ in range(3)]
        break_config(database, tmp_path, ids[1])
        listing = store.list_runs()
        assert [r["id"] for r in listing.runs] == [ids[2], ids[0]]
        [problem] = listing.problems
        assert problem.startswith(f"run #{ids[1]}'s record in {store.where} is damaged: its setup (config) is not "
                                  "valid JSON (")
        assert problem.endswith("; it is left out of the runs list")
        assert store.list() == listing.runs
        with pytest.raises(RecordError, match=rf"run #{ids[1]}'s record in .* is damaged: its setup \(config\) is not valid JSON"):
            store.get(ids[1])
        assert store.get(ids[0])["config"] == CONFIG
        store.delete(ids[1])  # and it can still be deleted
        assert store.list_runs().problems == []
    finally:
        store.close()


def test_the_runs_list_of_a_viewer_still_shows_the_other_runs(app, session, sio_client, tmp_path):
    session.reset({"batch_size": 250})
    session.step(1)
    session.reset({"batch_size": 250, "output": "softmax"})
    session.step(1)
    good, bad = sorted(r["id"] for r in sio_client.emit("runs:list", callback=True)["runs"])
    break_config(None, tmp_path, bad)
    answer = sio_client.emit("runs:list", callback=True)
    assert answer["ok"] and [r["id"] for r in answer["runs"]] == [good]


# ---- full ------------------------------------------------------------------------------------------

def test_a_save_that_finds_the_disk_full_says_so_and_changes_nothing(tmp_path):
    folder = tmp_path / "data"
    with tmpfs(folder, "4m") as mounted:
        store = RunStore(folder)
        disk = FullDisk(folder, store, real=mounted is not None)
        try:
            run_id = store.create(config=CONFIG, dataset="mnist")
            assert store.save_progress(run_id, **progress(3), weights=b"a" * 100_000)
            disk.fill()
            big = b"b" * 1_000_000
            with pytest.raises(StoreFullError) as refused:
                store.save_progress(run_id, **progress(9), weights=big)
            assert str(refused.value) == (
                f"the disk holding {folder / DB_NAME} is full: the run's weights from step 9 could not be saved "
                f"(run #{run_id} keeps what was saved before); free some space"), disk.kind
            with pytest.raises(StoreFullError, match=r"is full: the run's weights from step 9 could not be saved; free"):
                store.save_checkpoint(run_id, 9, big)
            # Nothing half-way: the record still holds steps and weights from the same moment.
            run = store.get(run_id)
            assert (run["steps"], run["checkpoint_step"]) == (3, 3)
            assert store.checkpoint(run_id) == (3, b"a" * 100_000)

            disk.free()  # once there is room again, saving works
            assert store.save_progress(run_id, **progress(9), weights=big)
            assert store.checkpoint(run_id) == (9, big)
        finally:
            store.close()
        with sqlite3.connect(folder / DB_NAME) as db:
            assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        db.close()


def test_on_a_nearly_full_disk_the_record_says_its_weights_are_older_than_its_steps_and_saving_retries(
        tmp_path, small_dataset):
    """Issue 14: a run listed as done at step 2980 kept weights from step 149 and nobody was told.
    With room for a run's progress but not for its weights, its record says how far its steps
    go and that no weights (or only older ones) are kept, every viewer is told in words, and the
    next save, once there is room, keeps both."""
    folder = tmp_path / "data"
    with tmpfs(folder, "8m") as mounted:
        app = create_app({"testing": True, "data_dir": str(folder), "device": "cpu"}, dataset=small_dataset)
        store = app.extensions["playground"].engine.handle.engine.store
        session = app.extensions["playground"].engine.handle.engine.part().run
        disk = FullDisk(folder, store, real=mounted is not None)
        viewer = app.extensions["playground"].socketio.test_client(app)
        try:
            session.reset({"batch_size": 250, "hidden_sizes": [16]})  # weights of ~50 kB
            session.step(2)
            [small] = store.list()
            assert (small["steps"], small["checkpoint_step"]) == (2, 2)
            disk.fill(leave=200_000)  # room for a new record and its progress, not for 0.8 MB of weights
            session.reset({"batch_size": 250, "hidden_sizes": [256]})
            session.step(3)
            big = store.list()[0]
            assert big["id"] != small["id"]
            assert (big["steps"], big["checkpoint_step"]) == (3, None), disk.kind  # steps up to date, no weights
            assert big["note"].startswith("Saving the weights failed at step 3") and "no weights are kept" in big["note"]
            recorder = app.extensions["playground"].engine.handle.engine.part().recorder
            assert recorder.problem.startswith("Saving failed: the weights from step 3 could not be saved")
            assert store.checkpoint(small["id"])[0] == 2  # the run before is untouched
            told = Inbox(viewer).wait_for("storage", lambda payload: payload["problem"])
            assert "free some disk space" in told["problem"]  # what failed, and what to do
            disk.free()
            session.step(1)
            big = store.get(big["id"])
            assert (big["steps"], big["checkpoint_step"]) == (4, 4)
            assert Inbox(viewer).wait_for("storage")["problem"] is None  # and that it works again
        finally:
            viewer.disconnect()
            app.extensions["playground"].shutdown()


def test_the_playground_starts_on_a_damaged_database_and_records_new_runs(tmp_path, small_dataset):
    (tmp_path / DB_NAME).write_bytes(b"\x00garbage" * 1000)
    app = create_app({"testing": True, "data_dir": str(tmp_path), "device": "cpu"}, dataset=small_dataset)
    try:
        [notice] = app.extensions["playground"].engine.handle.engine.store.notices
        assert "was damaged (file is not a database): it was moved aside" in notice
        session = app.extensions["playground"].engine.handle.engine.part().run
        session.reset({"batch_size": 250})
        session.step(2)
        client = app.extensions["playground"].socketio.test_client(app)
        answer = client.emit("runs:list", callback=True)
        assert answer["ok"] and [(r["id"], r["steps"]) for r in answer["runs"]] == [(1, 2)]
        client.disconnect()
    finally:
        app.extensions["playground"].shutdown()


@pytest.mark.slow
def test_python_m_server_on_a_damaged_database_starts_and_says_which_file_and_what_was_done(tmp_path):
    from tests.support.helpers import ServerProcess, socketio_client
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / DB_NAME).write_bytes(b"\x00garbage" * 1000)
    with ServerProcess(folder) as server:
        said = "".join(server.stdout)
        assert f"Note: {folder / DB_NAME} was damaged (file is not a database): it was moved aside" in said
        viewer = socketio_client(server.url)
        try:
            listing = viewer.call("runs:list", timeout=10)
            assert listing["ok"] and "was damaged" in listing["problems"][0]
        finally:
            viewer.disconnect()
    assert moved_aside(folder)
