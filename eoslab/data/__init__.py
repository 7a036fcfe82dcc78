"""Datasets: digits (default, ships with scikit-learn), CIFAR-10, MNIST and
Fashion-MNIST (standard files on disk), and synthetic data.

>>> from eoslab.data import load_dataset
>>> ds = load_dataset("digits")            # x_train float32 [1500, 64], y_train one-hot [1500, 10]
>>> ds = load_dataset("cifar10-5k", data_dir="~/data")   # first 5000 CIFAR-10 images (Cohen et al. 2021)
"""
from eoslab.data import cifar10, digits, mnist, synthetic  # noqa: F401  (registers the loaders)
from eoslab.data.base import (Dataset, DatasetSpec, available_datasets, check_dataset_name, load_dataset,
                              register_dataset)
from eoslab.data.cifar10 import load_cifar10
from eoslab.data.digits import load_digits
from eoslab.data.mnist import load_fashion_mnist, load_mnist, read_idx
from eoslab.data.synthetic import gaussian_classes, teacher_student

__all__ = [
    "Dataset", "DatasetSpec", "available_datasets", "check_dataset_name", "load_dataset", "register_dataset",
    "load_cifar10", "load_digits", "load_mnist", "load_fashion_mnist", "read_idx",
    "gaussian_classes", "teacher_student",
]
