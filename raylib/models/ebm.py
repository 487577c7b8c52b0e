"""Energy-based value model: an MLP from a state embedding to an energy (lower = more provable).

A saved head records the encoder fingerprint it was trained on; loading it for another fingerprint is
refused, because embeddings from another model, adapter, dtype or pooling are not the same space.
"""

from __future__ import annotations

import json
from pathlib import Path


class FingerprintMismatch(ValueError):
    pass


def build_head(dim: int, hidden: int = 512, layers: int = 2):
    import torch.nn as nn

    mods, width = [], dim
    for _ in range(layers):
        mods += [nn.Linear(width, hidden), nn.GELU()]
        width = hidden
    mods.append(nn.Linear(width, 1))
    return nn.Sequential(*mods)


class EBM:
    def __init__(self, head, encoder_fingerprint: str, meta: dict | None = None):
        self.head = head.eval()
        self.encoder_fingerprint = encoder_fingerprint
        self.meta = meta or {}

    def energies(self, embeddings, fingerprint: str) -> list[float]:
        import torch

        if fingerprint != self.encoder_fingerprint:
            raise FingerprintMismatch(f"EBM trained on embeddings {self.encoder_fingerprint!r} refuses embeddings "
                                      f"{fingerprint!r} (model, adapter, dtype and pooling must match)")
        p = next(self.head.parameters())
        with torch.inference_mode():
            x = torch.as_tensor(embeddings, dtype=p.dtype, device=p.device)
            return self.head(x).squeeze(-1).float().cpu().tolist()

    def save(self, path: str | Path) -> Path:
        import torch

        p = Path(path)
        p.mkdir(parents=True, exist_ok=True)
        first = self.head[0]
        meta = {**self.meta, "encoder_fingerprint": self.encoder_fingerprint, "dim": first.in_features,
                "hidden": first.out_features, "layers": sum(1 for m in self.head if hasattr(m, "weight")) - 1}
        torch.save(self.head.state_dict(), p / "ebm.pt")
        (p / "ebm.json").write_text(json.dumps(meta, indent=2))
        return p

    @classmethod
    def load(cls, path: str | Path, device: str = "cpu") -> "EBM":
        import torch

        p = Path(path)
        if not (p / "ebm.json").is_file() or not (p / "ebm.pt").is_file():
            raise FileNotFoundError(f"{p}: not an EBM directory (expected ebm.json and ebm.pt)")
        meta = json.loads((p / "ebm.json").read_text())
        head = build_head(meta["dim"], meta["hidden"], meta["layers"])
        head.load_state_dict(torch.load(p / "ebm.pt", map_location=device, weights_only=True))
        return cls(head.to(device), meta["encoder_fingerprint"], meta)
