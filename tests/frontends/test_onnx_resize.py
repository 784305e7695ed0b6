"""ONNX ``Resize`` (and the old ``Upsample``) in every mode onnxruntime runs, lifted and
compared with onnxruntime through ``to_torch`` and ``to_onnx``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from onnx import helper
from onnx_support import check, rand, save

from natopt.errors import FrontendError
from natopt.frontends.onnx import lift_onnx

X = ("x", [2, 3, 5, 6])
COORDS = ["half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric"]
NEAREST = ["round_prefer_floor", "round_prefer_ceil", "floor", "ceil"]
SCALES = [(2.0, 3.0), (0.6, 0.5), (1.5, 1.0)]
SIZES = [(10, 3), (1, 12), (7, 6)]


def resize_model(tmp_path: Path, target, by: str, opset: int = 13, **attrs) -> Path:
    """``Resize`` of X's two spatial axes to ``target`` (``by`` "scales" or "sizes")."""
    if by == "scales":
        inits = [("scales", np.array([1, 1, *target], np.float32))]
        inputs = ["x", "", "scales"]
        out = [int(np.floor(n * np.float32(s))) for n, s in zip(X[1][2:], target, strict=True)]
    else:
        inits = [("sizes", np.array([2, 3, *target], np.int64))]
        inputs = ["x", "", "", "sizes"]
        out = list(target)
    node = helper.make_node("Resize", inputs, ["y"], name="resize", **attrs)
    return save(tmp_path / "r.onnx", [node], [X], [("y", [2, 3, *out])], inits, opset)


def lifted_resize(path: Path, **expected) -> None:
    graph = check(path, {"x": rand(2, 3, 5, 6)})
    for resize in graph.find("Resize"):
        assert {k: resize.attrs[k] for k in expected} == expected


@pytest.mark.parametrize("coords", COORDS)
@pytest.mark.parametrize("nearest", NEAREST)
@pytest.mark.parametrize("target", SCALES)
def test_nearest_with_scales(tmp_path: Path, coords: str, nearest: str, target):
    path = resize_model(
        tmp_path,
        target,
        "scales",
        mode="nearest",
        coordinate_transformation_mode=coords,
        nearest_mode=nearest,
    )
    lifted_resize(path, mode="nearest", nearest_mode=nearest)


@pytest.mark.parametrize("coords", COORDS)
@pytest.mark.parametrize("nearest", NEAREST)
@pytest.mark.parametrize("target", SIZES)
def test_nearest_with_sizes(tmp_path: Path, coords: str, nearest: str, target):
    path = resize_model(
        tmp_path,
        target,
        "sizes",
        mode="nearest",
        coordinate_transformation_mode=coords,
        nearest_mode=nearest,
    )
    lifted_resize(path, coordinate_transformation_mode=coords)


@pytest.mark.parametrize("coords", COORDS)
@pytest.mark.parametrize(
    ("by", "target"), [("scales", t) for t in SCALES] + [("sizes", t) for t in SIZES]
)
def test_linear(tmp_path: Path, coords: str, by: str, target):
    path = resize_model(tmp_path, target, by, mode="linear", coordinate_transformation_mode=coords)
    lifted_resize(path, mode="linear")


@pytest.mark.parametrize("coords", COORDS)
@pytest.mark.parametrize("exclude_outside", [0, 1])
@pytest.mark.parametrize(
    ("by", "target", "a"), [("scales", (2.0, 0.5), -0.75), ("sizes", (4, 11), -0.5)]
)
def test_cubic(tmp_path: Path, coords: str, exclude_outside: int, by: str, target, a: float):
    path = resize_model(
        tmp_path,
        target,
        by,
        mode="cubic",
        coordinate_transformation_mode=coords,
        cubic_coeff_a=a,
        exclude_outside=exclude_outside,
    )
    lifted_resize(path, cubic_coeff_a=a, exclude_outside=bool(exclude_outside))


@pytest.mark.parametrize("mode", ["nearest", "linear", "cubic"])
def test_opset19_half_pixel_symmetric_and_axes(tmp_path: Path, mode: str):
    inits = [("scales", np.array([1.7, 0.7], np.float32))]
    node = helper.make_node(
        "Resize",
        ["x", "", "scales"],
        ["y"],
        mode=mode,
        axes=[3, 2],
        coordinate_transformation_mode="half_pixel_symmetric",
    )
    path = save(tmp_path / "s.onnx", [node], [X], [("y", [2, 3, 3, 10])], inits, 19)
    with pytest.warns(UserWarning, match="half_pixel_symmetric needs opset 19"):
        lifted_resize(path, axes=(3, 2), scales=(np.float32(1.7).item(), np.float32(0.7).item()))


