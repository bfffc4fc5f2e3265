"""Plot functions draw what they claim (headless, Agg backend)."""

import json
import sys

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from vicreg_edu import diagnostics as dg  # noqa: E402
from vicreg_edu.plots import (  # noqa: E402
    nearest_neighbours,
    pca_2d,
    plot_collapse_panels,
    plot_embedding_2d,
    plot_embedding_pair,
    plot_heatmap_pair,
    plot_matrix_heatmap,
    plot_retrieval_grid,
    plot_spectrum,
    plot_std_histogram,
    plot_training_curves,
    plot_training_overview,
    read_metrics,
)

TERMS = ["loss", "invariance", "variance", "covariance"]


@pytest.fixture(autouse=True)
def _no_show_and_close(monkeypatch):
    def no_show(*a, **k):
        raise AssertionError("library plot functions must not call plt.show()")

    monkeypatch.setattr(plt, "show", no_show)
    yield
    plt.close("all")


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def mixed(n=300, d=24, seed=0):
    g = gen(seed)
    return torch.randn(n, d, generator=g) @ torch.randn(d, d, generator=g)


def fake_metrics(n_steps=30, steps_per_epoch=10):
    recs = []
    for s in range(n_steps):
        recs.append(
            {
                "kind": "step",
                "step": s,
                "epoch": s / steps_per_epoch,
                "loss": 30.0 * 0.9**s,
                "invariance": 0.1 + 0.01 * s,
                "variance": 0.9 * 0.8**s,
                "covariance": 2.0 * 0.85**s,
                "lr": 0.1,
            }
        )
        if (s + 1) % steps_per_epoch == 0:
            e = s // steps_per_epoch
            recs.append(
                {
                    "kind": "epoch",
                    "epoch": e,
                    "step": s,
                    "emb_n": 256,
                    "emb_dim": 64,
                    "emb_effective_rank": 10.0 + 5 * e,
                    "emb_std_mean": 0.3 + 0.2 * e,
                    "online_probe_acc": 0.2 + 0.1 * e,
                }
            )
    return recs


def text_of(ax):
    return [t.get_text() for t in ax.get_legend().get_texts()]


# -----------------------------------------------------------------------------
# heatmaps


def test_heatmap_draws_d_by_d_with_symmetric_limits():
    cov = dg.covariance_matrix(mixed())
    ax = plot_matrix_heatmap(cov)
    im = ax.images[0]
    assert im.get_array().shape == (24, 24)
    np.testing.assert_allclose(np.asarray(im.get_array()), cov.numpy())
    vmin, vmax = im.get_clim()
    assert vmin == -vmax
    assert vmax == pytest.approx(float(cov.abs().max()))
    assert ax.get_title() and ax.get_xlabel() and ax.get_ylabel()
    assert len(ax.figure.axes) == 2  # heatmap + colour bar


def test_heatmap_first_k_and_correlation_limits():
    z = mixed()
    corr = dg.correlation_matrix(z)
    fig, ax = plt.subplots()
    out = plot_matrix_heatmap(corr, ax=ax, k=5, kind="correlation", colorbar=False)
    assert out is ax
    assert ax.images[0].get_array().shape == (5, 5)
    np.testing.assert_allclose(np.asarray(ax.images[0].get_array()), corr[:5, :5].numpy())
    assert ax.images[0].get_clim() == (-1.0, 1.0)
    assert "first 5 of 24" in ax.get_title()


def test_heatmap_of_complete_collapse_keeps_valid_symmetric_scale():
    ax = plot_matrix_heatmap(dg.covariance_matrix(torch.ones(50, 8)))
    assert not np.asarray(ax.images[0].get_array()).any()
    assert ax.images[0].get_clim() == (-1.0, 1.0)


def test_heatmap_pair_shares_scale():
    before = dg.covariance_matrix(mixed(seed=1))
    after = dg.covariance_matrix(torch.randn(300, 24, generator=gen(2)))
    fig = plot_heatmap_pair(before, after, k=10, titles=("init", "trained"))
    assert isinstance(fig, matplotlib.figure.Figure)
    a, b = fig.axes[0], fig.axes[1]
    assert [a.get_title(), b.get_title()] == ["init", "trained"]
    assert a.images[0].get_array().shape == b.images[0].get_array().shape == (10, 10)
    expected = max(float(before[:10, :10].abs().max()), float(after[:10, :10].abs().max()))
    assert a.images[0].get_clim() == b.images[0].get_clim() == (-expected, expected)


