"""The step-memory estimate (fake tensors, no GPU), its checks against measurements, and preflight.

Measured figures it is checked against: bench/results/gpu_suite_h200_2026-11-30.json (H200, torch
2.11: the loss's peak memory, and a trainer run at 512 images per GPU in bf16) and the paper's
11.3 GB per GPU at 64 images per GPU (appendix E; 32 V100, fp16, official code). What the
tolerances are and why: bench/README.md, "Per-GPU memory".
"""

import json
import math
import warnings
from collections import Counter
from pathlib import Path

import pytest
import torch
from torch._subclasses.fake_tensor import FakeTensorMode

from vicreg_edu import memory as M
from vicreg_edu.config import Config, get_config
from vicreg_edu.errors import ConfigError, one_line
from vicreg_edu.models import VICRegWithProbe, build_model

ROOT = Path(__file__).resolve().parents[1]
H200 = json.loads((ROOT / "bench" / "results" / "gpu_suite_h200_2026-11-30.json").read_text())
IMAGENET = get_config("imagenet-resnet50", fast=False)
GB, MiB = 1e9, 2**20


def test_live_bytes_counts_new_storages_once_and_frees_them():
    with FakeTensorMode(), M.LiveBytes() as mem:
        a = torch.empty(1024, 256)  # 1 MiB
        assert mem.live == MiB
        view = a.t()[:3]  # a view: same storage
        a.mul_(2)  # in place: same storage
        b = a + 1  # a new 1 MiB
        assert (mem.live, mem.peak) == (2 * MiB, 2 * MiB)
        del b
        assert mem.live == MiB
        mem.reset()
        small = torch.empty(3)  # 12 bytes -> one 512-byte block, as the CUDA allocator rounds
        assert mem.live - MiB == 512 and mem.peak == MiB + 512
        del a, view, small
        assert mem.live == 0


