"""fercurate's occlusion labelling plugin for the FiftyOne App (installed by ``fercurate annotate launch``).

* Panel **Occlusion labelling**: one button per type (mask, glasses, left/right, upper, bottom,
  none), plus clear / accept suggestion / confirm official; it acts on the selected samples (or the
  sample open in the modal) and shows progress.
* Operators ``occ_mask`` ... ``occ_none`` (no form: run them from the operator browser with the
  backtick key, type e.g. ``mask`` and press Enter), ``label_occlusion`` (a form with all six types,
  also a button in the grid's action bar), ``clear_occlusion``, ``accept_suggestion`` and
  ``confirm_official``.

Labels become ``occ:<type>`` sample tags plus ``occ_by``/``occ_at`` (who, when); the annotator is the
name given at launch (stored in the dataset's info). ``fercurate annotate pull`` collects them.
"""

from __future__ import annotations

import fiftyone.operators as foo
import fiftyone.operators.types as types

from fercurate.annotate import labelling
from fercurate.annotate.dataset import info, unlabelled_view
from fercurate.annotate.vocabulary import TAG_PREFIX, TYPE_LABELS
from fercurate.errors import FercurateError
from fercurate.schema import OCCLUSION_TYPES


def _targets(ctx) -> list[str]:
    """Selected samples in the grid, else the sample open in the modal."""
    ids = list(ctx.selected or [])
    if not ids and ctx.current_sample:
        ids = [ctx.current_sample]
    return ids


def _annotator(ctx) -> str | None:
    return info(ctx.dataset).get("annotator")


def _run(ctx, action, what: str, clear_selection: bool = True) -> dict:
    """Apply ``action(dataset, ids)`` to the targets, refresh the grid and say what happened.

    The selection is cleared afterwards (labelled faces leave the unlabelled queue, and a stale
    selection would carry into the next batch) unless ``clear_selection`` is false.
    """
    ids = _targets(ctx)
    try:
        changed = action(ctx.dataset, ids)
    except FercurateError as exc:
        ctx.ops.notify(str(exc), variant="error")
        return {"error": str(exc)}
    ctx.ops.reload_samples()
    if clear_selection and ctx.selected:
        ctx.ops.clear_selected_samples()
    ctx.ops.notify(f"{what}: {changed} of {len(ids)} sample(s) changed", variant="success")
    return {"changed": changed, "selected": len(ids)}


class OccType(foo.Operator):
    """Add one occlusion type to the selected samples (no form, so it runs at once)."""

    occ_type = "none"

    @property
    def config(self):
        return foo.OperatorConfig(
            name=f"occ_{self.occ_type}",
            label=f"Occlusion: {TYPE_LABELS[self.occ_type]} ({self.occ_type})",
            description=f"Tag the selected samples {TAG_PREFIX}{self.occ_type}",
        )

    def execute(self, ctx):
        t = self.occ_type
        return _run(ctx, lambda ds, ids: labelling.add_type(ds, ids, t, _annotator(ctx)), f"{TAG_PREFIX}{t}")


def _type_operator(occ_type: str) -> type:
    return type(f"Occ_{occ_type}", (OccType,), {"occ_type": occ_type, "__doc__": f"Label selection: {occ_type}."})


TYPE_OPERATORS = [_type_operator(t) for t in OCCLUSION_TYPES]


class LabelOcclusion(foo.Operator):
    """A form with the six types; replaces the selected samples' occlusion label."""

    @property
    def config(self):
        return foo.OperatorConfig(
            name="label_occlusion",
            label="Label occlusion",
            description="Set the occlusion types of the selected samples",
        )

    def resolve_placement(self, ctx):
        return types.Placement(
            types.Places.SAMPLES_GRID_SECONDARY_ACTIONS,
            types.Button(label="Label occlusion", prompt=True),
        )

    def resolve_input(self, ctx):
        inputs = types.Object()
        n = len(_targets(ctx))
        who = _annotator(ctx) or "(no annotator: relaunch with --annotator)"
        inputs.md(f"Labelling **{n}** sample(s) as **{who}**", name="summary")
        for t in OCCLUSION_TYPES:
            inputs.bool(t, label=TYPE_LABELS[t], default=False, view=types.CheckboxView())
        return types.Property(inputs, view=types.View(label="Label occlusion"))

    def execute(self, ctx):
        chosen = [t for t in OCCLUSION_TYPES if ctx.params.get(t)]
        return _run(ctx, lambda ds, ids: labelling.set_types(ds, ids, chosen, _annotator(ctx)),
                    "occlusion " + ("|".join(chosen) or "(nothing chosen)"))


