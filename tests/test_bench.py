"""bench/gpu_suite.py in its tiny CPU mode and bench/jpeg_pipeline.py --quick: smoke tests, not timings.

It runs every measurement of issue 15 end to end (the real trainer loop, the loss bench, the JPEG
writer and both decode paths, compile and fp16 runs) with tiny sizes, plus ``--profile`` (the
trainer's loop under torch.profiler, split by phase) and ``--jpeg`` (vicreg_edu.jpeg_decode next to
the PIL path), and checks that the JSON names every measurement, marks the CPU fallbacks, and
holds finite positive ratios.
"""

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SUITE = ROOT / "bench" / "gpu_suite.py"
MEASUREMENTS = ("cifar_step", "imagenet_step", "jpeg_pipeline", "loss_vs_lightly", "compile_fp16")
EXTRA = ("profile_step", "jpeg_planned")


@pytest.fixture(scope="module")
def tiny_report(tmp_path_factory):
    out = tmp_path_factory.mktemp("suite") / "suite.json"
    proc = subprocess.run(
        [sys.executable, str(SUITE), "--tiny", "--profile", "--jpeg", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=1200,
        cwd=ROOT,
    )
    assert out.exists(), proc.stdout[-2000:] + proc.stderr[-2000:]
    return json.loads(out.read_text()), proc


def test_tiny_suite_runs_every_measurement(tiny_report):
    report, proc = tiny_report
    assert report["tiny"] is True and list(report["measurements"]) == list(MEASUREMENTS + EXTRA)
    for name, m in report["measurements"].items():
        assert m["status"] == "ok", (name, m.get("error"), m.get("traceback"))
    assert proc.returncode == 0
    assert "RATIO" in proc.stdout and "TINY CPU dry run" in proc.stdout  # the printed table


def test_tiny_suite_ratios_are_finite(tiny_report):
    report, _ = tiny_report
    for name, m in report["measurements"].items():
        assert m["ratios"], name
        for key, value in m["ratios"].items():
            assert math.isfinite(value) and value > 0, (name, key, value)
    for key, value in report["cross_ratios"].items():
        assert math.isfinite(value) and value > 0, key
    assert set(report["cross_ratios"]) == {
        "jpeg_device_path/imagenet_trainer_step",
        "jpeg_pil_path/imagenet_trainer_step",
        "jpeg_planned/imagenet_trainer_step",
    }


def test_tiny_suite_marks_cpu_fallbacks(tiny_report):
    report, _ = tiny_report
    m = report["measurements"]
    if report["environment"]["device"] == "cpu":
        assert any("decode_jpeg" in f for f in m["jpeg_pipeline"]["fallbacks"])
        assert any("backend='eager'" in f for f in m["compile_fp16"]["fallbacks"])
    assert m["jpeg_pipeline"]["results"]["mean_file_kb"] > 10  # real JPEG files were written and read
    rows = m["cifar_step"]["results"]["rows"]
    assert rows and all(r["trainer_images_per_s"] > 0 and r["limit_images_per_s"] > 0 for r in rows)
    curves = m["compile_fp16"]["results"]["curves"]
    assert set(curves) == {"eager", "eager_seed1", "compile", "fp16"}
    assert all(len(c) >= 2 and all(math.isfinite(v) for v in c) for c in curves.values())


def test_tiny_profile_splits_the_step(tiny_report):
    report, proc = tiny_report
    res = report["measurements"]["profile_step"]["results"]
    assert len(res) == 2  # a CIFAR-size and a ResNet-50-recipe case
    for case, r in res.items():
        phases = r["phases"]
        for name in ("augmentation", "backbone", "backbone backward", "expander", "expander backward", "loss"):
            assert phases[name]["host_ms"] > 0, (case, name)
        assert phases["optimiser step (LARS)"]["host_ms"] > 0 and phases["log (loss to host)"]["scalar_reads"] > 0
        assert abs(sum(p["host_share"] for p in phases.values()) - 1) < 1e-6
        assert r["lars_step_ms"]["per_parameter"] > 0 and r["lars_step_ms"]["foreach"] > 0
    assert "optimiser step (LARS)" in proc.stdout


def test_tiny_jpeg_planned_views(tiny_report):
    report, _ = tiny_report
    m = report["measurements"]["jpeg_planned"]
    if report["environment"]["device"] == "cpu":
        assert any("decode_jpeg" in f for f in m["fallbacks"])
        assert m["results"]["rows"][0]["view_shape"] == [8, 3, 224, 224]
    assert all(r["images_per_s"] > 0 and r["images_per_cpu_s"] > 0 for r in m["results"]["rows"])
    assert report["measurements"]["loss_vs_lightly"]["results"]["lightly_install"]  # says what happened


def test_unknown_measurement_is_refused():
    proc = subprocess.run([sys.executable, str(SUITE), "--only", "nope"], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode != 0 and "unknown measurement" in proc.stderr


# ----------------------------------------------------------------------------------------------
# bench/jpeg_pipeline.py --quick: the image-folder pipelines side by side (smoke test)


def test_jpeg_pipeline_bench_quick(tmp_path):
    """16 real-size JPEGs through the PIL path, the device path on the CPU and its host-only part:
    every path saw every image, the figures are finite and positive, the views are the recipe's
    (two float32 views of 224 px from the device path), and the feed estimate is derived from the
    stored H200 step rate."""
    out = tmp_path / "jpeg.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "jpeg_pipeline.py"), "--quick", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
    )
    assert proc.returncode == 0 and out.exists(), proc.stdout[-2000:] + proc.stderr[-2000:]
    report = json.loads(out.read_text())
    assert report["jpeg_size"] == [500, 375] and 90e3 < report["jpeg_bytes_mean"] < 130e3
    assert set(report["paths"]) == {"pil", "gpu@cpu", "gpu host"}
    for name, r in report["paths"].items():
        assert r["images"] == 16 and math.isfinite(r["ratio_to_pil_per_cpu_s"]) and r["images_per_cpu_s"] > 0, name
    phases = report["paths"]["gpu@cpu"]["cpu_ms_per_image_by_phase"]
    assert set(phases) == {"read + header", "draw + boxes", "decode", "crop + resize", "colour ops"}
    assert report["device_ops"]["ops_per_image"] > 0
    derived = report["derived"]
    assert derived["step_images_per_s"] > 1000 and "assumption" in derived
    assert all(row["cores_per_gpu_to_feed"] > 0 for row in derived["paths"].values())
    assert "images/CPU-s" in proc.stdout and "cores/GPU to feed" in proc.stdout
