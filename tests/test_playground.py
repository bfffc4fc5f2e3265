"""The 2-D playground (vicreg_edu.playground): the three regimes chapters 1-4 show, on >= 3 seeds.

Full-length runs (400 steps, about a second each on one core) regardless of fast mode: the claims
are about trained runs.
"""

import matplotlib
import pytest
import torch

matplotlib.use("Agg")

from vicreg_edu import playground as pg  # noqa: E402

SEEDS = (0, 1, 2)
STEPS = 400


def _runs(**weights):
    return [pg.train(**{**pg.PAPER, **weights}, steps=STEPS, seed=s) for s in SEEDS]


def test_invariance_only_collapses_to_a_point():
    for run in _runs(mu=0.0, nu=0.0):
        stats = pg.embedding_stats(run.embeddings)
        assert stats["std"] < 0.01, stats
        assert pg.regime(run.embeddings) == "point"
        assert run.history[-1]["s"] < 1e-4


def test_variance_without_covariance_spreads_along_a_line():
    for run in _runs(nu=0.0):
        stats = pg.embedding_stats(run.embeddings)
        assert 0.9 < stats["std"] < 1.6, stats  # near gamma = 1: the hinge holds it up
        assert stats["corr"] > 0.95 and stats["rank"] < 0.1, stats  # both coordinates read one direction
        assert run.history[-1]["v"] < 0.01


def test_all_three_terms_fill_the_plane():
    for run in _runs():
        stats = pg.embedding_stats(run.embeddings)
        assert 0.9 < stats["std"] < 1.6, stats
        assert stats["corr"] < 0.2 and stats["rank"] > 0.5, stats
        assert pg.regime(run.embeddings) == "plane"


def test_exercise_settings():
    """The chapters' exercises: s + c still collapses, at the pace of s alone (ch1), lambda = 100 ends
    on a line (ch2), a hundredfold weaker hinge (mu = 0.5, nu = 0) still holds the std near gamma
    (ch3), and |corr| is higher at gamma = 0.5 than at gamma = 1 (ch4)."""
    assert all(pg.regime(r.embeddings) == "point" for r in _runs(mu=0.0))
    for seed in SEEDS:  # ch1: the std after 50 steps with c (nu = 1) is within a factor 2 of s alone's
        s_only, s_c = (
            pg.train(lambda_=25.0, mu=0.0, nu=nu, steps=50, seed=seed).history[-1]["std"] for nu in (0.0, 1.0)
        )
        assert 0.5 < s_c / s_only < 2, (seed, s_only, s_c)
    assert all(pg.regime(r.embeddings) == "line" for r in _runs(lambda_=100.0))
    stds = [pg.embedding_stats(r.embeddings)["std"] for r in _runs(mu=0.5, nu=0.0)]
    assert all(0.8 < s < 1.4 for s in stds), stds
    low = [pg.embedding_stats(r.embeddings)["corr"] for r in _runs(gamma=0.5)]
    one = [pg.embedding_stats(r.embeddings)["corr"] for r in _runs()]
    assert sum(low) / len(low) > sum(one) / len(one) + 0.3, (low, one)


def test_deterministic_given_seed():
    a, b = pg.train(steps=30, seed=3), pg.train(steps=30, seed=3)
    assert torch.equal(a.embeddings, b.embeddings) and a.history == b.history
    c = pg.train(steps=30, seed=4)
    assert not torch.equal(a.embeddings, c.embeddings)


def test_train_uses_vicreg_loss_numbers():
    """The logged loss is the weighted sum of the logged terms, as vicreg_loss defines it."""
    run = pg.train(lambda_=10.0, mu=20.0, nu=3.0, steps=5, seed=0, log_every=1)
    for h in run.history:
        assert h["loss"] == pytest.approx(10.0 * h["s"] + 20.0 * h["v"] + 3.0 * h["c"], rel=1e-5)


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="mu must be >= 0"):
        pg.train(mu=-1.0, steps=1)
    with pytest.raises(ValueError, match="gamma must be > 0"):
        pg.train(gamma=0.0, steps=1)
    with pytest.raises(ValueError, match="steps >= 1"):
        pg.train(steps=0)
    with pytest.raises(ValueError, match="n >= 2"):
        pg.make_points(1)


def test_regime_names():
    g = torch.Generator().manual_seed(0)
    assert pg.regime(1e-3 * torch.randn(100, 2, generator=g)) == "point"
    t = torch.randn(100, 1, generator=g)
    assert pg.regime(torch.cat([t, -2 * t], dim=1)) == "line"
    assert pg.regime(torch.randn(100, 2, generator=g)) == "plane"


def test_grid_and_explorer():
    points = pg.grid_points()
    assert len(points) == len(set(points)) == 29
    default = tuple(pg.PAPER[k] for k in pg.VALUES)
    assert default in points
    for p in points:
        assert all(v in pg.VALUES[k] for k, v in zip(pg.VALUES, p))
    runs = pg.precompute([default, (25.0, 0.0, 0.0, 1.0)], steps=10)
    ex = pg.explorer(runs, steps=10)
    assert ex.default == default and set(ex.states) == set(runs)
    assert "<script" in ex.to_html()
    assert ex.select(mu=12.5).message  # not precomputed
    fig = pg.small_multiples(pg.regimes(steps=10))
    assert len(fig.axes) == 4


def _pair_ratio(run):
    z_a, z_b = pg.embed_views(run)
    return ((z_a - z_b).pow(2).sum(1).mean() / (z_a - z_b.roll(1, 0)).pow(2).sum(1).mean()).item()


def test_invariance_term_tightens_the_pairs():
    """Chapter 2: with all three terms a point's two views are far closer, relative to another
    point's view, than without the invariance term (lambda = 0), on 3 seeds."""
    for seed in SEEDS:
        full = _pair_ratio(pg.train(**pg.PAPER, steps=STEPS, seed=seed))
        no_s = _pair_ratio(pg.train(**{**pg.PAPER, "lambda_": 0.0}, steps=STEPS, seed=seed))
        assert full < 0.03 and no_s > 0.05 and full < no_s / 4, (seed, full, no_s)
