"""Three people label 30 real faces in real headless Chromium, following the README's "Labelling occlusion as a team".

The commands are the README's, run as from a shell: ``cd WS && fercurate annotate launch ferplus
--split test --annotator alice``, and ``... --annotator bob -w WS`` from another folder; nobody's
environment holds a ``FERCURATE_*`` variable (nor FiftyOne's database or tracking settings), so
the workspace is whatever the command was given. alice and bob launch at the same moment on a
fresh workspace. Each labels in their own browser context with the keyboard: labels, multi-labels,
a wrong key, a change, undo, a relaunch, a blind second pass, adjudication by a third person, and
``kill -9`` of a launcher while a label is on its way. At the end the workspace's annotation file
must hold exactly the intended events, under the right names. Clicks and key presses per person
are counted (the README quotes them); screenshots land in ``$FERCURATE_SCREENSHOTS`` (read by this
test only; default: the test's tmp dir).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from test_annotate import _answers

from fercurate.annotations import read_events
from fercurate.workspace import Workspace

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--no-first-run"]
N_FACES = 30
# A person's shell: none of fercurate's variables, and FiftyOne's own database and tracking left unset.
NOT_IN_A_SHELL = ("FIFTYONE_DATABASE_URI", "FIFTYONE_DATABASE_NAME", "FIFTYONE_PRIVATE_DATABASE_PORT",
                  "FIFTYONE_DO_NOT_TRACK")


def _cli() -> str:
    return str(Path(sys.executable).with_name("fercurate"))


def shell_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("FERCURATE_") and k not in NOT_IN_A_SHELL}


@dataclass
class Team:
    """The workspace, the browser and every launch (by annotator) the test started."""

    workspace: Path
    elsewhere: Path
    browser: object
    shots: Path
    launches: dict[str, subprocess.Popen] = field(default_factory=dict)
    urls: dict[str, str] = field(default_factory=dict)
    keys: dict[str, int] = field(default_factory=dict)  # key presses per annotator, for the closing note
    clicks: dict[str, int] = field(default_factory=dict)
    seconds: list[float] = field(default_factory=list)  # per face labelled by keys: first key to the next face

    def start(self, who: str, *extra: str, from_elsewhere: bool = False) -> None:
        """``fercurate annotate launch ferplus --split test --annotator WHO ...``, as the README says: from
        inside the workspace, or from another folder with ``-w WS``."""
        args = [_cli(), "annotate", "launch", "ferplus", "--split", "test", "--annotator", who, *extra]
        if from_elsewhere:
            args += ["-w", str(self.workspace)]
        self.launches[who] = subprocess.Popen(args, env=shell_env(), cwd=self.elsewhere if from_elsewhere else
                                              self.workspace, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def ready(self, who: str) -> tuple[str, list[str]]:
        """Wait for a started launch to print its queue: (url, the lines it printed)."""
        proc = self.launches[who]
        deadline = time.monotonic() + 300
        lines: list[str] = []
        while time.monotonic() < deadline and proc.poll() is None:
            lines.append(proc.stdout.readline())
            if lines[-1].startswith("queue:"):
                break
        found = [x.split()[1] for x in lines if x.startswith("App: http://localhost:")]
        if not found or proc.poll() is not None:
            proc.kill()
            pytest.fail(f"launch for {who} did not start: {lines} {proc.communicate()[1][-3000:]}")
        self.urls[who] = found[0]
        return found[0], lines

    def launch(self, who: str, *extra: str, from_elsewhere: bool = False) -> tuple[str, list[str]]:
        self.start(who, *extra, from_elsewhere=from_elsewhere)
        return self.ready(who)

    def stop(self, who: str, sig: int = signal.SIGINT) -> str:
        """Stop a launch as Ctrl-C does; returns what it printed from then on (stdout and stderr)."""
        proc = self.launches.pop(who)
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=120)
        return out + err

    def events(self) -> list[tuple[str, str, str, str]]:
        """(sample_id, annotator, types, source) of every human/adjudication event in the workspace's file."""
        table = read_events(Workspace(self.workspace).annotation_path("ferplus"))
        rows = zip(*(table.column(c).to_pylist() for c in ("sample_id", "annotator", "types", "source")))
        return [(s, a, "|".join(t), src) for s, a, t, src in rows if src in ("human", "adjudication")]


