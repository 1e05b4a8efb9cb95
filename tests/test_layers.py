"""Shared blocks of ``paddlehub_cls/models/layers.py``: activations by name, channel rounding, conv SE."""

from __future__ import annotations

import numpy as np
import paddle
import pytest

from paddlehub_cls.models.layers import ConvSqueezeExcite, make_act, make_divisible


def test_make_act_knows_the_mobile_activations():
    x = paddle.to_tensor([-4.0, -1.0, 0.0, 1.0, 5.0])
    # hardswish(x) = x * relu6(x + 3) / 6
    np.testing.assert_allclose(make_act("hardswish")(x).numpy(), [0.0, -1 / 3, 0.0, 2 / 3, 5.0], rtol=1e-6)
    # Paddle's default hardsigmoid slope 1/6 (PP-LCNet), and PaddleClas MobileNetV3's 0.2.
    np.testing.assert_allclose(make_act("hardsigmoid")(x).numpy(), [0.0, 1 / 3, 0.5, 2 / 3, 1.0], rtol=1e-6)
    np.testing.assert_allclose(
        make_act("hardsigmoid", slope=0.2)(x).numpy(), [0.0, 0.3, 0.5, 0.7, 1.0], rtol=1e-6
    )
    assert isinstance(make_act(None), paddle.nn.Identity)
    with pytest.raises(ValueError, match="unknown activation 'hard_swish'.*'hardswish'"):
        make_act("hard_swish")


@pytest.mark.parametrize(
    "value,divisor,expected",
    [
        # Channel counts of PaddleClas MobileNetV3/PP-LCNet state_dicts (worked by hand from the rule).
        (16 * 0.35, 8, 8),  # below the minimum
        (72 * 0.35, 8, 24),  # 25.2 rounds down, still within 10%
        (960 * 0.35, 8, 336),
        (16 * 1.25, 8, 24),  # 20 rounds half up
        (18, 8, 24),  # 16 would be more than 10% below 18
        (256 * 0.25, 8, 64),
    ],
)
def test_make_divisible(value, divisor, expected):
    assert make_divisible(value, divisor) == expected


def test_conv_squeeze_excite_widths_and_gate():
    se = ConvSqueezeExcite(72)
    assert se.reduce.weight.shape == [18, 72, 1, 1] and se.expand.weight.shape == [72, 18, 1, 1]
    assert ConvSqueezeExcite(72, divisor=8).reduce.weight.shape == [24, 72, 1, 1]
    assert ConvSqueezeExcite(72, hidden_channels=4).expand.weight.shape == [72, 4, 1, 1]
    assert sorted(se.state_dict()) == ["expand.bias", "expand.weight", "reduce.bias", "reduce.weight"]
    # With zero weights the scale is gate(bias): 0.2 * 1 + 0.5 for the MobileNetV3 gate.
    gated = ConvSqueezeExcite(8, gate="hardsigmoid", gate_slope=0.2)
    gated.set_state_dict({k: paddle.zeros_like(v) for k, v in gated.state_dict().items()})
    gated.expand.bias.set_value(paddle.ones([8]))
    x = paddle.rand([2, 8, 3, 3])
    np.testing.assert_allclose(gated(x).numpy(), 0.7 * x.numpy(), rtol=1e-6)