@pytest.mark.parametrize("policy", ["not_larger", "not_smaller"])
def test_keep_aspect_ratio_policy(tmp_path: Path, policy: str):
    inits = [("sizes", np.array([8, 8], np.int64))]
    node = helper.make_node(
        "Resize",
        ["x", "", "", "sizes"],
        ["y"],
        mode="linear",
        axes=[2, 3],
        keep_aspect_ratio_policy=policy,
    )
    path = save(tmp_path / "k.onnx", [node], [X], [("y", [2, 3, "h", "w"])], inits, 18)
    with pytest.warns(UserWarning, match="kept aspect ratio"):  # to_onnx: the torch exporter
        check(path, {"x": rand(2, 3, 5, 6)})


def test_sizes_from_a_dynamic_batch_shape_and_upsample_opset9(tmp_path: Path):
    c = helper.make_node
    inits = [("first", np.array([0], np.int64)), ("two", np.array([2], np.int64))]
    inits += [("hw", np.array([10, 12], np.int64))]
    nodes = [  # sizes = Concat(Shape(x)[:2], [10, 12]), as torch exports interpolate(size=)
        c("Shape", ["x"], ["s"]),
        c("Slice", ["s", "first", "two"], ["nc"]),
        c("Concat", ["nc", "hw"], ["sizes"], axis=0),
        c("Resize", ["x", "", "", "sizes"], ["y"], mode="linear"),
    ]
    path = save(
        tmp_path / "d.onnx", nodes, [("x", ["n", 3, 5, 6])], [("y", ["n", 3, 10, 12])], inits, 13
    )
    for batch in (1, 3):
        graph = check(path, {"x": rand(batch, 3, 5, 6)})
    assert graph.outputs[0].shape == ("n", 3, 10, 12)
    assert graph.op_counts() == {"Resize": 1}

    scales = [("scales", np.array([1, 1, 2, 3], np.float32))]
    up = c("Upsample", ["x", "scales"], ["y"], mode="nearest")
    old = save(tmp_path / "u.onnx", [up], [X], [("y", [2, 3, 10, 18])], scales, 9)
    lifted_resize(old, mode="nearest", scales=(2.0, 3.0))


@pytest.mark.parametrize("opset", [13, 18])
def test_sizes_from_dynamic_height_and_width_stay_a_run_time_input(tmp_path: Path, opset: int):
    c = helper.make_node
    inits = [("two", np.array([2], np.int64)), ("four", np.array([4], np.int64))]
    inits += [("k", np.array([2], np.int64))]
    nodes = [  # interpolate(x, size=(2 * h, 2 * w)) with h and w dynamic
        c("Shape", ["x"], ["s"]),
        c("Slice", ["s", "two", "four"], ["hw"]),
        c("Mul", ["hw", "k"], ["sizes"]),
        c("Resize", ["x", "", "", "sizes"], ["y"], mode="linear", axes=[2, 3]),
    ]
    if opset < 18:  # no axes attribute: full-rank sizes
        nodes[-1] = c("Resize", ["x", "", "", "full"], ["y"], mode="linear")
        nodes.insert(-1, c("Slice", ["s", "zero", "two"], ["nc"]))
        nodes.insert(-1, c("Concat", ["nc", "sizes"], ["full"], axis=0))
        inits.append(("zero", np.array([0], np.int64)))
    x = ("x", ["n", 3, "h", "w"])
    path = save(tmp_path / "hw.onnx", nodes, [x], [("y", ["n", 3, "h2", "w2"])], inits, opset)
    for side in ((5, 6), (3, 4)):
        graph = check(path, {"x": rand(2, 3, *side)})
    assert graph.outputs[0].shape == ("n", 3, "h*2", "w*2")
    (resize,) = graph.find("Resize")
    assert resize.attrs["axes"] == ((2, 3) if opset >= 18 else (0, 1, 2, 3))


@pytest.mark.parametrize(
    ("attrs", "message"),
    [
        ({"coordinate_transformation_mode": "tf_crop_and_resize"}, "tf_crop_and_resize"),
        ({"antialias": 1}, "antialias=1"),
    ],
)
def test_unsupported_resize_modes_name_the_node(tmp_path: Path, attrs: dict, message: str):
    path = resize_model(tmp_path, (2.0, 2.0), "scales", 18, mode="linear", **attrs)
    with pytest.raises(FrontendError, match=rf"node resize \(Resize\).*{message}"):
        lift_onnx(path)
