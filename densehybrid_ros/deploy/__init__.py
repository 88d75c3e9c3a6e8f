"""Deployment: preprocessing, exported graphs and their cache, int8, runtimes, the Segmenter.

Layers, lowest first (each imports only those before it): ``runtimes`` (the table of runtimes
and precisions), ``preprocess`` (images to a batch), ``graph`` (the exportable frame graph and
its writers), ``quantize`` (NNCF int8), ``artifacts`` (artifact folders, their cache and
checks), ``backends`` (a batch to labels and score on one runtime), ``segmenter`` (the facade).
"""
