"""fercurate's occlusion labelling plugin for the FiftyOne App (installed by ``fercurate annotate launch``).

* Panel **Occlusion labelling** (in the grid and in the sample modal): open a face and label it
  from the keyboard (keys in :data:`KEYS_HELP`, caught by the small script ``keys.js``); the panel
  shows the face's saved label, the draft, who labelled it, the official label and the suggestion,
  and in adjudication every person's label side by side. Buttons do the same for a mouse.
* Operators for faces selected in the grid: ``occ_mask`` ... ``occ_none`` (label the selection with
  that one type: run them from the operator browser, backtick key), ``label_occlusion`` (a form with
  all six types, also in the grid's action bar), ``clear_occlusion``, ``accept_suggestion``,
  ``confirm_official``.
* ``open_queue`` runs when the App opens a dataset: it opens the first face still to do in the
  annotator's queue, and ``keys.js`` splits the panel beside it, so labelling starts at the first key.

Every label goes through :mod:`fercurate.annotate.session`: it replaces the annotator's own earlier
label, is written within seconds to the annotation file of the workspace this App server was
started for, and is recorded under the one annotator it was started for
(:mod:`fercurate.annotate.served`), whoever else launched since. A dataset of someone else's is
shown as such, never with their labels as the viewer's.
"""

from __future__ import annotations

import fiftyone.operators as foo
import fiftyone.operators.types as types

from fercurate.annotate import labelling, live, served, session
from fercurate.annotate.vocabulary import TAG_PREFIX, TYPE_LABELS
from fercurate.errors import FercurateError
from fercurate.schema import OCCLUSION_TYPES

KEY_OF = {t: k for k, t in session.KEY_TYPES.items() if k != "n"}
KEYS = [*session.KEY_TYPES, "Enter", "z", "q"]
STORE = "fercurate-occlusion"
PANEL_NAME = "occlusion_labeller"
KEYS_HELP = ("Keys: 1 mask, 2 glasses, 3 left/right, 4 upper, 5 bottom (the first key starts a new label, "
             "more keys add or remove types), 0 or n no occlusion, Enter save and next face, z undo, q close the face")


def _annotator(ctx) -> str | None:
    """The annotator of this App server; else (a server not started by fercurate) the dataset's owner."""
    here = served.current()
    return here.annotator if here else session.owner(ctx.dataset)


def _workspace(ctx):  # noqa: ANN202 - fercurate.workspace.Workspace | None
    """The workspace this App server was started for (None: the one the dataset records)."""
    here = served.current()
    return here.workspace if here else None


def _foreign(ctx) -> str | None:
    """Why the open dataset is not this App's annotator's to label in, or None when it is."""
    who, mine = session.owner(ctx.dataset), _annotator(ctx)
    if who is None:
        return "This is the shared dataset, not a labelling session: launch your own with 'fercurate annotate launch'."
    if who != mine:
        return f"This is {who}'s dataset; this App labels for {mine}. Open your own dataset to see your labels."
    return None


def _targets(ctx) -> list[str]:
    """Selected samples in the grid, else the sample open in the modal."""
    ids = list(ctx.selected or [])
    if not ids and ctx.current_sample:
        ids = [ctx.current_sample]
    return ids


def _run(ctx, action, what: str) -> dict:
    """Apply ``action(dataset, ids, annotator)`` to the targets, refresh the grid and say what happened."""
    ids = _targets(ctx)
    try:
        changed = action(ctx.dataset, ids, _annotator(ctx), _workspace(ctx))
    except FercurateError as exc:
        ctx.ops.notify(str(exc), variant="error")
        return {"error": str(exc)}
    ctx.ops.reload_dataset()  # the grid's tiles show the new tags (reload_samples does not)
    if ctx.selected:
        ctx.ops.clear_selected_samples()  # labelled faces leave the queue: never carry a selection on
    ctx.ops.notify(f"{what}: {changed} of {len(ids)} face(s) changed", variant="success")
    return {"changed": changed, "selected": len(ids)}


class OccType(foo.Operator):
    """Label the selected faces with one occlusion type (no form, so it runs at once)."""

    occ_type = "none"

    @property
    def config(self):
        return foo.OperatorConfig(
            name=f"occ_{self.occ_type}",
            label=f"Occlusion: {TYPE_LABELS[self.occ_type]} ({self.occ_type})",
            description=f"Label the selected faces {self.occ_type} (replaces your label)",
        )

    def execute(self, ctx):
        t = self.occ_type
        return _run(ctx, lambda ds, ids, who, ws: labelling.set_types(ds, ids, [t], who, workspace=ws),
                    f"{TAG_PREFIX}{t}")


