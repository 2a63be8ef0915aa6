from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from fo1_core.answers import (
    CLASS_NAME_KEY,
    COUNT_DIGITS,
    REGION_INDEX_KEY,
    GroundedGroup,
    count_rule,
    parse_answer,
    to_detections,
)
from fo1_core.templates import IM_END, MAX_REGIONS, region_token

PARSE_CASES_PATH = Path(__file__).resolve().parents[1].parent / "shared" / "fo1-reference"
PARSE_CASES = json.loads((PARSE_CASES_PATH / "parse_cases.json").read_text())
BOXES = np.array(PARSE_CASES["boxes"], dtype=np.float32)
CASES = {case["name"]: case for case in PARSE_CASES["cases"]}


def as_sets(mapping: dict) -> dict[str, set[int]]:
    return {label: set(indexes) for label, indexes in mapping.items()}


@pytest.mark.parametrize("name", list(CASES))
def test_reference_parse_cases(name: str) -> None:
    case = CASES[name]
    answer = parse_answer(case["model_output"], num_regions=len(BOXES))
    reference = case["reference_label_to_indexes"]
    expected = {label: {i for i in idx if i < len(BOXES)} for label, idx in reference.items()}
    assert as_sets(answer.label_to_indexes()) == expected
    assert answer.count == case["reference_count_rule"]
    assert answer.references == [i for i in case["bare_region_indexes_in_order"] if i < len(BOXES)]
    if "reference_label_to_boxes_error" in case:
        # The reference raised here; the forgiving parser drops the index and says so.
        assert any("does not exist" in warning for warning in answer.warnings)
    else:
        detections = to_detections(answer, BOXES, include_references=False)
        boxes_by_label: dict[str, list[list[float]]] = {}
        for label, box in zip(detections.data[CLASS_NAME_KEY], detections.xyxy, strict=True):
            boxes_by_label.setdefault(str(label), []).append(box.tolist())
        reference_boxes = case["reference_label_to_boxes"]
        assert {k: sorted(v) for k, v in boxes_by_label.items()} == {
            k: sorted(v) for k, v in reference_boxes.items()
        }


R = region_token


