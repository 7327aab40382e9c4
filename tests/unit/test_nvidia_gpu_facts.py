"""The nvidia_gpu_facts module on fake sysfs trees and a fake nvidia-smi."""

from __future__ import annotations

from pathlib import Path

import pytest

from ansible_collections.aistack.hosting.plugins.modules import nvidia_gpu_facts

# (PCI address, vendor, device, class) as sysfs shows them.
INTEL_IGPU = ("0000:00:02.0", "0x8086", "0x4680", "0x030000")
AMD_GPU = ("0000:03:00.0", "0x1002", "0x73bf", "0x030000")
NVIDIA_VGA = ("0000:01:00.0", "0x10de", "0x2204", "0x030000")
NVIDIA_VGA_AUDIO = ("0000:01:00.1", "0x10de", "0x1aef", "0x040300")
NVIDIA_3D = ("0000:41:00.0", "0x10de", "0x20b0", "0x030200")
NVIDIA_USB = ("0000:01:00.2", "0x10de", "0x1ada", "0x0c0330")
ETHERNET = ("0000:05:00.0", "0x8086", "0x1533", "0x020000")

SMI_TWO_GPUS = """\
0, NVIDIA GeForce RTX 3090, GPU-11111111-2222-3333-4444-555555555555, 550.163.01
1, NVIDIA A100-SXM4-40GB, GPU-66666666-7777-8888-9999-000000000000, 550.163.01
"""


def fake_sysfs(root: Path, devices: list[tuple[str, str, str, str]]) -> str:
    """A /sys with bus/pci/devices/<address>/{vendor,device,class}."""
    base = root / "sys" / "bus" / "pci" / "devices"
    base.mkdir(parents=True)
    for address, vendor, device, klass in devices:
        directory = base / address
        directory.mkdir()
        (directory / "vendor").write_text(vendor + "\n")
        (directory / "device").write_text(device + "\n")
        (directory / "class").write_text(klass + "\n")
    return str(root / "sys")


def fake_smi(root: Path, output: str = "", rc: int = 0, stderr: str = "") -> str:
    """An executable nvidia-smi printing ``output`` (ignores its arguments)."""
    script = root / "nvidia-smi"
    script.write_text(
        "#!/bin/sh\n"
        f"cat <<'EOF'\n{output}EOF\n"
        f"cat >&2 <<'EOF'\n{stderr}\nEOF\n"
        f"exit {rc}\n")
    script.chmod(0o755)
    return str(script)


@pytest.fixture()
def facts(run_module, tmp_path):
    def runner(devices, smi: str | None = None, check_mode: bool = False, pci_ids: str = "",
               runtime: str = "", daemon_json: str = "") -> dict:
        args = {"sysfs_root": fake_sysfs(tmp_path, devices),
                "nvidia_smi": smi or str(tmp_path / "no-such-nvidia-smi"),
                "pci_ids": pci_ids or str(tmp_path / "no-pci.ids"),
                "runtime_path": runtime or str(tmp_path / "no-nvidia-container-runtime"),
                "daemon_json": daemon_json or str(tmp_path / "no-daemon.json")}
        result = run_module(nvidia_gpu_facts, args, check_mode)
        assert result["failed"] is False
        assert result["changed"] is False
        return result
    return runner


def test_no_gpu_at_all(facts):
    result = facts([ETHERNET])
    assert result["ansible_facts"] == {
        "nvidia_toolkit_gpu_count": 0,
        "nvidia_toolkit_gpu_models": [],
        "nvidia_toolkit_gpus": [],
        "nvidia_toolkit_driver_present": False,
        "nvidia_toolkit_driver_version": "",
    }
    assert "not found" in result["driver_error"]


def test_empty_or_missing_pci_bus(run_module, tmp_path):
    result = run_module(nvidia_gpu_facts, {"sysfs_root": str(tmp_path / "nothing"),
                                           "nvidia_smi": str(tmp_path / "nvidia-smi")})
    assert result["ansible_facts"]["nvidia_toolkit_gpu_count"] == 0


def test_other_vendors_display_devices_are_not_nvidia_gpus(facts):
    result = facts([INTEL_IGPU, AMD_GPU, ETHERNET])
    assert result["ansible_facts"]["nvidia_toolkit_gpu_count"] == 0
    assert result["ansible_facts"]["nvidia_toolkit_gpu_models"] == []


def test_a_cards_audio_and_usb_functions_are_not_gpus(facts):
    result = facts([INTEL_IGPU, NVIDIA_VGA, NVIDIA_VGA_AUDIO, NVIDIA_USB])
    assert result["ansible_facts"]["nvidia_toolkit_gpu_count"] == 1
    assert result["ansible_facts"]["nvidia_toolkit_gpus"][0]["pci_address"] == "0000:01:00.0"


