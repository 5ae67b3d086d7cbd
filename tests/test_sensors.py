"""Every backend against a fake, and the fallback for real on this machine."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from fakes import FakeAmdSmi, FakeGpu, FakeNVML

from wattlens.factors import FactorSet
from wattlens.measure.sensors import amdsmi, fallback, nvml, probe_all, rapl
from wattlens.measure.sensors.base import NullSensor


def test_nvml_energy_counter_and_visible_devices() -> None:
    gpus = [FakeGpu("H100", "GPU-aaa", 1_000_000), FakeGpu("H100", "GPU-bbb", 5_000_000)]
    fake = FakeNVML(gpus)
    p = nvml.probe(fake, env={"CUDA_VISIBLE_DEVICES": "1"})
    assert [s.device for s in p.sensors] == ["gpu:1"]
    s = p.sensors[0]
    assert isinstance(s, nvml.NvmlEnergySensor) and s.method == "measured"
    e0 = s.energy_j()
    gpus[1].energy_mj += 250_000  # 250 J
    e1 = s.energy_j()
    assert e1.mid - e0.mid == pytest.approx(250.0)
    assert e1.low < e1.mid < e1.high  # +/-5 % accuracy
    by_uuid = nvml.probe(fake, env={"CUDA_VISIBLE_DEVICES": "GPU-aaa,GPU-zzz,GPU-bbb"})
    assert [s.device for s in by_uuid.sensors] == ["gpu:GPU-aaa"]  # CUDA stops at the first unknown id
    assert len(nvml.probe(fake, env={}).sensors) == 2
    assert nvml.probe(fake, env={"CUDA_VISIBLE_DEVICES": ""}).sensors == ()


def test_nvml_without_counter_samples_power_never_zero() -> None:
    gpu = FakeGpu("Tesla P4", "GPU-old", None, power_mw=60_000)
    p = nvml.probe(FakeNVML([gpu]), env={}, period_s=0.005)
    s = p.sensors[0]
    try:
        assert isinstance(s, nvml.NvmlPowerSensor) and "sampled" in s.reason
        e0 = s.energy_j().mid
        time.sleep(0.1)
        e1 = s.energy_j().mid
        assert e1 - e0 == pytest.approx(60.0 * 0.1, rel=0.3)  # 60 W for 0.1 s
    finally:
        s.close()


def test_nvml_absent_or_failing_says_why() -> None:
    p = nvml.probe(FakeNVML([], fail_init=True), env={})
    assert p.sensors == () and "did not initialise" in p.reason


def test_amdsmi_accumulator() -> None:
    smi = FakeAmdSmi([1000, 2000], resolution_uj=15.3)
    p = amdsmi.probe(smi)
    s = p.sensors[1]
    e0 = s.energy_j().mid
    smi.acc[1] += 1_000_000
    assert s.energy_j().mid - e0 == pytest.approx(15.3)  # 1e6 ticks x 15.3 uJ


def make_rapl(root: Path, domains: dict[str, tuple[str, int, int]]) -> None:
    for d, (name, energy, rng) in domains.items():
        (root / d).mkdir(parents=True)
        (root / d / "name").write_text(name + "\n")
        (root / d / "energy_uj").write_text(f"{energy}\n")
        (root / d / "max_energy_range_uj").write_text(f"{rng}\n")


def test_rapl_counts_packages_and_dram_once(tmp_path: Path) -> None:
    make_rapl(
        tmp_path,
        {
            "intel-rapl:0": ("package-0", 1_000_000, 10**9),
            "intel-rapl:0:0": ("core", 500_000, 10**9),
            "intel-rapl:0:1": ("dram", 200_000, 10**9),
            "intel-rapl:1": ("psys", 9_000_000, 10**9),
        },
    )
    p = rapl.probe(tmp_path)
    assert sorted(s.device for s in p.sensors) == ["cpu:package-0", "dram:intel-rapl:0:1"]
    assert "not added" in p.reason


def test_rapl_wraparound(tmp_path: Path) -> None:
    make_rapl(tmp_path, {"intel-rapl:0": ("package-0", 900_000, 1_000_000)})
    s = rapl.probe(tmp_path).sensors[0]
    e0 = s.energy_j().mid
    (tmp_path / "intel-rapl:0" / "energy_uj").write_text("100000\n")  # wrapped: +200,000 uJ
    assert s.energy_j().mid - e0 == pytest.approx(0.2)
    (tmp_path / "intel-rapl:0" / "energy_uj").write_text("400000\n")
    assert s.energy_j().mid - e0 == pytest.approx(0.5)


def test_rapl_psys_only_when_no_package(tmp_path: Path) -> None:
    make_rapl(tmp_path, {"intel-rapl:1": ("psys", 5, 10**9)})
    assert [s.device for s in rapl.probe(tmp_path).sensors] == ["host:psys"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_rapl_permission_denied_says_how_to_grant(tmp_path: Path) -> None:
    make_rapl(tmp_path, {"intel-rapl:0": ("package-0", 1, 10**9)})
    (tmp_path / "intel-rapl:0" / "energy_uj").chmod(0)
    p = rapl.probe(tmp_path)
    assert p.sensors == () and "chmod" in p.reason


def test_rapl_permission_denied_simulated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_rapl(tmp_path, {"intel-rapl:0": ("package-0", 1, 10**9)})

    def deny(path: object, flags: int) -> int:
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(rapl.os, "open", deny)
    p = rapl.probe(tmp_path)
    assert p.sensors == () and "chmod o+r" in p.reason and "root" in p.reason


def test_rapl_absent(tmp_path: Path) -> None:
    assert "not present" in rapl.probe(tmp_path / "none").reason


def test_fallback_runs_for_real_here(factors: FactorSet) -> None:
    p = fallback.probe(factors)
    cpu = p.sensors[0]
    assert cpu.method == "estimated" and cpu.kind == "cpu"
    e0 = cpu.energy_j()
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < 0.2:  # busy: the CPU term must grow
        sum(i * i for i in range(1000))
    e1 = cpu.energy_j()
    d_lo, d_mid, d_hi = e1.low - e0.low, e1.mid - e0.mid, e1.high - e0.high
    assert 0 < d_lo <= d_mid <= d_hi
    threads = os.cpu_count() or 1
    # Bounded by idle power for the whole time and full power on every thread.
    assert d_mid <= 4.0 * threads * 0.25 * 1.5
    assert d_hi / d_lo > 2  # a model: a wide interval


def test_fallback_tdp_matching() -> None:
    table = {"AMD EPYC": 200.0, "AMD EPYC 7763": 280.0, "Intel Xeon Platinum 8375C": 300.0, "Core i7-8700": 65.0}
    assert fallback.match_tdp("AMD EPYC 7763 64-Core Processor", table) == ("AMD EPYC 7763", 280.0)
    assert fallback.match_tdp("Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz", table) == (
        "Intel Xeon Platinum 8375C",
        300.0,
    )
    assert fallback.match_tdp("AMD EPYC", table) is None  # a family name alone is not a part
    assert fallback.match_tdp("", table) is None


def test_fallback_reads_proc_files(tmp_path: Path, factors: FactorSet) -> None:
    (tmp_path / "cpuinfo").write_text("model name\t: Intel(R) Core(TM) i7-8700 CPU @ 3.20GHz\nphysical id\t: 0\n")
    (tmp_path / "meminfo").write_text("MemTotal:       16777216 kB\n")
    (tmp_path / "stat").write_text("cpu  100 0 100 1000 0 0 0 0 0 0\n")
    p = fallback.probe(factors, tmp_path / "cpuinfo", tmp_path / "stat", tmp_path / "meminfo")
    assert "i7-8700" in p.sensors[0].reason
    mem = p.sensors[1]
    assert mem.reason.startswith("16.0 GB")


def test_detection_on_this_machine_is_honest(factors: FactorSet) -> None:
    det = probe_all(factors)
    backends = {p.backend for p in det.probes}
    assert {"nvml", "amdsmi", "rapl"} <= backends
    if not any(s.method == "measured" for s in det.sensors):
        assert det.method == "estimated"  # no counter: never passed off as measured
    assert NullSensor().energy_j().mid == 0.0


# -- process-scoped host model (scores stable under unrelated load) ------------------------------


def _spin(seconds: float) -> None:
    t0 = time.process_time()
    while time.process_time() - t0 < seconds:
        sum(i * i for i in range(1000))


def test_process_sensor_charges_this_process_cpu_time_by_hand(factors: FactorSet) -> None:
    from wattlens.measure.sensors.process import ProcessCpuSensor, ProcessMemorySensor, for_process

    host = fallback.probe(factors).sensors
    scoped = for_process(host)
    cpu = next(s for s in scoped if isinstance(s, ProcessCpuSensor))
    mem = next(s for s in scoped if isinstance(s, ProcessMemorySensor))
    model = next(s for s in host if isinstance(s, fallback.CpuModelSensor))
    assert cpu.kind == "cpu" and cpu.method == "estimated" and cpu.model == model.model
    c0, e0, m0 = time.process_time(), cpu.energy_j(), mem.energy_j()
    _spin(0.2)
    used = time.process_time() - c0
    e1, m1 = cpu.energy_j(), mem.energy_j()
    # One CPU-second is 1/threads of the machine: P_max / threads joules (and memory power / threads).
    per_s = model.p_max_w.mid / model.threads
    assert e1.mid - e0.mid == pytest.approx(used * per_s, rel=0.05)
    mem_model = next(s for s in host if isinstance(s, fallback.MemoryModelSensor))
    assert m1.mid - m0.mid == pytest.approx(used * mem_model.power_w.mid / model.threads, rel=0.05)
    assert e1.low - e0.low < e1.mid - e0.mid < e1.high - e0.high


def test_process_sensor_ignores_a_neighbour_and_reads_a_child_by_pid(factors: FactorSet) -> None:
    import subprocess
    import sys

    from wattlens.measure.sensors.process import for_process

    host_cpu = fallback.probe(factors).sensors[0]
    own = for_process([host_cpu])[0]
    spin = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.4: pass"
    burner = subprocess.Popen([sys.executable, "-c", spin])
    child = for_process([host_cpu], pid=burner.pid)[0]
    assert child.device == f"cpu:process-{burner.pid}"
    h0, o0 = host_cpu.energy_j().mid, own.energy_j().mid
    mine0 = time.process_time()
    c_prev = 0.0
    while burner.poll() is None:  # sleep beside the burner; read the child while it still exists
        c_prev = child.energy_j().mid
        time.sleep(0.02)
    mine = time.process_time() - mine0
    host_d, own_d = host_cpu.energy_j().mid - h0, own.energy_j().mid - o0
    per_s = host_cpu.p_max_w.mid / host_cpu.threads
    assert own_d == pytest.approx(mine * per_s, rel=0.05, abs=1e-3)  # only this process's polling
    assert host_d > own_d  # the whole-host model charged the neighbour's CPU time as well
    assert c_prev > 0  # the child's own CPU time, read from /proc/PID/stat


def test_process_cpu_time_parses_proc_stat_with_odd_names(tmp_path: Path) -> None:
    from wattlens.errors import SensorError
    from wattlens.measure.sensors.process import _TICK_S, process_cpu_s

    (tmp_path / "4242").mkdir()
    # comm may contain spaces and parentheses; utime and stime are fields 14 and 15.
    rest = "S 1 4242 4242 0 -1 4194560 100 0 0 0 250 50 7 9 20 0 3 0 100 1000 10"
    (tmp_path / "4242" / "stat").write_text(f"4242 (my (odd) name) {rest}\n")
    assert process_cpu_s(4242, tmp_path) == pytest.approx((250 + 50) * _TICK_S)
    with pytest.raises(SensorError, match="4243"):
        process_cpu_s(4243, tmp_path)


def test_for_process_keeps_counters_whole() -> None:
    from wattlens.measure.sensors.process import for_process

    gpu = nvml.probe(FakeNVML([FakeGpu("NVIDIA H100 80GB HBM3", "GPU-a", 1_000)]), env={}).sensors[0]
    assert for_process([gpu]) == (gpu,) and gpu.model == "NVIDIA H100 80GB HBM3"
