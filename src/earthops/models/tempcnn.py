"""TempCNN (Pelletier et al. 2019): 1-D convolutions over the dates of each time series.

:class:`TempCNNClassifier` is an sklearn classifier on flat time-major rows whose first
``n_dates × n_channels`` columns are the (gap-filled) series. The remaining columns (e.g. the
phenology statistics of :class:`~earthops.features.timeseries.TimeSeriesFeatures`) are ignored,
or with ``with_features`` standardised and fed through a dense branch joined to the flattened
convolution output (a hybrid of TempCNN and an MLP on the features). It is a seed ensemble:
``n_members`` nets with different seeds (initialisation, batch order, dropout, augmentation)
are trained on the same data and their class probabilities averaged.
Training: AdamW with a one-cycle learning-rate schedule, label smoothing, and optional
augmentation of the standardised series (random time shift by up to ``shift`` dates with edge
padding, per-sample gain ``scale``, Gaussian ``jitter``). Deterministic per ``seed`` on CPU; the
trained weights are stored as numpy arrays, so the fitted model pickles without torch objects.
"""

from __future__ import annotations

import inspect
from functools import cache
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.exceptions import NotFittedError

from earthops.models.vit import _threads

#: seed offset between ensemble members (member i trains with ``seed + i * MEMBER_SEED_STEP``)
MEMBER_SEED_STEP = 1000