@pytest.mark.parametrize("amp", [torch.bfloat16, torch.float16])
def test_fake_cpu_autocast_gives_the_large_tensors_of_fake_cuda(amp):
    """The estimate runs on fake CPU tensors under CPU autocast because autograd needs a CUDA build for
    fake CUDA tensors; the forward (which does run on fake CUDA) produces the same large outputs."""
    cfg = IMAGENET.replace(expander="1024-1024-1024")

    class Outputs(torch.utils._python_dispatch.TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.seen = Counter()

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            for t in torch.utils._pytree.tree_flatten(out)[0]:
                if isinstance(t, torch.Tensor) and t.numel() > 4096:
                    self.seen[t.dtype, tuple(t.shape)] += 1
            return out

    seen = {}
    for device in ("cuda", "cpu"):
        with FakeTensorMode(), torch.device(device):
            net = VICRegWithProbe(build_model(cfg), 1000)
            x = torch.empty(2, 3, 64, 64).contiguous(memory_format=torch.channels_last)
            with Outputs() as rec, torch.autocast(device, dtype=amp) if device == "cpu" else _cuda_autocast(amp):
                net(x, x)
        seen[device] = rec.seen
    assert sum(seen["cpu"].values()) > 300  # the whole ResNet-50 forward was seen
    assert seen["cuda"] == seen["cpu"]


class _cuda_autocast:
    """torch.autocast("cuda") switches itself off without CUDA; the low-level switches do not."""

    def __init__(self, dtype):
        self.dtype = dtype

    def __enter__(self):
        self.state = torch.is_autocast_enabled("cuda"), torch.get_autocast_dtype("cuda")
        torch.set_autocast_enabled("cuda", True)
        torch.set_autocast_dtype("cuda", self.dtype)
        torch.autocast_increment_nesting()

    def __exit__(self, *exc):
        if torch.autocast_decrement_nesting() == 0:
            torch.clear_autocast_cache()
        torch.set_autocast_enabled("cuda", self.state[0])
        torch.set_autocast_dtype("cuda", self.state[1])


def test_estimate_is_monotone_in_batch_and_precision():
    small = Config(backbone="small_cnn", expander="512-512")
    for cfg, table in (
        (small, lambda b, a: M.estimate_step_memory(small, b, a)),
        (IMAGENET, lambda b, a: M.CACHED_ESTIMATES[b, a, 8]),
    ):
        est = {(b, a): table(b, a) for b in (32, 64, 128) for a in M.AMPS}
        for a in M.AMPS:
            assert est[32, a] < est[64, a] < est[128, a], (cfg.backbone, a)
        for b in (32, 64, 128):
            assert est[b, "bf16"] == est[b, "fp16"] < est[b, "fp32"]  # bf16 and fp16: both 2 bytes
    # DDP adds a copy of the gradients (buckets) and the loss over the gathered batch
    for b in (32, 64, 128, 256):
        assert M.CACHED_ESTIMATES[b, "bf16", 1] < M.CACHED_ESTIMATES[b, "bf16", 8] < M.CACHED_ESTIMATES[b, "bf16", 32]


def test_cached_table_is_what_the_estimator_gives_today():
    assert M.step_memory(IMAGENET, 64, "bf16", 8) == M.CACHED_ESTIMATES[64, "bf16", 8]
    assert M.estimate_step_memory(IMAGENET, 64, "bf16", 8) == M.CACHED_ESTIMATES[64, "bf16", 8]
    assert len(M.CACHED_ESTIMATES) == 45
    short = get_config("imagenet-resnet50-100ep", fast=False)  # same model: the same table
    assert M._model_key(short) == M._IMAGENET_KEY


def test_loss_alone_matches_the_h200_measurement():
    """bench/loss.py's protocol on fake tensors vs the H200: the count sees all but a bounded amount.

    H200 (sync-free call, what the trainer runs): 121.2 MiB at N=256 and 808.2 MiB at N=2048
    (D=8192). The fake count: 57.2 and 512.2 MiB. Not seen: 64 and 296 MiB, workspaces and
    kernel temporaries. Stated tolerance: the count is below the measurement by at most 300 MiB."""
    spec = __import__("importlib").util.spec_from_file_location("bench_memory", ROOT / "bench" / "memory.py")
    bench = __import__("importlib").util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    measured = bench.h200_loss_peaks()
    assert set(measured) == {(256, 8192), (2048, 8192)}
    for (n, d), mib in measured.items():
        fake = bench.loss_peak_fake(n, d) / MiB
        assert 0 < mib - fake <= 300, (n, d, fake, mib)


def test_step_estimate_against_the_h200_run_and_the_paper():
    # the H200 ran the trainer at 512 images per GPU in bf16 (the first batch it tried), so the step fit
    # in its 139 GiB together with what the suite held beside it
    rows = H200["measurements"]["imagenet_step"]["results"]
    assert [r["batch"] for r in rows["rows"]] == [512] and rows["skipped"] == []
    assert M.HEADROOM * M.CACHED_ESTIMATES[512, "bf16", 1] < 139 * 2**30
    # the paper: 11.3 GB per GPU at 64 images per GPU, fp16, 32 GPUs (official code; how it was
    # measured is not said). Our trainer's count is below it (it misses the allocator's reserve,
    # the context, workspaces). HEADROOM was chosen from this figure (11.3 / 9.48 = 1.19), so the
    # second assert guards that calibration; it is not an independent check.
    ours = M.CACHED_ESTIMATES[64, "fp16", 32]
    assert 0.7 * 11.3 * GB < ours < 11.3 * GB
    assert M.HEADROOM * ours == pytest.approx(11.3 * GB, rel=0.10)


def _fake_gpu(monkeypatch, free_gb):
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (int(free_gb * GB), int(80 * GB)))


