"""Clustering one hidden layer's neurons pooled over N students (scipy average linkage, L2).

A teacher neuron shows up in most students, so its copies form a tight cluster of about N
members; neurons that only fit one student's idiosyncrasies do not. The tree is cut at the
height that yields the most clusters of at least gamma*N members, and clusters whose members
point in different directions (median cosine distance above 1 - cos(pi / beta)) are dropped.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.cluster.hierarchy import fcluster, linkage
from scipy.spatial.distance import pdist, squareform


def min_cluster_size(students: int, gamma: float) -> int:
    """Smallest cluster kept: int(gamma * N), which must be at least 2 to mean agreement."""
    size = int(gamma * students)
    if size < 2:
        raise ValueError(f"gamma * N = {gamma} * {students} must be at least 2")
    return size


def big_cluster_counts(tree: np.ndarray, min_size: int) -> np.ndarray:
    """For each merge height of the tree, the number of clusters of at least `min_size` members."""
    counts = []
    for height in tree[:, 2]:
        labels = fcluster(tree, height, criterion="distance")
        counts.append(int((np.bincount(labels) >= min_size).sum()))
    return np.array(counts)


def best_cut(tree: np.ndarray, min_size: int, max_height: float = math.inf) -> float:
    """The highest merge height that still gives the most big clusters: the last height of the first
    run of consecutive merges that reach the maximum count, among merges no higher than `max_height`."""
    counts = big_cluster_counts(tree, min_size)
    counts[tree[:, 2] > max_height] = -1
    index = int(np.argmax(counts))
    while index + 1 < len(counts) and counts[index + 1] == counts[index]:
        index += 1
    return float(tree[index, 2])


def alignment_tolerance(beta: float) -> float:
    """Largest median cosine distance of a kept cluster: 1 - cos(pi / beta) (beta 6 means 30 degrees)."""
    return 1.0 - math.cos(math.pi / beta)


def merge_limit(vectors: np.ndarray, beta: float) -> float:
    """Highest merge worth cutting at: vectors of length r at cosine distance c lie r*sqrt(2c) apart, so
    a merge higher than that (r the median length) joins groups too far apart on average for the
    alignment filter to keep. Without this limit the neurons that fit no teacher neuron, scattered
    over the sphere, form ever more big loose clusters high in the tree and win the count."""
    return float(np.median(np.linalg.norm(vectors, axis=1)) * math.sqrt(2.0 * alignment_tolerance(beta)))


def merge_duplicates(vectors: np.ndarray, clusters: list[np.ndarray], tolerance: float) -> list[np.ndarray]:
    """Clusters whose mean directions lie within `tolerance` (cosine distance) of each other, merged,
    closest pair first. Students four times wider than the teacher hold two or three copies of a
    neuron each, and the cut, which counts clusters, splits such a group in two whenever both halves
    are big enough; two halves of one neuron are far closer to each other than the alignment filter
    lets a cluster's own members be."""
    clusters = list(clusters)
    while len(clusters) > 1:
        means = np.array([vectors[members].mean(0) for members in clusters])
        distance = squareform(pdist(means, metric="cosine"))
        np.fill_diagonal(distance, np.inf)
        first, second = np.unravel_index(np.argmin(distance), distance.shape)
        if distance[first, second] > tolerance:
            break
        merged = np.concatenate([clusters[first], clusters[second]])
        clusters = [members for index, members in enumerate(clusters) if index not in (first, second)] + [merged]
    return clusters


def cluster_neurons(vectors: np.ndarray, students: int, gamma: float, beta: float) -> list[np.ndarray]:
    """Member indices (rows of `vectors`) of each kept cluster (duplicates merged), largest first."""
    min_size = min_cluster_size(students, gamma)
    tree = linkage(vectors, method="average", metric="euclidean")
    labels = fcluster(tree, best_cut(tree, min_size, merge_limit(vectors, beta)), criterion="distance")
    clusters = []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        if len(members) < min_size:
            continue
        if np.median(pdist(vectors[members], metric="cosine")) > alignment_tolerance(beta):
            continue
        clusters.append(members)
    return sorted(merge_duplicates(vectors, clusters, alignment_tolerance(beta)), key=len, reverse=True)
