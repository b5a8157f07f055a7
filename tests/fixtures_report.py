"""Checks of a built HTML report in headless chromium, shared by the demo's and the tiny model's tests.

``expected_values`` recomputes every first-screen number straight from the files the commands wrote
(layers and subsets read with pandas, metrics.json with json), independently of fercurate.report.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from urllib.parse import unquote, urlparse

import pandas as pd
import pyarrow.parquet as pq
import pytest

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--no-first-run"]
BAD_WORDS = re.compile(r"\b(nan|NaN|None|undefined|null|inf)\b")
TABLE_I = {("ferplus", "pose30"): 1171, ("ferplus", "pose45"): 634, ("ferplus", "occlusion"): 605,
           ("affectnet", "pose30"): 1949, ("affectnet", "pose45"): 985, ("affectnet", "occlusion"): 682}


def need_chromium():  # noqa: ANN201 - the playwright sync_api module
    if not CHROMIUM.exists():
        if os.environ.get("CI"):
            pytest.fail("CI must install Debian chromium (scripts/setup --test does)")
        pytest.skip("Debian chromium is not installed (/usr/bin/chromium)")
    return pytest.importorskip("playwright.sync_api")


def _synthetic(path: Path) -> bool:
    return pd.read_parquet(path, columns=["derived_from"])["derived_from"].notna().any()


def expected_values(ws: Path) -> dict[str, float]:
    """Every first-screen number, by the data-key the report gives it, from the files on disk."""
    out: dict[str, float] = {}
    manifests = {p.stem: p for p in (ws / "manifests").glob("*.parquet") if "." not in p.stem}
    originals = {n: p for n, p in manifests.items() if not _synthetic(p)}
    dup_layers = {n: ws / "manifests" / f"{n}.dups.parquet" for n in originals}
    dup_layers = {n: p for n, p in dup_layers.items() if p.exists()}
    if dup_layers:
        d = pd.concat([pd.read_parquet(p) for p in dup_layers.values()], ignore_index=True)
        d = d[d["dup_manifest"].isin(list(dup_layers))]
        leak = d[(d["split"] != "train") & (d["dup_split"] == "train")]
        for (m, split), g in leak.groupby(["manifest", "split"]):
            total = int((pd.read_parquet(originals[m], columns=["split"])["split"] == split).sum())
            key = f"leak:{m}:{split}"
            out |= {f"{key}:samples": g["sample_id"].nunique(), f"{key}:total": total,
                    f"{key}:fraction": g["sample_id"].nunique() / total}
        if not len(leak):
            out["leak:pairs"] = len(d.drop_duplicates(["sample_id", "dup_id", "manifest", "dup_manifest"])) // 2
    for n in originals:
        nf = ws / "manifests" / f"{n}.nonface.parquet"
        if nf.exists():
            df = pd.read_parquet(nf)
            out |= {f"nonface:{n}:flagged": int(df["flagged"].sum()), f"nonface:{n}:total": len(df)}
            for col in ("nf_majority", "blank", "unreadable", "no_face"):
                if df[col].notna().any():  # no_face is null when the face models were not run
                    out[f"nonface:{n}:{col}"] = int(df[col].fillna(False).astype(bool).sum())
        nz = ws / "manifests" / f"{n}.noise.parquet"
        if nz.exists():
            df = pd.read_parquet(nz)
            out |= {f"noise:{n}:contested": int(df["contested"].fillna(False).sum()),
                    f"noise:{n}:voted": int((df["votes_total"].fillna(0) > 0).sum())}
            if df["prob_given"].notna().any():
                out[f"noise:{n}:likely_mislabel"] = int(df["likely_mislabel"].fillna(False).sum())
    for p in sorted((ws / "manifests" / "subsets").glob("*.parquet")):
        meta = json.loads(pq.read_schema(p).metadata[b"fercurate.layer"])
        name, dataset = meta["provenance"]["subset"], meta["provenance"]["dataset"]
        paper = TABLE_I.get((dataset, name.removesuffix("-clean").removeprefix("official-").removesuffix("-openface")
                                     .removesuffix("-estimated").replace("occlusion-labelled", "occlusion")))
        if paper is None:
            continue
        members = pd.read_parquet(p, columns=["sample_id"])["sample_id"]
        rows = pd.read_parquet(meta["provenance"]["manifest_path"], columns=["sample_id", "split"])
        out[f"subset:{meta['manifest']}:{name}"] = int((rows["sample_id"].isin(members) & (rows["split"] == "test")).sum())
        if name.startswith("official-") or name.endswith("-openface"):
            out[f"subset:{meta['manifest']}:{name}:paper"] = paper
    best: dict[tuple[str, str], tuple[float, int]] = {}
    for mj in (ws / "runs").rglob("metrics.json"):
        data = json.loads(mj.read_text())
        for g in data["groups"]:
            if g["n"] and g["accuracy"] == g["accuracy"]:
                k = (Path(data["manifest"]).name.removesuffix(".parquet"), g["group"])
                if k not in best or g["accuracy"] > best[k][0]:
                    best[k] = (g["accuracy"], g["n"])
    for (manifest, group), (acc, n) in best.items():
        out |= {f"best:{manifest}:{group}:accuracy": acc, f"best:{manifest}:{group}:n": n}
    return out


def _shown(value: float, key: str) -> str:
    if key.endswith((":fraction", ":accuracy")):
        return f"{100 * value:,.1f} %"
    return f"{int(value):,}"


def check_page(page, url: str, root: Path) -> list[str]:  # noqa: ANN001 - a playwright Page
    """Open ``url``; assert no console errors, every image loads, every internal link resolves, no bad words.

    Returns the file links found (relative pages the caller may check too).
    """
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(url, wait_until="load")
    assert errors == [], errors
    assert page.evaluate("[...document.images].every(i => i.complete)")
    broken = page.evaluate("[...document.images].filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src)")
    assert broken == [], broken
    text = page.inner_text("body")
    bad = BAD_WORDS.findall(text)
    assert not bad, [text[max(0, m.start() - 60): m.end() + 60] for m in BAD_WORDS.finditer(text)][:5]
    hrefs = page.evaluate("[...document.querySelectorAll('a[href]')].map(a => a.getAttribute('href'))")
    ids = set(page.evaluate("[...document.querySelectorAll('[id]')].map(e => e.id)"))
    here = Path(unquote(urlparse(url).path)).parent
    files = []
    for href in hrefs:
        target, _, frag = href.partition("#")
        if not target:
            assert frag in ids, f"{url}: link #{frag} has no target"
            continue
        assert not urlparse(target).scheme, f"{url}: external link {href}"
        path = (here / unquote(target)).resolve()
        assert path.exists(), f"{url}: link {href} -> {path} does not exist"
        assert root.resolve() in path.parents, f"{url}: link {href} leaves the report folder"
        files.append(path)
    return files


def check_report(index: Path, ws: Path, screenshot: Path | None = None) -> dict[str, float]:
    """The whole browser check of a report; returns the first screen's values by key."""
    sync_api = need_chromium()
    expected = expected_values(ws)
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        files = check_page(page, index.as_uri(), index.parent)
        shown = page.evaluate("""[...document.querySelectorAll('#findings [data-key]')]
            .map(e => [e.dataset.key, e.dataset.value, e.textContent])""")
        # the findings are the first thing on the page, above the fold
        top = page.evaluate("document.querySelector('#findings').getBoundingClientRect().top")
        assert top < 300
        if screenshot is not None:
            page.screenshot(path=str(screenshot))
        for sub in sorted({f for f in files if f.suffix == ".html"}):
            back = check_page(browser.new_page(), sub.as_uri(), index.parent)
            assert index.resolve() in back, f"{sub} does not link back to {index}"
        browser.close()
    got = {k: float(v) for k, v, _ in shown}
    assert set(got) == set(expected), (sorted(set(got) ^ set(expected)))
    for key, value, text in shown:
        assert float(value) == pytest.approx(expected[key]), key
        assert text == _shown(expected[key], key), (key, text)
    return got