class ClearOcclusion(foo.Operator):
    @property
    def config(self):
        return foo.OperatorConfig(name="clear_occlusion", label="Occlusion: clear (unpulled) tags")

    def execute(self, ctx):
        return _run(ctx, labelling.clear, "cleared occ:* tags")


class AcceptSuggestion(foo.Operator):
    @property
    def config(self):
        return foo.OperatorConfig(name="accept_suggestion", label="Occlusion: accept suggestion")

    def execute(self, ctx):
        return _run(ctx, lambda ds, ids: labelling.accept_prefilled(ds, ids, _annotator(ctx)), "accepted suggestion")


class ConfirmOfficial(foo.Operator):
    @property
    def config(self):
        return foo.OperatorConfig(name="confirm_official", label="Occlusion: confirm official label")

    def execute(self, ctx):
        return _run(
            ctx,
            lambda ds, ids: labelling.accept_prefilled(ds, ids, _annotator(ctx), source="official"),
            "confirmed official label",
        )


class OcclusionLabeller(foo.Panel):
    """Buttons for the six types acting on the current selection, and the labelling progress."""

    @property
    def config(self):
        return foo.PanelConfig(
            name="occlusion_labeller",
            label="Occlusion labelling",
            help_markdown="Select faces in the grid, then press a type. Multi-label: press several. "
            "'No occlusion' replaces the others. Run `fercurate annotate pull` to save.",
        )

    def on_load(self, ctx):
        self._refresh(ctx)

    def on_change_selected(self, ctx):
        self._refresh(ctx)

    def on_change_current_sample(self, ctx):
        self._refresh(ctx)

    def on_type(self, ctx):
        t = ctx.params.get("occ_type")
        self._act(ctx, lambda ds, ids: labelling.add_type(ds, ids, t, _annotator(ctx)), f"{TAG_PREFIX}{t}")

    def on_clear(self, ctx):
        self._act(ctx, labelling.clear, "cleared occ:* tags")

    def on_accept(self, ctx):
        self._act(ctx, lambda ds, ids: labelling.accept_prefilled(ds, ids, _annotator(ctx)), "accepted suggestion")

    def on_confirm(self, ctx):
        self._act(ctx, lambda ds, ids: labelling.accept_prefilled(ds, ids, _annotator(ctx), source="official"),
                  "confirmed official label")

    def on_keep(self, ctx):
        ctx.panel.state.keep = bool(ctx.params.get("value"))

    def _act(self, ctx, action, what: str) -> None:
        """Label the selection; then clear it unless multi-label is on."""
        _run(ctx, action, what, clear_selection=not ctx.panel.state.keep)
        self._refresh(ctx)

    def _refresh(self, ctx):
        ds = ctx.dataset
        tag_counts = ds.count_sample_tags()
        ctx.panel.state.selected = len(_targets(ctx))
        ctx.panel.state.annotator = _annotator(ctx) or "(none: relaunch with --annotator NAME)"
        ctx.panel.state.unlabelled = unlabelled_view(ds).count()
        ctx.panel.state.counts = {t: int(tag_counts.get(f"{TAG_PREFIX}{t}", 0)) for t in OCCLUSION_TYPES}

    def render(self, ctx):
        panel = types.Object()
        s = ctx.panel.state
        counts = s.counts or {}
        panel.md(
            f"**Annotator:** {s.annotator}  \n**Selected:** {s.selected or 0}  "
            f"\n**Unlabelled (all splits):** {s.unlabelled if s.unlabelled is not None else '?'}  \n"
            "**Tagged here:** " + ", ".join(f"{t} {counts.get(t, 0)}" for t in OCCLUSION_TYPES),
            name="status",
        )
        panel.bool(
            "keep",
            label="Multi-label: keep the selection after a click",
            default=bool(s.keep),
            on_change=self.on_keep,
        )
        row = panel.h_stack("types", align_x="left", gap=1)
        for t in OCCLUSION_TYPES:
            row.btn(f"occ_{t}", label=TYPE_LABELS[t], variant="contained", on_click=self.on_type, params={"occ_type": t})
        tools = panel.h_stack("tools", align_x="left", gap=1)
        tools.btn("clear", label="Clear", variant="outlined", on_click=self.on_clear)
        tools.btn("accept", label="Accept suggestion", variant="outlined", on_click=self.on_accept)
        tools.btn("confirm", label="Confirm official", variant="outlined", on_click=self.on_confirm)
        return types.Property(panel, view=types.GridView(orientation="vertical", align_x="left", gap=2))


def register(p):
    for cls in TYPE_OPERATORS:
        p.register(cls)
    p.register(LabelOcclusion)
    p.register(ClearOcclusion)
    p.register(AcceptSuggestion)
    p.register(ConfirmOfficial)
    p.register(OcclusionLabeller)