@pytest.mark.parametrize(
    ("text", "num_regions", "groups", "references", "warns"),
    [
        # empty text
        ("", None, {}, [], False),
        # plain text, no tags at all
        ("A cat sits on a mat.", None, {}, [], False),
        # chat end token only
        (IM_END, None, {}, [], False),
        # truncated group: </objects> has not arrived
        (f"<ground>cat</ground><objects>{R(1)}{R(2)}", None, {}, [1, 2], True),
        # truncated inside the closing tag
        (f"<ground>cat</ground><objects>{R(1)}</obj", None, {}, [1], True),
        # truncated inside the label
        ("<ground>ca", None, {}, [], True),
        # out-of-range index with a known box count: dropped, group kept
        (f"<ground>cat</ground><objects>{R(1)}{R(9)}</objects>", 3, {"cat": (1,)}, [1], True),
        # index beyond the 100 region tokens without a box count
        (f"<ground>cat</ground><objects>{R(MAX_REGIONS)}</objects>", None, {"cat": ()}, [], True),
        # duplicate index inside one group
        (
            f"<ground>cat</ground><objects>{R(2)}{R(2)}</objects>",
            None,
            {"cat": (2,)},
            [2, 2],
            False,
        ),
        # unordered indexes keep first-seen order
        (
            f"<ground>cat</ground><objects>{R(5)}{R(1)}{R(3)}</objects>",
            None,
            {"cat": (5, 1, 3)},
            [5, 1, 3],
            False,
        ),
        # whitespace between region tags
        (
            f"<ground>cat</ground><objects> {R(1)},\t{R(2)} </objects>",
            None,
            {"cat": (1, 2)},
            [1, 2],
            False,
        ),
        # a newline there: no group, as the reference reads it (its regex spans no line), but
        # its regions are still referenced
        (f"<ground>cat</ground><objects>{R(1)}\n{R(2)}</objects>", None, {}, [1, 2], True),
        # same label in two groups merges, repeats across groups kept once
        (
            f"<ground>cat</ground><objects>{R(3)}</objects> <ground>cat</ground>"
            f"<objects>{R(1)}{R(3)}</objects>",
            None,
            {"cat": (3, 1)},
            [3, 1, 3],
            False,
        ),
        # nested <ground>: the inner label wins, the outer one is reported
        (
            f"<ground>a<ground>b</ground><objects>{R(1)}</objects>",
            None,
            {"b": (1,)},
            [1],
            True,
        ),
        # stray closing tags around a valid group
        (
            f"</objects></ground><ground>cat</ground><objects>{R(1)}</objects>",
            None,
            {"cat": (1,)},
            [1],
            False,
        ),
        # <objects> without a label: its regions are bare references only
        (f"<objects>{R(1)}</objects>", None, {}, [1], False),
        # region tags inside a label are part of it, as in the reference (visual-prompt answers
        # may name the example box); each is a reference too
        (f"<ground>{R(1)}</ground><objects>{R(2)}</objects>", None, {R(1): (2,)}, [1, 2], False),
        (
            f"<ground>object like {R(3)}</ground><objects>{R(5)}{R(6)}</objects>",
            None,
            {f"object like {R(3)}": (5, 6)},
            [3, 5, 6],
            False,
        ),
        # empty objects list: the label is kept without boxes
        ("<ground>cat</ground><objects></objects>", None, {"cat": ()}, [], False),
        # control tokens inside a group are ignored
        (f"<ground>cat</ground><objects>{R(1)}{IM_END}</objects>", None, {"cat": (1,)}, [1], False),
        # unicode label
        (f"<ground>猫 café</ground><objects>{R(0)}</objects>", None, {"猫 café": (0,)}, [0], False),
    ],
)
def test_edge_cases(
    text: str, num_regions: int | None, groups: dict, references: list[int], warns: bool
) -> None:
    answer = parse_answer(text, num_regions=num_regions)
    assert answer.label_to_indexes() == groups
    assert answer.references == references
    assert bool(answer.warnings) == warns


@pytest.mark.parametrize(
    ("text", "warning"),
    [
        # one missing region
        (f"{R(1)}{R(7)}", "Region 7 does not exist (only 3 boxes); ignored."),
        # many, some repeated: one line naming each once, in the order the model wrote them
        (
            f"{R(26)}{R(26)}{R(8)} and {R(15)}{R(74)}{R(8)}",
            "Regions 26, 8, 15 and 74 do not exist (only 3 boxes); ignored.",
        ),
        # cut off inside a group's regions: drawn, but without the label
        (
            f"<ground>cat</ground><objects>{R(0)}{R(1)}",
            "The answer ends inside the group 'cat': its regions are shown without that label.",
        ),
        # cut off before any region: nothing of it is drawn
        ("<ground>cat </ground><objects>", "The answer ends inside the group 'cat'."),
    ],
)
def test_warnings(text: str, warning: str) -> None:
    assert parse_answer(text, num_regions=3).warnings == [warning]


def test_a_region_named_when_no_boxes_were_given() -> None:
    answer = parse_answer(f"<ground>cat</ground><objects>{R(0)}</objects>", num_regions=0)
    assert answer.warnings == ["Region 0 does not exist (no boxes were given); ignored."]


def test_a_region_past_the_boxes_the_model_reads() -> None:
    """Box #120 may be on screen: it was not read, rather than not there."""
    answer = parse_answer(f"{R(1)}{R(120)}", num_regions=MAX_REGIONS)
    assert answer.warnings == [
        f"Region 120 does not exist (the model reads the first {MAX_REGIONS} boxes only); ignored."
    ]


STREAMED = [case["model_output"] for case in PARSE_CASES["cases"]] + [
    f"<think>Look at {R(12)}.</think><answer>A <ground>dog</ground><objects>{R(12)}{R(3)}"
    f"</objects> runs.</answer>{IM_END}",
    f"<ground>a</ground><objects>{R(1)}</objects><ground>b</ground><objects>\n{R(10)}</objects>",
]


