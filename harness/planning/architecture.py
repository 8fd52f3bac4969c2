"""Device architecture of a hardware profile: the key that efficiencies are shared under.

Two devices of one architecture (H100 and H200: Hopper) run the same kernels, so an efficiency
calibrated on one applies to the other; across architectures it does not. Profiles not listed
fall back to their id (no sharing).
"""

from __future__ import annotations

ARCHITECTURE: dict[str, str] = {
    "nvidia-h100-sxm": "hopper",
    "nvidia-h100-pcie": "hopper",
    "nvidia-h200-sxm": "hopper",
    "nvidia-b200": "blackwell",
    "nvidia-a100-80gb-sxm": "ampere",
    "nvidia-a100-40gb-sxm": "ampere",
    "nvidia-a10g": "ampere",
    "nvidia-l4": "ada",
    "nvidia-l40s": "ada",
    "nvidia-t4": "turing",
    "amd-mi300x": "cdna3",
    "amd-mi325x": "cdna3",
    "intel-gaudi2": "gaudi2",
    "intel-gaudi3": "gaudi3",
    "intel-xeon-8480p": "sapphire-rapids",
    "intel-xeon-6980p": "granite-rapids",
}


def architecture(profile_id: str) -> str:
    """The architecture of ``profile_id`` (its own id when not listed)."""
    return ARCHITECTURE.get(profile_id, profile_id)
