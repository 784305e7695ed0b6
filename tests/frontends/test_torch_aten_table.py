"""Each ATen target in the adapter table lifts to its IR op and computes the same thing.

Small modules exercise one op each (export turns them into the ATen targets named); a
decomposed program covers the low-level forms (addmm, convolution, native batch norm).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch_support import assert_close

from natopt.backends import to_torch
from natopt.frontends.torch import lift_torch
from natopt.frontends.torch.aten_table import ATEN_TABLE
from natopt.ir import run_graph


class _Op(nn.Module):
    """``fn(self, x)`` with a few parameters an op may use as weights."""

    def __init__(self, fn: Callable[..., torch.Tensor]) -> None:
        super().__init__()
        self.fn = fn
        self.w = nn.Parameter(torch.randn(6, 8))
        self.b = nn.Parameter(torch.randn(6))
        self.conv1 = nn.Conv1d(4, 6, 3, padding=1)
        self.deconv = nn.ConvTranspose2d(4, 2, 3, stride=2, padding=1, output_padding=1)
        self.gn = nn.GroupNorm(2, 4)
        self.emb = nn.Embedding(10, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(self, x)


_X4 = (2, 4, 6, 6)
_X2 = (3, 8)
CASES: dict[str, tuple[Callable[..., torch.Tensor], tuple[int, ...], str]] = {
    "matmul": (lambda m, x: x @ x.transpose(-1, -2), _X4, "MatMul"),
    "mm_weight": (lambda m, x: torch.mm(x, m.w.t()), _X2, "Linear"),
    "bmm": (lambda m, x: torch.bmm(x[0], x[1].transpose(1, 2)), _X4, "MatMul"),
    "addmm": (lambda m, x: torch.addmm(m.b, x, m.w.t()), _X2, "Linear"),
    "hardtanh": (lambda m, x: F.hardtanh(x, -0.5, 0.5), _X4, "Clip"),
    "relu6": (lambda m, x: F.relu6(x * 4), _X4, "Relu6"),
    "clamp": (lambda m, x: torch.clamp(x, min=-0.1, max=0.3), _X4, "Clip"),
    "tanh_erf_exp": (lambda m, x: torch.exp(torch.erf(torch.tanh(x))), _X4, "Erf"),
    "pow_sqrt_rsqrt": (lambda m, x: torch.rsqrt(x.abs() + 1) + torch.sqrt(x.pow(2)), _X4, "Pow"),
    "neg_sub_div": (lambda m, x: (-x - 1.5) / (x.abs() + 2.0), _X4, "Div"),
    "rsub": (lambda m, x: 1.0 - x, _X4, "Sub"),
    "slice": (lambda m, x: x[:, 1:3, ::2], _X4, "Slice"),
    "split": (lambda m, x: sum(t.sum(1, keepdim=True) for t in torch.split(x, 3, 1)), _X4, "Split"),
    "split_sizes": (lambda m, x: torch.split(x, [1, 3], 1)[1], _X4, "Split"),
    "chunk": (lambda m, x: x.chunk(2, dim=3)[0] * x.chunk(2, dim=3)[1], _X4, "Split"),
    "unbind": (lambda m, x: x.unbind(1)[2], _X4, "Squeeze"),
    "embedding": (lambda m, x: m.emb((x.abs() * 3).long().clamp(max=9)), _X2, "Embedding"),
    "group_norm": (lambda m, x: m.gn(x), _X4, "GroupNorm"),
    "layer_norm": (lambda m, x: F.layer_norm(x, (6,), eps=1e-3), _X4, "LayerNorm"),
    "pad": (lambda m, x: F.pad(x, (1, 2, 0, 1), value=0.5), _X4, "Pad"),
    "reflect_pad": (lambda m, x: F.pad(x, (1, 1, 1, 1), mode="reflect"), _X4, "Pad"),
    "cast": (lambda m, x: x.to(torch.float64).to(torch.float32) + x.long().type_as(x), _X4, "Cast"),
    "identity": (lambda m, x: x.clone().detach() + 1, _X4, "Identity"),
    "adaptive_max_pool": (lambda m, x: F.adaptive_max_pool2d(x, 2), _X4, "AdaptiveMaxPool"),
    "avg_pool": (lambda m, x: F.avg_pool2d(x, 3, 2, 1, count_include_pad=False), _X4, "AvgPool"),
    "conv1d": (lambda m, x: m.conv1(x.flatten(2)), _X4, "Conv"),
    "conv_transpose": (lambda m, x: m.deconv(x), _X4, "ConvTranspose"),
    "softmax": (lambda m, x: x.softmax(-1) + F.log_softmax(x, 1), _X4, "LogSoftmax"),
    "reductions": (
        lambda m, x: x.mean((2, 3)) + x.sum((2, 3)).amax(-1, keepdim=True),
        _X4,
        "ReduceMax",
    ),
    "compare_where": (lambda m, x: torch.where((x > 0) & ~(x < 0.5), x, x == 0), _X4, "Where"),
    "leaky_relu": (lambda m, x: F.leaky_relu(x, 0.2), _X4, "LeakyRelu"),
    "gelu_tanh": (lambda m, x: F.gelu(x, approximate="tanh"), _X4, "Gelu"),
    "index_select": (lambda m, x: x.index_select(1, torch.tensor([3, 0])), _X4, "Gather"),
    "attention_mask": (
        lambda m, x: F.scaled_dot_product_attention(x, x, x, attn_mask=x[0, 0] > 0),
        _X4,
        "Attention",
    ),
    "unflatten": (lambda m, x: x.unflatten(2, (2, 3)).permute(0, 2, 1, 3, 4), _X4, "Reshape"),
    "expand": (lambda m, x: x[:, :1].expand(-1, 4, -1, -1) * x, _X4, "Expand"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_aten_target_lifts_to_its_ir_op(case: str):
    fn, shape, op = CASES[case]
    torch.manual_seed(0)
    model = _Op(fn).eval()
    x = torch.randn(*shape)
    graph = lift_torch(model, x)
    counts = graph.op_counts()
    assert op in counts, counts
    opaque = [n.attrs["target"] for n in graph.find("Opaque")]
    allowed = {torch.ops.aten.__and__.Tensor, torch.ops.aten.bitwise_not.default}
    assert set(opaque) <= allowed, opaque
    with torch.no_grad():
        expected = model(x)
        assert_close(expected, to_torch(graph)(x).to(expected.dtype))
        assert_close(expected, run_graph(graph, [x])[0].to(expected.dtype))


class _Classifier(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding="same")
        self.bn = nn.BatchNorm2d(4)
        self.fc = nn.Linear(4, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(F.hardswish(self.bn(self.conv(x))).mean((2, 3)))


def test_decomposed_program_lifts_low_level_targets_to_the_same_ops():
    torch.manual_seed(0)
    model = _Classifier().eval()
    with torch.no_grad():
        model.bn.running_var.uniform_(0.5, 2.0)
    x = torch.randn(2, 3, 8, 8)
    program = torch.export.export(model, (x,)).run_decompositions()
    targets = {n.target for n in program.graph.nodes if n.op == "call_function"}
    aten = torch.ops.aten
    assert {aten.convolution.default, aten.addmm.default} <= targets
    graph = lift_torch(program)
    assert {"Conv", "BatchNorm", "Linear"} <= set(graph.op_counts())
    assert graph.find("Linear")[0].source == "fc"
    with torch.no_grad():
        assert_close(model(x), to_torch(graph)(x))


def test_table_maps_the_ops_export_produces_for_torchvision_and_timm_models():
    aten = torch.ops.aten
    produced = [
        aten.conv2d.default, aten.batch_norm.default, aten.relu_.default, aten.add_.Tensor,
        aten.max_pool2d.default, aten.adaptive_avg_pool2d.default, aten.avg_pool2d.default,
        aten.flatten.using_ints, aten.linear.default, aten.reshape.default, aten.view.default,
        aten.permute.default, aten.transpose.int, aten.expand.default, aten.cat.default,
        aten.layer_norm.default, aten.dropout.default, aten.dropout_.default, aten.gelu.default,
        aten.silu_.default, aten.hardswish_.default, aten.hardsigmoid.default,
        aten.sigmoid.default, aten.mul.Tensor, aten.add.Tensor,
        aten.scaled_dot_product_attention.default, aten.unflatten.int, aten.unsqueeze.default,
        aten.squeeze.dim, aten.contiguous.default, aten.select.int, aten.unbind.int,
    ]  # fmt: skip
    assert [t for t in produced if t not in ATEN_TABLE] == []