@pytest.mark.parametrize("text", STREAMED)
def test_every_prefix_is_a_subset_of_the_final_answer(text: str) -> None:
    final = parse_answer(text)
    final_groups = as_sets(final.label_to_indexes())
    for end in range(len(text) + 1):
        partial = parse_answer(text[:end])
        for label, indexes in as_sets(partial.label_to_indexes()).items():
            assert indexes <= final_groups[label]
        assert partial.references == final.references[: len(partial.references)]


@pytest.mark.parametrize("chunk_size", [1, 3, 7])
def test_tags_split_across_chunks_are_not_shown_half_written(chunk_size: int) -> None:
    text = f"A <ground>cat</ground><objects>{R(12)}</objects> naps.{IM_END}"
    received = ""
    for start in range(0, len(text), chunk_size):
        received += text[start : start + chunk_size]
        shown = parse_answer(received).display
        # A half-written tag such as "<grou" or "<region1" never reaches the reader.
        assert shown.count("<") == shown.count(">")
    assert parse_answer(received).groups == [GroundedGroup("cat", (12,))]


@pytest.mark.parametrize(
    ("text", "thinking", "final"),
    [
        # full reasoning answer
        (
            f"<think>{R(3)} is larger.</think><answer>{R(3)}</answer>{IM_END}",
            f"{R(3)} is larger.",
            R(3),
        ),
        # <think> still streaming, no <answer> yet
        ("<think>The left one", "The left one", None),
        # <think> closed, answer written without its tag
        ("<think>hmm</think> It is the red one.", "hmm", "It is the red one."),
        # <answer> still streaming
        ("<think>a</think><answer>The b", "a", "The b"),
        # <answer> without <think>
        ("<answer>yes</answer>", None, "yes"),
        # no reasoning tags
        ("Just text.", None, None),
        # the reasoning quotes the answer tags (as the reasoning template does)
        (
            f"<think>Reply in <answer> tags. {R(1)}</think><answer>The cup {R(1)}</answer>",
            f"Reply in <answer> tags. {R(1)}",
            f"The cup {R(1)}",
        ),
        # …and while it streams, nothing is the answer yet
        ("<think>Reply in <answer> tags, then", "Reply in <answer> tags, then", None),
        # an answer that mentions <think> is an answer, not reasoning
        ("<answer>Write <think> first</answer>", None, "Write <think> first"),
        ("<answer>a</answer><think>b</think>", "b", "a"),
    ],
)
def test_reasoning_split(text: str, thinking: str | None, final: str | None) -> None:
    answer = parse_answer(text)
    assert answer.thinking == thinking
    assert answer.final == final


@pytest.mark.parametrize(
    ("text", "count"),
    [
        # the counting template's answer
        (f"<ground>cat</ground><objects>{R(0)}{R(1)}</objects>There are 2 cats.", 2),
        # region numbers are not counted
        (f"{R(7)}{R(8)} There are 12 apples.", 12),
        # numbers written as words: the SPEC rule gives 0
        ("There are three cats.", 0),
        # no number at all
        ("There is no cat.", 0),
        # empty answer
        ("", 0),
        # first integer wins
        ("3 of the 5 boxes are cats", 3),
        # a model stuck writing zeros: a number no image holds, not an error
        ("1" + "0" * 5000, 10**COUNT_DIGITS),
        ("There are 0007 cats", 7),
        ("There are \u0660\u0660\u0667 cats", 7),  # other scripts' digits, as Python reads them
        # a region tag spelt otherwise is no reference, and no count either (CountBench's rule)
        ("<region02><region\u0663> There are 4 cats.", 4),
    ],
)
def test_count_rule(text: str, count: int) -> None:
    assert count_rule(text) == count
    assert parse_answer(text).count == count


@pytest.mark.parametrize("text", ["<region02>", "<region\u0662>", "<region\uff11>"])
def test_only_the_token_spelling_of_a_region_is_a_reference(text: str) -> None:
    """A leading zero or non-ASCII digits are text to the tokenizer, not its region token."""
    answer = parse_answer(f"<ground>cat</ground><objects>{text}</objects>", num_regions=5)
    assert answer.references == [] and answer.groups == [GroundedGroup("cat", ())]


