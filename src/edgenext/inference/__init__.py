"""Inference with trained models: loading a checkpoint for evaluation, prediction and export.

``classify``: a classifier (any weights format), top-1 on an image folder, top-k of images.
``dense``: a detector or segmenter of ``edgenext train``, box mAP / mIoU, drawn predictions.
"""
