"""Rebuild fercurate/faces/models/ from the Apache-2.0 mediapipe 0.10.21 wheel (one-time, reproducible).

fercurate runs MediaPipe's face models on LiteRT (``ai-edge-litert``) and no longer depends on
mediapipe. This script extracts the four models it uses from a mediapipe 0.10.21 wheel (the last
release that ships them) and writes them as package data:

* ``face_landmark.tflite`` (468-point mesh), ``face_detection_short_range.tflite`` and
  ``face_detection_full_range_sparse.tflite`` (BlazeFace): copied byte for byte;
* ``face_mesh_triangles.npz``: the mesh's triangles, recovered (as 3-cliques) from the tessellation
  edges listed in the wheel's ``mediapipe/python/solutions/face_mesh_connections.py``;
* ``face_landmark_with_attention.tflite`` (478 points) uses three MediaPipe custom ops
  (Landmarks2TransformMatrix, TransformTensorBilinear, TransformLandmarks) that stock LiteRT lacks.
  It is cut at those ops into ``face_landmark_attention_backbone.tflite`` (image -> mesh, face flag,
  the landmarks and feature map the custom ops read) and ``face_landmark_attention_heads.tflite``
  (the three 16x16 region crops and their matrices -> region landmarks before the back-transform),
  with the custom ops' options in ``face_landmark_attention.json``. The weights are not changed;
  :mod:`fercurate.faces.mesh` does the three custom ops in numpy between the two parts.

Usage (any venv with ai-edge-litert and flatbuffers, i.e. fercurate's own)::

    pip download mediapipe==0.10.21 --no-deps --only-binary=:all: --python-version 3.11 -d /tmp/mp
    python scripts/convert_models.py /tmp/mp/mediapipe-0.10.21-*.whl

The wheel may also be given as an unpacked folder (``.../site-packages``). Outputs are deterministic.
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import io
import json
import sys
import zipfile
from pathlib import Path

import numpy as np

import flatbuffers
from ai_edge_litert import schema_py_generated as S
from flatbuffers import flexbuffers

OUT = Path(__file__).resolve().parents[1] / "fercurate" / "faces" / "models"
COPY = {
    "mediapipe/modules/face_landmark/face_landmark.tflite": "face_landmark.tflite",
    "mediapipe/modules/face_detection/face_detection_short_range.tflite": "face_detection_short_range.tflite",
    "mediapipe/modules/face_detection/face_detection_full_range_sparse.tflite": (
        "face_detection_full_range_sparse.tflite"
    ),
}
ATTENTION = "mediapipe/modules/face_landmark/face_landmark_with_attention.tflite"
CONNECTIONS = "mediapipe/python/solutions/face_mesh_connections.py"
CUSTOM = ("Landmarks2TransformMatrix", "TransformTensorBilinear", "TransformLandmarks")


def read_member(source: Path, member: str) -> bytes:
    if source.is_dir():
        return (source / member).read_bytes()
    with zipfile.ZipFile(source) as z:
        return z.read(member)


def mesh_triangles(source: str) -> bytes:
    """The mesh triangles (T, 3) as an npz: 3-cliques of FACEMESH_TESSELATION's edges, sorted."""
    tree = ast.parse(source)
    edges = None
    for node in tree.body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "FACEMESH_TESSELATION":
            edges = ast.literal_eval(node.value.args[0])  # frozenset([...]): the list literal
    if edges is None:
        raise SystemExit(f"{CONNECTIONS} has no FACEMESH_TESSELATION")
    adj: dict[int, set[int]] = {}
    for a, b in edges:
        adj.setdefault(a, set()).add(b)
        adj.setdefault(b, set()).add(a)
    tris = sorted({tuple(sorted((a, b, c))) for a, b in edges for c in adj[a] & adj[b]})
    buf = io.BytesIO()
    np.savez_compressed(buf, triangles=np.array(tris, dtype=np.int16))
    return buf.getvalue()


def op_name(model: S.ModelT, op: S.OperatorT) -> str:
    code = model.operatorCodes[op.opcodeIndex]
    if code.customCode:
        return code.customCode.decode() if isinstance(code.customCode, bytes) else code.customCode
    return str(max(code.builtinCode, code.deprecatedBuiltinCode))


def tensor_name(sg: S.SubGraphT, i: int) -> str:
    n = sg.tensors[i].name
    return n.decode() if isinstance(n, bytes) else n


