"""The audit's core on planted data: copies across splits, flipped labels, and clean data.

Features here are synthetic (class centres plus noise, copies as a feature plus a little noise),
so these tests measure the search, the thresholds and the classifier, fast; the perceptual hash
is tested on real encoded images, and `tests/trainer/embed_test.py` goes through a real base.
"""

import io

import numpy as np
import pytest
from PIL import Image

from components.data_audit import hashing, mislabels, neighbours
from components.data_audit.audit import AuditImages, AuditSettings, run_audit

CLASSES = ("cat", "dog", "fox")
DIM = 64


def _clean(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """`count` images' features in three classes: a class centre plus noise as large as it, so
    two images of a class are alike (cosine about 0.3) but never copies."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(len(CLASSES), DIM))
    labels = rng.integers(0, len(CLASSES), count)
    features = centres[labels] + rng.normal(scale=1.5, size=(count, DIM))
    return features.astype(np.float32), labels


def _images(features, labels, splits, digests=None, hashes=None, colours=None) -> AuditImages:
    files = [f"{CLASSES[label]}/img{i:04d}.jpg" for i, label in enumerate(labels)]
    digests = digests or [f"digest-{i}" for i in range(len(labels))]
    return AuditImages(files, splits, np.asarray(labels), digests, features, hashes, colours)


def _planted(seed: int = 0):
    """400 train and 100 eval images; 30 eval images are copies of train ones (10 byte-exact,
    20 re-encoded or shifted: the feature plus noise), 20 train labels flipped."""
    features, labels = _clean(500, seed)
    rng = np.random.default_rng(seed + 1)
    splits = ["train"] * 400 + ["eval"] * 100
    digests = [f"digest-{i}" for i in range(500)]
    sources = rng.choice(400, 30, replace=False)
    leaked = list(range(400, 430))
    for eval_row, source in zip(leaked, sources, strict=True):
        labels[eval_row] = labels[source]
        if eval_row < 410:
            features[eval_row] = features[source]
            digests[eval_row] = digests[source]
        else:
            noise = rng.normal(scale=0.15 * np.linalg.norm(features[source]) / np.sqrt(DIM),
                               size=DIM)
            features[eval_row] = features[source] + noise
    flipped = rng.choice(np.setdiff1d(np.arange(400), sources), 20, replace=False)
    given = labels.copy()
    given[flipped] = (labels[flipped] + rng.integers(1, len(CLASSES), 20)) % len(CLASSES)
    images = _images(features, given, splits, digests)
    leaks = {(images.files[e], images.files[s]) for e, s in zip(leaked, sources, strict=True)}
    return images, leaks, {images.files[i]: CLASSES[labels[i]] for i in flipped}


def test_planted_leaks_duplicates_and_flipped_labels_are_found():
    images, leaks, flipped = _planted()
    found = run_audit(images, CLASSES)
    found_leaks = {(leak["eval_file"], leak["train_file"]) for leak in found["leaks"]}
    # The bars are the (90% of leaks, 70% of flips in the top 2x), with margin.
    assert len(found_leaks & leaks) >= 0.9 * len(leaks) + 2
    assert len(found_leaks - leaks) <= 2
    top = [s["file"] for s in found["suspected_mislabels"][:2 * len(flipped)]]
    assert len(set(top) & set(flipped)) >= 0.7 * len(flipped) + 3
    assert found["images"] == {"train": 400, "eval": 100}
    kinds = [g["kind"] for g in found["duplicates"]]
    assert kinds.count("exact") >= 9 and kinds.count("near") >= 18
    for group in found["duplicates"]:
        assert len(group["files"]) >= 2
        assert group["similarity"] >= AuditSettings().hash_similarity
    exact = [set(g["files"]) for g in found["duplicates"] if g["kind"] == "exact"]
    byte_copies = [pair for pair in leaks if images.digests[images.files.index(pair[0])]
                   == images.digests[images.files.index(pair[1])]]
    assert len(byte_copies) == 10
    assert all(any(set(pair) <= group for group in exact) for pair in byte_copies)


def test_mislabel_entries_name_given_and_suggested_class_most_suspect_first():
    images, _, flipped = _planted(seed=3)
    suspects = run_audit(images, CLASSES)["suspected_mislabels"]
    scores = [s["score"] for s in suspects]
    assert scores == sorted(scores, reverse=True)
    for suspect in suspects:
        assert suspect["given"] in CLASSES and suspect["suggested"] in CLASSES
        assert suspect["given"] != suspect["suggested"]
        assert 0.0 <= suspect["score"] <= 1.0
    # A flipped image's suggestion is mostly its true class.
    right = [s["suggested"] == flipped[s["file"]] for s in suspects if s["file"] in flipped]
    assert sum(right) >= 0.7 * len(flipped)


def test_clean_data_raises_few_alarms():
    features, labels = _clean(500, seed=7)
    found = run_audit(_images(features, labels, ["train"] * 400 + ["eval"] * 100), CLASSES)
    assert found["leaks"] == [] and found["duplicates"] == []
    assert found["mislabel_check"]["judged"]
    assert len(found["suspected_mislabels"]) <= 10  # 2% of the images


def test_an_eval_copy_in_eval_alone_is_a_duplicate_not_a_leak():
    features, labels = _clean(60, seed=2)
    features[59] = features[58]
    digests = [f"d{i}" for i in range(59)] + ["d58"]
    found = run_audit(_images(features, labels, ["train"] * 50 + ["eval"] * 10, digests),
                      CLASSES)
    assert found["leaks"] == []
    assert found["duplicates"] == [{"files": sorted([f"{CLASSES[labels[58]]}/img0058.jpg",
                                                     f"{CLASSES[labels[59]]}/img0059.jpg"]),
                                    "kind": "exact", "similarity": 1.0}]


def test_the_hash_confirms_a_pair_the_features_leave_in_doubt():
    features, labels = _clean(40, seed=4)
    features[39] = features[38] + np.random.default_rng(0).normal(scale=1.0, size=DIM)
    pair = neighbours.normalized(features[38:40])
    similarity = float(pair[0] @ pair[1])
    settings = AuditSettings(near_similarity=0.99, hash_similarity=similarity - 0.01)
    far = np.random.default_rng(1).integers(0, 256, (40, 8), dtype=np.uint8)
    near = far.copy()
    near[39] = near[38]
    splits = ["train"] * 39 + ["eval"]
    without = run_audit(_images(features, labels, splits, hashes=far), CLASSES, settings)
    with_hash = run_audit(_images(features, labels, splits, hashes=near), CLASSES, settings)
    assert without["leaks"] == []
    assert [leak["train_file"] for leak in with_hash["leaks"]] == [
        f"{CLASSES[labels[38]]}/img0038.jpg"]


def test_a_class_too_small_to_hold_out_gets_no_mislabel_verdicts():
    features, labels = _clean(30, seed=5)
    labels[:] = 0
    labels[0] = 1
    assert mislabels.usable_folds(labels, 5) == 0
    assert run_audit(_images(features, labels, ["train"] * 30), CLASSES)["suspected_mislabels"] \
        == []


def test_fields_of_different_lengths_are_refused():
    with pytest.raises(ValueError, match="differ in length"):
        AuditImages(["a"], ["train", "eval"], np.zeros(1), ["d"], np.zeros((1, 4)))


def test_the_inverted_index_in_principal_components_finds_copies_among_many():
    rng = np.random.default_rng(0)
    width = neighbours.SEARCH_DIMS + 32
    vectors = neighbours.normalized(rng.normal(size=(neighbours.EXACT_MAX + 500, width)))
    vectors[-50:] = neighbours.normalized(vectors[:50] + rng.normal(scale=0.02,
                                                                    size=(50, width)))
    space = neighbours.search_space(vectors)
    assert space.shape == (len(vectors), neighbours.SEARCH_DIMS)
    assert hasattr(neighbours.build_index(space), "nprobe")  # the inverted-file index
    pairs = neighbours.similar_pairs(vectors, 2, 0.9, space)
    # Each planted copy is found with its source, its similarity the exact one, nothing else.
    planted = {(i, len(vectors) - 50 + i) for i in range(50)}
    assert len({(i, j) for i, j, _ in pairs} & planted) >= 48
    assert len(pairs) <= 52
    for i, j, sim in pairs:
        assert sim == pytest.approx(float(vectors[i] @ vectors[j]), abs=1e-5)


def _encoded(pixels: np.ndarray, fmt: str = "PNG", **options) -> bytes:
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, fmt, **options)
    return out.getvalue()


def _picture(seed: int, size: int = 64) -> np.ndarray:
    """A smooth random picture: blobs of colour, as photos are smooth at this scale."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
    return np.asarray(Image.fromarray(small).resize((size, size), Image.Resampling.BICUBIC))


def test_perceptual_hash_is_close_for_copies_and_far_for_other_pictures():
    picture = _picture(0)
    original = hashing.perceptual_hash(_encoded(picture))
    copies = [
        _encoded(picture, "JPEG", quality=60),  # re-encoded
        _encoded(np.asarray(Image.fromarray(picture).resize((48, 48))), "PNG"),  # resized
        _encoded(np.roll(picture, 2, axis=1)),  # shifted by 2 pixels
        _encoded(np.clip(picture.astype(int) + 20, 0, 255).astype(np.uint8)),  # brighter
    ]
    distances = [hashing.hamming(original, hashing.perceptual_hash(c)) for c in copies]
    others = [hashing.hamming(original, hashing.perceptual_hash(_encoded(_picture(s))))
              for s in range(1, 21)]
    assert max(distances) <= AuditSettings().hash_distance - 2
    assert min(others) > AuditSettings().hash_distance + 4
    assert hashing.byte_digest(copies[0]) != hashing.byte_digest(_encoded(picture))


def test_perceptual_hash_refuses_bytes_that_are_no_image():
    with pytest.raises(ValueError, match="does not decode"):
        hashing.perceptual_hash(b"not an image")


def test_wide_features_are_reduced_before_the_classifier_and_flips_still_found():
    rng = np.random.default_rng(8)
    width = mislabels.COMPONENTS * 2
    centres = rng.normal(size=(len(CLASSES), width))
    labels = rng.integers(0, len(CLASSES), 400)
    features = (centres[labels] + rng.normal(scale=1.5, size=(400, width))).astype(np.float32)
    flipped = rng.choice(400, 12, replace=False)
    given = labels.copy()
    given[flipped] = (labels[flipped] + 1) % len(CLASSES)
    found = run_audit(_images(features, given, ["train"] * 400), CLASSES)
    top = {s["file"] for s in found["suspected_mislabels"][:24]}
    files = [f"{CLASSES[label]}/img{i:04d}.jpg" for i, label in enumerate(given)]
    assert len(top & {files[i] for i in flipped}) >= 0.7 * 12 + 2


def test_features_that_do_not_tell_the_classes_apart_judge_no_label():
    rng = np.random.default_rng(9)
    features = rng.normal(size=(300, DIM)).astype(np.float32)  # no class in them
    labels = rng.integers(0, len(CLASSES), 300)
    found = run_audit(_images(features, labels, ["train"] * 300), CLASSES)
    check = found["mislabel_check"]
    assert found["suspected_mislabels"] == [] and not check["judged"]
    assert check["out_of_fold_accuracy"] < check["chance_accuracy"] + mislabels.MIN_SKILL * (
        1 - check["chance_accuracy"])
    assert mislabels.judged(0.9, 0.5) and not mislabels.judged(0.6, 0.5)


def test_the_same_composition_in_other_colours_is_no_copy_a_slight_recolouring_is():
    features, labels = _clean(40, seed=6)
    features[39] = features[38]  # a base that looks past colour: the same features
    hashes = np.random.default_rng(2).integers(0, 256, (40, 8), dtype=np.uint8)
    hashes[39] = hashes[38]  # and a grey-level hash that does too
    colours = np.random.default_rng(3).integers(0, 256, (40, 48), dtype=np.uint8)
    splits = ["train"] * 39 + ["eval"]
    slight = colours.copy()
    slight[39] = np.clip(colours[38].astype(int) + 10, 0, 255)
    other = colours.copy()
    other[39] = 255 - colours[38]
    found = run_audit(_images(features, labels, splits, hashes=hashes, colours=slight), CLASSES)
    assert [leak["train_file"] for leak in found["leaks"]] == [
        f"{CLASSES[labels[38]]}/img0038.jpg"]
    assert run_audit(_images(features, labels, splits, hashes=hashes, colours=other),
                     CLASSES)["leaks"] == []


def test_fingerprints_read_grey_structure_and_colour_apart():
    picture = _picture(0)
    hashed, colours = hashing.fingerprints(_encoded(picture))
    assert colours.shape == (hashing.COLOUR_VALUES,) and colours.dtype == np.uint8
    np.testing.assert_array_equal(hashed, hashing.perceptual_hash(_encoded(picture)))
    _, swapped = hashing.fingerprints(_encoded(picture[..., ::-1].copy()))  # RGB -> BGR
    assert np.abs(colours.astype(int) - swapped).mean() > AuditSettings().colour_distance