class TempCNNClassifier(ClassifierMixin, BaseEstimator):
    """A seed ensemble of TempCNNs over the raw series at the start of each row.

    Channels are standardised with training statistics (mean/std per channel over samples
    and dates), feature columns per column (clipped to ±5); NaNs become 0. Member ``i`` trains
    with seed ``seed + i * MEMBER_SEED_STEP``, so member 0 is the single net of ``seed``.
    """

    def __init__(
        self,
        n_dates: int = 23,
        n_channels: int = 8,
        filters: int = 64,
        hidden: int = 256,
        kernel: int = 5,
        dropout: float = 0.2,
        epochs: int = 60,
        batch_size: int = 32,
        lr: float = 3e-3,
        weight_decay: float = 1e-4,
        label_smoothing: float = 0.05,
        shift: int = 0,
        scale: float = 0.0,
        jitter: float = 0.0,
        n_members: int = 1,
        with_features: bool = False,
        seed: int = 42,
        n_threads: int = 1,
    ) -> None:
        self.n_dates = n_dates
        self.n_channels = n_channels
        self.filters = filters
        self.hidden = hidden
        self.kernel = kernel
        self.dropout = dropout
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.label_smoothing = label_smoothing
        self.shift = shift
        self.scale = scale
        self.jitter = jitter
        self.n_members = n_members
        self.with_features = with_features
        self.seed = seed
        self.n_threads = n_threads

    # -- data ----------------------------------------------------------------------------------
    def _inputs(self, X: Any, fitting: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Standardised ``(n, n_channels, n_dates)`` series and ``(n, n_extra)`` features
        (``n_extra`` = 0 without ``with_features``), float32, NaN → 0."""
        values = np.asarray(X, dtype=np.float32)
        width = self.n_dates * self.n_channels
        if values.ndim != 2 or values.shape[1] < width:
            raise ValueError(f"expected >= {width} columns (raw series first), got {values.shape}")
        cube = values[:, :width].reshape(len(values), self.n_dates, self.n_channels)
        cube = cube.transpose(0, 2, 1)
        extra = values[:, width:] if self.with_features else values[:, :0]
        if fitting:
            self.mean_ = np.nanmean(cube, axis=(0, 2), keepdims=True).astype(np.float32)
            std = np.nanstd(cube, axis=(0, 2), keepdims=True)
            self.std_ = np.where(std > 1e-8, std, 1.0).astype(np.float32)
            self.feature_mean_ = np.nanmean(extra, axis=0).astype(np.float32)
            std = np.nanstd(extra, axis=0)
            self.feature_std_ = np.where(std > 1e-8, std, 1.0).astype(np.float32)
        if extra.shape[1] != self._n_extra():
            raise ValueError(f"expected {width + self._n_extra()} columns, got {values.shape[1]}")
        series = (cube - self.mean_) / self.std_
        feats = np.clip((extra - self.feature_mean_) / self.feature_std_, -5.0, 5.0)
        clean = [
            np.ascontiguousarray(np.nan_to_num(a, nan=0.0, posinf=0.0, neginf=0.0))
            for a in (series, feats)
        ]
        return clean[0], clean[1]

    def _n_extra(self) -> int:
        return len(getattr(self, "feature_mean_", ()))

    def _augment(self, xb: Any, gen: Any) -> Any:
        """Random time shift (edge-padded), per-sample gain and Gaussian jitter of a batch."""
        import torch

        if self.shift:
            s = torch.randint(-self.shift, self.shift + 1, (len(xb),), generator=gen)
            t = torch.arange(self.n_dates)
            idx = (t[None, :] - s[:, None]).clamp(0, self.n_dates - 1)
            xb = torch.gather(xb, 2, idx[:, None, :].expand(-1, xb.shape[1], -1))
        if self.scale:
            xb = xb * (1 + self.scale * torch.randn(len(xb), 1, 1, generator=gen))
        if self.jitter:
            xb = xb + self.jitter * torch.randn(xb.shape, generator=gen)
        return xb

    # -- network -------------------------------------------------------------------------------
    def _encoder(self) -> tuple[Any, int]:
        """Three conv blocks over the dates, flattened: ``(n, n_channels, n_dates) → (n, width)``."""
        import torch

        nn = torch.nn
        layers: list[Any] = []
        for i in range(3):
            layers += [
                nn.Conv1d(
                    self.n_channels if i == 0 else self.filters,
                    self.filters,
                    self.kernel,
                    padding=self.kernel // 2,
                ),
                nn.BatchNorm1d(self.filters),
                nn.ReLU(),
                nn.Dropout(self.dropout),
            ]
        return nn.Sequential(*layers, nn.Flatten()), self.filters * self.n_dates

    def _net(self, n_classes: int) -> Any:
        """The series encoder (+ the dense feature branch) → dense head."""
        import torch

        nn = torch.nn
        encoder, width = self._encoder()
        branch = None
        n_extra = self._n_extra()
        if n_extra:
            branch_width = max(1, self.hidden // 2)
            branch = nn.Sequential(
                nn.Linear(n_extra, branch_width),
                nn.BatchNorm1d(branch_width),
                nn.ReLU(),
                nn.Dropout(self.dropout),
            )
            width += branch_width
        head = nn.Sequential(
            nn.Linear(width, self.hidden),
            nn.BatchNorm1d(self.hidden),
            nn.ReLU(),
            nn.Dropout(self.dropout + 0.1),
            nn.Linear(self.hidden, n_classes),
        )
        return _module_class()(encoder, branch, head)

    def _fit_member(self, xt: Any, ft: Any, yt: Any, seed: int) -> dict[str, np.ndarray]:
        import torch

        torch.manual_seed(seed)
        gen = torch.Generator().manual_seed(seed)
        net = self._net(len(self.classes_))
        opt = torch.optim.AdamW(net.parameters(), lr=self.lr / 3, weight_decay=self.weight_decay)
        per_epoch = int(np.ceil(len(yt) / self.batch_size))
        sched = torch.optim.lr_scheduler.OneCycleLR(
            opt, self.lr, total_steps=max(1, self.epochs * per_epoch)
        )
        net.train()
        for _ in range(self.epochs):
            order = torch.randperm(len(yt), generator=gen)
            for start in range(0, len(yt), self.batch_size):
                idx = order[start : start + self.batch_size]
                if len(idx) > 1:  # batch norm needs two samples
                    opt.zero_grad(set_to_none=True)
                    loss = torch.nn.functional.cross_entropy(
                        net(self._augment(xt[idx], gen), ft[idx]),
                        yt[idx],
                        label_smoothing=self.label_smoothing,
                    )
                    loss.backward()
                    opt.step()
                sched.step()
        return {k: v.detach().numpy().copy() for k, v in net.state_dict().items()}

    # -- sklearn -------------------------------------------------------------------------------
    def fit(self, X: Any, y: Any) -> TempCNNClassifier:
        import torch

        if self.n_members < 1:
            raise ValueError(f"n_members must be >= 1, got {self.n_members}")
        series, feats = self._inputs(X, fitting=True)
        self.classes_, codes = np.unique(np.asarray(y), return_inverse=True)
        xt, ft = torch.from_numpy(series), torch.from_numpy(feats)
        yt = torch.from_numpy(codes.astype(np.int64))
        with _threads(self.n_threads):
            self.states_ = [
                self._fit_member(xt, ft, yt, self.seed + i * MEMBER_SEED_STEP)
                for i in range(self.n_members)
            ]
        return self

    def member_probas(self, X: Any) -> np.ndarray:
        """``(n_members, n, n_classes)`` class probabilities of each ensemble member."""
        import torch

        states = self._states()
        series, feats = self._inputs(X)
        out = []
        with _threads(self.n_threads), torch.no_grad():
            for state in states:
                net = self._net(len(self.classes_))
                net.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in state.items()})
                net.eval()
                out.append(
                    np.concatenate(
                        [
                            torch.softmax(
                                net(
                                    torch.from_numpy(series[i : i + 4096]),
                                    torch.from_numpy(feats[i : i + 4096]),
                                ),
                                dim=1,
                            ).numpy()
                            for i in range(0, len(series), 4096)
                        ]
                    )
                )
        return np.stack(out).astype(np.float64)

    def predict_proba(self, X: Any) -> np.ndarray:
        """Mean class probabilities of the ensemble members."""
        return self.member_probas(X).mean(axis=0)

    def predict(self, X: Any) -> np.ndarray:
        proba = self.predict_proba(X)  # first: an unfitted model has no classes_
        return self.classes_[np.argmax(proba, axis=1)]

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Unpickle; a single-net pickle of an older version (``state_``, a flat
        ``nn.Sequential``) gets the new parameters' defaults and its weights renamed."""
        params = inspect.signature(type(self).__init__).parameters.values()
        state = {**{p.name: p.default for p in params if p.name != "self"}, **state}
        if "state_" in state and "states_" not in state:
            n_conv = 12  # three blocks of conv, batch norm, ReLU, dropout; then Flatten
            old = state.pop("state_")
            renamed = {}
            for key, value in old.items():
                index, rest = key.split(".", 1)
                i = int(index)
                name = f"conv.{i}" if i < n_conv else f"head.{i - n_conv - 1}"
                renamed[f"{name}.{rest}"] = value
            state["states_"] = [renamed]
            state.setdefault("feature_mean_", np.zeros(0, np.float32))
            state.setdefault("feature_std_", np.ones(0, np.float32))
        super().__setstate__(state)

    def _states(self) -> list[dict[str, np.ndarray]]:
        states = getattr(self, "states_", None)
        if not states:
            raise NotFittedError(f"{type(self).__name__} is not fitted")
        return list(states)


@cache
def _module_class() -> type:
    """The torch module (defined lazily so importing this module does not import torch)."""
    import torch

    class TempCNNNet(torch.nn.Module):
        """The series encoder (+ a dense branch on the features) → dense head."""

        def __init__(self, conv: Any, branch: Any, head: Any) -> None:
            super().__init__()
            self.conv, self.branch, self.head = conv, branch, head

        def forward(self, series: Any, feats: Any) -> Any:
            out = self.conv(series)
            if self.branch is not None:
                out = torch.cat([out, self.branch(feats)], dim=1)
            return self.head(out)

    return TempCNNNet