def sub_model(model: S.ModelT, op_ids: list[int], inputs: list[int], outputs: list[int]) -> bytes:
    """A model with only the given operators of subgraph 0 (in their order), unused tensors and buffers dropped."""
    sg = model.subgraphs[0]
    ops = [sg.operators[k] for k in op_ids]
    used = sorted(set(inputs) | set(outputs) | {t for op in ops for t in list(op.inputs) + list(op.outputs) if t >= 0})
    tmap = {old: new for new, old in enumerate(used)}
    buffers = [S.BufferT()]  # buffer 0: the empty sentinel
    bmap: dict[int, int] = {0: 0}
    tensors = []
    for old in used:
        t = sg.tensors[old]
        if t.buffer not in bmap:
            bmap[t.buffer] = len(buffers)
            buffers.append(model.buffers[t.buffer])
        t.buffer = bmap[t.buffer]
        tensors.append(t)
    for op in ops:
        op.inputs = [tmap[t] if t >= 0 else t for t in op.inputs]
        op.outputs = [tmap[t] for t in op.outputs]
    new_sg = S.SubGraphT()
    new_sg.tensors, new_sg.operators, new_sg.name = tensors, ops, sg.name
    new_sg.inputs, new_sg.outputs = [tmap[t] for t in inputs], [tmap[t] for t in outputs]
    out = S.ModelT()
    out.version, out.operatorCodes, out.description = model.version, model.operatorCodes, model.description
    out.subgraphs, out.buffers = [new_sg], buffers
    builder = flatbuffers.Builder(1 << 22)
    builder.Finish(out.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def split_attention(data: bytes) -> tuple[bytes, bytes, dict]:
    """Cut the attention model at its custom ops (see the module docstring)."""
    load = lambda: S.ModelT.InitFromObj(S.Model.GetRootAsModel(data, 0))  # noqa: E731 - fresh copies
    model = load()
    sg = model.subgraphs[0]
    names = [op_name(model, op) for op in sg.operators]
    producer = {t: k for k, op in enumerate(sg.operators) for t in op.outputs}
    custom = [k for k, n in enumerate(names) if n in CUSTOM]

    def ancestors(tensors: list[int], stop: set[int]) -> set[int]:
        seen: set[int] = set()
        todo = [producer[t] for t in tensors if t in producer]
        while todo:
            k = todo.pop()
            if k in seen or k in stop:
                continue
            seen.add(k)
            todo += [producer[t] for t in sg.operators[k].inputs if t in producer]
        return seen

    by_type = {n: [k for k in custom if names[k] == n] for n in CUSTOM}
    final = {tensor_name(sg, t): t for t in sg.outputs}
    mesh_out, flag_out = final["output_mesh_identity"], final["conv_faceflag"]
    l2tm_in = [sg.operators[k].inputs[0] for k in by_type["Landmarks2TransformMatrix"]]
    ttb_in = sorted({sg.operators[k].inputs[0] for k in by_type["TransformTensorBilinear"]})
    a_ops = ancestors(l2tm_in + ttb_in + [mesh_out, flag_out], set(custom))
    tl_in = [t for k in by_type["TransformLandmarks"] for t in sg.operators[k].inputs]
    b_ops = ancestors(tl_in, set(custom) | a_ops)
    custom_out = {t for k in custom for t in sg.operators[k].outputs}
    b_inputs = sorted({t for k in b_ops for t in sg.operators[k].inputs if t in custom_out})
    leaks = {t for k in b_ops for t in sg.operators[k].inputs if t in producer and producer[t] in a_ops}
    if leaks:
        raise SystemExit(f"attention heads read backbone tensors {sorted(leaks)}: the cut assumption no longer holds")
    b_outputs = sorted(set(tl_in))
    a_outputs = [mesh_out, flag_out] + l2tm_in + ttb_in
    backbone = sub_model(load(), sorted(a_ops), list(sg.inputs), a_outputs)
    heads = sub_model(load(), sorted(b_ops), b_inputs, b_outputs)

    def opts(k: int) -> dict:
        raw = sg.operators[k].customOptions
        return flexbuffers.Loads(bytes(raw)) if raw is not None and len(raw) else {}

    spec = {
        "source": ATTENTION,
        "backbone": {
            "inputs": [tensor_name(sg, t) for t in sg.inputs],
            "outputs": [tensor_name(sg, t) for t in a_outputs],
        },
        "heads": {"inputs": [tensor_name(sg, t) for t in b_inputs], "outputs": [tensor_name(sg, t) for t in b_outputs]},
        "ops": [
            {
                "op": names[k],
                "inputs": [tensor_name(sg, t) for t in sg.operators[k].inputs],
                "outputs": [tensor_name(sg, t) for t in sg.operators[k].outputs],
                "options": opts(k),
            }
            for k in custom
        ],
        # the model's region outputs are reshapes of these custom-op outputs
        "regions": {
            name: _final_source(sg, producer, names, t)
            for name, t in final.items()
            if name.startswith("output_") and name != "output_mesh_identity"
        },
    }
    return backbone, heads, spec


def _final_source(sg: S.SubGraphT, producer: dict[int, int], names: list[str], t: int) -> str:
    """The custom-op output that a final region output reshapes."""
    k = producer[t]
    source = sg.operators[k].inputs[0]
    if names[k] != str(S.BuiltinOperator.RESHAPE) or names[producer[source]] != "TransformLandmarks":
        raise SystemExit(f"output {tensor_name(sg, t)} is not a reshape of a TransformLandmarks output")
    return tensor_name(sg, source)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("wheel", type=Path, help="mediapipe-0.10.21 wheel, or an unpacked site-packages folder")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    files: dict[str, bytes] = {}
    for member, name in COPY.items():
        files[name] = read_member(args.wheel, member)
    files["face_mesh_triangles.npz"] = mesh_triangles(read_member(args.wheel, CONNECTIONS).decode())
    backbone, heads, spec = split_attention(read_member(args.wheel, ATTENTION))
    files["face_landmark_attention_backbone.tflite"] = backbone
    files["face_landmark_attention_heads.tflite"] = heads
    files["face_landmark_attention.json"] = (json.dumps(spec, indent=1, sort_keys=True) + "\n").encode()
    for name, data in sorted(files.items()):
        (args.out / name).write_bytes(data)
        print(f"{name:45s} {len(data):>9,} bytes  sha256 {hashlib.sha256(data).hexdigest()[:16]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
