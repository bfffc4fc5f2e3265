"""Backbones, expander and the VICReg module: shapes, structure, spec parsing."""

import pytest
import torch
import torch.nn as nn

from vicreg_edu.models import SmallCNN, VICReg, build_backbone, build_expander, parse_expander_spec


@pytest.mark.parametrize(
    "name, size, dim",
    [("small_cnn", 32, 128), ("resnet18_cifar", 32, 512), ("resnet18", 64, 512), ("resnet50", 64, 2048)],
)
def test_backbone_output_shape(name, size, dim):
    net, d = build_backbone(name)
    assert d == dim
    net.eval()
    with torch.no_grad():
        y = net(torch.randn(2, 3, size, size))
    assert y.shape == (2, dim)
    assert torch.isfinite(y).all()


def test_resnet18_cifar_stem_keeps_resolution():
    net, _ = build_backbone("resnet18_cifar")
    assert net.conv1.kernel_size == (3, 3) and net.conv1.stride == (1, 1)
    assert isinstance(net.maxpool, nn.Identity) and isinstance(net.fc, nn.Identity)
    # 32x32 -> layer4 at 4x4 (strides of layers 2-4 only), not 1x1 as with the ImageNet stem
    x = torch.randn(1, 3, 32, 32)
    h = net.layer1(net.relu(net.bn1(net.conv1(x))))
    assert net.layer4(net.layer3(net.layer2(h))).shape[-1] == 4


def test_torchvision_resnets_zero_init_residual():
    net, _ = build_backbone("resnet50")
    assert all(torch.count_nonzero(b.bn3.weight) == 0 for b in net.layer1)


def test_unknown_backbone_rejected():
    with pytest.raises(ValueError, match="resnet18_cifar"):
        build_backbone("vit_b16")


def test_parse_expander_spec_ok():
    assert parse_expander_spec("8192-8192-8192") == [8192, 8192, 8192]
    assert parse_expander_spec("128") == [128]


@pytest.mark.parametrize("spec", ["8192-x", "", "  ", "0-5", "8192--8192", "-5", "8192-", "1.5-3"])
def test_parse_expander_spec_rejects_bad_specs(spec):
    with pytest.raises(ValueError, match="expander spec"):
        parse_expander_spec(spec)


def test_parse_expander_spec_rejects_non_string():
    with pytest.raises(TypeError, match="str"):
        parse_expander_spec([8192, 8192])


def test_build_expander_structure_matches_official():
    e = build_expander(16, "32-32-8")
    kinds = [type(m).__name__ for m in e]
    assert kinds == ["Linear", "BatchNorm1d", "ReLU", "Linear", "BatchNorm1d", "ReLU", "Linear"]
    assert e[0].in_features == 16 and e[-1].out_features == 8
    assert e[-1].bias is None and e[0].bias is not None
    assert e(torch.randn(5, 16)).shape == (5, 8)
    single = build_expander(16, "8")  # one layer: just the plain Linear
    assert len(single) == 1 and single[0].bias is None


def test_vicreg_returns_representation_and_embedding():
    model = VICReg("small_cnn", "64-64-32")
    assert (model.repr_dim, model.embed_dim) == (128, 32)
    y, z = model(torch.randn(4, 3, 32, 32))
    assert y.shape == (4, 128) and z.shape == (4, 32)
    assert torch.allclose(model.expander(y), z)
    (z.square().mean() + y.mean()).backward()
    assert all(p.grad is not None for p in model.parameters())


def test_vicreg_accepts_module_backbone():
    model = VICReg(SmallCNN(widths=(8, 16)), "32")
    assert model.repr_dim == 16
    assert model(torch.randn(2, 3, 16, 16))[1].shape == (2, 32)
    with pytest.raises(ValueError, match="out_dim"):
        VICReg(nn.Conv2d(3, 4, 3), "32")
