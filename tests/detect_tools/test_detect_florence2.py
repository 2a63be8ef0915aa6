from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from detect_tools.base import ProposalOptions, ProposerError
from detect_tools.florence2 import Florence2DetectionProposer, Florence2Proposer


@pytest.fixture(scope="module")
def region_proposer(florence2_checkpoint):
    # 64 new tokens: enough for a dozen boxes from the tiny model, fast on CPU.
    return Florence2Proposer(florence2_checkpoint, device="cpu", max_new_tokens=64)


@pytest.mark.parametrize(
    "options",
    [
        ProposalOptions(),
        ProposalOptions(nms_iou=None),  # duplicates allowed
        ProposalOptions(max_count=3),  # cap below what the model emits
        ProposalOptions(threshold=1.0),  # nothing passes: a valid empty result
    ],
)
def test_region_proposals_keep_the_contract(region_proposer, photo, contract, options):
    proposals = region_proposer.propose(photo, options=options)
    contract(proposals, photo, options, threshold=options.threshold or 0.0)
    if options.threshold != 1.0:
        assert len(proposals) > 0, "the tiny checkpoint emits location tokens"


def test_threshold_drops_weaker_boxes(region_proposer, photo, contract):
    everything = region_proposer.propose(photo, options=ProposalOptions(nms_iou=None))
    cut = float(np.median(everything.confidence))
    options = ProposalOptions(threshold=cut, nms_iou=None)
    kept = region_proposer.propose(photo, options=options)
    contract(kept, photo, options, threshold=cut)
    assert 0 < len(kept) < len(everything)


def test_detection_task_labels_its_boxes(florence2_checkpoint, photo, contract):
    proposer = Florence2DetectionProposer(florence2_checkpoint, device="cpu", max_new_tokens=64)
    proposals = proposer.propose(photo)
    contract(proposals, photo, ProposalOptions(), threshold=0.0)
    assert any(label for label in proposals.data["class_name"])


def test_region_and_detection_proposers_share_one_loaded_model(florence2_checkpoint, photo):
    # Both tasks are asked of one Florence-2: switching proposer must not load a second copy.
    same = {"device": "cpu", "dtype": torch.bfloat16, "max_new_tokens": 64}
    region = Florence2Proposer(florence2_checkpoint, **same)
    detection = Florence2DetectionProposer(florence2_checkpoint, **same)
    assert not detection.is_loaded
    assert len(region.propose(photo)) > 0
    assert detection.is_loaded
    assert detection.loaded.model is region.loaded.model
    assert any(label for label in detection.propose(photo).data["class_name"])
    on_its_own = Florence2Proposer(florence2_checkpoint, device="cpu", dtype=torch.float32)
    assert on_its_own.loaded.model is not region.loaded.model, "another dtype is another copy"


def test_parse_reads_phrases_boxes_and_scores(region_proposer):
    region_proposer.loaded  # noqa: B018 - the parser needs the tokenizer
    tokenizer = region_proposer.loaded.processor.tokenizer
    car = tokenizer("car", add_special_tokens=False).input_ids
    locs = tokenizer.convert_tokens_to_ids([f"<loc_{k}>" for k in (0, 0, 499, 999, 100, 200)])
    # "car" then one box, then a truncated second box (2 of 4 location tokens).
    ids = [tokenizer.bos_token_id, *car, *locs[:4], *locs[4:], tokenizer.eos_token_id]
    log_probs = [0.0] * (1 + len(car)) + [np.log(0.5)] * 4 + [0.0] * 3
    result = region_proposer._parse(ids, log_probs, image_size=(200, 100))
    assert len(result) == 1
    # Bin k covers [k, k+1) thousandths of the side; its centre is the coordinate, not cut to
    # a whole pixel (the post-processor's [0, 0, 99, 99]: a pixel short of the bottom edge).
    np.testing.assert_allclose(result.xyxy[0], [0.1, 0.05, 99.9, 99.95], rtol=1e-6)
    assert result.confidence[0] == pytest.approx(0.5)
    assert list(result.data["class_name"]) == ["car"]


def test_model_loads_lazily_and_once_across_threads(florence2_checkpoint, monkeypatch):
    # float16: no other test's proposer has this checkpoint loaded in it to share.
    proposer = Florence2Proposer(florence2_checkpoint, device="cpu", dtype=torch.float16)
    assert not proposer.is_loaded, "constructing must not load"
    calls = []
    original = proposer._load
    monkeypatch.setattr(proposer, "_load", lambda: calls.append(1) or original())
    threads = [threading.Thread(target=lambda: proposer.loaded) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(calls) == 1


@pytest.mark.parametrize(
    ("checkpoint", "message"),
    [
        ("/no/such/folder", "does not exist"),  # a typo in a local path
        ("models/no/such-folder", "does not exist"),  # relative: more parts than a hub id
        # hub unreachable (offline): said plainly, not as transformers' text with its URLs, and
        # saying that no folder of that name was found either ("models/florence" is both)
        ("someone/not-on-this-machine", r"no folder 'someone/not-on-this-machine' here either"),
    ],
)
def test_unloadable_checkpoints_say_what_to_do(checkpoint, message, photo):
    proposer = Florence2Proposer(checkpoint, device="cpu")
    with pytest.raises(ProposerError, match=message) as error:
        proposer.propose(photo)
    assert "--checkpoint" in str(error.value) and "https://" not in str(error.value)


def test_folder_without_model_files_is_a_user_error(tmp_path, photo):
    with pytest.raises(ProposerError, match="could not be loaded"):
        Florence2Proposer(tmp_path, device="cpu").propose(photo)
