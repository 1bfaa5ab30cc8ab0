"""A small Vision Transformer classifier on image chips (PyTorch, CPU friendly).

:class:`ViTClassifier` follows the sklearn estimator contract: every hyper-parameter is an
``__init__`` argument, ``fit(X, y)`` takes ``X`` as ``(n, C, H, W)`` float32 chips and any labels
(ints or strings; ``classes_`` keeps them, binary works), ``predict_proba`` columns follow
``classes_``. Chips are standardised per channel with statistics learnt in ``fit`` (NaN → the
channel mean). Chips whose side is not a multiple of ``patch_size`` are zero-padded.

Training is deterministic for a given ``seed`` and ``n_threads`` (AdamW, warm-up + cosine
learning rate, optional flip/rot90 augmentation and class-balanced loss weights). The fitted
weights are kept as numpy arrays (``state_``) and the torch module is rebuilt lazily, so a
fitted classifier pickles (pickle, cloudpickle, ``mlflow.sklearn``) without torch objects.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.preprocessing import LabelEncoder
from sklearn.utils.validation import check_is_fitted

from earthops.logs import get_logger

log = get_logger(__name__)


def _torch() -> Any:
    import torch

    return torch


def _build_module(
    *,
    channels: int,
    grid: int,
    patch_size: int,
    dim: int,
    depth: int,
    heads: int,
    mlp_ratio: float,
    dropout: float,
    n_classes: int,
) -> Any:
    """The ViT: conv patch embedding, [CLS] token, learnt positions, pre-norm encoder, head."""
    torch = _torch()
    nn = torch.nn

    class _ViT(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed = nn.Conv2d(channels, dim, kernel_size=patch_size, stride=patch_size)
            self.cls = nn.Parameter(torch.zeros(1, 1, dim))
            self.pos = nn.Parameter(torch.zeros(1, grid * grid + 1, dim))
            nn.init.trunc_normal_(self.pos, std=0.02)
            nn.init.trunc_normal_(self.cls, std=0.02)
            layer = nn.TransformerEncoderLayer(
                d_model=dim,
                nhead=heads,
                dim_feedforward=max(1, int(dim * mlp_ratio)),
                dropout=dropout,
                activation="gelu",
                batch_first=True,
                norm_first=True,
            )
            self.encoder = nn.TransformerEncoder(
                layer, num_layers=depth, enable_nested_tensor=False
            )
            self.norm = nn.LayerNorm(dim)
            self.head = nn.Linear(dim, n_classes)

        def forward(self, x: Any) -> Any:
            tokens = self.embed(x).flatten(2).transpose(1, 2)  # (n, patches, dim)
            cls = self.cls.expand(tokens.shape[0], -1, -1)
            tokens = torch.cat([cls, tokens], dim=1) + self.pos
            return self.head(self.norm(self.encoder(tokens)[:, 0]))

    return _ViT()


@contextmanager
def _threads(n: int) -> Iterator[None]:
    """Run torch with ``n`` intra-op threads, restoring the previous setting afterwards."""
    torch = _torch()
    before = torch.get_num_threads()
    torch.set_num_threads(max(1, int(n)))
    try:
        yield
    finally:
        torch.set_num_threads(before)


class ViTClassifier(ClassifierMixin, BaseEstimator):
    """Vision Transformer on ``(n, C, H, W)`` chips with an sklearn interface.

    Parameters
    ----------
    patch_size: side of the square patches (tokens); chips are zero-padded to a multiple.
    dim, depth, heads, mlp_ratio, dropout: transformer width, layers, attention heads, MLP
        expansion and dropout (``dim`` must be divisible by ``heads``).
    epochs, batch_size, lr, weight_decay: AdamW training (linear warm-up, cosine decay).
    augment: random horizontal/vertical flips and (square chips) 90° rotations in training.
    class_weight: ``"balanced"`` for inverse-frequency loss weights, or None.
    label_smoothing: cross-entropy label smoothing.
    seed: seeds initialisation, shuffling, dropout and augmentation (deterministic fits).
    device: torch device ("cpu"). n_threads: torch intra-op threads during fit/predict (1:
        these small matrices gain little from more, and oversubscribed cores lose a lot).
    verbose: log the loss after each epoch.
    """

    def __init__(
        self,
        patch_size: int = 4,
        dim: int = 64,
        depth: int = 3,
        heads: int = 4,
        mlp_ratio: float = 2.0,
        dropout: float = 0.1,
        epochs: int = 12,
        batch_size: int = 128,
        lr: float = 2e-3,
        weight_decay: float = 0.05,
        augment: bool = True,
        class_weight: str | None = "balanced",
        label_smoothing: float = 0.0,
        seed: int = 42,
        device: str = "cpu",
        n_threads: int = 1,
        verbose: bool = False,
    ) -> None:
        self.patch_size = patch_size
        self.dim = dim
        self.depth = depth
        self.heads = heads
        self.mlp_ratio = mlp_ratio
        self.dropout = dropout
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.augment = augment
        self.class_weight = class_weight
        self.label_smoothing = label_smoothing
        self.seed = seed
        self.device = device
        self.n_threads = n_threads
        self.verbose = verbose

    # -- input ------------------------------------------------------------------------------
    def _check_X(self, X: Any, *, fitting: bool) -> np.ndarray:
        arr = np.asarray(X, dtype=np.float32)
        if arr.ndim != 4:
            raise ValueError(
                f"ViTClassifier expects chips shaped (n, channels, height, width), got shape "
                f"{arr.shape}"
            )
        if arr.shape[0] == 0 or min(arr.shape[2:]) < 1 or arr.shape[1] < 1:
            raise ValueError(f"ViTClassifier got an empty chip array of shape {arr.shape}")
        if not fitting and arr.shape[1:] != tuple(self.chip_shape_):
            raise ValueError(
                f"chips of shape {arr.shape[1:]} (C, H, W); the model was fitted on "
                f"{tuple(self.chip_shape_)}"
            )
        return arr

    def _standardise(self, arr: np.ndarray) -> np.ndarray:
        mean = self.channel_mean_[None, :, None, None]
        std = self.channel_std_[None, :, None, None]
        out = (arr - mean) / std
        return np.where(np.isfinite(out), out, 0.0).astype(np.float32)

    def _new_module(self) -> Any:
        _, h, w = self.chip_shape_
        side = math.ceil(max(h, w) / self.patch_size)
        return _build_module(
            channels=int(self.chip_shape_[0]),
            grid=side,
            patch_size=int(self.patch_size),
            dim=int(self.dim),
            depth=int(self.depth),
            heads=int(self.heads),
            mlp_ratio=float(self.mlp_ratio),
            dropout=float(self.dropout),
            n_classes=len(self.classes_),
        )

    def _square(self, arr: np.ndarray) -> np.ndarray:
        """Zero-pad chips to a square of side ``grid*patch`` (positions are learnt per token)."""
        side = math.ceil(max(arr.shape[2:]) / self.patch_size) * self.patch_size
        pad_h, pad_w = side - arr.shape[2], side - arr.shape[3]
        if pad_h or pad_w:
            arr = np.pad(arr, ((0, 0), (0, 0), (0, pad_h), (0, pad_w)))
        return np.ascontiguousarray(arr)

    # -- fit ---------------------------------------------------------------------------------
    def fit(self, X: Any, y: Any) -> ViTClassifier:
        """Train on chips ``X`` ``(n, C, H, W)`` and labels ``y`` (any hashable values)."""
        torch = _torch()
        if self.dim % self.heads:
            raise ValueError(f"dim ({self.dim}) must be divisible by heads ({self.heads})")
        if self.patch_size < 1:
            raise ValueError(f"patch_size must be >= 1, got {self.patch_size}")
        arr = self._check_X(X, fitting=True)
        labels = np.asarray(y)
        if labels.ndim != 1 or len(labels) != len(arr):
            raise ValueError(f"y must be 1-D with {len(arr)} labels, got shape {labels.shape}")
        self.encoder_ = LabelEncoder().fit(labels)
        self.classes_ = self.encoder_.classes_
        if len(self.classes_) < 2:
            raise ValueError("ViTClassifier needs at least two classes in y")
        codes = self.encoder_.transform(labels).astype(np.int64)
        self.chip_shape_ = tuple(int(s) for s in arr.shape[1:])
        with np.errstate(all="ignore"):
            mean = np.nanmean(arr, axis=(0, 2, 3))
            std = np.nanstd(arr, axis=(0, 2, 3))
        self.channel_mean_ = np.nan_to_num(mean).astype(np.float32)
        self.channel_std_ = np.where(np.isfinite(std) & (std > 1e-8), std, 1.0).astype(np.float32)
        data = self._square(self._standardise(arr))

        with _threads(self.n_threads):
            torch.manual_seed(self.seed)
            gen = torch.Generator().manual_seed(self.seed)
            device = torch.device(self.device)
            module = self._new_module().to(device)
            weights = None
            if self.class_weight == "balanced":
                counts = np.bincount(codes, minlength=len(self.classes_)).astype(np.float64)
                w = len(codes) / (len(counts) * np.maximum(counts, 1.0))
                weights = torch.tensor(w, dtype=torch.float32, device=device)
            elif self.class_weight is not None:
                raise ValueError(
                    f"class_weight must be 'balanced' or None, got {self.class_weight!r}"
                )
            loss_fn = torch.nn.CrossEntropyLoss(
                weight=weights, label_smoothing=float(self.label_smoothing)
            )
            opt = torch.optim.AdamW(module.parameters(), lr=self.lr, weight_decay=self.weight_decay)
            xt = torch.from_numpy(data)
            yt = torch.from_numpy(codes)
            n = len(xt)
            steps_per_epoch = max(1, math.ceil(n / self.batch_size))
            total = max(1, steps_per_epoch * int(self.epochs))
            warmup = max(1, total // 10)
            sched = torch.optim.lr_scheduler.LambdaLR(
                opt,
                lambda s: (
                    (s + 1) / warmup
                    if s < warmup
                    else 0.5 * (1 + math.cos(math.pi * (s - warmup) / max(1, total - warmup)))
                ),
            )
            square = data.shape[2] == data.shape[3]
            module.train()
            for epoch in range(int(self.epochs)):
                order = torch.randperm(n, generator=gen)
                running = 0.0
                for start in range(0, n, self.batch_size):
                    idx = order[start : start + self.batch_size]
                    xb = xt[idx]
                    if self.augment:
                        xb = _augment(xb, gen, square)
                    xb, yb = xb.to(device), yt[idx].to(device)
                    opt.zero_grad(set_to_none=True)
                    loss = loss_fn(module(xb), yb)
                    loss.backward()
                    torch.nn.utils.clip_grad_norm_(module.parameters(), 1.0)
                    opt.step()
                    sched.step()
                    running += float(loss.detach()) * len(idx)
                if self.verbose:
                    log.info("vit.epoch", epoch=epoch + 1, loss=round(running / n, 4))
        self.state_ = {k: v.detach().cpu().numpy().copy() for k, v in module.state_dict().items()}
        self._module_cache = module.eval()
        self.n_features_in_ = int(np.prod(self.chip_shape_))
        return self

    # -- predict ----------------------------------------------------------------------------
    def _module(self) -> Any:
        module = getattr(self, "_module_cache", None)
        if module is None:
            torch = _torch()
            module = self._new_module()
            module.load_state_dict(
                {k: torch.from_numpy(np.array(v)) for k, v in self.state_.items()}
            )
            module.eval()
            self._module_cache = module
        return module

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities ``(n, len(classes_))``, columns in ``classes_`` order."""
        torch = _torch()
        check_is_fitted(self, "state_")
        data = self._square(self._standardise(self._check_X(X, fitting=False)))
        module = self._module()
        device = torch.device(self.device)
        module.to(device)
        out = []
        with _threads(self.n_threads), torch.no_grad():
            for start in range(0, len(data), 1024):
                xb = torch.from_numpy(data[start : start + 1024]).to(device)
                out.append(torch.softmax(module(xb), dim=1).cpu().numpy())
        return np.concatenate(out, axis=0).astype(np.float64)

    def predict(self, X: Any) -> np.ndarray:
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("_module_cache", None)
        return state

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        return tags


def _augment(xb: Any, gen: Any, square: bool) -> Any:
    """Random flips (per sample) and, for square chips, a random multiple of 90° per batch."""
    torch = _torch()
    n = xb.shape[0]
    flip_h = torch.rand(n, generator=gen) < 0.5
    flip_v = torch.rand(n, generator=gen) < 0.5
    xb = torch.where(flip_h[:, None, None, None], xb.flip(3), xb)
    xb = torch.where(flip_v[:, None, None, None], xb.flip(2), xb)
    if square:
        k = int(torch.randint(0, 4, (1,), generator=gen))
        if k:
            xb = torch.rot90(xb, k, dims=(2, 3))
    return xb