@pytest.mark.parametrize(
    ("text", "display"),
    [
        # chat end tokens removed
        (f"A cat.{IM_END}<|endoftext|>", "A cat."),
        # a half-streamed tag at the end is hidden
        ("A cat <grou", "A cat"),
        # a half-streamed chat token is hidden
        ("A cat<|im_e", "A cat"),
        # a real "<" in text is kept
        ("2 < 3", "2 < 3"),
    ],
)
def test_display_text(text: str, display: str) -> None:
    assert parse_answer(text).display == display


def test_to_detections_labels_boxes_and_indexes() -> None:
    answer = parse_answer(
        f"<ground>cat</ground><objects>{R(2)}{R(0)}</objects> and "
        f"<ground>dog</ground><objects>{R(4)}</objects>, see {R(1)}."
    )
    detections = to_detections(answer, BOXES)
    assert detections.data[CLASS_NAME_KEY].tolist() == ["cat", "cat", "dog", ""]
    assert detections.data[REGION_INDEX_KEY].tolist() == [2, 0, 4, 1]
    np.testing.assert_array_equal(detections.xyxy, BOXES[[2, 0, 4, 1]])
    assert detections.class_id.tolist() == [0, 0, 1, 2]
    assert detections.mask is None and detections.confidence is None
    without_references = to_detections(answer, BOXES, include_references=False)
    assert without_references.data[REGION_INDEX_KEY].tolist() == [2, 0, 4]


@pytest.mark.parametrize(
    ("text", "drawn"),
    [
        # the answer's region, not the one the reasoning went through on its way
        (f"<think>The mug {R(0)} is left.</think><answer>{R(2)}</answer>", [2]),
        (f"<think>{R(0)} then {R(1)}</think><answer>{R(1)} and {R(3)}</answer>", [1, 3]),
        # an answer naming none, or not there yet: the reasoning's regions are all there is
        (f"<think>The mug {R(0)} is left.</think><answer>Yes.</answer>", [0]),
        (f"<think>The mug {R(0)} is left.</think><answer>{R(50)}</answer>", [0]),
        (f"<think>The mug {R(0)} is l", [0]),
        # no reasoning: every reference
        (f"See {R(1)} and {R(0)}.", [1, 0]),
    ],
)
def test_a_reasoning_answer_draws_the_regions_it_answers_with(text: str, drawn: list[int]) -> None:
    detections = to_detections(parse_answer(text, len(BOXES)), BOXES)
    assert detections.data[REGION_INDEX_KEY].tolist() == drawn


def test_to_detections_carries_masks_and_scores() -> None:
    masks = np.zeros((len(BOXES), 8, 8), dtype=bool)
    for i in range(len(BOXES)):
        masks[i, i, :] = True
    scores = np.linspace(0.5, 0.9, len(BOXES))
    answer = parse_answer(f"<ground>x</ground><objects>{R(3)}{R(1)}</objects>")
    detections = to_detections(answer, BOXES, masks=masks, scores=scores)
    np.testing.assert_array_equal(detections.mask, masks[[3, 1]])
    np.testing.assert_allclose(detections.confidence, scores[[3, 1]])


@pytest.mark.parametrize(
    "text",
    [
        # nothing grounded
        "No cats here.",
        # index past the boxes given (parsed without num_regions)
        f"<ground>cat</ground><objects>{R(50)}</objects>",
    ],
)
def test_to_detections_empty(text: str) -> None:
    detections = to_detections(parse_answer(text), BOXES)
    assert len(detections) == 0
    assert detections.xyxy.shape == (0, 4)
    assert detections.data[REGION_INDEX_KEY].shape == (0,)


@pytest.mark.parametrize("given", ["masks", "scores"])
def test_to_detections_needs_one_mask_and_score_per_box(given: str) -> None:
    boxes = np.zeros((3, 4), np.float32)
    values = {"masks": np.zeros((2, 8, 8), bool), "scores": np.zeros(2)}
    answer = parse_answer(f"<ground>cat</ground><objects>{R(2)}</objects>", 3)
    with pytest.raises(ValueError, match=f"2 {given} for 3 boxes"):
        to_detections(answer, boxes, **{given: values[given]})