def _type_operator(occ_type: str) -> type:
    return type(f"Occ_{occ_type}", (OccType,), {"occ_type": occ_type, "__doc__": f"Label selection: {occ_type}."})


TYPE_OPERATORS = [_type_operator(t) for t in OCCLUSION_TYPES]


class LabelOcclusion(foo.Operator):
    """A form with the six types; replaces the selected faces' label."""

    @property
    def config(self):
        return foo.OperatorConfig(
            name="label_occlusion",
            label="Label occlusion",
            description="Set the occlusion types of the selected faces",
        )

    def resolve_placement(self, ctx):
        return types.Placement(
            types.Places.SAMPLES_GRID_SECONDARY_ACTIONS,
            types.Button(label="Label occlusion", prompt=True),
        )

    def resolve_input(self, ctx):
        inputs = types.Object()
        n = len(_targets(ctx))
        inputs.md(f"Labelling **{n}** face(s) as **{_annotator(ctx) or '?'}**", name="summary")
        for t in OCCLUSION_TYPES:
            inputs.bool(t, label=TYPE_LABELS[t], default=False, view=types.CheckboxView())
        return types.Property(inputs, view=types.View(label="Label occlusion"))

    def execute(self, ctx):
        chosen = [t for t in OCCLUSION_TYPES if ctx.params.get(t)]
        return _run(ctx, lambda ds, ids, who, ws: labelling.set_types(ds, ids, chosen, who, workspace=ws),
                    "occlusion " + ("|".join(chosen) or "(nothing chosen)"))


class ClearOcclusion(foo.Operator):
    @property
    def config(self):
        return foo.OperatorConfig(name="clear_occlusion", label="Occlusion: withdraw my label")

    def execute(self, ctx):
        return _run(ctx, lambda ds, ids, who, ws: labelling.clear(ds, ids, who, workspace=ws), "withdrew your label")


class AcceptSuggestion(foo.Operator):
    @property
    def config(self):
        return foo.OperatorConfig(name="accept_suggestion", label="Occlusion: accept suggestion")

    def execute(self, ctx):
        return _run(ctx, lambda ds, ids, who, ws: labelling.accept_prefilled(ds, ids, who, workspace=ws),
                    "accepted suggestion")


class ConfirmOfficial(foo.Operator):
    @property
    def config(self):
        return foo.OperatorConfig(name="confirm_official", label="Occlusion: confirm official label")

    def execute(self, ctx):
        return _run(ctx, lambda ds, ids, who, ws: labelling.accept_prefilled(ds, ids, who, source="official",
                                                                              workspace=ws),
                    "confirmed official label")


class OpenQueue(foo.Operator):
    """When the App opens the annotator's dataset: open the first face still to do.

    The panel's script (``keys.js``) then shows the labelling panel beside the face: FiftyOne's
    ``open_panel`` cannot split the face's view when the panel already has a tab there.
    """

    @property
    def config(self):
        return foo.OperatorConfig(name="open_queue", label="Occlusion: open my queue", unlisted=True,
                                  on_dataset_open=True)

    def execute(self, ctx):
        if _foreign(ctx):
            return {"opened": None}
        try:
            face = session.next_face(ctx.dataset, None, workspace=_workspace(ctx))
        except FercurateError as exc:
            ctx.ops.notify(str(exc), variant="error")
            return {"opened": None}
        if face is not None:
            ctx.ops.open_sample(id=ctx.dataset.select_by("sample_id", [face]).values("id")[0])
        return {"opened": face}


