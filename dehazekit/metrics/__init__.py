"""Evaluation metrics: PSNR/SSIM, FADE and other no-reference haze/naturalness scores."""

from dehazekit.metrics.psnr_ssim import psnr, ssim

__all__ = ["psnr", "ssim"]
