"""nape cohort: many recordings on Dask distributed (issue 19).

One simulated cohort (4 wearers in 2 groups, 12 everyday recordings, one cut short, two
range-of-motion tests, one damaged file) is analysed on a 2-worker LocalCluster on
loopback while one worker is killed mid-run; rerun skips it; a scheduler and workers
started as separate processes (``dask scheduler`` / ``dask worker``) run ``nape cohort
--scheduler``; the cohort page renders in headless Chromium at 390 and 1280 px.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("distributed")
pytest.importorskip("duckdb")

import duckdb  # noqa: E402

from nape.cli import main  # noqa: E402
from nape.cohort import ManifestError, read_entries, run_cohort  # noqa: E402
from nape.cohort.store import State  # noqa: E402
from nape.sim.cohort import write_cohort  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
HOSTILE = '<script>alert("x")</script> & Zoë'  # a wearer id that must be shown as text


def _q(sql: str, *files: Path):
    return duckdb.sql(sql.format(*(str(f) for f in files))).fetchall()


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cohort-src")
    return write_cohort(folder, wearers=4, recordings_per_wearer=3, truncated=1, rom_tests=2, garbage=1,
                        names=[HOSTILE, "W02", "W03", "W04"])


@pytest.fixture(scope="module")
def cluster():
    from distributed import Client

    from nape.cohort import local_cluster

    with local_cluster(2) as c, Client(c) as client:  # 2 worker processes, 127.0.0.1 only
        assert len(c.workers) == 2 and c.scheduler_address.startswith("tcp://127.0.0.1:")
        yield c, client


@pytest.fixture(scope="module")
def first_run(cohort, cluster, tmp_path_factory):
    """The cohort analysed once on the LocalCluster, one worker SIGKILLed while it works."""
    c, client = cluster
    out = tmp_path_factory.mktemp("cohort-out")
    killed = []

    def kill_a_busy_worker(done, total, res):
        if killed:
            return
        for addr, keys in client.processing().items():
            if keys:
                pid = client.run(os.getpid, workers=[addr])[addr]
                os.kill(pid, signal.SIGKILL)
                killed.append((addr, pid, list(keys)))
                return

    run = run_cohort(cohort.manifest, out, client, on_result=kill_a_busy_worker)
    return run, killed


def test_killed_worker_costs_only_its_task(cohort, first_run):
    run, killed = first_run
    assert killed, "no worker was busy to be killed"
    out = run.out
    rows = _q("SELECT path, status, failure_reason, kind FROM '{}' ORDER BY path", out / "recordings.parquet")
    by_path = {}
    for path, status, reason, kind in rows:
        by_path.setdefault(path, []).append((status, reason, kind))
    healthy = [str(p.resolve()) for p in cohort.healthy + cohort.truncated]
    assert len(healthy) >= 12
    for p in healthy:  # every healthy recording exactly once, analysed
        assert [s for s, _, _ in by_path[p]] == ["analysed"], (p, by_path.get(p))
    damaged = str(cohort.damaged[0].resolve())
    [(status, reason, _)] = by_path[damaged]
    assert status == "failed" and "not a .nape file" in reason and "\n" not in reason
    assert len(rows) == len(healthy) + 1
    assert run.counts["lost"] == 0 and run.counts["analysed"] == len(healthy)
    # every part the tasks wrote is one recording's; reports exist for every analysed one
    assert sorted(p.stem for p in (out / "parts" / "recordings").glob("*.parquet")) == sorted(run.results)
    for rid, res in run.results.items():
        if res["status"] == "analysed":
            report = json.loads((out / "reports" / f"{rid}.json").read_text())
            assert report["path"] == res.get("path", report["path"])


def test_tables_and_cohort_figures(cohort, first_run):
    run, _ = first_run
    out = run.out
    c = json.loads((out / "cohort.json").read_text())
    assert c["counts"]["wearers"] == 4 and c["counts"]["groups"] == 2 and c["counts"]["failed"] == 1
    assert {g["group"] for g in c["groups"]} == {"office", "fleet"}
    # per-minute epochs add up to the recording's seconds with data, per recording
    check = _q("""SELECT r.recording_id, r.worn_s, sum(e.seconds_with_data) FROM '{}' r JOIN '{}' e USING (recording_id)
                  GROUP BY ALL""", out / "recordings.parquet", out / "epochs.parquet")
    assert len(check) == 13 and all(abs(w - s) <= 60 for _, w, s in check), check
    # the JSON report's names and units in the tables
    cols = [d[0] for d in duckdb.sql(f"SELECT * FROM '{out / 'jolts.parquet'}' LIMIT 0").description]
    assert {"peak_t_s", "cause", "grade", "peak_trunk_g", "nic_m2s2", "wearer", "group"} <= set(cols)
    # the cohort figures are the DuckDB queries over the same files
    hours = _q("SELECT sum(worn_s) / 3600 FROM '{}' WHERE kind = 'everyday'", out / "recordings.parquet")[0][0]
    assert abs(c["counts"]["hours_worn"] - hours) < 1e-2
    assert c["jolts_by_cause_grade"] and all(r["grade"] in ("mild", "moderate", "severe") for r in c["jolts_by_cause_grade"])
    assert c["bed"], "the nights should show bed findings"
    rom = {t["direction"]: t for t in c["rom_trends"]}
    assert rom["rotation_left"]["tests"] == 2 and rom["rotation_left"]["trend"] == "stiffer", rom["rotation_left"]
    flags = {q["label"]: q for q in c["quality"]}
    assert flags["cut short"]["damaged"] and flags["damaged"]["status"] == "failed"
    assert any(q["has_head"] is False for q in c["quality"])  # the first wearer has no head sensor
    for m, groups in c["distributions"].items():
        for g in groups:
            assert g["q1"] <= g["median"] <= g["q3"], (m, g)
    html = (out / "cohort.html").read_text()
    assert "Content-Security-Policy" in html and HOSTILE not in html and "&lt;script&gt;alert(" in html


def test_rerun_skips_unchanged_and_redoes_changed(cohort, cluster, first_run):
    run, _ = first_run
    _, client = cluster
    again = run_cohort(cohort.manifest, run.out, client)
    assert again.counts["analysed"] == 0 and again.counts["unchanged"] == len(run.results), again.counts
    changed = cohort.healthy[3]
    original = changed.read_bytes()
    try:
        changed.write_bytes(original[: int(len(original) * 0.8)])  # new bytes: analysed again
        third = run_cohort(cohort.manifest, run.out, client)
    finally:
        changed.write_bytes(original)
    assert third.counts["analysed"] == 1 and third.counts["unchanged"] == len(run.results) - 1, third.counts
    [res] = [r for r in third.results.values() if r["status"] == "analysed"]
    assert State(run.out).done[res["recording_id"]]["content_sha256"] == res["content_sha256"]


def test_dask_scheduler_and_workers_as_processes(cohort, tmp_path, capsys):
    """``dask scheduler`` and ``dask worker`` on 127.0.0.1 as separate processes; nape cohort --scheduler."""
    sub = tmp_path / "sub.csv"  # four recordings of two wearers and the damaged file
    lines = cohort.manifest.read_text().splitlines()
    keep = [ln for ln in lines[1:] if ln.split(",")[1] in ("W02", "W03") and "rom" not in ln][:4]
    keep += [ln for ln in lines if ln.startswith("damaged")]
    sub.write_text("path,wearer,group,label\n" + "\n".join(
        f"{cohort.manifest.parent / ln.split(',')[0]},{','.join(ln.split(',')[1:])}" for ln in keep) + "\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "host"), str(ROOT), os.environ.get("PYTHONPATH", "")]))
    bindir = Path(sys.executable).parent
    sched_file = tmp_path / "scheduler.json"
    logs = tmp_path / "dask.log"
    with open(logs, "w") as log:
        sched = subprocess.Popen([str(bindir / "dask"), "scheduler", "--host", "127.0.0.1", "--port", "0",
                                  "--no-dashboard", "--scheduler-file", str(sched_file)], stdout=log, stderr=log, env=env)
        worker = None
        try:
            for _ in range(300):
                if sched_file.exists() and sched_file.stat().st_size:
                    break
                time.sleep(0.1)
            address = json.loads(sched_file.read_text())["address"]
            assert address.startswith("tcp://127.0.0.1:"), address
            worker = subprocess.Popen([str(bindir / "dask"), "worker", address, "--host", "127.0.0.1", "--nworkers", "1",
                                       "--nthreads", "1", "--no-dashboard"], stdout=log, stderr=log, env=env)
            out = tmp_path / "out"
            rc = main(["cohort", str(sub), "--out", str(out), "--scheduler", address, "--pseudonymise"])
        finally:
            for p in (worker, sched):
                if p is not None:
                    p.terminate()
            for p in (worker, sched):
                if p is not None:
                    try:
                        p.wait(timeout=20)
                    except subprocess.TimeoutExpired:
                        p.kill()
    printed = capsys.readouterr().out
    assert rc == 0, logs.read_text()[-2000:]
    assert "4 analysed" in printed and "1 not analysed" in printed and "not a .nape file" in printed, printed
    c = json.loads((out / "cohort.json").read_text())
    assert c["counts"]["analysed"] == 4 and c["pseudonymised"]
    assert all(w["wearer"].startswith("W-") and len(w["wearer"]) == 10 for w in c["wearers"])
    assert str(sub) in c["raw_files"]
    text = (out / "cohort.json").read_text() + (out / "cohort.html").read_text()
    for name in ("W02", "W03", str(cohort.manifest.parent)):  # no wearer id, no path of a raw file
        assert f'"{name}"' not in text and f">{name}<" not in text and f"{name}/" not in text, name
    paths = _q("SELECT count(*) FROM '{}' WHERE path IS NOT NULL", out / "recordings.parquet")[0][0]
    assert paths == 0
    key = (out / ".nape-cohort" / "key").read_text().strip()
    assert len(key) == 64 and key not in text


def test_manifest_errors_name_the_line(tmp_path):
    bad = tmp_path / "m.csv"
    bad.write_text("path,wearer,group\na.nape,W1,g\nb.nape,W2\n")
    with pytest.raises(ManifestError, match=r"m\.csv line 3: expected path,wearer,group\[,label\], got 2 fields"):
        read_entries(bad)
    bad.write_text("a.nape,W1,g\n\n# note\na.nape,W2,g\n")
    with pytest.raises(ManifestError, match="line 4: a.nape is already listed on line 1"):
        read_entries(bad)
    bad.write_text("a.nape,,g\n")
    with pytest.raises(ManifestError, match="line 1: empty wearer"):
        read_entries(bad)
    (tmp_path / "x.nape").write_bytes(b"")
    with pytest.raises(ManifestError, match="one recording"):
        read_entries(tmp_path / "x.nape")
    folder = tmp_path / "f"
    (folder / "office" / "ann").mkdir(parents=True)
    (folder / "office" / "ann" / "mon.nape").write_bytes(b"")
    (folder / "bob.nape").write_bytes(b"")
    got = {(Path(e.path).name, e.wearer, e.group) for e in read_entries(folder)}
    assert got == {("mon.nape", "ann", "office"), ("bob.nape", "bob", "all")}


def test_cli_without_the_cohort_extra_says_what_to_install(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "duckdb", None)  # import duckdb → ImportError
    (tmp_path / "a.nape").write_bytes(b"")
    rc = main(["cohort", str(tmp_path), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1 and len(err) == 1 and "pip install 'nape[cohort]'" in err[0], err


def test_no_scheduler_there_is_one_line(tmp_path, capsys, cohort, monkeypatch):
    import socket

    with socket.socket() as s:  # a loopback port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    from nape.cohort import engine

    monkeypatch.setattr(engine, "CONNECT_TIMEOUT_S", 2.0)
    rc = main(["cohort", str(cohort.manifest), "--out", str(tmp_path / "o"), "--scheduler", f"tcp://127.0.0.1:{port}"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1 and len(err) == 1 and err[0].startswith("nape: error: no Dask scheduler at"), err


# ------------------------------------------------------------------ the page in a browser

from tests.test_report_browser import _errors_and_requests, cdp  # noqa: E402,F401  (Chromium fixture)

WIDTHS = {"phone": {"width": 390, "height": 844, "deviceScaleFactor": 2, "mobile": True},
          "desktop": {"width": 1366, "height": 900, "deviceScaleFactor": 1, "mobile": False}}


@pytest.mark.parametrize("screen", list(WIDTHS))
def test_cohort_page_in_headless_chromium(first_run, cdp, screen):  # noqa: F811
    page = first_run[0].out / "cohort.html"
    cdp.call("Emulation.setDeviceMetricsOverride", **WIDTHS[screen])
    try:
        cdp.load(page.as_uri())
        m = cdp.js("""(() => {
          const vw = window.innerWidth;
          const wide = Array.from(document.body.querySelectorAll('*')).filter(e => {
            if (e.closest('.wrap') && !e.classList.contains('wrap')) return false;  // scrolls in its own box
            if (e.closest('#js-plotly-tester')) return false;
            const r = e.getBoundingClientRect();
            return r.width > 0 && (r.right > vw + 1 || r.left < -1);
          }).map(e => e.tagName + '.' + e.getAttribute('class')).slice(0, 5);
          return {vw, scroll: document.scrollingElement.scrollWidth, wide,
                  plots: Array.from(document.querySelectorAll('.js-plotly-plot')).map(
                    d => [d.id, d.querySelectorAll('.main-svg path, .main-svg rect').length]),
                  scripts: document.querySelectorAll('script').length,
                  injected: Array.from(document.scripts).some(s => s.textContent.includes('alert("x")')),
                  cells: Array.from(document.querySelectorAll('td')).map(td => td.textContent),
                  h2: Array.from(document.querySelectorAll('h2')).map(h => h.textContent)};
        })()""")
        from tests.test_report_browser import LAYOUT_JS

        layout = cdp.js(LAYOUT_JS)
        summary = cdp.js("document.querySelector('ul.summary').textContent")
        cdp.screenshot(f"cohort-{screen}.png")
        errors, remote = _errors_and_requests(cdp)
    finally:
        cdp.call("Emulation.clearDeviceMetricsOverride")
    assert m["vw"] == WIDTHS[screen]["width"], m["vw"]
    assert m["scroll"] <= m["vw"] + 1 and not m["wide"], (m["scroll"], m["wide"])
    assert not errors, errors[:3]
    assert remote == [], remote[:3]
    assert not [e for e in cdp.events if e.get("method") == "Page.javascriptDialogOpening"]
    assert m["scripts"] == 1 + len(m["plots"]) and not m["injected"]  # plotly.js and one per plot: the id stayed text
    assert HOSTILE in m["cells"], "the wearer id is shown as written"
    ids = {p[0] for p in m["plots"]}
    assert {"dist-hours_worn", "dist-trunk_poor_min_per_h", "jolts-by-grade"} <= ids, ids
    assert all(n > 5 for _, n in m["plots"]), m["plots"]
    assert {"Each wearer", "Jolts while driving", "In bed", "Neck range of motion over time", "Data quality"} <= set(m["h2"])
    # charts: labels neither cut at the chart's edge (the long axis titles were, on a phone) nor
    # overlapping; each labelled for a screen reader
    assert not layout["clipped"] and not layout["overlaps"] and not layout["buried"], layout
    assert not layout["unlabelled"], layout["unlabelled"]
    # the summary says what to look at first and how sure the rates are, in the other pages' words
    assert "What to look at first" in summary and "How sure" in summary, summary
    assert "hunched" not in summary and "neck flexed" not in summary


def test_slurm_example_builds_a_job_script():
    """docs/cohort_slurm.py: a dask-jobqueue SLURMCluster (scheduler on loopback for --dry-run), its job script."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "host"), os.environ.get("PYTHONPATH", "")]))
    r = subprocess.run([sys.executable, str(ROOT / "docs" / "cohort_slurm.py"), "m.csv", "out", "--dry-run", "--cores", "3",
                        "--queue", "normal", "--account", "proj"], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    script = r.stdout
    assert "#SBATCH -p normal" in script and "#SBATCH -A proj" in script and "--cpus-per-task=3" in script, script
    assert "dask_worker tcp://127.0.0.1:" in script and "--nthreads 1" in script and "--nworkers 3" in script, script


def test_task_reads_urls_skips_unchanged_and_hides_paths(cohort, tmp_path):
    """One task in-process: an fsspec URL, the skip rule (bytes and settings), a pseudonymised failure."""
    import fsspec

    from nape.cohort.store import prepare
    from nape.cohort.task import TaskSpec, analyse_entry
    from nape.settings import AnalysisSettings

    out = prepare(tmp_path / "out")
    src = cohort.healthy[0]
    url = "memory://cohort/one.nape"
    with fsspec.open(url, "wb") as f:
        f.write(src.read_bytes())
    spec = TaskSpec("rtest", url, str(out), AnalysisSettings(), "s1")
    first = analyse_entry(spec)
    assert first["status"] == "analysed" and first["kind"] == "everyday", first
    report = json.loads((out / "reports" / "rtest.json").read_text())
    assert report["path"] == url and report["samples"] > 0
    known = {k: first[k] for k in ("content_sha256", "settings_sha256", "status", "kind", "duration_s", "reason")}
    assert analyse_entry(TaskSpec("rtest", url, str(out), AnalysisSettings(), "s1", known))["status"] == "unchanged"
    assert analyse_entry(TaskSpec("rtest", url, str(out), AnalysisSettings(), "s2", known))["status"] == "analysed"
    bad = analyse_entry(TaskSpec("rbad", str(cohort.damaged[0]), str(out), AnalysisSettings(), "s1", pseudonymise=True))
    assert bad["status"] == "failed" and str(cohort.damaged[0]) not in bad["reason"] and "rbad.nape" in bad["reason"]
    missing = analyse_entry(TaskSpec("rmiss", str(tmp_path / "gone.nape"), str(out), AnalysisSettings(), "s1"))
    assert missing["status"] == "failed" and "No such file" in missing["reason"], missing


def test_a_crashing_analysis_is_listed_in_one_line(cohort, tmp_path, monkeypatch):
    """Whatever the analysis raises (a recording it cannot handle yet), the task lists it in one line."""
    import nape.analysis
    from nape.cohort.store import prepare
    from nape.cohort.task import TaskSpec, analyse_entry
    from nape.settings import AnalysisSettings

    def crash(*_a, **_k):
        raise ValueError("operands could not be broadcast\ntogether with shapes (30,) (3,)")

    monkeypatch.setattr(nape.analysis, "analyse", crash)
    res = analyse_entry(TaskSpec("rcrash", str(cohort.healthy[0]), str(prepare(tmp_path)), AnalysisSettings(), "s"))
    assert res["status"] == "failed" and "\n" not in res["reason"], res
    assert res["reason"].startswith("the analysis failed (ValueError in test_cohort.py:"), res["reason"]
    assert "broadcast together" in res["reason"]


def test_cli_on_the_default_local_cluster(cohort, tmp_path, capsys):
    """nape cohort without --scheduler: its own LocalCluster (loopback), progress on stderr, summary on stdout."""
    folder = tmp_path / "recs" / "office" / "ann"  # the folder form: GROUP/WEARER/*.nape
    folder.mkdir(parents=True)
    for p in cohort.healthy[:2]:
        (folder / p.name).write_bytes(p.read_bytes())
    rc = main(["cohort", str(tmp_path / "recs"), "--out", str(tmp_path / "out"), "--workers", "1", "--html"])
    printed = capsys.readouterr().out
    assert rc == 0 and "2 analysed, 0 unchanged" in printed and "0 not analysed" in printed, printed
    c = json.loads((tmp_path / "out" / "cohort.json").read_text())
    assert [(w["wearer"], w["group"], w["recordings"]) for w in c["wearers"]] == [("ann", "office", 2)]
    assert len(list((tmp_path / "out" / "reports").glob("*.html"))) == 2