def test_preflight_stops_with_one_line_naming_a_batch_that_fits(monkeypatch):
    _fake_gpu(monkeypatch, free_gb=30.0)
    cfg = IMAGENET  # 2048 on 8 GPUs: 256 per GPU, ~31.9 GB with the headroom in bf16
    with pytest.raises(ConfigError) as err:
        M.preflight(cfg, torch.device("cuda"), world=8, amp=torch.bfloat16)
    line = one_line(err.value)
    assert line == str(err.value) and "\n" not in line
    assert line.startswith(
        "ResNet-50 + 8192x3 at 256 images per GPU in bf16 needs about 31.9 GB; "
        "this GPU has 30.0 GB free: use --set batch_size=1024 "
    )
    assert "batch_size=1024 base_lr=0.2 (the 1000-epoch base_lr with the linear scaling rule;" in line
    assert "16 GPUs for batch_size=2048" in line and "0.4" not in line  # no 100-epoch small-batch rate
    assert line.endswith("or memory_check=false to try anyway")
    assert M.HEADROOM * M.CACHED_ESTIMATES[128, "bf16", 8] <= 30 * GB  # the suggestion fits
    # the trainer's autocast dtype, the config's amp name, or fp16 give the same answer
    with pytest.raises(ConfigError, match="in fp16 needs about 31.9 GB"):
        M.preflight(cfg.replace(amp="fp16"), "cuda", world=8)
    with pytest.raises(ConfigError, match="in fp32 needs about 57.4 GB"):
        M.preflight(cfg, "cuda", world=8, amp=None)