class OcclusionLabeller(foo.Panel):
    """The single-face flow: keys (or buttons) edit a draft label, Enter saves it and opens the next face.

    The draft, its undo history and the last message live in the server-side execution store,
    keyed by the panel: after ``open_sample`` the App re-sends the panel state it had *before* the
    key press, so the panel state cannot be trusted to carry them across a move to another face.
    """

    @property
    def config(self):
        return foo.PanelConfig(
            name=PANEL_NAME,
            label="Occlusion labelling",
            surfaces="grid modal",
            help_markdown="Open a face, then: " + KEYS_HELP + ". In the grid, select faces and use the "
            "buttons to label them all.",
        )

    # --- events -----------------------------------------------------------------------------------

    def on_load(self, ctx):
        self._store(ctx).delete(f"panel:{ctx.panel_id}")  # a panel opens clean: no draft, no message
        self._show(ctx)

    def on_change_current_sample(self, ctx):
        self._show(ctx)

    def on_change_selected(self, ctx):
        self._show(ctx)

    def on_key(self, ctx):
        """A key the panel's script caught: 1-5 / 0 / n edit the draft, Enter saves, z undoes."""
        key = str(ctx.params.get("key") or "")
        if _foreign(ctx):
            return self._say(ctx, _foreign(ctx), error=True)
        if key in session.KEY_TYPES:
            self._toggle(ctx, key)
        elif key == "Enter":
            self.on_save(ctx)
        elif key in ("z", "Z"):
            self.on_undo(ctx)
        elif key == "q":  # Escape does not always reach the App's modal with the panel beside the face
            ctx.ops.close_sample()

    def on_type(self, ctx):
        t = ctx.params.get("occ_type")
        if not ctx.current_sample and ctx.selected:  # grid: label the selection with this type
            _run(ctx, lambda ds, ids, who: labelling.set_types(ds, ids, [t], who), f"{TAG_PREFIX}{t}")
            self._show(ctx)
        else:
            self._toggle(ctx, KEY_OF[t])

    def on_save(self, ctx):
        """Save the draft of the open face (replacing your label), then open the next face of the queue."""
        face = self._face(ctx)
        if face is None:
            return self._say(ctx, "Open a face first (click it in the grid).")
        draft = self._draft(ctx, face)
        if not draft["draft"]:
            return self._say(ctx, "Choose a type first: 1-5, or 0 / n for no occlusion.")
        try:
            event = session.save(ctx.dataset, face, draft["draft"], annotator=_annotator(ctx),
                                 workspace=_workspace(ctx))
        except FercurateError as exc:
            return self._say(ctx, str(exc), error=True)
        ctx.ops.reload_dataset()  # the grid's tiles show the new tags (reload_samples does not)
        said = f"{face}: {'|'.join(draft['draft'])} {'saved' if event else 'unchanged'}"
        nxt = session.next_face(ctx.dataset, face, workspace=_workspace(ctx))
        if nxt is None:
            self._remember(ctx, {**draft, "history": [], "last": said + ". The queue is done."})
            return self._show(ctx)
        self._remember(ctx, self._fresh(ctx, nxt, last=said))
        ctx.ops.open_sample(id=self._key_of(ctx, nxt))

    def on_undo(self, ctx):
        """Undo the last key press on the draft; with none, the last saved label (and go back to it)."""
        face = self._face(ctx)
        draft = self._draft(ctx, face) if face else None
        if draft and draft["history"]:
            *rest, previous = draft["history"]
            self._remember(ctx, {**draft, "draft": previous, "history": rest, "touched": bool(rest),
                                 "last": "undid a key"})
            return self._show(ctx)
        try:
            undone = session.undo(ctx.dataset, annotator=_annotator(ctx), workspace=_workspace(ctx))
        except FercurateError as exc:
            return self._say(ctx, str(exc), error=True)
        if undone is None:
            return self._say(ctx, "Nothing to undo.")
        ctx.ops.reload_dataset()
        said = f"undid {undone.sample_id}: back to {'|'.join(undone.previous) or 'no label'}"
        self._remember(ctx, self._fresh(ctx, undone.sample_id, last=said))
        if face == undone.sample_id:
            self._show(ctx)
        else:
            ctx.ops.open_sample(id=self._key_of(ctx, undone.sample_id))

    # --- the draft (server side) -------------------------------------------------------------------

    def _store(self, ctx):
        return ctx.store(STORE)

    def _fresh(self, ctx, face: str, last: str | None = None) -> dict:
        """A face's draft as it opens: its saved label, nothing to undo yet."""
        return {"face": face, "draft": session.current_types(ctx.dataset, face), "history": [], "last": last}

    def _draft(self, ctx, face: str) -> dict:
        kept = self._store(ctx).get(f"panel:{ctx.panel_id}") or {}
        return kept if kept.get("face") == face else self._fresh(ctx, face, last=kept.get("last"))

    def _remember(self, ctx, draft: dict) -> None:
        self._store(ctx).set(f"panel:{ctx.panel_id}", draft)

    def _face(self, ctx) -> str | None:
        """The manifest id of the face open in the modal."""
        if not ctx.current_sample:
            return None
        return ctx.dataset[ctx.current_sample]["sample_id"]

    def _key_of(self, ctx, sample_id: str) -> str:
        return ctx.dataset.select_by("sample_id", [sample_id]).values("id")[0]

    def _toggle(self, ctx, key: str) -> None:
        face = self._face(ctx)
        if face is None:
            return self._say(ctx, "Open a face first (click it in the grid), then press the keys.")
        draft = self._draft(ctx, face)
        # The first key on a face starts a new label (so changing one is one key, like making it);
        # later keys toggle types into it (multi-label).
        new = session.toggle(draft["draft"] if draft.get("touched") else [], key)
        self._remember(ctx, {**draft, "draft": new, "touched": True,
                             "history": [*draft["history"], draft["draft"]][-50:], "last": f"key {key}"})
        self._show(ctx)

    def _say(self, ctx, message: str, error: bool = False) -> None:
        face = self._face(ctx)
        if face is not None:
            self._remember(ctx, {**self._draft(ctx, face), "last": message})
        ctx.ops.notify(message, variant="error" if error else "info")
        self._show(ctx)

    def _show(self, ctx) -> None:
        """Fill the panel's state from the dataset and the store: everything ``render`` shows."""
        ds = ctx.dataset
        s = ctx.panel.state
        who = _annotator(ctx)
        face = self._face(ctx)
        s.annotator = who or "(none: launch with 'fercurate annotate launch MANIFEST --annotator NAME')"
        s.mode = session.mode_of(ds)
        s.face = face
        s.selected = len(ctx.selected or [])
        s.foreign = _foreign(ctx)
        s.draft, s.saved, s.saved_by, s.official, s.suggested, s.others, s.last = [], None, None, None, None, None, None
        s.progress, s.write_error, s.file, s.pending, s.written = None, None, None, 0, 0
        if s.foreign:
            return
        s.progress = session.progress(ds)
        try:
            path = session.annotation_path(ds, _workspace(ctx))
        except FercurateError as exc:
            s.foreign = str(exc)
            return
        writer = live.writer_for(path)
        s.write_error, s.file, s.pending, s.written = writer.last_error, str(path), writer.pending, writer.written
        if face is None:
            return
        draft = self._draft(ctx, face)
        doc = ds[ctx.current_sample]
        saved = session.current_types(ds, face)
        s.draft = draft["draft"]
        s.last = draft.get("last")
        s.saved = "|".join(saved) or None
        s.saved_by = f"{who}, {doc['occ_at']:%H:%M:%S}" if saved and doc["occ_at"] else (who if saved else None)
        s.official = "|".join(doc["occlusion"] or []) if doc["occlusion_source"] == "official" else None
        s.suggested = "|".join(doc["occ_suggested"] or []) or None
        s.others = session.others_labels(ds, face, _workspace(ctx)) if s.mode == "adjudicate" else None

    def render(self, ctx):
        s = ctx.panel.state
        panel = types.Object()
        lines = [f"**Annotator:** {s.annotator} · **mode:** {s.mode} · {s.progress or ''}"]
        if s.foreign:
            lines.append(f"**Not your dataset:** {s.foreign}")
        elif s.face:
            lines.append(f"**Face:** {s.face}")
            mine = "Your decision" if s.mode == "adjudicate" else "Your label"
            lines.append(f"**{mine}:** {s.saved or 'none yet'}" + (f" (by {s.saved_by})" if s.saved_by else ""))
            lines.append(f"**Draft:** {'|'.join(s.draft or []) or '(empty)'} (Enter saves)")
            if s.official:
                lines.append(f"**Official list:** {s.official}")
            if s.suggested:
                lines.append(f"**Suggested:** {s.suggested}")
            for person, label in (s.others or {}).items():
                lines.append(f"**Labelled by {person}:** {label}")
        else:
            lines.append(f"Open a face to label it from the keyboard. **Selected:** {s.selected or 0}")
        if s.last:
            lines.append(f"**Last:** {s.last}")
        if s.write_error:
            lines.append(f"**Not saved yet:** {s.write_error}")
        panel.md("  \n".join(lines), name="status")
        panel.view("keys", types.View(component="OcclusionKeys", on_key=self.on_key, keys=KEYS, help=KEYS_HELP,
                                      file=s.file, pending=s.pending or 0, written=s.written or 0,
                                      error=s.write_error))
        row = panel.h_stack("types", align_x="left", gap=1)
        draft = set(s.draft or [])
        for t in OCCLUSION_TYPES:
            row.btn(f"occ_{t}", label=f"{KEY_OF[t]} {TYPE_LABELS[t]}", variant="contained" if t in draft else "outlined",
                    on_click=self.on_type, params={"occ_type": t})
        tools = panel.h_stack("tools", align_x="left", gap=1)
        tools.btn("save", label="Save and next (Enter)", variant="contained", on_click=self.on_save)
        tools.btn("undo", label="Undo (z)", variant="outlined", on_click=self.on_undo)
        return types.Property(panel, view=types.GridView(orientation="vertical", align_x="left", gap=2))


def register(p):
    for cls in TYPE_OPERATORS:
        p.register(cls)
    p.register(LabelOcclusion)
    p.register(ClearOcclusion)
    p.register(AcceptSuggestion)
    p.register(ConfirmOfficial)
    p.register(OpenQueue)
    p.register(OcclusionLabeller)