def test_heatmap_errors():
    with pytest.raises(ValueError, match="square"):
        plot_matrix_heatmap(torch.randn(10, 4))
    with pytest.raises(ValueError, match="k must be"):
        plot_matrix_heatmap(torch.eye(4), k=5)
    with pytest.raises(ValueError, match="kind"):
        plot_matrix_heatmap(torch.eye(4), kind="gram")
    with pytest.raises(ValueError, match="NaN"):
        plot_matrix_heatmap(torch.full((3, 3), float("nan")))


# -----------------------------------------------------------------------------
# spectrum and std histogram


def test_spectrum_log_scale_and_effective_rank_marker():
    z = mixed()
    s = dg.singular_values(z).numpy()
    erank = dg.effective_rank(z)
    ax = plot_spectrum(z)
    assert ax.get_yscale() == "log"
    spectrum, marker = ax.lines
    np.testing.assert_allclose(spectrum.get_xdata(), np.arange(1, 25))
    np.testing.assert_allclose(spectrum.get_ydata(), s)
    np.testing.assert_allclose(marker.get_xdata(), [erank, erank])
    assert marker.get_color() == spectrum.get_color()
    assert f"effective rank = {erank:.1f}" in text_of(ax)


def test_spectrum_of_rank_k_embedding_from_singular_values_and_normalized():
    g = gen(3)
    z = torch.randn(500, 3, generator=g, dtype=torch.float64) @ torch.randn(3, 16, generator=g, dtype=torch.float64)
    s = dg.singular_values(z)
    ax = plot_spectrum(s, normalize=True, label="rank 3")
    spectrum, marker = ax.lines
    ydata = spectrum.get_ydata()
    assert ydata[0] == pytest.approx(1.0)
    assert 1.0 < marker.get_xdata()[0] <= 3.0  # effective rank of a rank-3 embedding
    assert ax.get_ylabel().startswith("$\\sigma_k / \\sigma_1")
    plot_spectrum(torch.randn(500, 16, generator=g), ax=ax, label="isotropic")  # overlay
    assert len(ax.lines) == 4
    assert any(t.startswith("isotropic: effective rank") for t in text_of(ax))


def test_spectrum_of_complete_collapse():
    ax = plot_spectrum(torch.ones(40, 6))
    spectrum, marker = ax.lines
    assert len(spectrum.get_xdata()) == 0
    assert list(marker.get_xdata()) == [0.0, 0.0]
    assert any("complete collapse" in t.get_text() for t in ax.texts)


@pytest.mark.parametrize("gamma", [1.0, 0.5])
def test_std_histogram_marks_gamma(gamma):
    z = torch.randn(400, 32, generator=gen(4)) * torch.linspace(0.1, 1.5, 32)
    ax = plot_std_histogram(z, gamma=gamma, threshold=0.01)
    lines = {ln.get_label(): ln for ln in ax.lines}
    gamma_line = next(ln for label, ln in lines.items() if label.startswith("gamma"))
    assert list(gamma_line.get_xdata()) == [gamma, gamma]
    dead_line = next(ln for label, ln in lines.items() if label.startswith("dead"))
    assert list(dead_line.get_xdata()) == [0.01, 0.01]
    assert sum(p.get_height() for p in ax.patches) == 32  # one count per dimension
    assert ax.get_xlabel() == "per-dimension std" and ax.get_title()


def test_std_histogram_of_complete_collapse_puts_all_mass_at_zero():
    ax = plot_std_histogram(torch.ones(20, 12))
    first = min(ax.patches, key=lambda p: p.get_x())
    assert first.get_x() == 0.0 and first.get_height() == 12
    assert "100% below" in ax.get_title()


# -----------------------------------------------------------------------------
# training curves


def write_jsonl(path, recs, tail=""):
    path.write_text("\n".join(json.dumps(r) for r in recs) + "\n\n" + tail)
    return path


def test_training_curves_from_jsonl(tmp_path):
    recs = fake_metrics()
    path = write_jsonl(tmp_path / "metrics.jsonl", recs, tail='{"kind": "step", "st')  # live file
    assert len(read_metrics(path)) == len(recs)
    ax = plot_training_curves(path)
    assert [ln.get_label() for ln in ax.lines] == TERMS
    assert text_of(ax) == TERMS
    steps = [r for r in recs if r["kind"] == "step"]
    for ln, term in zip(ax.lines, TERMS):
        np.testing.assert_allclose(ln.get_xdata(), [r["step"] for r in steps])
        np.testing.assert_allclose(ln.get_ydata(), [r[term] for r in steps])
    assert ax.get_yscale() == "linear" and ax.get_xlabel() == "step" and ax.get_title()


