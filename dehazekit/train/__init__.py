"""Supervised pretraining on synthetic haze, with optional BILD patch reweighting."""

from dehazekit.train.pretrain import PretrainConfig, PretrainResult, pretrain

__all__ = ["PretrainConfig", "PretrainResult", "pretrain"]
