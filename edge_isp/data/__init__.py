"""Datasets for training and evaluation."""