def test_training_curves_options_and_resume_duplicates():
    recs = fake_metrics()
    recs += [dict(r, loss=-1.0) for r in recs[:5] if r["kind"] == "step"]  # resumed run re-logs
    ax = plot_training_curves(recs, terms=["loss", "variance"], x="epoch", log_y=True)
    assert [ln.get_label() for ln in ax.lines] == ["loss", "variance"]
    assert ax.get_yscale() == "log" and ax.get_xlabel() == "epoch"
    loss = ax.lines[0].get_ydata()
    assert len(loss) == 30 and list(loss[:5]) == [-1.0] * 5  # last record per x wins
    assert np.all(np.diff(ax.lines[0].get_xdata()) > 0)


def test_training_curves_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="metrics"):
        plot_training_curves(tmp_path / "missing.jsonl")
    with pytest.raises(ValueError, match="no step records"):
        plot_training_curves([r for r in fake_metrics() if r["kind"] == "epoch"])
    with pytest.raises(ValueError, match="'grad_norm'"):
        plot_training_curves(fake_metrics(), terms=["loss", "grad_norm"])
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"kind": "step", "step": 0, "loss": 1}\nnot json\n{"kind": "step"}\n')
    with pytest.raises(ValueError, match="line 2"):
        read_metrics(bad)
    with pytest.raises(TypeError, match="metrics"):
        plot_training_curves(42)


def test_collapse_panels_separate_axes_integer_epochs():
    fig = plot_collapse_panels(fake_metrics(), gamma=1.0)
    rank_ax, std_ax = fig.axes[:2]
    np.testing.assert_allclose(rank_ax.lines[0].get_ydata(), [10.0, 15.0, 20.0])
    np.testing.assert_allclose(std_ax.lines[0].get_ydata(), [0.3, 0.5, 0.7])
    assert list(std_ax.lines[1].get_ydata()) == [1.0, 1.0]  # gamma
    assert "of 64 dims" in rank_ax.get_ylabel()
    assert not hasattr(rank_ax, "right_ax") and len(fig.axes) == 2  # no twin axis
    assert all(float(t).is_integer() for t in rank_ax.get_xticks())
    with pytest.raises(ValueError, match="emb_effective_rank"):
        plot_collapse_panels([r for r in fake_metrics() if r["kind"] == "step"])


def test_training_overview_panels(tmp_path):
    fig = plot_training_overview(write_jsonl(tmp_path / "m.jsonl", fake_metrics()))
    assert len(fig.axes) == 3  # loss panel, collapse panel, its twin
    assert [ln.get_label() for ln in fig.axes[0].lines] == TERMS
    only_steps = [r for r in fake_metrics() if r["kind"] == "step"]
    assert len(plot_training_overview(only_steps).axes) == 1


# -----------------------------------------------------------------------------
# 2-D embedding view


@pytest.mark.parametrize("shape", [(200, 12), (10, 40)])  # covariance side and Gram side
def test_pca_2d_matches_svd(shape):
    z = torch.randn(*shape, generator=gen(5), dtype=torch.float64)
    coords, ratio = pca_2d(z)
    zc = z - z.mean(0)
    u, s, _ = torch.linalg.svd(zc, full_matrices=False)
    expected = u[:, :2] * s[:2]
    np.testing.assert_allclose(coords.abs().numpy(), expected.abs().numpy(), atol=1e-9)
    np.testing.assert_allclose(ratio.numpy(), (s[:2] ** 2 / (s**2).sum()).numpy(), rtol=1e-9)


def test_embedding_2d_draws_every_point_coloured_by_label():
    n = 150
    labels = torch.arange(n) % 3
    z = torch.randn(n, 16, generator=gen(6)) + 4 * torch.nn.functional.one_hot(labels, 16)
    ax = plot_embedding_2d(z, labels, class_names=["circle", "square", "star"])
    offsets = ax.collections[0].get_offsets()
    assert offsets.shape == (n, 2)
    np.testing.assert_allclose(np.asarray(offsets), pca_2d(z)[0].numpy(), rtol=1e-6, atol=1e-6)
    assert text_of(ax) == ["circle", "square", "star"]
    assert len({tuple(c) for c in ax.collections[0].get_facecolors()}) == 3
    assert ax.get_xlabel().startswith("PC 1") and ax.get_title()
    ax = plot_embedding_2d(z.numpy())  # no labels, numpy input
    assert ax.collections[0].get_offsets().shape == (n, 2)