def test_two_gpus_with_the_driver(facts, tmp_path):
    result = facts([INTEL_IGPU, NVIDIA_VGA, NVIDIA_VGA_AUDIO, NVIDIA_3D], smi=fake_smi(tmp_path, SMI_TWO_GPUS))
    gpu_facts = result["ansible_facts"]
    assert gpu_facts["nvidia_toolkit_gpu_count"] == 2
    assert gpu_facts["nvidia_toolkit_gpu_models"] == ["NVIDIA GeForce RTX 3090", "NVIDIA A100-SXM4-40GB"]
    assert gpu_facts["nvidia_toolkit_driver_present"] is True
    assert gpu_facts["nvidia_toolkit_driver_version"] == "550.163.01"
    assert [gpu["uuid"] for gpu in gpu_facts["nvidia_toolkit_gpus"]] == [
        "GPU-11111111-2222-3333-4444-555555555555", "GPU-66666666-7777-8888-9999-000000000000"]
    assert [gpu["index"] for gpu in gpu_facts["nvidia_toolkit_gpus"]] == ["0", "1"]
    assert result["driver_error"] == ""


def test_two_gpus_in_check_mode(facts, tmp_path):
    result = facts([NVIDIA_VGA, NVIDIA_3D], smi=fake_smi(tmp_path, SMI_TWO_GPUS), check_mode=True)
    assert result["ansible_facts"]["nvidia_toolkit_gpu_count"] == 2


def test_two_gpus_without_a_driver_are_still_counted(facts):
    result = facts([NVIDIA_VGA, NVIDIA_3D])
    gpu_facts = result["ansible_facts"]
    assert gpu_facts["nvidia_toolkit_gpu_count"] == 2
    assert gpu_facts["nvidia_toolkit_gpu_models"] == ["NVIDIA device 0x2204", "NVIDIA device 0x20b0"]
    assert gpu_facts["nvidia_toolkit_driver_present"] is False
    assert gpu_facts["nvidia_toolkit_gpus"][1]["uuid"] == ""


def test_models_from_the_pci_id_database_without_a_driver(facts, tmp_path):
    pci_ids = tmp_path / "pci.ids"
    pci_ids.write_text(
        "# comment\n"
        "10de  NVIDIA Corporation\n"
        "\t2204  GA102 [GeForce RTX 3090]\n"
        "\t\t10de 1454  subsystem line, ignored\n"
        "\t20b0  GA100 [A100 SXM4 40GB]\n"
        "10df  Emulex Corporation\n"
        "\t2204  not NVIDIA\n")
    result = facts([NVIDIA_VGA, NVIDIA_3D], pci_ids=str(pci_ids))
    assert result["ansible_facts"]["nvidia_toolkit_gpu_models"] == [
        "GA102 [GeForce RTX 3090]", "GA100 [A100 SXM4 40GB]"]


def test_driver_installed_but_not_loaded(facts, tmp_path):
    message = "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver."
    result = facts([NVIDIA_VGA], smi=fake_smi(tmp_path, rc=9, stderr=message))
    assert result["ansible_facts"]["nvidia_toolkit_gpu_count"] == 1
    assert result["ansible_facts"]["nvidia_toolkit_driver_present"] is False
    assert "rc=9" in result["driver_error"] and "couldn't communicate" in result["driver_error"]


def test_smi_rows_are_ordered_by_index_and_junk_is_ignored():
    rows = nvidia_gpu_facts.parse_smi(
        "1, B, GPU-b, 550.1\nNo devices were found\n0, A, GPU-a, 550.1\n2, too, few\n")
    assert [row["name"] for row in rows] == ["A", "B"]


def test_no_toolkit_runtime_and_no_daemon_json(facts):
    result = facts([NVIDIA_VGA])
    assert result["runtime_installed"] is False
    assert result["docker_runtimes"] == []


def test_the_toolkit_runtime_and_the_runtimes_docker_declares(facts, tmp_path):
    runtime = tmp_path / "nvidia-container-runtime"
    runtime.write_text("#!/bin/sh\n")
    runtime.chmod(0o755)
    daemon = tmp_path / "daemon.json"
    daemon.write_text('{"log-driver": "local", "runtimes": {"nvidia": {"path": "nvidia-container-runtime"}, '
                      '"crun": {"path": "/usr/bin/crun"}}}')
    result = facts([NVIDIA_VGA], smi=fake_smi(tmp_path, SMI_TWO_GPUS), runtime=str(runtime), daemon_json=str(daemon))
    assert result["runtime_installed"] is True
    assert result["docker_runtimes"] == ["crun", "nvidia"]


@pytest.mark.parametrize("content", ["", "{not json", "[]", '{"runtimes": ["nvidia"]}', '{"log-driver": "local"}'])
def test_a_daemon_json_without_a_runtimes_object_declares_none(facts, tmp_path, content):
    daemon = tmp_path / "daemon.json"
    daemon.write_text(content)
    assert facts([NVIDIA_VGA], daemon_json=str(daemon))["docker_runtimes"] == []


def test_a_runtime_that_is_not_executable_is_not_installed(facts, tmp_path):
    runtime = tmp_path / "nvidia-container-runtime"
    runtime.write_text("not executable")
    runtime.chmod(0o644)
    assert facts([NVIDIA_VGA], runtime=str(runtime))["runtime_installed"] is False