@pytest.fixture(scope="module")
def team(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Team]:
    if not CHROMIUM.exists():
        pytest.skip("Debian chromium is not installed (/usr/bin/chromium)")
    playwright_api = pytest.importorskip("playwright.sync_api")
    from fercurate.demo.faces import base_faces
    from fercurate.demo.layouts import write_ferplus

    top = tmp_path_factory.mktemp("team")
    ws, elsewhere = top / "ws", top / "home"
    ws.mkdir()
    elsewhere.mkdir()
    write_ferplus(ws / "FERPlus", base_faces()[:N_FACES], seed=0)  # 30 real faces per split, native layout
    done = subprocess.run([_cli(), "ingest", "ferplus", "FERPlus"], env=shell_env(), cwd=ws, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    shots = Path(os.environ.get("FERCURATE_SCREENSHOTS") or tmp_path_factory.mktemp("shots"))
    shots.mkdir(parents=True, exist_ok=True)
    pw = playwright_api.sync_playwright().start()
    browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
    team = Team(ws, elsewhere, browser, shots)
    try:
        yield team
    finally:
        browser.close()
        pw.stop()
        for who in list(team.launches):
            team.stop(who, signal.SIGTERM)
        subprocess.run([_cli(), "annotate", "database", "--stop"], env=shell_env(), cwd=ws, capture_output=True,
                       timeout=120)


class Annotator:
    """One person's browser context on their own App, driven by keyboard as far as the App allows."""

    NAMES = {"annotator": "Annotator", "face": "Face", "your_label": "Your label", "decision": "Your decision",
             "draft": "Draft", "last": "Last", "mode": "mode", "done": "done"}

    def __init__(self, team: Team, who: str, url: str) -> None:
        self.team, self.who = team, who
        self.context = team.browser.new_context(viewport={"width": 1600, "height": 1000})
        self.page = self.context.new_page()
        self.page.set_default_timeout(90_000)
        self.open(url)

    def open(self, url: str) -> None:
        """Load the App: it opens on the first face still to do with the panel beside it, with no click."""
        self.page.goto(url, wait_until="load")
        self.page.locator('[data-cy="modal"] [data-cy="occlusion-keys"]').wait_for()
        self.page.locator('[data-cy="modal"] [data-cy="sample-canvas"]').first.wait_for()
        assert self.page.get_by_text("Help us improve FiftyOne").count() == 0  # no cookie banner
        self.page.locator(".MuiPopover-root").wait_for(state="detached", timeout=15_000)  # no Enterprise pop-up
        self.wait(annotator=self.who)

    def panel(self) -> dict[str, str]:
        """The panel's fields (``**Field:** value`` lines) as a dict."""
        text = self.page.locator('[data-cy="modal"] p', has_text="Annotator:").first.inner_text(timeout=5_000)
        fields = dict(re.findall(r"^\s*([A-Za-z ]+):\s*(.*?)\s*$", text.replace(" · ", "\n"), flags=re.M))
        return {k.strip(): v for k, v in fields.items()}

    def wait(self, timeout: float = 60.0, **want: str) -> dict[str, str]:
        """Poll the panel until each field starts with the wanted text (``face``, ``your_label`` ...)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                shown = self.panel()
            except Exception:  # noqa: BLE001 - re-rendering
                shown = {}
            if all(shown.get(self.NAMES[k], "").startswith(v) for k, v in want.items()):
                return shown
            if time.monotonic() > deadline:
                raise AssertionError(f"[{self.who}] wanted {want}, the panel shows {shown}")
            time.sleep(0.2)

    def keys(self, *keys: str) -> None:
        for key in keys:
            self.page.keyboard.press(key)
            self.team.keys[self.who] = self.team.keys.get(self.who, 0) + 1
        # the panel's script sends keys one at a time; wait until it has handled every one
        self.page.wait_for_function("(window.__occlusionKeysHandled || 0) >= (window.__occlusionKeysSent || 0)",
                                    timeout=60_000)

    def click(self, locator) -> None:  # noqa: ANN001 - a Playwright locator
        locator.click()
        self.team.clicks[self.who] = self.team.clicks.get(self.who, 0) + 1

    def label(self, *keys: str) -> str:
        """Label the open face with ``keys`` + Enter; returns the face it labelled (the next one opens)."""
        face = self.panel()["Face"]
        started = time.monotonic()
        self.keys(*keys, "Enter")
        self.wait_moved(face)
        self.team.seconds.append(time.monotonic() - started)
        return face

    def open_tile(self, index: int) -> None:
        """Close the face (q) and open another face of the grid with one click."""
        p = self.page
        self.keys("q")
        p.locator('[data-cy="modal"]').wait_for(state="hidden")
        self.click(p.locator('[data-cy="fo-grid"] [data-cy="looker"]').nth(index))
        p.locator('[data-cy="modal"]').wait_for()

    def wait_moved(self, face: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while self.panel().get("Face") == face and time.monotonic() < deadline:
            time.sleep(0.2)

    def datasets_listed(self) -> list[str]:
        """Close the face and open the App's dataset menu: the datasets it offers."""
        p = self.page
        self.keys("q")
        p.locator('[data-cy="modal"]').wait_for(state="hidden")
        p.locator('[data-cy="selector-dataset"]').click()
        p.locator('[data-cy="selector-results-container-dataset"]').wait_for()
        time.sleep(1)  # the list is fetched as the menu opens
        results = p.locator('[data-cy^="selector-result-"]')
        names = [results.nth(i).get_attribute("data-cy")[len("selector-result-"):] for i in range(results.count())]
        p.keyboard.press("Escape")
        return names

    def shot(self, name: str) -> None:
        self.page.screenshot(path=str(self.team.shots / f"{name}.png"))

    def close(self) -> None:
        self.context.close()


def test_a_team_labels_blind_adjudicates_and_survives_kill_9_by_the_readmes_commands(team: Team) -> None:
    expected: list[tuple[str, str, str, str]] = []
    annotations = Workspace(team.workspace).annotation_path("ferplus")

    # alice (in the workspace) and bob (elsewhere, -w) launch at the same moment on a fresh workspace
    team.start("alice")
    team.start("bob", from_elsewhere=True)
    url_a, said_a = team.ready("alice")
    url_b, said_b = team.ready("bob")
    for said in (said_a, said_b):
        assert f"queue: {N_FACES} face(s)\n" in said and f"labels go to {annotations}\n" in said
        assert not [x for x in said if "5151" in x or "show_index" in x or "Connected to FiftyOne" in x], said
    assert url_a != url_b

    alice = Annotator(team, "alice", url_a)  # no click: the first face is open, the panel beside it
    alice.shot("1-alice-opens-on-the-first-face")
    first_face = alice.wait(done="0 of 30")["Face"]
    # a key that labels nothing says which keys do, and changes nothing
    alice.page.keyboard.press("7")
    hint = alice.page.locator('[data-cy="modal"] [data-cy="occlusion-keys"]').inner_text()
    assert hint.startswith("'7' is not a labelling key. Keys: 1 mask, 2 glasses"), hint
    assert alice.wait(draft="(empty)")["Face"] == first_face

    # label: one key + Enter; multi-label: two keys + Enter; none: 0 + Enter
    f1 = alice.label("1")
    assert f1 == first_face
    expected.append((f1, "alice", "mask", "human"))
    alice.page.locator('[data-cy="fo-grid"] [data-cy="tag-occlusion"]', has_text="mask").first.wait_for()
    f2 = alice.label("2", "3")
    expected.append((f2, "alice", "glasses|left_right", "human"))
    f3 = alice.label("0")  # (undone below: checked at the end)
    # z with a clean draft undoes the last saved label and goes back to that face
    alice.keys("z")
    alice.wait(face=f3, your_label="none yet")
    f3b = alice.label("4")  # ... which is labelled again: upper
    assert f3b == f3
    expected.append((f3, "alice", "upper", "human"))  # the undone 'none' was still queued: never written
    alice.shot("2-alice-after-undo-and-relabel")

    # bob opens his App once alice's labels are in the file: his first face is one nobody has labelled
    time.sleep(3)  # one flush period
    bob = Annotator(team, "bob", url_b)
    fb = bob.wait(annotator="bob", your_label="none yet")["Face"]  # blind: nothing of alice's shown
    assert fb not in (f1, f2, f3)
    f4 = alice.label("5")
    expected.append((f4, "alice", "bottom", "human"))
    assert bob.label("2") == fb  # his face was still open to label when alice took hers: both label it blind
    expected.append((fb, "bob", "glasses", "human"))
    bob.shot("3-bob-first-pass")

    # change: alice opens f1 again (one click on its tile) and relabels it: one key + Enter
    alice.open_tile(0)
    alice.wait(face=f1, your_label="mask")
    alice.label("2")
    expected.append((f1, "alice", "glasses", "human"))

    # re-launch: alice stops (Ctrl-C) and starts again; her page says the session ended, and where the labels went
    time.sleep(3)  # one flush period
    said = team.stop("alice")
    assert "pulled fercurate-ferplus--alice" in said and "Traceback" not in said, said
    ended = alice.page.locator('[data-cy="occlusion-session-ended"]')
    ended.wait_for(timeout=30_000)
    assert f"written to {annotations}" in ended.inner_text()
    alice.shot("4-alice-session-ended")
    url, _ = team.launch("alice")
    assert url == url_a  # the same port: the browser keeps the layout
    alice.open(url)  # the same browser, reloaded: again no click
    shown = alice.wait(done=f"4 of {N_FACES}")  # the count goes on from where it was
    assert shown["Face"] not in (f1, f2, f3, f4, fb)  # her queue starts at a face nobody has labelled
    f5 = alice.label("1")
    f6 = alice.label("3")
    expected += [(f5, "alice", "mask", "human"), (f6, "alice", "left_right", "human")]
    alice_final = {f1: "glasses", f2: "glasses|left_right", f3: "upper", f4: "bottom", f5: "mask", f6: "left_right"}
    bob_final = {fb: "glasses"}

    # bob's App offers his own dataset only: alice's cannot be opened there
    assert bob.datasets_listed() == ["fercurate-ferplus--bob"]

    # blind second pass: bob sees alice's faces without her labels, labels them in his own words
    bob.close()
    team.stop("bob")
    url_b, said = team.launch("bob", "--second-pass", "--sample", "4", "--seed", "1", from_elsewhere=True)
    assert "queue: 4 face(s)\n" in said
    bob = Annotator(team, "bob", url_b)
    shown = bob.wait(mode="second-pass", your_label="none yet")
    assert "alice" not in " ".join(shown.values())
    assert bob.page.locator('[data-cy="fo-grid"] [data-cy="tag-occlusion"]').count() == 0  # no tile shows a label
    bob.shot("5-bob-blind-second-pass")
    bob_keys = {"mask": "1", "glasses": "2", "left_right": "3", "upper": "4", "bottom": "5", "none": "0"}
    for _ in range(3):
        face = bob.panel()["Face"]
        want = "none" if face in (f2, f4) else alice_final[face].split("|")[0]  # agrees on some, not all
        bob.label(bob_keys[want])
        bob_final[face] = want
        expected.append((face, "bob", want, "human"))

    # kill -9 of bob's launcher right after a label: the server goes, the label stays
    face = bob.panel()["Face"]
    bob.keys("0", "Enter")
    bob_final[face] = "none"
    expected.append((face, "bob", "none", "human"))
    port = int(url_b.rsplit(":", 1)[1].strip("/"))
    team.launches["bob"].send_signal(signal.SIGKILL)
    team.launches.pop("bob").wait(timeout=30)
    killed = time.monotonic()
    while _answers(port) and time.monotonic() - killed < 10:
        time.sleep(0.2)
    assert not _answers(port), "bob's App still answers after kill -9 of its launcher"
    assert (face, "bob", "none", "human") in team.events(), "the label made just before kill -9 was lost"
    bob.close()
    disagreements = sorted(f for f, t in bob_final.items() if f in alice_final and alice_final[f] != t)
    assert disagreements

    # adjudication: carol sees both labels side by side and decides
    url_c, said = team.launch("carol", "--adjudicate")
    assert f"queue: {len(disagreements)} face(s)\n" in said
    carol = Annotator(team, "carol", url_c)
    shown = carol.wait(mode="adjudicate", face=disagreements[0])
    face = shown["Face"]
    assert shown.get("Labelled by alice") == alice_final[face] and shown.get("Labelled by bob") == bob_final[face]
    carol.shot("6-carol-adjudicates")
    # the mouse works too: the panel's buttons (2 clicks for a face)
    carol.click(carol.page.get_by_role("button", name="2 Glasses"))
    carol.wait(draft="glasses")
    carol.click(carol.page.get_by_role("button", name="Save and next (Enter)"))
    carol.wait_moved(face)
    assert carol.panel().get("Face") in (face, *disagreements)
    expected.append((face, "carol", "glasses", "adjudication"))
    time.sleep(3)  # one flush period
    carol.close()
    team.stop("carol")
    alice.close()
    team.stop("alice")

    # exactly the intended events, in the workspace's file, under the right names (file order is save order)
    got = team.events()
    undone = [(f3, "alice", "none", "human"), (f3, "alice", "", "human")]  # written, then withdrawn by z
    if undone[0] in got:  # z came after the writer's flush: the history shows the label and its withdrawal
        expected += undone
    assert sorted(got) == sorted(expected), "\n".join(["got:", *map(str, got), "expected:", *map(str, expected)])
    per_face = sorted(team.seconds)[len(team.seconds) // 2]
    print(f"\nkey presses: {team.keys}; clicks: {team.clicks or 'none'}; {len(team.seconds)} faces labelled by "
          f"keys, median {per_face:.2f} s a face (first key to the next face); screenshots: {team.shots}")