def test_embedding_2d_errors_and_optional_backends(monkeypatch):
    z = torch.randn(20, 5, generator=gen(7))
    with pytest.raises(ValueError, match="one label per row"):
        plot_embedding_2d(z, labels=[0, 1])
    with pytest.raises(ValueError, match="method"):
        plot_embedding_2d(z, method="isomap")
    with pytest.raises(ValueError, match="D >= 2"):
        plot_embedding_2d(torch.randn(20, 1))
    monkeypatch.setitem(sys.modules, "sklearn", None)  # simulate "not installed"
    monkeypatch.setitem(sys.modules, "sklearn.manifold", None)
    with pytest.raises(ImportError, match="scikit-learn"):
        plot_embedding_2d(z, method="tsne")
    monkeypatch.setitem(sys.modules, "umap", None)
    with pytest.raises(ImportError, match="umap-learn"):
        plot_embedding_2d(z, method="umap")


def test_embedding_2d_tsne_when_installed():
    pytest.importorskip("sklearn")
    z = torch.randn(60, 8, generator=gen(8))
    ax = plot_embedding_2d(z, torch.arange(60) % 2, method="tsne")
    assert ax.collections[0].get_offsets().shape == (60, 2)
    assert ax.get_xlabel() == "t-SNE 1"


def test_training_curves_weighted_terms_sum_to_the_loss():
    recs = [r for r in fake_metrics() if r["kind"] == "step"]
    weights = {"invariance": 25.0, "variance": 50.0, "covariance": 0.5}
    ax = plot_training_curves(recs, weights=weights)
    lines = {line.get_label(): line.get_ydata() for line in ax.lines}
    assert set(lines) == {"loss", "25 x invariance", "50 x variance", "0.5 x covariance"}
    expected = [25 * r["invariance"] for r in recs]
    np.testing.assert_allclose(lines["25 x invariance"], expected)
    assert "contribution" in ax.get_ylabel()
    assert len({line.get_linestyle() for line in ax.lines}) == 4  # told apart without colour
    with pytest.raises(ValueError, match="weights name terms that are not drawn"):
        plot_training_curves(recs, terms=["loss", "variance"], weights={"covariance": 1.0})


def test_nearest_neighbours_by_cosine():
    bank = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [-1.0, 0.0]])
    idx, sim = nearest_neighbours(torch.tensor([[2.0, 0.1], [0.0, -3.0]]), bank, k=2)
    assert idx[0].tolist() == [0, 2]  # scale does not matter, direction does
    assert sim[0, 0] > sim[0, 1] and sim.shape == (2, 2)
    with pytest.raises(ValueError, match="same width"):
        nearest_neighbours(torch.randn(2, 3), bank)
    with pytest.raises(ValueError, match="k must be between 1"):
        nearest_neighbours(bank, bank, k=5)


def test_retrieval_grid_frames_same_and_other_class():
    q = torch.randint(0, 256, (2, 3, 8, 8), dtype=torch.uint8)
    nb = torch.rand(2, 3, 3, 8, 8)
    fig = plot_retrieval_grid(
        q,
        nb,
        query_labels=[0, 1],
        neighbour_labels=[[0, 1, 0], [1, 1, 0]],
        row_names=["random", "trained"],
        class_names=["a", "b"],
        title="t",
    )
    assert len(fig.axes) == 2 * 4
    frame = [fig.axes[i].spines["top"].get_edgecolor() for i in (1, 2, 5, 7)]
    green, red = matplotlib.colors.to_rgba("#1a9850"), matplotlib.colors.to_rgba("#d73027")
    assert frame == [green, red, green, red]
    assert fig.axes[0].get_title() == "query: a" and fig.axes[4].get_ylabel() == "trained"
    with pytest.raises(ValueError, match="neighbour_images"):
        plot_retrieval_grid(q, nb[0])


def test_embedding_pair_one_panel_per_feature_set():
    z, labels = mixed(n=60, d=6), torch.arange(60) % 3
    fig = plot_embedding_pair({"a": z, "b": 2 * z}, labels, method="pca", title="pair")
    assert [ax.get_title() for ax in fig.axes[:2]] == ["a", "b"]
    assert fig.axes[0].get_legend() is None and fig.axes[1].get_legend() is not None
    with pytest.raises(ValueError, match="at least one"):
        plot_embedding_pair({}, labels)
