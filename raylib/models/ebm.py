"""Energy-based value model: an MLP from a state embedding to an energy (lower = more provable).

A saved head records the encoder fingerprint it was trained on; loading it for another fingerprint is
refused, because embeddings from another model, adapter, dtype or pooling are not the same space.
"""

from __future__ import annotations

import json
from pathlib import Path


class FingerprintMismatch(ValueError):
    pass


def build_head(dim: int, hidden: int = 512, layers: int = 2, hidden_sizes: list[int] | None = None,
               dropout: float = 0.0):
    """MLP ``dim -> hidden_sizes... -> 1`` with GELU (and dropout after each hidden layer when > 0).

    ``hidden_sizes`` overrides ``hidden`` x ``layers``. Dropout acts in training only (``EBM`` puts
    the head in eval mode).
    """
    import torch.nn as nn

    sizes = list(hidden_sizes) if hidden_sizes is not None else [hidden] * layers
    mods, width = [], dim
    for h in sizes:
        mods += [nn.Linear(width, h), nn.GELU()]
        if dropout > 0:
            mods.append(nn.Dropout(dropout))
        width = h
    mods.append(nn.Linear(width, 1))
    return nn.Sequential(*mods)


def head_shape(head) -> dict:
    """``dim``, ``hidden_sizes`` and ``dropout`` of a head made by ``build_head`` (what ``load`` rebuilds)."""
    import torch.nn as nn

    linears = [m for m in head if isinstance(m, nn.Linear)]
    drops = [m.p for m in head if isinstance(m, nn.Dropout)]
    return {"dim": linears[0].in_features, "hidden_sizes": [m.out_features for m in linears[:-1]],
            "dropout": drops[0] if drops else 0.0}


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
        shape = head_shape(self.head)
        meta = {**self.meta, "encoder_fingerprint": self.encoder_fingerprint, **shape,
                "hidden": shape["hidden_sizes"][0] if shape["hidden_sizes"] else 0,
                "layers": len(shape["hidden_sizes"])}
        torch.save(self.head.state_dict(), p / "ebm.pt")
        (p / "ebm.json").write_text(json.dumps(meta, indent=2))
        return p

    @classmethod
    def load(cls, path: str | Path, device: str = "cpu") -> "EBM":
        import torch

        p = Path(path)
        if not (p / "ebm.json").is_file() or not (p / "ebm.pt").is_file():
            raise FileNotFoundError(f"{p}: not an EBM directory (expected ebm.json and ebm.pt; train one with "
                                    "python -m jobs.train_ebm)")
        try:
            meta = json.loads((p / "ebm.json").read_text())
            head = build_head(meta["dim"], meta.get("hidden", 0), meta.get("layers", 0),
                              hidden_sizes=meta.get("hidden_sizes"), dropout=meta.get("dropout", 0.0))
            fingerprint = meta["encoder_fingerprint"]
        except (ValueError, KeyError, TypeError) as e:
            raise FileNotFoundError(f"{p / 'ebm.json'}: unreadable EBM metadata ({e!r}); train the EBM again "
                                    "with python -m jobs.train_ebm") from None
        head.load_state_dict(torch.load(p / "ebm.pt", map_location=device, weights_only=True))
        return cls(head.to(device), fingerprint, meta)