def test_preflight_warns_when_told_to_go_on_and_passes_when_it_fits(monkeypatch):
    _fake_gpu(monkeypatch, free_gb=30.0)
    with pytest.warns(RuntimeWarning, match=r"needs about 31\.9 GB.*memory_check=false: going on"):
        info = M.preflight(IMAGENET.replace(memory_check=False), "cuda", world=8, amp=torch.bfloat16)
    assert info["per_gpu"] == 256 and info["free_bytes"] == 30 * GB
    _fake_gpu(monkeypatch, free_gb=33.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        info = M.preflight(IMAGENET, "cuda", world=8, amp=torch.bfloat16)
    assert info["need_bytes"] == math.floor(M.HEADROOM * M.CACHED_ESTIMATES[256, "bf16", 8])
    assert M.preflight(IMAGENET, torch.device("cpu"), world=1) is None  # only on CUDA


def test_launch_plan_per_hardware_class():
    plans = {name: M.launch_plan(**hw) for name, hw in M.HARDWARE.items()}
    paper = plans["4 nodes x 8 x 32 GB (V100, the paper's)"]
    assert (
        paper.command
        == (
            "vicreg-edu submit --nodes 4 --gpus-per-node 8 -- --preset imagenet-resnet50 "
            "--set data_dir=/path/to/imagenet amp=fp16"
        )
        and paper.per_gpu == 64
    )
    big = plans["8 x 80 GB (A100 / H100 / H200)"]
    assert (
        big.command
        == (
            "torchrun --signals-to-handle=SIGTERM,SIGINT,SIGHUP,SIGQUIT,SIGUSR1,SIGUSR2 --nproc_per_node=8 "
            "-m vicreg_edu train --preset imagenet-resnet50 --set data_dir=/path/to/imagenet"
        )
        and big.per_gpu == 256
    )
    # 128 per GPU (~17.8 GB) fits a 32 GB V100; 256 would leave less than 10% spare
    v100 = plans["8 x 32 GB (V100)"]
    assert v100.overrides == {"data_dir": "/path/to/imagenet", "batch_size": 1024, "amp": "fp16"}
    assert v100.per_gpu == 128 and v100.base_lr == 0.2 and "linear scaling rule" in v100.lr_source
    assert 17 * GB < M.HEADROOM * M.CACHED_ESTIMATES[128, "fp16", 8] < 18 * GB
    slow = plans["8 x 24 GB (A10 / L4 / RTX: slow float64)"]
    assert slow.overrides["gram_dtype"] == "float32" and slow.global_batch == 1024
    # a 1000-epoch plan never takes appendix C.4's 100-epoch small-batch rates
    for gib in (80, 40, 32, 24, 16, 12):
        for gpus in (1, 8):
            try:
                plan = M.launch_plan(1, gpus, gib)
            except ConfigError:
                continue
            assert plan.base_lr == 0.2 and plan.epochs == 1000, (gib, gpus, plan.note)
    short = M.launch_plan(1, 8, 16, amp="fp16", epochs=100)
    assert short.command.endswith("--preset imagenet-resnet50-100ep --set data_dir=/path/to/imagenet amp=fp16")
    assert short.base_lr == 0.3 and short.global_batch == 512
    short_big = M.launch_plan(1, 8, 80, epochs=100)  # the paper's 100-epoch runs: 0.3 at batch 2048 (vicreg#13)
    assert short_big.overrides == {"data_dir": "/path/to/imagenet", "batch_size": 2048}
    assert short_big.base_lr == 0.3 and "vicreg#13" in short_big.lr_source
    one = M.launch_plan(1, 1, 24, epochs=100)  # one 24 GB GPU: batch 128, appendix C.4's 0.8
    assert one.overrides["batch_size"] == 128 and one.base_lr == 0.8
    with pytest.raises(ConfigError, match="no batch of the paper's"):
        M.launch_plan(1, 1, 4)
    with pytest.raises(ConfigError, match="epochs=300"):
        M.launch_plan(1, 8, 80, epochs=300)


def test_sixteen_small_gpus_take_batch_1024_at_the_1000_epoch_rate():
    """2 nodes x 8 x 16 GB V100: 64 images per GPU, batch 1024, base_lr 0.2 (linear scaling, peak 0.8)."""
    assert M.PLAN_BASE_LR[1000][1024][0] == 0.2
    assert M.launch_plan(2, 8, 16, amp="fp16").global_batch == 1024  # 2 nodes x 8 x 16 GB: 64 per GPU


def test_expected_time_from_measured_rates():
    """The rates are the measured ones; the paper's V100 rate gives back its own 11 h per 100 epochs."""
    import json
    from pathlib import Path

    suite = json.loads(Path(__file__).parents[1].joinpath("bench/results/gpu_suite_h200_2026-11-30.json").read_text())
    (row,) = suite["measurements"]["imagenet_step"]["results"]["rows"]
    assert M.MEASURED_RATES["H200"][0] == row["trainer_images_per_s"] and row["batch"] == 512
    paper = M.launch_plan(4, 8, 32, amp="fp16")
    t = M.expected_time(paper, M.MEASURED_RATES["V100"][0])
    assert abs(t["run_h"] - 110) < 0.2 and abs(t["gpu_h"] - 32 * t["run_h"]) < 1e-9
    big = M.launch_plan(1, 8, 80)
    t = M.expected_time(big, M.MEASURED_RATES["H200"][0])
    assert big.steps_per_epoch == 625 and abs(t["epoch_s"] - 625 * 2048 / (8 * row["trainer_images_per_s"])) < 1e-9
    # the measured CPU pipeline bounds it: 10 loader cores per GPU deliver 10 x the PIL path's images per CPU-second
    pipeline = json.loads(
        Path(__file__).parents[1].joinpath("bench/results/jpeg_pipeline_cpu_2026-12-07.json").read_text()
    )
    assert M.PIL_IMAGES_PER_CORE_S[0] == pipeline["paths"]["pil"]["images_per_cpu_s"]
    fed = M.expected_time(big, M.MEASURED_RATES["H200"][0], loader_cores=10)
    assert fed["images_per_s_per_gpu"] == 10 * M.PIL_IMAGES_PER_CORE_S[0] < row["trainer_images_per_s"]
    assert fed["epoch_s"] > t["epoch_s"] and M.expected_time(big, 100.0, loader_cores=10)["images_per_s_per_gpu"] == 100


def test_trainer_setup_runs_the_preflight(monkeypatch, tmp_path):
    """train.setup asks memory.preflight before anything is built (on CUDA it stops a run that cannot fit)."""
    from vicreg_edu import trainer as T
    from vicreg_edu.config import get_config

    calls = []
    monkeypatch.setattr(T, "preflight", lambda cfg, device, world, amp: calls.append((cfg, device.type, world, amp)))
    cfg = get_config("demo", fast=True, out_dir=str(tmp_path), progress=False)
    run = T.setup(cfg)
    assert calls == [(cfg, "cpu", 1, run.amp_dtype)]
